"""The store on disk and garbage collection's mark and sweep."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from berth.registry import gc
from berth.registry.protocol import OCI_INDEX, OCI_MANIFEST, RegistryError
from berth.registry.storage import Storage


def _blob(storage: Storage, repo: str, data: bytes) -> dict[str, object]:
    digest = storage.put_blob_bytes(data)
    storage.link_blob(repo, digest)
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def _manifest(storage: Storage, repo: str, tag: str | None, name: bytes,
              subject: str | None = None) -> str:
    config = _blob(storage, repo, b"config " + name)
    layer = _blob(storage, repo, b"layer " + name)
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                              "layers": [layer]}
    if subject:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    return storage.put_manifest(repo, json.dumps(doc).encode(), tag, subject)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage(tmp_path / "root")
    s.create()
    return s


def test_tags_revisions_and_delete(storage: Storage) -> None:
    digest = _manifest(storage, "a/b", "v1", b"1")
    assert storage.resolve("a/b", "v1") == digest
    assert storage.resolve("a/b", digest) == digest
    assert storage.catalog() == ["a/b"]
    with pytest.raises(RegistryError) as exc:
        storage.resolve("a/c", "v1")
    assert exc.value.code == "MANIFEST_UNKNOWN"
    storage.delete_manifest("a/b", digest)
    assert storage.tags("a/b") == []
    with pytest.raises(RegistryError):
        storage.resolve("a/b", digest)


def test_referrers(storage: Storage) -> None:
    subject = _manifest(storage, "r", "v1", b"s")
    sig = _manifest(storage, "r", None, b"sig", subject=subject)
    assert storage.referrers("r", subject) == [sig]
    storage.delete_manifest("r", sig)
    assert storage.referrers("r", subject) == []


def test_uploads_stale(storage: Storage) -> None:
    info = storage.start_upload("a")
    assert storage.get_upload("a", info.id, 3600).size == 0
    with pytest.raises(RegistryError) as exc:
        storage.get_upload("b", info.id, 3600)
    assert exc.value.code == "BLOB_UPLOAD_UNKNOWN"
    with pytest.raises(RegistryError):
        storage.get_upload("a", info.id, -1)  # stale: removed
    assert not (storage.uploads / info.id).exists()
    other = storage.start_upload("a")
    assert storage.purge_uploads(-1) == [other.id]


def test_gc_marks_through_indexes(storage: Storage) -> None:
    child = _manifest(storage, "a", None, b"child")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": 1}]}).encode()
    index_digest = storage.put_manifest("a", index, "multi", None)
    orphan = storage.put_blob_bytes(b"orphan")
    untagged = _manifest(storage, "a", None, b"untagged")
    signature = _manifest(storage, "a", None, b"sig", subject=index_digest)
    lines: list[str] = []
    result = gc.collect(storage, dry_run=True, delete_untagged=False, say=lines.append)
    assert result.swept == [orphan]
    assert f"blob eligible for deletion: {orphan}" in lines
    assert storage.blob_size(orphan) is not None  # dry run

    result = gc.collect(storage, dry_run=False, delete_untagged=True, say=lines.append)
    assert storage.blob_size(orphan) is None
    assert storage.blob_size(untagged) is None
    for kept in (child, index_digest, signature):
        assert storage.blob_size(kept) is not None
    assert (("a", untagged) in result.untagged) and storage.revisions("a") == sorted(
        [child, index_digest, signature])
    layer = "sha256:" + hashlib.sha256(b"layer untagged").hexdigest()
    assert storage.blob_size(layer) is None and layer not in storage.layer_links("a")


def test_gc_removes_old_temporaries(storage: Storage) -> None:
    import os

    digest = storage.put_blob_bytes(b"orphan")
    leftover = storage.blob_path(digest).parent / f".{digest[7:]}.abc.tmp"
    leftover.write_bytes(b"half")
    fresh = storage.blob_path(digest).parent / f".{digest[7:]}.def.tmp"
    fresh.write_bytes(b"being written")
    os.utime(leftover, (0, 0))
    gc.collect(storage, dry_run=False, delete_untagged=False, say=lambda line: None)
    assert not leftover.exists() and fresh.exists()
    assert list(storage.all_blobs()) == []
