"""Digest references (RepoDigests) in the image store, as Docker's reference store
keeps them: a pulled image is named by tag and by `name@digest`; rmi of the last tag
of a repository takes that repository's digests along; rmi by digest removes only the
digest; and the layers a killed operation left without an image are collected at
start-up."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.errors import NotFound
from berth.images.store import ImageStore
from berth.layers.store import LayerStore
from berth.metadata import open_db

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def images(tmp_path: Path) -> ImageStore:
    db = open_db(str(tmp_path / "berth.db"))
    return ImageStore(db, LayerStore(str(tmp_path), db, storage_driver="vfs"))


def _pulled(images: ImageStore, names: list[str], manifest_digest: str, repository: str) -> str:
    layer = asyncio.run(images.layers.apply(_chunks(_tar("f", b"x")), None))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    return images.commit_pulled(config, layer.size, names, manifest_digest, repository)


def test_a_pulled_image_has_its_tag_and_its_digest(images: ImageStore) -> None:
    image_id = _pulled(images, ["localhost:5000/app:1"], DIGEST_A, "localhost:5000/app")
    img = images.resolve(image_id)
    assert img.repo_tags == ["localhost:5000/app:1"]
    assert img.repo_digests == [f"localhost:5000/app@{DIGEST_A}"]
    assert images.resolve(f"localhost:5000/app@{DIGEST_A}").id == image_id


def test_rmi_of_the_last_tag_takes_the_repositorys_digests(images: ImageStore) -> None:
    image_id = _pulled(images, ["localhost:5000/app:1"], DIGEST_A, "localhost:5000/app")
    out = images.remove("localhost:5000/app:1", False, {})
    assert {"Untagged": "localhost:5000/app:1"} in out
    assert {"Untagged": f"localhost:5000/app@{DIGEST_A}"} in out
    assert {"Deleted": image_id} in out
    with pytest.raises(NotFound):
        images.resolve(image_id)
    assert images.layers.db.execute("SELECT COUNT(*) FROM layers").fetchone()[0] == 0


def test_rmi_of_a_tag_keeps_digests_of_other_repositories(images: ImageStore) -> None:
    image_id = _pulled(images, ["localhost:5000/app:1"], DIGEST_A, "localhost:5000/app")
    images.tag(image_id, "mirror.local/app:1")
    images.add_digest(image_id, "mirror.local/app", DIGEST_B)
    out = images.remove("localhost:5000/app:1", False, {})
    assert {"Untagged": f"localhost:5000/app@{DIGEST_A}"} in out
    img = images.resolve(image_id)
    assert img.repo_tags == ["mirror.local/app:1"]
    assert img.repo_digests == [f"mirror.local/app@{DIGEST_B}"]


def test_rmi_by_digest_removes_only_that_reference(images: ImageStore) -> None:
    image_id = _pulled(images, ["localhost:5000/app:1"], DIGEST_A, "localhost:5000/app")
    out = images.remove(f"localhost:5000/app@{DIGEST_A}", False, {})
    assert out == [{"Untagged": f"localhost:5000/app@{DIGEST_A}"}]
    img = images.resolve(image_id)
    assert img.repo_tags == ["localhost:5000/app:1"] and img.repo_digests == []


def test_an_image_known_only_by_digest_is_not_dangling_and_rmi_by_id_untags_it(images: ImageStore) -> None:
    image_id = _pulled(images, [], DIGEST_A, "localhost:5000/app")
    from berth.images.filters import ImageFilters, list_images

    assert [i.id for i in list_images(images, ImageFilters(dangling=True))] == []
    out = images.remove(image_id, False, {})
    assert out[0] == {"Untagged": f"localhost:5000/app@{DIGEST_A}"}
    assert {"Deleted": image_id} in out


def test_layers_no_image_uses_are_collected_at_start_up(images: ImageStore) -> None:
    kept_id = _pulled(images, ["app:1"], DIGEST_A, "docker.io/library/app")
    orphan = asyncio.run(images.layers.apply(_chunks(_tar("g", b"left by a killed pull")), None))
    assert images.collect_unused_layers() == [orphan.chain_id]
    assert images.layers.get(orphan.chain_id) is None
    assert not images.layers.content.has(orphan.diff_id)
    assert images.resolve(kept_id).chain_ids[0] is not None
    assert images.collect_unused_layers() == []
