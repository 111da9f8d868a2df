"""The registry's store on disk: content-addressed blobs, each repository's links, tags
and referrers, and upload sessions.

Layout under the root directory:

    blobs/sha256/<hex[:2]>/<hex>                 blob and manifest bodies
    repositories/<name>/_layers/sha256/<hex>     (empty) the repository holds this blob
    repositories/<name>/_manifests/revisions/sha256/<hex>    ... this manifest
    repositories/<name>/_manifests/tags/<tag>    the tag's digest, "sha256:<hex>"
    repositories/<name>/_referrers/<subject hex>/<hex>        a manifest whose subject
                                                               is <subject hex>
    uploads/<id>/data, uploads/<id>/repo, uploads/<id>/started

Every write goes to a temporary name, is fsynced and renamed into place, so a crash
leaves either the old or the new file; two uploads of one blob finishing at once both
rename identical content onto the same name. Blocking: call it from a thread (the
server does, with asyncio.to_thread). It knows nothing of HTTP.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berth.registry.protocol import (
    RegistryError,
    blob_unknown,
    check_digest,
    manifest_unknown,
    upload_unknown,
)

CHUNK = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass
class UploadInfo:
    id: str
    repo: str
    started: float
    size: int


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.repos = root / "repositories"
        self.uploads = root / "uploads"

    def create(self) -> None:
        for d in (self.blobs, self.repos, self.uploads):
            d.mkdir(parents=True, exist_ok=True)

    # blobs -------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        hexpart = check_digest(digest)
        return self.blobs / hexpart[:2] / hexpart

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_blob_file(self, src: Path, digest: str) -> None:
        """Move a finished, fsynced file into place as the blob `digest`."""
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        _fsync_dir(dest.parent)

    def put_blob_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.blob_size(digest) is None:
            write_atomic(self.blob_path(digest), data)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def all_blobs(self) -> Iterator[str]:
        if not self.blobs.is_dir():
            return
        for prefix in sorted(self.blobs.iterdir()):
            if prefix.is_dir():
                for f in sorted(prefix.iterdir()):
                    if not f.name.startswith("."):
                        yield "sha256:" + f.name

    def remove_temporaries(self, max_age: float) -> list[Path]:
        """Remove the temporary files a crash left behind (older than `max_age`)."""
        removed = []
        now = time.time()
        for top in (self.blobs, self.repos):
            if not top.is_dir():
                continue
            for dirpath, _, filenames in os.walk(top):
                for name in filenames:
                    path = Path(dirpath) / name
                    if name.startswith(".") and name.endswith(".tmp"):
                        try:
                            if now - path.stat().st_mtime > max_age:
                                path.unlink()
                                removed.append(path)
                        except FileNotFoundError:
                            continue
        return removed

    def delete_blob(self, digest: str) -> None:
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            pass

    # repositories ------------------------------------------------------------------
    def _repo(self, name: str) -> Path:
        return self.repos / name

    def _layer_link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_layers" / "sha256" / check_digest(digest)

    def _revision_link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / "sha256" / check_digest(digest)

    def _tag_file(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_manifests" / "tags" / tag

    @staticmethod
    def _touch(link: Path) -> None:
        if not link.exists():
            write_atomic(link, b"")

    def link_blob(self, name: str, digest: str) -> None:
        self._touch(self._layer_link(name, digest))

    def repo_blob_size(self, name: str, digest: str) -> int:
        """The size of a blob this repository holds; BLOB_UNKNOWN otherwise."""
        if self._layer_link(name, digest).exists() or self._revision_link(name, digest).exists():
            size = self.blob_size(digest)
            if size is not None:
                return size
        raise blob_unknown(digest)

    def unlink_blob(self, name: str, digest: str) -> None:
        try:
            self._layer_link(name, digest).unlink()
        except FileNotFoundError:
            raise blob_unknown(digest) from None

    def has_manifest(self, name: str, digest: str) -> bool:
        return self._revision_link(name, digest).exists() and self.blob_size(digest) is not None

    def has_blob(self, name: str, digest: str) -> bool:
        return self._layer_link(name, digest).exists() and self.blob_size(digest) is not None

    def put_manifest(self, name: str, body: bytes, tag: str | None,
                     subject: str | None) -> str:
        digest = self.put_blob_bytes(body)
        self._touch(self._revision_link(name, digest))
        if subject is not None:
            self._touch(self._repo(name) / "_referrers" / check_digest(subject)
                        / check_digest(digest))
        if tag is not None:
            write_atomic(self._tag_file(name, tag), digest.encode())
        return digest

    def resolve(self, name: str, ref: str) -> str:
        """The digest a tag or digest reference names in this repository."""
        if ":" in ref:
            digest = ref
        else:
            try:
                digest = self._tag_file(name, ref).read_text().strip()
            except (FileNotFoundError, NotADirectoryError):
                raise manifest_unknown(ref) from None
        if not self.has_manifest(name, digest):
            raise manifest_unknown(ref)
        return digest

    def delete_manifest(self, name: str, ref: str) -> None:
        """Delete a tag, or a manifest (with the tags that name it) by digest."""
        if ":" not in ref:
            try:
                self._tag_file(name, ref).unlink()
            except (FileNotFoundError, NotADirectoryError):
                raise manifest_unknown(ref) from None
            return
        link = self._revision_link(name, ref)
        if not link.exists():
            raise manifest_unknown(ref)
        for tag in self.tags(name):
            if self._tag_file(name, tag).read_text().strip() == ref:
                self._tag_file(name, tag).unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        referrers = self._repo(name) / "_referrers"
        if referrers.is_dir():
            for subject in referrers.iterdir():
                (subject / check_digest(ref)).unlink(missing_ok=True)

    def tags(self, name: str) -> list[str]:
        tags_dir = self._repo(name) / "_manifests" / "tags"
        if not tags_dir.is_dir():
            return []
        return sorted(p.name for p in tags_dir.iterdir() if not p.name.startswith("."))

    def tag_target(self, name: str, tag: str) -> str | None:
        try:
            return self._tag_file(name, tag).read_text().strip()
        except FileNotFoundError:
            return None

    def revisions(self, name: str) -> list[str]:
        rev = self._repo(name) / "_manifests" / "revisions" / "sha256"
        if not rev.is_dir():
            return []
        return sorted("sha256:" + p.name for p in rev.iterdir() if not p.name.startswith("."))

    def layer_links(self, name: str) -> list[str]:
        layers = self._repo(name) / "_layers" / "sha256"
        if not layers.is_dir():
            return []
        return sorted("sha256:" + p.name for p in layers.iterdir() if not p.name.startswith("."))

    def repo_exists(self, name: str) -> bool:
        return self._repo(name).is_dir()

    def referrers(self, name: str, subject: str) -> list[str]:
        d = self._repo(name) / "_referrers" / check_digest(subject)
        if not d.is_dir():
            return []
        found = []
        for p in sorted(d.iterdir()):
            digest = "sha256:" + p.name
            if self.has_manifest(name, digest):
                found.append(digest)
        return found

    def catalog(self) -> list[str]:
        names: list[str] = []
        if not self.repos.is_dir():
            return names
        for dirpath, dirnames, _ in os.walk(self.repos):
            marked = [d for d in dirnames if d.startswith("_")]
            if marked:
                names.append(os.path.relpath(dirpath, self.repos))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        return sorted(names)

    # uploads -----------------------------------------------------------------------
    def start_upload(self, name: str) -> UploadInfo:
        upload_id = uuid.uuid4().hex
        d = self.uploads / upload_id
        d.mkdir(parents=True)
        started = time.time()
        (d / "repo").write_text(name)
        (d / "started").write_text(repr(started))
        (d / "data").touch()
        return UploadInfo(upload_id, name, started, 0)

    def upload_data(self, upload_id: str) -> Path:
        return self.uploads / upload_id / "data"

    def get_upload(self, name: str, upload_id: str, max_age: float) -> UploadInfo:
        """The session `upload_id` of repository `name`; BLOB_UPLOAD_UNKNOWN when there
        is none, it belongs to another repository, or it is stale (then removed)."""
        d = self.uploads / upload_id
        try:
            repo = (d / "repo").read_text()
            started = float((d / "started").read_text())
            size = (d / "data").stat().st_size
        except (FileNotFoundError, ValueError, NotADirectoryError):
            raise upload_unknown(upload_id) from None
        if repo != name:
            raise upload_unknown(upload_id)
        if time.time() - started > max_age:
            self.cancel_upload(upload_id)
            raise upload_unknown(upload_id)
        return UploadInfo(upload_id, repo, started, size)

    def cancel_upload(self, upload_id: str) -> None:
        shutil.rmtree(self.uploads / upload_id, ignore_errors=True)

    def purge_uploads(self, max_age: float) -> list[str]:
        """Remove sessions older than `max_age` seconds; their ids."""
        purged: list[str] = []
        if not self.uploads.is_dir():
            return purged
        now = time.time()
        for d in self.uploads.iterdir():
            try:
                started = float((d / "started").read_text())
            except (FileNotFoundError, ValueError, NotADirectoryError):
                started = d.stat().st_mtime
            if now - started > max_age:
                shutil.rmtree(d, ignore_errors=True)
                purged.append(d.name)
        return purged


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 digest and size of a file, read in large chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 * CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


__all__ = ["RegistryError", "Storage", "UploadInfo", "hash_file", "write_atomic"]
