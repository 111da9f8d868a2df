"""The plugins' home under the data root: one directory per plugin, `plugins/<id>/`,
with `plugin.json` (the record, written atomically), `rootfs/` (what its entrypoint
runs in) and `blobs/` (its config and rootfs layer as a registry holds them, for push).

A plugin directory appears whole or not at all: it is assembled under a temporary
name (`tmp-…`) and renamed into place; removal renames it to `<id>-removing` first.
At start-up, leftovers of either are deleted. This module owns the layout and the
safe unpacking of a rootfs tar; it runs no plugin.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from typing import IO, Any

from berth.errors import SystemError_
from berth.plugins.model import Plugin, PluginSettings, parse_config

log = logging.getLogger(__name__)

RECORD = "plugin.json"


def write_atomically(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(path + ".tmp", path)


class PluginStore:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)

    def dir(self, plugin_id: str) -> str:
        return os.path.join(self.root, plugin_id)

    def rootfs(self, plugin_id: str) -> str:
        return os.path.join(self.root, plugin_id, "rootfs")

    def blob(self, plugin_id: str, digest: str) -> str:
        return os.path.join(self.root, plugin_id, "blobs", digest.replace(":", "-"))

    # -- records

    def load(self) -> list[Plugin]:
        plugins = []
        for entry in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, entry)
            if entry.endswith("-upgrade"):  # an upgrade, whole, that had not replaced the old one
                target = path[: -len("-upgrade")]
                if os.path.isdir(target):
                    log.warning("removing %s, an upgrade that did not finish", path)
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                log.warning("finishing the upgrade of plugin %s", os.path.basename(target))
                os.rename(path, target)
                path, entry = target, os.path.basename(target)
            if entry.startswith("tmp-") or entry.endswith("-removing"):
                log.warning("removing %s, left by a plugin create or remove that did not finish", path)
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                with open(os.path.join(path, RECORD)) as f:
                    doc = json.load(f)
                plugins.append(_from_doc(doc))
            except (OSError, ValueError, KeyError, SystemError_) as e:
                log.error("plugin directory %s cannot be read, skipping it: %s", path, e)
        return plugins

    def save(self, p: Plugin) -> None:
        write_atomically(os.path.join(self.dir(p.id), RECORD), json.dumps(_to_doc(p)).encode())

    def remove(self, plugin_id: str) -> None:
        path = self.dir(plugin_id)
        gone = path + "-removing"
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, gone)
        shutil.rmtree(gone, ignore_errors=True)

    # -- assembling a new plugin

    def new_workdir(self) -> str:
        return tempfile.mkdtemp(prefix="tmp-", dir=self.root)

    def replace(self, workdir: str, p: Plugin) -> None:
        """The assembled `workdir` replaces plugin `p`'s directory (an upgrade): it is
        renamed beside it first, so that a crash at any point leaves one whole plugin."""
        write_atomically(os.path.join(workdir, RECORD), json.dumps(_to_doc(p)).encode())
        staged = self.dir(p.id) + "-upgrade"
        os.rename(workdir, staged)
        self.remove(p.id)
        os.rename(staged, self.dir(p.id))

    def commit(self, workdir: str, p: Plugin) -> None:
        """The assembled `workdir` becomes plugin `p`'s directory."""
        write_atomically(os.path.join(workdir, RECORD), json.dumps(_to_doc(p)).encode())
        os.rename(workdir, self.dir(p.id))


def _to_doc(p: Plugin) -> dict[str, Any]:
    return {"Id": p.id, "Name": p.name, "Enabled": p.enabled, "PluginReference": p.reference,
            "Config": p.config.doc, "Settings": p.settings.to_doc(), "ConfigDigest": p.config_digest,
            "Layers": p.layer_digests}


def _from_doc(doc: dict[str, Any]) -> Plugin:
    return Plugin(id=doc["Id"], name=doc["Name"], enabled=bool(doc.get("Enabled")),
                  config=parse_config(doc["Config"]), settings=PluginSettings.of(doc.get("Settings") or {}),
                  reference=doc.get("PluginReference", ""), config_digest=doc.get("ConfigDigest", ""),
                  layer_digests=list(doc.get("Layers") or []))


# -- the create context: config.json and rootfs/ in one tar -----------------------------


def split_context(source: IO[bytes], workdir: str) -> tuple[bytes, str, int]:
    """Unpack a `docker plugin create` context (config.json, rootfs/…): the rootfs into
    workdir/rootfs, and again as a gzipped layer blob under workdir/blobs for push.
    Returns (config.json's bytes, the layer's digest, its size). Docker's errors: "no
    rootfs found: EOF", "config not found"."""
    blobs = os.path.join(workdir, "blobs")
    os.makedirs(blobs, mode=0o700)
    layer_tar = os.path.join(workdir, "layer.tar")
    config: bytes | None = None
    has_rootfs = False
    try:
        with tarfile.open(fileobj=source, mode="r|*") as src, tarfile.open(layer_tar, mode="w:") as layer:
            for member in src:
                name = os.path.normpath(member.name).lstrip("/")
                if name == "config.json" and member.isfile():
                    data = src.extractfile(member)
                    config = data.read() if data is not None else b""
                    continue
                first, _, rest = name.partition("/")
                if first != "rootfs":
                    continue
                has_rootfs = True
                if not rest:
                    continue
                member.name = rest
                if member.islnk() and member.linkname.startswith("rootfs/"):
                    member.linkname = member.linkname[len("rootfs/"):]
                layer.addfile(member, src.extractfile(member) if member.isfile() else None)
    except (tarfile.TarError, EOFError) as e:
        raise SystemError_(f"failed to read from tar: {e}") from None
    if not has_rootfs:
        raise SystemError_("no rootfs found: EOF")
    if config is None:
        raise SystemError_("config not found")
    with open(layer_tar, "rb") as f:
        unpack_layer(f, os.path.join(workdir, "rootfs"))
    layer_tmp = os.path.join(blobs, "layer.tmp")
    with open(layer_tar, "rb") as f, open(layer_tmp, "wb") as raw:
        hasher = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=hasher, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
            shutil.copyfileobj(f, gz)
    os.unlink(layer_tar)
    digest = "sha256:" + hasher.sha.hexdigest()
    os.rename(layer_tmp, os.path.join(blobs, digest.replace(":", "-")))
    return config, digest, hasher.size


class _HashingWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def unpack_layer(source: IO[bytes], rootfs: str) -> None:
    """A rootfs layer (a tar, gzipped or not) into `rootfs`, refusing entries that would
    land outside it (tarfile's "tar" filter: no absolute paths, no escapes)."""
    os.makedirs(rootfs, mode=0o755, exist_ok=True)
    try:
        with tarfile.open(fileobj=source, mode="r|*") as t:
            t.extractall(rootfs, filter="tar")
    except (tarfile.TarError, EOFError) as e:
        raise SystemError_(f"failed to extract plugin layer: {e}") from None
