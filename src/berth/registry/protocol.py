"""The pure parts of the distribution protocol: repository names, references, upload
Content-Range headers, pagination, and the spec's error codes.

Pure: works on strings, opens no files and no sockets (the server and storage modules
are the adapters around it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The distribution spec's grammar: path components separated by "/", each lower-case
# alphanumerics joined by ".", "_", "__" or runs of "-".
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_HEX64 = re.compile(r"[a-f0-9]{64}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_UPLOAD_ID = re.compile(r"[a-f0-9]{32}")
MAX_NAME = 255

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
MAX_MANIFEST = 4 * 1024 * 1024


@dataclass
class RegistryError(Exception):
    """One of the spec's errors: a code ("BLOB_UNKNOWN"), its HTTP status, a message."""

    code: str
    status: int
    message: str
    detail: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        entry["detail"] = self.detail if self.detail is not None else {}
        return {"errors": [entry]}


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", 404, "blob unknown to registry", {"digest": digest})


def manifest_unknown(ref: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", 404, "manifest unknown", {"reference": ref})


def upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry",
                         {"uuid": upload_id})


def name_unknown(name: str) -> RegistryError:
    return RegistryError("NAME_UNKNOWN", 404, "repository name not known to registry",
                         {"name": name})


def digest_invalid(message: str, digest: str = "") -> RegistryError:
    return RegistryError("DIGEST_INVALID", 400, message, {"digest": digest} if digest else None)


def check_name(name: str) -> str:
    """The repository name, or NAME_INVALID: lower-case components, no "..", at most
    255 characters."""
    if not name or len(name) > MAX_NAME or not all(
        _COMPONENT.fullmatch(part) for part in name.split("/")
    ):
        raise RegistryError("NAME_INVALID", 400, "invalid repository name", {"name": name})
    return name


def is_tag(ref: str) -> bool:
    return _TAG.fullmatch(ref) is not None


def check_digest(digest: str) -> str:
    """The hex of a sha256 digest; DIGEST_INVALID for a malformed one, UNSUPPORTED for
    another algorithm (this registry stores sha256 only)."""
    if not _DIGEST.fullmatch(digest):
        raise digest_invalid("invalid digest", digest)
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise RegistryError("UNSUPPORTED", 400, f"digest algorithm {algo} is not supported",
                            {"digest": digest})
    if not _HEX64.fullmatch(hexpart):
        raise digest_invalid("invalid digest", digest)
    return hexpart


def is_digest(ref: str) -> bool:
    return ":" in ref


def check_reference(ref: str) -> str:
    """A manifest reference: a tag or a digest; TAG_INVALID / DIGEST_INVALID otherwise."""
    if is_digest(ref):
        check_digest(ref)
    elif not is_tag(ref):
        raise RegistryError("TAG_INVALID", 400, "manifest tag did not match URI", {"tag": ref})
    return ref


def check_upload_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise upload_unknown(upload_id)
    return upload_id


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ByteRange:
    """An upload chunk's Content-Range: "START-END" as the spec writes it (also
    "bytes START-END[/TOTAL]", as some clients send). ValueError when malformed."""
    text = value.strip()
    if text.startswith("bytes"):
        text = text[len("bytes"):].lstrip(" =")
    text = text.split("/", 1)[0]
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if match is None:
        raise ValueError(f"malformed Content-Range: {value!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise ValueError(f"malformed Content-Range: {value!r}")
    return ByteRange(start, end)


def upload_range(offset: int) -> str:
    """The Range header of an upload holding `offset` bytes (distribution writes 0-0
    for an empty one)."""
    return f"0-{max(offset - 1, 0)}"


def paginate(items: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """The page of sorted `items` after `last`, at most `n` long, and whether more follow."""
    page = [item for item in sorted(items) if last is None or item > last]
    if n is None or n >= len(page):
        return page, False
    return page[:n], True


def parse_page_size(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError as exc:
        raise RegistryError("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested",
                            {"n": value}) from exc
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested",
                            {"n": value})
    return n


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What the server needs from a manifest or index: what it references."""

    media_type: str
    blobs: tuple[Descriptor, ...]  # config and layers (distributable ones)
    children: tuple[Descriptor, ...]  # an index's manifests
    subject: Descriptor | None
    artifact_type: str
    annotations: dict[str, str]


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict) or not isinstance(raw.get("digest"), str):
        raise manifest_invalid(f"{where}: a descriptor without a digest")
    check_digest(raw["digest"])
    size = raw.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise manifest_invalid(f"{where}: invalid size")
    return Descriptor(str(raw.get("mediaType", "")), raw["digest"], size)


def manifest_invalid(message: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", 400, f"manifest invalid: {message}")


_FOREIGN = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """The references of a manifest or index body; MANIFEST_INVALID when it is not one."""
    import json

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise manifest_invalid("not JSON") from exc
    if not isinstance(doc, dict):
        raise manifest_invalid("not a JSON object")
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise manifest_invalid(f"unsupported media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise manifest_invalid("schemaVersion must be 2")
    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    if media_type in IMAGE_TYPES:
        if "config" not in doc:
            raise manifest_invalid("no config")
        blobs.append(_descriptor(doc["config"], "config"))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise manifest_invalid("layers is not a list")
        for i, layer in enumerate(layers):
            desc = _descriptor(layer, f"layers[{i}]")
            if desc.media_type in _FOREIGN and layer.get("urls"):
                continue
            blobs.append(desc)
    else:
        entries = doc.get("manifests", [])
        if not isinstance(entries, list):
            raise manifest_invalid("manifests is not a list")
        children = [_descriptor(m, f"manifests[{i}]") for i, m in enumerate(entries)]
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") else None
    artifact_type = doc.get("artifactType") or ""
    if not artifact_type and media_type == OCI_MANIFEST and blobs:
        artifact_type = blobs[0].media_type
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    return Manifest(media_type, tuple(blobs), tuple(children), subject, str(artifact_type),
                    {str(k): str(v) for k, v in annotations.items()})
