"""The archive's pure parts: what `save` writes, and how `load` reads hostile input."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.content.store import ContentStore
from berth.errors import InvalidParameter
from berth.images import archive, reference


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


LAYER = b"layer-bytes"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha(LAYER)]}}).encode()


def save_image(*tags: str) -> archive.SaveImage:
    return archive.SaveImage(sha(CONFIG), CONFIG, [archive.LayerBlob(sha(LAYER), len(LAYER))],
                             [reference.parse(t) for t in tags])


def write(entries: list[archive.Entry], path: Path) -> None:
    """The archive as the API streams it, with the layer bytes filled in."""
    with open(path, "wb") as f:
        for e in entries:
            f.write(archive.tar_header(e))
            data = e.data if e.data is not None else (LAYER if e.blob else b"")
            f.write(data + archive.tar_padding(len(data)))
        f.write(archive.TAR_END)


def test_save_layout(tmp_path: Path) -> None:
    entries = archive.save_entries([save_image("busybox", "busybox:1.36")])
    names = [e.name for e in entries]
    assert names[:2] == ["blobs/", "blobs/sha256/"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    assert names[2:-4] == sorted(names[2:-4])
    write(entries, tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert all(m.mtime == 0 for m in tar)
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
        assert tar.extractfile(manifest[0]["Layers"][0]).read() == LAYER  # type: ignore[union-attr]
        oci = json.loads(tar.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]).read())  # type: ignore[union-attr]
    assert manifest == [{"Config": "blobs/sha256/" + sha(CONFIG)[7:],
                         "RepoTags": ["busybox:latest", "busybox:1.36"],
                         "Layers": ["blobs/sha256/" + sha(LAYER)[7:]]}]
    assert repositories == {"busybox": {"latest": sha(CONFIG)[7:], "1.36": sha(CONFIG)[7:]}}
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["latest", "1.36"]
    assert oci["config"] == {"mediaType": archive.CONFIG_MEDIA_TYPE, "digest": sha(CONFIG), "size": len(CONFIG)}
    assert oci["layers"][0]["digest"] == sha(LAYER)


def test_untagged_save_has_null_repo_tags_and_no_repositories() -> None:
    entries = archive.save_entries([save_image()])
    by_name = {e.name: e for e in entries}
    assert "repositories" not in by_name
    assert json.loads(by_name["manifest.json"].data or b"")[0]["RepoTags"] is None


def test_save_then_read_round_trip(tmp_path: Path) -> None:
    write(archive.save_entries([save_image("x/y:z")]), tmp_path / "a.tar")
    (img,) = archive.read_archive(str(tmp_path / "a.tar"), "amd64")
    assert img.image_id == sha(CONFIG) and img.config == CONFIG
    assert img.repo_tags == ["x/y:z"] and img.diff_ids == [sha(LAYER)]
    assert archive.member_digest(img.layers[0]) == sha(LAYER)


def make_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def legacy(manifest: object, **extra: bytes) -> dict[str, bytes]:
    files = {"cfg.json": CONFIG, "l/layer.tar": LAYER, "manifest.json": json.dumps(manifest).encode()}
    files.update(extra)
    return files


GOOD = [{"Config": "cfg.json", "RepoTags": ["a:b"], "Layers": ["l/layer.tar"]}]


@pytest.mark.parametrize("files, message", [
    (legacy(GOOD, **{"../escape": b"x"}), "unsafe member name"),
    (legacy(GOOD, **{"/abs": b"x"}), "unsafe member name"),
    (legacy([{"Config": "cfg.json", "Layers": ["missing/layer.tar"]}]), "not in the archive"),
    (legacy([{"Config": "../cfg.json", "Layers": []}]), "unsafe member name"),
    ({"manifest.json": b"{nope"}, "not valid JSON"),
    (legacy({"Config": "cfg.json"}), "not a list"),
    (legacy([{"Config": "cfg.json", "Layers": []}]), "1 diff IDs for 0 layers"),
    (legacy([{"Config": "cfg.json", "RepoTags": ["BAD:tag"], "Layers": ["l/layer.tar"]}]), "must be lowercase"),
    (legacy([{"Config": "c" * 64 + ".json", "Layers": ["l/layer.tar"]}], **{"c" * 64 + ".json": CONFIG}),
     "does not match its digest"),
    ({"hello": b"x"}, "neither manifest.json nor index.json"),
])
def test_bad_archives_are_refused(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    make_tar(tmp_path / "a.tar", files)
    with pytest.raises(InvalidParameter, match=message):
        archive.read_archive(str(tmp_path / "a.tar"), "amd64")
    with pytest.raises(InvalidParameter, match=message):
        spool((tmp_path / "a.tar").read_bytes(), tmp_path)


async def chunks_of(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def spool(data: bytes, tmp_path: Path, chunk: int = 65536) -> list[archive.LoadImage]:
    """`docker load`'s way in: the archive streamed, split into files in a spool directory."""
    content = ContentStore(str(tmp_path / "root"))
    directory = content.spool_dir()
    return asyncio.run(content.read_stream(
        chunks_of(data, chunk), lambda stream: archive.spool_archive(stream, directory, "amd64")))


BIG_LAYER = os.urandom(3 << 20) + b"end"
BIG_CONFIG = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(BIG_LAYER)]}}).encode()


@pytest.mark.parametrize("compress", [False, True])
def test_a_streamed_archive_puts_large_members_in_files_of_their_own(
        tmp_path: Path, compress: bool) -> None:
    manifest = [{"Config": "cfg.json", "RepoTags": ["a:b"], "Layers": ["l/layer.tar"]}]
    make_tar(tmp_path / "a.tar", {"cfg.json": BIG_CONFIG, "l/layer.tar": BIG_LAYER,
                                  "manifest.json": json.dumps(manifest).encode()})
    data = (tmp_path / "a.tar").read_bytes()
    (img,) = spool(gzip.compress(data, 1) if compress else data, tmp_path, chunk=4097)
    assert img.config == BIG_CONFIG and img.diff_ids == [sha(BIG_LAYER)]
    (layer,) = img.layers
    assert layer.offset == 0 and layer.sha256 == sha(BIG_LAYER)
    assert Path(layer.path).read_bytes() == BIG_LAYER
    assert archive.member_digest(layer) == sha(BIG_LAYER)


def test_a_streamed_archive_cut_short_is_refused(tmp_path: Path) -> None:
    make_tar(tmp_path / "a.tar", legacy(GOOD, big=BIG_LAYER))
    data = (tmp_path / "a.tar").read_bytes()
    for cut in (100, 700, 2 << 20, len(data) - 10240):
        with pytest.raises(InvalidParameter, match="invalid image archive|unexpected end"):
            spool(data[:cut], tmp_path)
    with pytest.raises(InvalidParameter, match="invalid gzip data"):
        spool(gzip.compress(data)[:-100], tmp_path)


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    make_tar(tmp_path / "a.tar", legacy(GOOD, big=b"z" * 100000))
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "a.tar").write_bytes(data[:60000])
    with pytest.raises(InvalidParameter, match="invalid image archive"):
        archive.read_archive(str(tmp_path / "a.tar"), "amd64")
    with pytest.raises(InvalidParameter, match="invalid image archive"):
        spool(data[:60000], tmp_path)


def test_links_that_leave_the_archive_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    make_tar(path, legacy([{"Config": "cfg.json", "Layers": ["link"]}]))
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(InvalidParameter, match="unsafe member name"):
        archive.read_archive(str(path), "amd64")
    with pytest.raises(InvalidParameter, match="unsafe member name"):
        spool(path.read_bytes(), tmp_path)


def test_clean_name() -> None:
    assert archive.clean_name("./a//b/./c") == "a/b/c"
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\0b"):
        with pytest.raises(InvalidParameter):
            archive.clean_name(bad)
