"""Docker's image archives, as `docker save` writes and `docker load` reads them.

Writing: the Docker 25+ layout, which is at once a Docker archive (`manifest.json`,
`repositories`) and an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`):
layer tars (uncompressed), configs and OCI manifests are blobs. The archive is
deterministic: entries sorted, fixed owner, modes and mtimes.

Reading: an archive is indexed by member name, never extracted by it; names with `..`,
absolute names and links that leave the archive are refused. An archive streamed in
(`docker load`) is split as it arrives: each large member goes to its own private file,
hashed on the way, so that a layer whose digest checks out can become a content-store
blob without another copy; small members share one file. Member names never become
paths. Both of Docker's layouts are read through `manifest.json` (the legacy
`<id>/layer.tar` + `<id>.json` one and the blobs one), and a plain OCI image layout
through `index.json`. The result is a plan: each image's config bytes and which
file, and where in it, each layer's bytes lie. Nothing here touches the stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from berth.content.compression import Decompressor
from berth.content.digest import is_digest
from berth.content.digest import of_bytes as _digest
from berth.errors import InvalidParameter
from berth.images import reference

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ARCHIVE_MTIME = 0
_MAX_JSON = 16 << 20  # manifest.json, index.json, configs: refused above this size
_OWN_FILE_MIN = 1 << 20  # streamed members this large get a file of their own
_READ_CHUNK = 8 << 20


class Readable(Protocol):
    """A blocking byte stream: `read` returns all `size` bytes unless the stream ends;
    `read_some` may return fewer, and saves a copy."""

    def read(self, size: int = -1, /) -> bytes: ...
    def read_some(self, size: int, /) -> bytes | memoryview: ...


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# -- writing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerBlob:
    diff_id: str
    size: int


@dataclass
class SaveImage:
    """One image to save: its config, its layers' blobs, and the names to save it under."""

    image_id: str
    config: bytes
    layers: list[LayerBlob]
    tags: list[reference.Reference] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One archive member: either inline bytes or a layer blob of the content store."""

    name: str
    data: bytes | None = None
    blob: str | None = None
    size: int = 0
    is_dir: bool = False


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def oci_manifest(img: SaveImage) -> bytes:
    return _dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": img.image_id, "size": len(img.config)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer.diff_id, "size": layer.size}
                   for layer in img.layers],
    })


def save_entries(images: list[SaveImage]) -> list[Entry]:
    """Every member of the archive for `images`, in the order they are written."""
    blobs: dict[str, Entry] = {}
    manifests: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for img in images:
        blobs[_blob_name(img.image_id)] = Entry(_blob_name(img.image_id), data=img.config)
        for layer in img.layers:
            name = _blob_name(layer.diff_id)
            blobs[name] = Entry(name, blob=layer.diff_id, size=layer.size)
        manifest = oci_manifest(img)
        blobs[_blob_name(_digest(manifest))] = Entry(_blob_name(_digest(manifest)), data=manifest)
        descriptor = {"mediaType": MANIFEST_MEDIA_TYPE, "digest": _digest(manifest), "size": len(manifest)}
        for ref in img.tags:
            index.append({**descriptor, "annotations": {
                "io.containerd.image.name": str(ref),
                "org.opencontainers.image.ref.name": ref.tag,
            }})
            repositories.setdefault(ref.familiar_name, {})[ref.tag] = img.image_id.split(":", 1)[1]
        if not img.tags:
            index.append(descriptor)
        manifests.append({
            "Config": _blob_name(img.image_id),
            "RepoTags": [ref.familiar_string() for ref in img.tags] or None,
            "Layers": [_blob_name(layer.diff_id) for layer in img.layers],
        })
    files = [
        Entry("index.json", data=_dumps({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
                                         "manifests": index})),
        Entry("manifest.json", data=_dumps(manifests)),
        Entry("oci-layout", data=_dumps({"imageLayoutVersion": "1.0.0"})),
    ]
    if repositories:
        files.append(Entry("repositories", data=_dumps(repositories)))
    dirs = [Entry("blobs/", is_dir=True), Entry("blobs/sha256/", is_dir=True)]
    return dirs + [blobs[k] for k in sorted(blobs)] + files


def tar_header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.mtime = ARCHIVE_MTIME
    info.uname = info.gname = ""
    if entry.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
        info.size = len(entry.data) if entry.data is not None else entry.size
    return info.tobuf(format=tarfile.PAX_FORMAT)


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)


# -- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """Where a regular file's bytes lie: `size` bytes of file `path` from `offset`."""

    name: str
    path: str
    offset: int
    size: int
    sha256: str | None = None  # "sha256:<hex>" of the bytes, when the member is all of `path`


@dataclass
class LoadImage:
    config: bytes
    image_id: str
    diff_ids: list[str]
    layers: list[Member]
    repo_tags: list[str]


def _bad(message: str) -> InvalidParameter:
    return InvalidParameter(f"invalid image archive: {message}")


def clean_name(name: str) -> str:
    """An archive member's name, normalized; refuses absolute names and `..`."""
    if name.startswith("/") or "\0" in name:
        raise _bad(f"unsafe member name {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _bad(f"unsafe member name {name!r}")
    return "/".join(parts)


class ArchiveIndex:
    """The members of an uncompressed archive, by clean name."""

    def __init__(self) -> None:
        self.files: dict[str, Member] = {}
        self.links: dict[str, str] = {}

    @classmethod
    def of_file(cls, path: str) -> ArchiveIndex:
        """Index an archive that lies in a file; members are ranges of that file."""
        index = cls()
        file_size = os.path.getsize(path)
        with _tar_errors():
            with tarfile.open(path, "r:") as tar:
                for info in tar:
                    name = index._add(info)
                    if name is not None:
                        if info.offset_data + info.size > file_size:
                            raise _bad(f"{name!r} is truncated")
                        index.files[name] = Member(name, path, info.offset_data, info.size)
        return index

    @classmethod
    def of_stream(cls, stream: Readable, directory: str) -> ArchiveIndex:
        """Index an archive read from `stream`, writing its members' bytes to new private
        files in `directory` (the caller removes it): large members one file each,
        hashed, small ones together."""
        index = cls()
        reader = _ForwardReader(stream)
        fd, small_path = tempfile.mkstemp(prefix="members-", dir=directory)
        with _tar_errors(), os.fdopen(fd, "wb") as small:
            # "r:" rather than stream mode: member bytes are read straight from `reader`,
            # and tarfile only seeks forward, past what was read
            with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r:") as tar:
                for info in tar:
                    name = index._add(info)
                    if name is None:
                        continue
                    if reader.tell() != info.offset_data:
                        raise _bad(f"{name!r} is not where its header says")
                    if info.size >= _OWN_FILE_MIN:
                        index.files[name] = _spool_member(name, reader, info.size, directory)
                    else:
                        offset = small.tell()
                        chunk = reader.read(info.size)
                        if len(chunk) != info.size:
                            raise _bad(f"{name!r} is truncated")
                        small.write(chunk)
                        index.files[name] = Member(name, small_path, offset, info.size)
            while reader.read(_READ_CHUNK):  # the end blocks, and whatever follows them:
                pass  # the whole stream is read, so a cut compressed stream is noticed
        return index

    def _add(self, info: tarfile.TarInfo) -> str | None:
        """Record a link; for a regular file, return the clean name to store it under."""
        name = clean_name(info.name)
        if not name:
            return None
        if info.issym() or info.islnk():
            target = info.linkname
            if info.issym():
                target = posixpath.join(posixpath.dirname(name), target)
            self.links[name] = clean_name(posixpath.normpath(target))
        elif info.isreg():
            if info.sparse is not None:
                raise _bad(f"sparse member {name!r} is not supported")
            return name
        return None

    def member(self, name: str) -> Member:
        wanted = clean_name(name)
        for _ in range(16):
            if wanted in self.files:
                return self.files[wanted]
            if wanted not in self.links:
                raise _bad(f"{name!r} is not in the archive")
            wanted = self.links[wanted]
        raise _bad(f"too many links for {name!r}")

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        member = self.member(name)
        if member.size > limit:
            raise _bad(f"{name!r} is too large")
        with open(member.path, "rb") as f:
            f.seek(member.offset)
            data = f.read(member.size)
        if len(data) != member.size:
            raise _bad(f"{name!r} is truncated")
        return data

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise _bad(f"{name!r} is not valid JSON: {e}") from None

    def blob(self, digest: str) -> Member:
        algo, _, hexpart = str(digest).partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise _bad(f"unsupported digest {digest!r}")
        return self.member(f"blobs/sha256/{hexpart}")


@contextlib.contextmanager
def _tar_errors() -> Iterator[None]:
    """Turns tarfile's errors into InvalidParameter."""
    try:
        yield
    except tarfile.TarError as e:
        raise _bad(str(e)) from None
    except EOFError:
        raise _bad("unexpected end of data") from None


class _ForwardReader:
    """A stream as the file tarfile's "r:" mode wants: it may only seek forward."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._pos += len(data)
        return data

    def read_some(self, size: int) -> bytes | memoryview:
        data = self._stream.read_some(size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < self._pos:
            raise tarfile.ReadError("the archive cannot be read backwards")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, _READ_CHUNK)):
                break
        return self._pos


def _spool_member(name: str, data: _ForwardReader, size: int, directory: str) -> Member:
    hasher = hashlib.sha256()
    fd, path = tempfile.mkstemp(prefix="member-", dir=directory)
    with os.fdopen(fd, "wb", buffering=0) as out:
        left = size
        while left > 0:
            chunk = data.read_some(min(left, _READ_CHUNK))
            if not chunk:
                raise _bad(f"{name!r} is truncated")
            left -= len(chunk)
            hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[out.write(view) or 0:]
    return Member(name, path, 0, size, "sha256:" + hasher.hexdigest())


def member_digest(member: Member) -> str:
    """The sha256 of a member's bytes, decompressed: what a layer's diff ID must be."""
    hasher = hashlib.sha256()
    decompressor = Decompressor()
    with open(member.path, "rb") as f:
        f.seek(member.offset)
        left = member.size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise _bad(f"{member.name!r} is truncated")
            left -= len(chunk)
            hasher.update(decompressor.feed(chunk))
    hasher.update(decompressor.finish())
    return "sha256:" + hasher.hexdigest()


def read_archive(path: str, architecture: str) -> list[LoadImage]:
    """The images of an archive file, validated; layer bytes are not read yet."""
    return plan(ArchiveIndex.of_file(path), architecture)


def spool_archive(stream: Readable, directory: str, architecture: str) -> list[LoadImage]:
    """The images of an archive read from `stream`, validated; its members are written to
    new files in `directory`, and layer bytes are not read again yet."""
    return plan(ArchiveIndex.of_stream(stream, directory), architecture)


def plan(index: ArchiveIndex, architecture: str) -> list[LoadImage]:
    """The images an indexed archive holds, validated."""
    if "manifest.json" in index.files or "manifest.json" in index.links:
        return _from_docker_manifest(index)
    if "index.json" in index.files:
        return _from_oci_index(index, architecture)
    raise _bad("neither manifest.json nor index.json found")


def _image(index: ArchiveIndex, config: bytes, layers: list[Member], repo_tags: list[str],
           config_name: str) -> LoadImage:
    image_id = _digest(config)
    stem = posixpath.basename(config_name).removesuffix(".json")
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) and stem != image_id[7:]:
        raise _bad(f"config {config_name!r} does not match its digest ({image_id})")
    try:
        doc = json.loads(config)
    except ValueError as e:
        raise _bad(f"config {config_name!r} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _bad(f"config {config_name!r} is not a JSON object")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise _bad(f"config {config_name!r} has no rootfs.diff_ids")
    for d in diff_ids:
        if not is_digest(d):
            raise _bad(f"config {config_name!r} has an invalid diff ID {d!r}")
    if len(diff_ids) != len(layers):
        raise _bad(f"config {config_name!r} has {len(diff_ids)} diff IDs for {len(layers)} layers")
    for tag in repo_tags:
        reference.parse(tag)
    return LoadImage(config, image_id, list(diff_ids), layers, repo_tags)


def _from_docker_manifest(index: ArchiveIndex) -> list[LoadImage]:
    doc = index.json("manifest.json")
    if not isinstance(doc, list):
        raise _bad("manifest.json is not a list")
    images = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise _bad("a manifest.json entry has no Config")
        layers = item.get("Layers") or []
        tags = item.get("RepoTags") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise _bad("a manifest.json entry has invalid Layers")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise _bad("a manifest.json entry has invalid RepoTags")
        config = index.read(item["Config"])
        images.append(_image(index, config, [index.member(x) for x in layers], tags, item["Config"]))
    return images


def _from_oci_index(index: ArchiveIndex, architecture: str) -> list[LoadImage]:
    images = []
    doc = index.json("index.json")
    for desc in _manifests(index, doc, architecture, depth=0):
        manifest = _blob_json(index, desc["digest"])
        config_desc = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(config_desc, dict):
            raise _bad(f"manifest {desc['digest']} has no config")
        config_member = index.blob(config_desc.get("digest", ""))
        config = index.read(config_member.name)
        layer_descs = manifest.get("layers") or []
        if not isinstance(layer_descs, list) or not all(isinstance(x, dict) for x in layer_descs):
            raise _bad(f"manifest {desc['digest']} has invalid layers")
        layers = [index.blob(x.get("digest", "")) for x in layer_descs]
        annotations = desc.get("annotations") or {}
        name = annotations.get("io.containerd.image.name") if isinstance(annotations, dict) else None
        tags = [name] if isinstance(name, str) and name else []
        images.append(_image(index, config, layers, tags, config_member.name))
    return images


def _blob_json(index: ArchiveIndex, digest: Any) -> Any:
    member = index.blob(digest)
    data = index.read(member.name)
    if _digest(data) != digest:
        raise _bad(f"blob {digest} does not match its digest")
    try:
        return json.loads(data)
    except ValueError as e:
        raise _bad(f"blob {digest} is not valid JSON: {e}") from None


def _manifests(index: ArchiveIndex, doc: Any, architecture: str, depth: int) -> list[dict[str, Any]]:
    """The image manifests an index names, one platform chosen from nested indexes."""
    if depth > 4:
        raise _bad("indexes nested too deep")
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise _bad("index.json has no manifests")
    out: list[dict[str, Any]] = []
    for desc in doc["manifests"]:
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            raise _bad("an index entry has no digest")
        media = desc.get("mediaType")
        if media in (INDEX_MEDIA_TYPE, DOCKER_MANIFEST_LIST):
            nested = _manifests(index, _blob_json(index, desc["digest"]), architecture, depth + 1)
            matching = [d for d in nested if _platform_matches(d, architecture)]
            chosen = matching[:1] or nested[:1]
            for d in chosen:
                if "annotations" not in d and "annotations" in desc:
                    d = {**d, "annotations": desc["annotations"]}
                out.append(d)
        elif media in (MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST, None):
            out.append(desc)
    return out


def _platform_matches(desc: dict[str, Any], architecture: str) -> bool:
    platform = desc.get("platform")
    if not isinstance(platform, dict):
        return True
    return platform.get("os", "linux") == "linux" and platform.get("architecture") == architecture
