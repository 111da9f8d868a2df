"""`docker save` and `docker load` through the real docker CLI: round trips keep the
image ID, the archive has Docker 25+'s layout, and bad archives change nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.cli import Cli, describe


def image_id(docker: Cli, ref: str) -> str:
    return docker.ok("image", "inspect", "-f", "{{.Id}}", ref).strip()


def image_list(docker: Cli) -> str:
    return docker.ok("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")


@pytest.fixture
def retag(docker: Cli, busybox: str) -> Callable[[], str]:
    """A throw-away tag of busybox; removed after the test."""
    tags: list[str] = []

    def make() -> str:
        tag = f"savetest-{uuid.uuid4().hex[:8]}:v1"
        docker.ok("tag", busybox, tag)
        tags.append(tag)
        return tag

    yield make  # type: ignore[misc]
    for tag in tags:
        docker("rmi", tag)


def _docker_with_stdin(docker: Cli, args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=data, capture_output=True, env=docker.env, timeout=120)


def test_save_to_file_then_load_brings_the_image_back(
    docker: Cli, retag: Callable[[], str], tmp_path: Path, new_name: Callable[[str], str]
) -> None:
    tag = retag()
    want = image_id(docker, tag)
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    docker.ok("rmi", tag)
    assert docker("image", "inspect", tag).returncode != 0
    res = docker("load", "-i", str(out), timeout=120)
    assert res.returncode == 0, describe(res)
    assert f"Loaded image: {tag}" in res.stdout
    assert image_id(docker, tag) == want
    assert docker.ok("run", "--rm", "--name", new_name("load"), tag, "echo", "loaded") == "loaded\n"


def test_archive_layout_is_docker_25s(docker: Cli, busybox: str, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    docker.ok("save", busybox, "-o", str(out))
    names = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    for required in ("manifest.json", "index.json", "oci-layout", "repositories", "blobs/sha256/"):
        assert required in names, names
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
        config = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
        layer_digests = [hashlib.sha256(tar.extractfile(name).read()).hexdigest()  # type: ignore[union-attr]
                         for name in manifest[0]["Layers"]]
    want = image_id(docker, busybox)
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert "sha256:" + hashlib.sha256(config).hexdigest() == want
    assert ["sha256:" + d for d in layer_digests] == json.loads(config)["rootfs"]["diff_ids"]
    assert repositories == {"busybox": {"latest": want.removeprefix("sha256:")}}
    (entry,) = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    # deterministic: a second save is byte for byte the same
    again = tmp_path / "again.tar"
    docker.ok("save", busybox, "-o", str(again))
    assert again.read_bytes() == out.read_bytes()


def test_save_to_stdout_piped_into_load(docker: Cli, retag: Callable[[], str]) -> None:
    tag = retag()
    want = image_id(docker, tag)
    saved = subprocess.run(["docker", "save", tag], capture_output=True, env=docker.env, timeout=120)
    assert saved.returncode == 0, saved.stderr
    docker.ok("rmi", tag)
    res = _docker_with_stdin(docker, ["load"], saved.stdout)
    assert res.returncode == 0, res.stderr
    assert image_id(docker, tag) == want


def test_gzipped_archive_loads(docker: Cli, retag: Callable[[], str], tmp_path: Path) -> None:
    tag = retag()
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    subprocess.run(["gzip", str(out)], check=True)
    docker.ok("rmi", tag)
    docker.ok("load", "-i", str(out) + ".gz", timeout=120)
    assert image_id(docker, tag) == image_id(docker, "busybox")


def test_two_images_in_one_archive(docker: Cli, retag: Callable[[], str], tmp_path: Path,
                                   busybox_tar: Path) -> None:
    first = retag()
    second = f"savetest-{uuid.uuid4().hex[:8]}:v2"
    docker.ok("import", "--change", 'CMD ["sh"]', "-m", "second", str(busybox_tar), second, timeout=120)
    try:
        ids = {first: image_id(docker, first), second: image_id(docker, second)}
        assert ids[first] != ids[second]
        out = tmp_path / "two.tar"
        docker.ok("save", "-o", str(out), first, second)
        with tarfile.open(out) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert sorted(t for m in manifest for t in m["RepoTags"]) == sorted([first, second])
        docker.ok("rmi", first, second)
        res = docker("load", "-i", str(out), timeout=120)
        assert res.returncode == 0, describe(res)
        assert {t: image_id(docker, t) for t in ids} == ids
    finally:
        docker("rmi", second)


def test_truncated_archive_is_refused_and_changes_nothing(
    docker: Cli, retag: Callable[[], str], tmp_path: Path, berth_root: Path
) -> None:
    tag = retag()
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    docker.ok("rmi", tag)
    before = image_list(docker)
    data = out.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    res = docker("load", "-i", str(tmp_path / "cut.tar"), timeout=120)
    assert res.returncode == 1, describe(res)
    assert "invalid image archive" in res.stderr or "truncated" in res.stderr, describe(res)
    assert image_list(docker) == before
    _assert_no_scratch_left(berth_root)


def _rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy a tar, passing each file's bytes through `change` (None drops the member)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            if data is not None:
                new = change(info.name, data)
                if new is None:
                    continue
                info.size = len(new)
                tout.addfile(info, io.BytesIO(new))
            else:
                tout.addfile(info)


def _layer_names(src: Path) -> list[str]:
    with tarfile.open(src) as tar:
        return json.load(tar.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type,no-any-return]


def test_layer_not_matching_its_diff_id_is_refused(
    docker: Cli, retag: Callable[[], str], tmp_path: Path, berth_root: Path
) -> None:
    tag = retag()
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    (layer,) = _layer_names(out)

    def corrupt(name: str, data: bytes) -> bytes:
        if name == layer:
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as w:
                    for info in t:
                        w.addfile(info, t.extractfile(info) if info.isreg() else None)
                    extra = tarfile.TarInfo("evil")
                    extra.size = 4
                    w.addfile(extra, io.BytesIO(b"evil"))
            return buf.getvalue()
        return data

    bad = tmp_path / "bad.tar"
    _rewrite(out, bad, corrupt)
    docker.ok("rmi", tag)
    before = image_list(docker)
    res = docker("load", "-i", str(bad), timeout=120)
    assert res.returncode == 1, describe(res)
    assert "digest mismatch" in res.stderr, describe(res)
    assert image_list(docker) == before
    _assert_no_scratch_left(berth_root)


@pytest.mark.parametrize("case", ["missing-layer", "bad-json", "traversal"])
def test_hostile_archives_are_refused(
    docker: Cli, busybox: str, tmp_path: Path, berth_root: Path, case: str
) -> None:
    out = tmp_path / "img.tar"
    docker.ok("save", busybox, "-o", str(out))
    bad = tmp_path / "bad.tar"
    if case == "missing-layer":
        (layer,) = _layer_names(out)
        _rewrite(out, bad, lambda name, data: None if name == layer else data)
    elif case == "bad-json":
        _rewrite(out, bad, lambda name, data: b"{not json" if name == "manifest.json" else data)
    else:
        shutil.copy(out, bad)
        with tarfile.open(bad, "a") as tar:
            info = tarfile.TarInfo("../../escape")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    before = image_list(docker)
    res = docker("load", "-i", str(bad), timeout=120)
    assert res.returncode == 1, describe(res)
    assert "invalid image archive" in res.stderr, describe(res)
    assert image_list(docker) == before
    assert not (tmp_path.parent / "escape").exists()
    _assert_no_scratch_left(berth_root)


def _members(src: Path) -> dict[str, bytes]:
    with tarfile.open(src) as tar:
        return {i.name: tar.extractfile(i).read() for i in tar if i.isreg()}  # type: ignore[union-attr]


def _write_tar(dst: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    with tarfile.open(dst, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)


def test_legacy_layout_loads(docker: Cli, retag: Callable[[], str], tmp_path: Path) -> None:
    """Docker before 25: `<id>/layer.tar` (a symlink when shared) and `<config id>.json`."""
    tag = retag()
    want = image_id(docker, tag)
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    files = _members(out)
    (layer,) = _layer_names(out)
    cfg = want.removeprefix("sha256:")
    legacy = {
        f"{cfg}.json": files[f"blobs/sha256/{cfg}"],
        "aaaa/layer.tar": files[layer],
        "manifest.json": json.dumps([{"Config": f"{cfg}.json", "RepoTags": [tag],
                                      "Layers": ["bbbb/layer.tar"]}]).encode(),
    }
    _write_tar(tmp_path / "legacy.tar", legacy, {"bbbb/layer.tar": "../aaaa/layer.tar"})
    docker.ok("rmi", tag)
    res = docker("load", "-i", str(tmp_path / "legacy.tar"), timeout=120)
    assert res.returncode == 0, describe(res)
    assert image_id(docker, tag) == want


def test_plain_oci_layout_loads(docker: Cli, retag: Callable[[], str], tmp_path: Path) -> None:
    tag = retag()
    want = image_id(docker, tag)
    out = tmp_path / "img.tar"
    docker.ok("save", tag, "-o", str(out))
    files = {k: v for k, v in _members(out).items() if k not in ("manifest.json", "repositories")}
    _write_tar(tmp_path / "oci.tar", files)
    docker.ok("rmi", tag)
    res = docker("load", "-i", str(tmp_path / "oci.tar"), timeout=120)
    assert res.returncode == 0, describe(res)
    assert image_id(docker, tag) == want


def test_save_of_an_unknown_image_is_404(docker: Cli, tmp_path: Path) -> None:
    res = docker("save", "no-such-image-xyz", "-o", str(tmp_path / "x.tar"))
    assert res.returncode == 1
    assert "No such image: no-such-image-xyz" in res.stderr


def _assert_no_scratch_left(berth_root: Path) -> None:
    for root, _dirs, files in os.walk(berth_root):
        if "/content/" in root + "/":
            assert not [f for f in files if f.startswith(".ingest-")], (root, files)
            if root.endswith("/content/spool"):
                assert not os.listdir(root)
    for spool in berth_root.glob("**/content/spool"):
        assert not list(spool.iterdir())


def test_untagged_image_loads_by_id(docker: Cli, busybox: str, tmp_path: Path) -> None:
    want = image_id(docker, busybox)
    out = tmp_path / "byid.tar"
    docker.ok("save", want.removeprefix("sha256:")[:12], "-o", str(out))
    with tarfile.open(out) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] is None  # type: ignore[arg-type]
    res = docker("load", "-i", str(out), timeout=120)
    assert res.returncode == 0, describe(res)
    assert f"Loaded image ID: {want}" in res.stdout


def test_layer_tar_is_kept_until_the_image_is_removed(docker: Cli, tmp_path: Path, berth_root: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    _write_tar(rootfs, {"unique": uuid.uuid4().hex.encode()})
    tag = f"savetest-{uuid.uuid4().hex[:8]}:v1"
    docker.ok("import", str(rootfs), tag, timeout=120)
    (diff_id,) = json.loads(docker.ok("image", "inspect", "-f", "{{json .RootFS.Layers}}", tag))
    blobs = list(berth_root.glob(f"**/content/sha256/{diff_id.removeprefix('sha256:')}"))
    assert len(blobs) == 1 and blobs[0].read_bytes() == rootfs.read_bytes()
    docker.ok("rmi", tag)
    assert not blobs[0].exists()
