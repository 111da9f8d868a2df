"""Layers on disk; the snapshotter (snapshotters.py) makes a container's root from them.

Layout under the data root:
  overlay/layers/<chain-id hex>/diff      one extracted layer, never changed again
  overlay/containers/<id>/{upper,work,merged}   a container's writable layer and mount (overlay2)
  vfs/containers/<id>/merged               a container's full copy of its layers (vfs)
  overlay/tmp/                             extractions under way (cleared at start)
  content/sha256/<diff-id hex>             each layer's uncompressed tar, kept for `save`
A layer directory is renamed into place only when complete, then recorded in SQLite
(table `layers`, this module's, with its migrations); at start-up, directories the
database does not know are removed. The content store keeps each layer's tar because
this store names it as a referrer; while a layer is being made, its tar is held by a
lease (the caller's, or one of its own).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from berth.content.leases import Lease
from berth.content.store import Blob, ContentStore
from berth.errors import InvalidParameter
from berth.layers import snapshotters
from berth.layers.extract import encode_id_maps, run_child
from berth.layers.snapshotters import Snapshotter
from berth.metadata import Step, migrate
from berth.runtime import linux
from berth.runtime.userns import IdMappings, host_id

log = logging.getLogger(__name__)

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS layers ("
     " chain_id TEXT PRIMARY KEY,"
     " diff_id  TEXT NOT NULL,"
     " parent   TEXT,"
     " size     INTEGER NOT NULL)"],
]


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


def chain_id_of(parent: str | None, diff_id: str) -> str:
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


class LayerStore:
    def __init__(self, root: str, db: sqlite3.Connection, content: ContentStore | None = None,
                 storage_driver: str = "overlay2", id_maps: IdMappings | None = None) -> None:
        """`id_maps`: the remapped daemon's (--userns-remap) container ids; every layer is
        then extracted with its owners as the host ids they are in a container (this
        store holds only that mapping's copy: a remapped daemon has a data root of its own)."""
        self.root = os.path.join(root, "overlay")
        self.id_maps = id_maps
        self.root_pair: tuple[int, int] | None = None
        if id_maps is not None:
            uid, gid = host_id(id_maps.uid, 0), host_id(id_maps.gid, 0)
            if uid is None or gid is None:
                raise InvalidParameter("the user-namespace maps leave the containers' root unmapped")
            self.root_pair = (uid, gid)
        self.db = db
        migrate(db, "layers", MIGRATIONS)
        self.content = content or ContentStore(root, db)
        self.content.add_referrer(self._referenced_blobs)
        for sub in ("layers", "containers", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self.snapshotter: Snapshotter = snapshotters.pick(storage_driver, root, os.path.join(self.root, "tmp"))

    @property
    def driver(self) -> str:
        """The storage driver's name, as `docker info` shows it."""
        return self.snapshotter.name

    def reconcile(self) -> None:
        shutil.rmtree(os.path.join(self.root, "tmp"), ignore_errors=True)
        os.makedirs(os.path.join(self.root, "tmp"), exist_ok=True)
        known = {row[0].split(":", 1)[1] for row in self.db.execute("SELECT chain_id FROM layers")}
        for name in os.listdir(os.path.join(self.root, "layers")):
            if name not in known:
                log.warning("removing layer directory %s that the database does not know", name)
                shutil.rmtree(os.path.join(self.root, "layers", name), ignore_errors=True)
        self.content.reconcile()

    def _referenced_blobs(self) -> set[str]:
        """Each layer's tar: the content store keeps these."""
        return {row[0] for row in self.db.execute("SELECT DISTINCT diff_id FROM layers")}

    def _dir(self, chain_id: str) -> str:
        return os.path.join(self.root, "layers", chain_id.split(":", 1)[1])

    def get(self, chain_id: str) -> Layer | None:
        row = self.db.execute("SELECT chain_id, diff_id, parent, size FROM layers WHERE chain_id=?",
                              (chain_id,)).fetchone()
        return Layer(*row) if row else None

    @asynccontextmanager
    async def _leased(self, lease: Lease | None) -> AsyncIterator[Lease]:
        """The caller's lease, or one of our own for the time the layer is made."""
        if lease is not None:
            yield lease
            return
        with self.content.lease({"berth.operation": "layer"}) as own:
            yield own

    async def apply(self, chunks: AsyncIterator[bytes], parent: str | None,
                    expected: str | None = None, lease: Lease | None = None) -> Layer:
        """Store a (possibly compressed) layer tar as a blob and extract it on `parent`.

        The uncompressed tar is kept in the content store under its diff ID (checked
        against `expected` when given, before anything is extracted). `lease` holds the
        tar until the layer is recorded; without one, the layer store takes its own.
        """
        async with self._leased(lease) as held:
            blob = await self.content.write_stream(chunks, expected, decompress=True, lease=held)
            return await self.apply_blob(blob, parent)

    async def apply_file(self, path: str, offset: int, size: int, parent: str | None,
                         expected: str | None = None, digest: str | None = None,
                         lease: Lease | None = None) -> Layer:
        """`apply` for a layer tar that lies in a local file (a spooled archive's member):
        copied to the content store in one thread, in large reads. When the caller knows
        the `digest` of the whole private file `path` and it is the expected, plain
        layer's, the file itself becomes the blob, with no copy."""
        async with self._leased(lease) as held:
            if digest is not None and digest == expected and offset == 0 and \
                    await asyncio.to_thread(self.content.is_plain, path):
                return await self._apply_private_file(path, digest, parent, held)
            blob = await self.content.write_file_range(path, offset, size, expected, decompress=True,
                                                       lease=held)
            return await self.apply_blob(blob, parent)

    async def _apply_private_file(self, path: str, digest: str, parent: str | None,
                                  lease: Lease) -> Layer:
        """Extract a verified plain layer file, then make the same file its blob: the
        extraction's syncfs makes both durable, before either is named."""
        chain_id = chain_id_of(parent, digest)
        existing = self.get(chain_id)
        if existing:
            return existing
        try:
            size = await self._extract(digest, chain_id, source_path=path)
        except BaseException:
            shutil.rmtree(self._dir(chain_id), ignore_errors=True)
            raise
        try:
            self.content.hold(lease, digest)
            await asyncio.to_thread(self.content.adopt, path, digest, True)
        except BaseException:
            shutil.rmtree(self._dir(chain_id), ignore_errors=True)
            raise
        layer = Layer(chain_id, digest, parent, size)
        self.db.execute("INSERT OR IGNORE INTO layers VALUES (?,?,?,?)",
                        (layer.chain_id, layer.diff_id, layer.parent, layer.size))
        return layer

    async def apply_blob(self, blob: Blob, parent: str | None) -> Layer:
        """Extract the plain layer tar `blob` (a verified blob of the content store, held
        by the caller's lease) on `parent`, unless that layer exists already."""
        chain_id = chain_id_of(parent, blob.digest)
        existing = self.get(chain_id)
        if existing:
            return existing
        size = await self._extract(blob.digest, chain_id)  # failed: the lease's end collects the blob
        return self.record(chain_id, blob.digest, parent, size)

    async def extract_blob(self, blob: Blob, chain_id: str) -> tuple[int, bool]:
        """The first half of `apply_blob`, for a caller that makes several layers at once
        (a pull): extract `blob` as layer `chain_id`'s directory, without a sync and
        without recording it; returns its size, and whether this call made the directory
        (False when the layer, or a concurrent extraction of it, was there first: then it
        is not the caller's to remove). Extractions need no parent, so they may run in
        parallel; the caller then calls `sync()` once and `record`s each layer, parents
        first. A directory never recorded is removed by `remove` or at start-up."""
        existing = self.get(chain_id)
        if existing:
            return existing.size, False
        made: list[bool] = []
        size = await self._extract(blob.digest, chain_id, sync=False, made=made)
        return size, bool(made)

    async def sync(self) -> None:
        """Make every extracted layer and written blob durable (one syncfs)."""
        await asyncio.to_thread(_sync_tree, os.path.join(self.root, "layers"))

    def record(self, chain_id: str, diff_id: str, parent: str | None, size: int) -> Layer:
        """Make an extracted (and synced) layer known."""
        layer = Layer(chain_id, diff_id, parent, size)
        self.db.execute("INSERT OR IGNORE INTO layers VALUES (?,?,?,?)",
                        (layer.chain_id, layer.diff_id, layer.parent, layer.size))
        return self.get(chain_id) or layer

    async def _extract(self, diff_id: str, chain_id: str, source_path: str = "", sync: bool = True,
                       made: list[bool] | None = None) -> int:
        """Extract the verified plain tar `diff_id` (its blob, or the file `source_path`)
        as layer `chain_id`; synced to disk (unless the caller syncs later) before it is
        renamed into place. A directory that another extraction put there first wins."""
        tmp = tempfile.mkdtemp(dir=os.path.join(self.root, "tmp"))
        try:
            diff = os.path.join(tmp, "diff")
            os.mkdir(diff, 0o755)
            with open(source_path, "rb") if source_path else self.content.open(diff_id) as source:
                result = await run_child(source, diff, diff_id, self.id_maps_arg())
            if "error" in result:
                raise InvalidParameter(result["error"])
            if sync:
                await asyncio.to_thread(_sync_tree, diff)
            try:
                os.rename(tmp, self._dir(chain_id))
                if made is not None:
                    made.append(True)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # the same layer, made by a concurrent pull
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return int(result["size"])

    def id_maps_arg(self) -> str:
        """The remapped ids as the tar children (extract, archive) take them; "" for none."""
        if self.id_maps is None:
            return ""
        return encode_id_maps([(m.container_id, m.host_id, m.size) for m in self.id_maps.uid],
                              [(m.container_id, m.host_id, m.size) for m in self.id_maps.gid])

    def total_size(self) -> int:
        """What all stored layers take, each counted once."""
        row = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM layers").fetchone()
        return int(row[0])

    def diff_dir(self, chain_id: str) -> str:
        """The extracted contents of one layer."""
        return os.path.join(self._dir(chain_id), "diff")

    def remove(self, chain_id: str) -> None:
        layer = self.get(chain_id)
        self.db.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))
        shutil.rmtree(self._dir(chain_id), ignore_errors=True)
        if layer is not None:
            self.content.collect([layer.diff_id])  # kept if another layer or a lease has it

    # -- container layers: delegated to the snapshotter picked at start-up ---------------

    def create_rw(self, container_id: str, chain_ids: list[str]) -> None:
        self.snapshotter.prepare(container_id, self._lowers(chain_ids), owner=self.root_pair)

    def mount(self, container_id: str, chain_ids: list[str]) -> str:
        """Make the container's root (layers `chain_ids`, bottom first) and return its path."""
        return self.snapshotter.mount(container_id, self._lowers(chain_ids))

    def unmount(self, container_id: str) -> None:
        self.snapshotter.unmount(container_id)

    def mounted(self, container_id: str) -> bool:
        return self.snapshotter.mounted(container_id)

    def remove_rw(self, container_id: str) -> None:
        self.snapshotter.remove(container_id)

    def upper_dir(self, container_id: str) -> str:
        """Only the container's own changes; InvalidParameter where the driver keeps none apart."""
        return self.snapshotter.upper(container_id)

    def rw_size(self, container_id: str) -> int:
        return self.snapshotter.rw_size(container_id)

    def describe(self, container_id: str) -> snapshotters.GraphDriver:
        """Where the container's layer lies (inspect's GraphDriver)."""
        return self.snapshotter.describe(container_id)

    def describe_image(self, chain_ids: list[str]) -> snapshotters.GraphDriver:
        """Where an image's layers (`chain_ids`, bottom first) lie (inspect's GraphDriver)."""
        return self.snapshotter.describe_layers(self._lowers(chain_ids))

    def _lowers(self, chain_ids: list[str]) -> list[str]:
        return [self.diff_dir(c) for c in reversed(chain_ids)]


def _sync_tree(path: str) -> None:
    """fsync the extracted files' filesystem before the rename makes the layer visible."""
    fd = os.open(path, os.O_RDONLY)
    try:
        linux.syncfs(fd)
    finally:
        os.close(fd)
