"""Test images made from bytes, the same for every engine: a `docker load` archive
(Docker's legacy layout, which both berthd and dockerd load) and an OCI image layout
directory (what `skopeo copy oci:DIR docker://...` pushes), single image or an index of
two platforms.

Content is deterministic (seeded) and half random, so that gzip cannot shrink a layer
to nothing and a test that wants N megabytes on the wire gets them. The base layer of a
runnable image is busybox's root filesystem, build/busybox-rootfs.tar (scripts/setup
makes it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .daemon import REPO

BUSYBOX_ROOTFS = REPO / "build" / "busybox-rootfs.tar"
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"
CREATED = "2024-01-02T03:04:05Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int) -> bytes:
    """`size` bytes, the same for the same seed: a random half and a repeated half."""
    rng = random.Random(seed)
    half = size // 2
    text = (f"berth test layer {seed} " * (size // 20 + 1)).encode()[: size - half]
    return rng.randbytes(half) + text


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar of regular files (parents made as directories)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    info = tarfile.TarInfo(d + "/")
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1700000000
                    tar.addfile(info)
            data = files[path]
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def busybox_layer() -> bytes:
    return BUSYBOX_ROOTFS.read_bytes()


def data_layers(sizes: list[int], seed: int) -> list[bytes]:
    """One layer per size, each holding /data/layer<i>.bin of that many bytes."""
    return [layer_tar({f"data/layer{i}.bin": payload(size, seed * 1000 + i)})
            for i, size in enumerate(sizes)]


def image_config(diff_ids: list[str], arch: str = HOST_ARCH, label: str = "") -> bytes:
    config = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"],
                   "Labels": {"berth.test": label} if label else None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"berth test layer {i}"}
                    for i in range(len(diff_ids))],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class LoadArchive:
    """A `docker load` archive of one image."""

    path: Path
    tag: str
    image_id: str  # the config's digest
    diff_ids: list[str] = field(default_factory=list)


def write_load_archive(path: Path, tag: str, layer_sizes: list[int], seed: int = 1,
                       with_busybox: bool = True) -> LoadArchive:
    """An image of busybox (unless told not) plus one data layer per size, tagged `tag`,
    written as the archive `docker save` makes (manifest.json, <id>.json, <dir>/layer.tar)."""
    layers = ([busybox_layer()] if with_busybox else []) + data_layers(layer_sizes, seed)
    diff_ids = [sha256(layer) for layer in layers]
    config = image_config(diff_ids, label=f"{tag} seed {seed}")
    image_id = sha256(config)
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))

        config_name = f"{image_id.split(':', 1)[1]}.json"
        add(config_name, config)
        names = []
        for diff_id, layer in zip(diff_ids, layers, strict=True):
            name = f"{diff_id.split(':', 1)[1]}/layer.tar"
            add(name, layer)
            names.append(name)
        add("manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode())
    return LoadArchive(path, tag, image_id, diff_ids)


# OCI image layouts.


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def json(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class OciImage:
    """An OCI layout directory holding one tag; `digest` is what the tag points at."""

    path: Path
    tag: str
    digest: str  # the manifest's (single image) or the index's
    manifests: dict[str, str] = field(default_factory=dict)  # architecture -> manifest digest
    image_ids: dict[str, str] = field(default_factory=dict)  # architecture -> config digest

    @property
    def ref(self) -> str:
        """skopeo's name for it: oci:DIR:TAG."""
        return f"oci:{self.path}:{self.tag}"


def _put_blob(layout: Path, data: bytes, media_type: str) -> Descriptor:
    digest = sha256(data)
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    return Descriptor(media_type, digest, len(data))


def _put_image(layout: Path, layers: list[bytes], arch: str, label: str) -> tuple[Descriptor, str]:
    """Blobs, config and manifest of one image; returns the manifest's descriptor and the
    config's digest (the image ID an engine gives it)."""
    diff_ids = [sha256(layer) for layer in layers]
    layer_descs = [_put_blob(layout, gzip.compress(layer, compresslevel=1, mtime=0), OCI_LAYER_GZIP)
                   for layer in layers]
    config = _put_blob(layout, image_config(diff_ids, arch, label), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(),
                "layers": [d.json() for d in layer_descs]}
    data = json.dumps(manifest, separators=(",", ":")).encode()
    return _put_blob(layout, data, OCI_MANIFEST), config.digest


def _new_layout(path: Path) -> None:
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def _write_index_json(path: Path, desc: Descriptor, tag: str,
                      platform_: dict[str, str] | None = None) -> None:
    entry: dict[str, object] = {**desc.json(),
                                "annotations": {"org.opencontainers.image.ref.name": tag}}
    if platform_:
        entry["platform"] = platform_
    (path / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}))


def write_oci_image(path: Path, tag: str, layer_sizes: list[int], seed: int = 2,
                    with_busybox: bool = True) -> OciImage:
    """A single-platform (host) image of busybox plus one data layer per size."""
    _new_layout(path)
    layers = ([busybox_layer()] if with_busybox else []) + data_layers(layer_sizes, seed)
    desc, image_id = _put_image(path, layers, HOST_ARCH, f"oci {tag} seed {seed}")
    _write_index_json(path, desc, tag, {"architecture": HOST_ARCH, "os": "linux"})
    return OciImage(path, tag, desc.digest, {HOST_ARCH: desc.digest}, {HOST_ARCH: image_id})


def write_oci_index(path: Path, tag: str) -> OciImage:
    """An index of two platforms, linux/amd64 and linux/arm64. Each image has a file
    /platform holding its architecture's name; the host's is busybox too (it runs),
    the other holds only that file."""
    _new_layout(path)
    manifests: dict[str, str] = {}
    image_ids: dict[str, str] = {}
    entries = []
    for arch in ("amd64", "arm64"):
        marker = layer_tar({"platform": f"{arch}\n".encode()})
        layers = ([busybox_layer()] if arch == HOST_ARCH else []) + [marker]
        desc, image_id = _put_image(path, layers, arch, f"index {tag} {arch}")
        manifests[arch] = desc.digest
        image_ids[arch] = image_id
        entries.append({**desc.json(), "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                       separators=(",", ":")).encode()
    desc = _put_blob(path, index, OCI_INDEX)
    _write_index_json(path, desc, tag)
    return OciImage(path, tag, desc.digest, manifests, image_ids)
