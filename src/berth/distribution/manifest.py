"""Image manifests and indexes as registries serve them: Docker's image manifest v2
schema 2 and manifest list, the OCI image manifest and index.

Pure code on bytes: it parses what a registry sent (refusing schema 1, oversized and
malformed documents with one-line InvalidParameter errors), picks a platform's entry
from an index as Docker does, and writes the canonical bytes of a manifest for a push.
It opens no sockets and touches no files; fetching is berth.distribution.registry's.
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.content.digest import is_digest
from berth.errors import InvalidParameter, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_NONDIST_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_NONDIST_LAYER_GZIP = OCI_NONDIST_LAYER + "+gzip"
OCI_NONDIST_LAYER_ZSTD = OCI_NONDIST_LAYER + "+zstd"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)  # what a pull asks for
LAYER_TYPES = (DOCKER_LAYER, DOCKER_FOREIGN_LAYER, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
               OCI_NONDIST_LAYER, OCI_NONDIST_LAYER_GZIP, OCI_NONDIST_LAYER_ZSTD)
FOREIGN_LAYER_TYPES = (DOCKER_FOREIGN_LAYER, OCI_NONDIST_LAYER, OCI_NONDIST_LAYER_GZIP,
                       OCI_NONDIST_LAYER_ZSTD)

MAX_MANIFEST = 4 << 20

# media types a generic Content-Type hides: the body's own mediaType decides then
_GENERIC = ("", "application/json", "text/plain", "application/octet-stream")
_SCHEMA1_URL = "https://docs.docker.com/go/deprecated-image-specs/"


class Schema1Error(InvalidParameter):
    """A schema 1 manifest, refused as Docker 28 refuses it."""


def schema1_message(name: str) -> str:
    """Docker 28's words for a schema 1 image named `name` (a full reference)."""
    return ("[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
            "schema 1 support has been removed. Suggest the author of "
            f"{name or 'the image'} to upgrade the image to the OCI Format or Docker Image "
            f"manifest v2, schema 2. More information at {_SCHEMA1_URL}")


# -- platforms --------------------------------------------------------------------------

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}


def _normalize(os_: str, arch: str, variant: str) -> tuple[str, str, str]:
    """containerd's platforms.Normalize: lower case, architecture aliases, arm's
    default variants (arm64 is v8, arm v7)."""
    os_, arch, variant = os_.lower(), arch.lower(), variant.lower()
    if os_ == "macos":
        os_ = "darwin"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant in ("", "8", "v8", "v8.0"):
        variant = "v8" if variant else ""
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return os_, arch, variant


@dataclass(frozen=True)
class Platform:
    """An image's platform (os/architecture/variant), normalized as containerd does."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """"linux/arm64/v8", "linux/amd64", or an architecture alone ("arm64", linux
        then); InvalidParameter as containerd words it for anything else."""
        parts = text.strip().split("/")
        if not text.strip() or len(parts) > 3 or any(
                not p or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in p) for p in parts):
            raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
        known_os = {"linux", "windows", "darwin", "macos", "freebsd", "netbsd", "openbsd", "solaris",
                    "illumos", "aix", "android", "ios", "js", "plan9", "dragonfly", "wasip1"}
        if len(parts) == 1:
            if parts[0].lower() in known_os:  # an OS alone: the host's architecture on it
                host = Platform.host()
                return cls(_normalize(parts[0], "", "")[0], host.architecture, host.variant)
            os_, arch, variant = _normalize("linux", parts[0], "")
        elif len(parts) == 2:
            os_, arch, variant = _normalize(parts[0], parts[1], "")
        else:
            os_, arch, variant = _normalize(parts[0], parts[1], parts[2])
        if os_ not in known_os:
            raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
        return cls(os_, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        """The platform this daemon runs on, as containerd's platforms.DefaultSpec."""
        os_, arch, variant = _normalize("linux", _platform.machine() or "amd64", "")
        if arch == "arm64":
            variant = "v8"
        return cls(os_, arch, variant)

    def matches(self, other: Platform) -> bool:
        """containerd's Only() matcher, simplified: same os and architecture, and the
        variant equal when both name one (arm64's v8 is its default; an older arm
        variant runs on a newer one's host, as v7 on v8)."""
        a = _normalize(self.os, self.architecture, self.variant)
        b = _normalize(other.os, other.architecture, other.variant)
        if a[:2] != b[:2]:
            return False
        if a[1] == "arm64":
            return (a[2] or "v8") == (b[2] or "v8")
        if a[1] == "arm":
            return _arm_rank(b[2]) <= _arm_rank(a[2])
        return not a[2] or not b[2] or a[2] == b[2]

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def to_json(self) -> dict[str, str]:
        doc = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            doc["variant"] = self.variant
        return doc


def _arm_rank(variant: str) -> int:
    return int(variant[1:]) if variant[1:].isdigit() else 7


# -- descriptors ------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: its media type, digest and size (OCI's descriptor)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)  # compared, not hashed
    artifact_type: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            doc["urls"] = list(self.urls)
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        if self.platform is not None:
            doc["platform"] = self.platform.to_json()
        if self.artifact_type:
            doc["artifactType"] = self.artifact_type
        return doc


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    digest: str
    raw: bytes
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    digest: str
    raw: bytes
    manifests: tuple[Descriptor, ...]


def _bad(what: str) -> InvalidParameter:
    return InvalidParameter(f"invalid manifest: {what}")


def _descriptor(doc: Any, where: str) -> Descriptor:
    if not isinstance(doc, dict):
        raise _bad(f"{where} is not an object")
    media_type = doc.get("mediaType", "")
    digest = doc.get("digest")
    size = doc.get("size")
    if not isinstance(media_type, str):
        raise _bad(f"{where}.mediaType is not a string")
    if not isinstance(digest, str) or not is_digest(digest):
        raise _bad(f"{where}.digest {digest!r} is not a sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(f"{where}.size {size!r} is not a size")
    plat = None
    if doc.get("platform") is not None:
        p = doc["platform"]
        if not isinstance(p, dict) or not isinstance(p.get("os", ""), str) or \
                not isinstance(p.get("architecture", ""), str) or not isinstance(p.get("variant", ""), str):
            raise _bad(f"{where}.platform is malformed")
        plat = Platform(*_normalize(p.get("os", ""), p.get("architecture", ""), p.get("variant", "")))
    urls = doc.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _bad(f"{where}.urls is not a list of strings")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise _bad(f"{where}.annotations is not a map of strings")
    artifact_type = doc.get("artifactType", "")
    if not isinstance(artifact_type, str):
        raise _bad(f"{where}.artifactType is not a string")
    return Descriptor(media_type, digest, size, plat, tuple(urls), annotations, artifact_type)


def sniff(media_type: str, doc: Mapping[str, Any]) -> str:
    """The document's media type: the Content-Type unless it is generic, then the
    body's mediaType, then its shape (manifests or layers), as containerd guesses."""
    media_type = media_type.split(";", 1)[0].strip().lower()
    if media_type not in _GENERIC:
        return media_type
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc or "layers" in doc:
        return OCI_MANIFEST
    return media_type


def parse(media_type: str, raw: bytes, digest: str, name: str = "") -> ImageManifest | ImageIndex:
    """A manifest or index from its bytes, the Content-Type it came with and its digest.
    `name` (the reference) words the schema 1 refusal. InvalidParameter for anything
    that is not a well-formed image manifest or index of at most MAX_MANIFEST bytes."""
    if len(raw) > MAX_MANIFEST:
        raise InvalidParameter(f"manifest {digest} is too large: {len(raw)} bytes, over the limit of "
                               f"{MAX_MANIFEST} bytes")
    if media_type.split(";", 1)[0].strip().lower() in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise Schema1Error(schema1_message(name))
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(f"{digest} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _bad(f"{digest} is not a JSON object")
    kind = sniff(media_type, doc)
    if kind in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise Schema1Error(schema1_message(name))
    if doc.get("schemaVersion") != 2:
        raise _bad(f"{digest} has schemaVersion {doc.get('schemaVersion')!r}, not 2")
    declared = doc.get("mediaType")
    if declared is not None and declared != kind and kind in MANIFEST_TYPES + INDEX_TYPES:
        raise _bad(f"{digest} says mediaType {declared!r} but was served as {kind!r}")
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _bad(f"{digest} has no manifests list")
        manifests = tuple(_descriptor(d, f"manifests[{i}]") for i, d in enumerate(entries))
        return ImageIndex(kind, digest, raw, manifests)
    if kind in MANIFEST_TYPES:
        config = _descriptor(doc.get("config"), "config")
        layers_doc = doc.get("layers")
        if not isinstance(layers_doc, list):
            raise _bad(f"{digest} has no layers list")
        layers = tuple(_descriptor(d, f"layers[{i}]") for i, d in enumerate(layers_doc))
        return ImageManifest(kind, digest, raw, config, layers)
    raise InvalidParameter(f"unsupported manifest media type {kind!r} for {digest}")


def select(index: ImageIndex, platform: Platform) -> Descriptor:
    """The index's entry for `platform`, as Docker picks it: the first manifest whose
    platform matches (an exact variant preferred); NotFound in Docker's words."""
    candidates = [d for d in index.manifests
                  if d.media_type in MANIFEST_TYPES + INDEX_TYPES or not d.media_type]
    exact = [d for d in candidates if d.platform is not None and d.platform == platform]
    if exact:
        return exact[0]
    for d in candidates:
        if d.platform is not None and platform.matches(d.platform):
            return d
    raise NotFound(f"no matching manifest for {platform} in the manifest list entries")


def build_manifest(config: Descriptor, layers: list[Descriptor], media_type: str = DOCKER_MANIFEST,
                   annotations: Mapping[str, str] | None = None) -> bytes:
    """The bytes of an image manifest, written as Docker writes them on push (indented
    JSON, fields in the spec's order); their sha256 is the manifest's digest."""
    if media_type not in MANIFEST_TYPES:
        raise InvalidParameter(f"not an image manifest media type: {media_type}")
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": config.to_json(),
                           "layers": [layer.to_json() for layer in layers]}
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, indent=3).encode()


def build_index(manifests: list[Descriptor], media_type: str = OCI_INDEX) -> bytes:
    """The bytes of an index (or Docker manifest list) of `manifests`."""
    if media_type not in INDEX_TYPES:
        raise InvalidParameter(f"not an index media type: {media_type}")
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [m.to_json() for m in manifests]}
    return json.dumps(doc, indent=3).encode()
