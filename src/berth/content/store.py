"""The content store: blobs addressed by their sha256, written atomically, held by
leases, collected when nothing wants them.

Layout under the data root:
  content/sha256/<hex>            one blob, never changed once renamed into place
  content/sha256/.ingest-<rand>   a blob being written (held by its writer's lease)
  content/spool/                  private scratch files of loads under way (cleared at start)
A blob is written to a temp name in its final directory, hashed on the way, fsynced
and renamed, so a reader never sees a partial blob under a digest.

Which blobs are wanted is not this module's knowledge: owners register a referrer
(`add_referrer`, the layer store does: each layer's tar), and an operation under way
holds what it writes with a lease (`with store.lease() as lease:`, passed to the
writers). Garbage collection keeps a blob that a referrer names or a live lease holds
and deletes the rest: `collect(digests)` when a lease ends or an owner lets go of
some, and `reconcile()` over everything at start-up, after dropping the leases of
operations the previous berthd did not finish.

It does no network IO and never blocks the event loop (file IO goes to threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import IO, TypeVar

from berth.content.compression import Decompressor, compression_of
from berth.content.digest import hex_of, verify
from berth.content.leases import BLOB, INGEST, Lease, LeaseStore
from berth.errors import InvalidParameter

log = logging.getLogger(__name__)

_INGEST_PREFIX = ".ingest-"
_COPY_CHUNK = 8 << 20  # file-to-blob copies go by this much; spooled chunks are batched to it
_STREAM_BATCH = 1 << 20  # a streamed blob's chunks are written in batches of this much
T = TypeVar("T")


@dataclass(frozen=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int


class StreamReader:
    """A blocking reader of an async byte stream, decompressed, for one worker thread.

    Each read that runs dry asks the event loop for more, megabytes at a time. `stop`
    (from the loop) makes the reader's next or pending read fail, so that the thread
    ends soon after the request that fed it is given up.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._decompressor = Decompressor()
        self._buffer = b""
        self._pos = 0
        self._eof = False
        self._stopped = False
        self._pending: concurrent.futures.Future[tuple[bytes, bool]] | None = None

    async def _next_batch(self) -> tuple[bytes, bool]:
        """About _COPY_CHUNK bytes of the body, and whether the body ends with them."""
        batch: list[bytes] = []
        batched = 0
        while batched < _COPY_CHUNK:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                return b"".join(batch), True
            batch.append(chunk)
            batched += len(chunk)
        return b"".join(batch), False

    def _fill(self) -> bytes:
        """The next batch, decompressed. The batch after it is asked for before this one
        is handed over, so the event loop reads the socket while this thread works."""
        if self._stopped:
            raise InvalidParameter("the request was given up")
        if self._pending is None:
            self._pending = asyncio.run_coroutine_threadsafe(self._next_batch(), self._loop)
        try:
            raw, self._eof = self._pending.result()
        except concurrent.futures.CancelledError:
            raise InvalidParameter("the request was given up") from None
        self._pending = None
        if not self._eof and not self._stopped:
            self._pending = asyncio.run_coroutine_threadsafe(self._next_batch(), self._loop)
        data = bytes(self._decompressor.feed(raw))
        if self._eof:
            data += bytes(self._decompressor.finish())
        return data

    def read(self, size: int = -1) -> bytes:
        if 0 <= size <= len(self._buffer) - self._pos:  # a tar header, most often
            self._pos += size
            return self._buffer[self._pos - size:self._pos]
        parts = [self._buffer[self._pos:]]
        have = len(parts[0])
        while (size < 0 or have < size) and not self._eof:
            data = self._fill()
            parts.append(data)
            have += len(data)
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        if size < 0 or len(joined) <= size:
            self._buffer, self._pos = b"", 0
            return joined
        self._buffer, self._pos = joined, size
        return joined[:size]

    def read_some(self, size: int) -> bytes | memoryview:
        """Up to `size` bytes, no copy: fewer when the batch at hand ends; b"" at the end."""
        while self._pos >= len(self._buffer):
            if self._eof:
                return b""
            self._buffer, self._pos = self._fill(), 0
        end = min(len(self._buffer), self._pos + size)
        view = memoryview(self._buffer)[self._pos:end]
        self._pos = end
        return view

    def stop(self) -> None:
        """Called in the event loop: fail the reader's pending and later reads."""
        self._stopped = True
        if self._pending is not None:
            self._pending.cancel()


class _Writer:
    """One blob being written: temp file, running hash, optional decompression."""

    def __init__(self, directory: str, decompress: bool, scratch: bool = False, name: str = "") -> None:
        if name:  # named by the caller, who has put the name in a lease first
            self.tmp = os.path.join(directory, name)
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        else:
            fd, self.tmp = tempfile.mkstemp(prefix=_INGEST_PREFIX, dir=directory)
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self.hash = None if scratch else hashlib.sha256()  # a scratch file: no digest, no fsync
        self.size = 0
        self.decompressor = Decompressor() if decompress else None

    def write(self, chunk: bytes | memoryview) -> None:
        if self.decompressor is not None:
            chunk = self.decompressor.feed(chunk)
        self._put(chunk)

    def _put(self, data: bytes | memoryview) -> None:
        if data:
            if self.hash is not None:
                self.hash.update(data)
            self.size += len(data)
            view = memoryview(data)
            while view:
                view = view[self.file.write(view) or 0:]

    def copy_range(self, path: str, offset: int, size: int) -> None:
        """Write `size` bytes of file `path` from `offset`, in large reads, in this thread."""
        buffer = memoryview(bytearray(_COPY_CHUNK))
        with open(path, "rb", buffering=0) as f:
            while size > 0:
                n = os.preadv(f.fileno(), [buffer[:min(size, _COPY_CHUNK)]], offset)
                if n == 0:
                    raise InvalidParameter("unexpected end of file")
                self.write(buffer[:n])
                offset += n
                size -= n

    def close(self) -> Blob:
        if self.decompressor is not None:
            self._put(self.decompressor.finish())
        if self.hash is not None:
            os.fsync(self.file.fileno())
        self.file.close()
        return Blob("sha256:" + self.hash.hexdigest() if self.hash is not None else "", self.size)

    def abort(self) -> None:
        self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


class ContentStore:
    def __init__(self, data_root: str, db: sqlite3.Connection | None = None) -> None:
        self.root = os.path.join(data_root, "content")
        self.blobs = os.path.join(self.root, "sha256")
        self.spool_root = os.path.join(self.root, "spool")
        os.makedirs(self.blobs, mode=0o700, exist_ok=True)
        os.makedirs(self.spool_root, mode=0o700, exist_ok=True)
        if db is None:  # a store on its own (tools, tests): its leases last as long as it does
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.leases = LeaseStore(db)
        self._referrers: list[Callable[[], set[str]]] = []

    # -- what is wanted, and garbage collection -----------------------------------------

    def add_referrer(self, referenced: Callable[[], set[str]]) -> None:
        """Register an owner's view of the blobs it references (digests): those are kept."""
        self._referrers.append(referenced)

    @contextlib.contextmanager
    def lease(self, labels: dict[str, str] | None = None,
              expires_in: float | None = None) -> Iterator[Lease]:
        """Hold what an operation writes while it runs: pass the lease to the writers.
        When the block ends, failed or not, the lease goes and what it held that no
        referrer wants is deleted (an operation that succeeded has made its blobs
        referenced by then: a layer, an image)."""
        lease = self.leases.create(labels, expires_in)
        try:
            yield lease
        finally:
            self._release(self.leases.delete(lease))

    def hold(self, lease: Lease | None, digest: str) -> None:
        """Make `lease` hold blob `digest` (which may not exist yet)."""
        hex_of(digest)
        if lease is not None:
            self.leases.add(lease, BLOB, digest)

    def _release(self, resources: list[tuple[str, str]]) -> None:
        self.collect([ref for kind, ref in resources if kind == BLOB])

    def collect(self, digests: Collection[str] | None = None) -> list[str]:
        """Garbage-collect blobs `digests` (all blobs if None): delete those no referrer
        names and no live lease holds; expired leases are dropped first. Returns the
        digests deleted. A full collection also deletes ingests no lease holds."""
        self._release_expired()
        keep = self.leases.held(BLOB)
        for referenced in self._referrers:
            keep |= referenced()
        gone = []
        if digests is None:
            leased_ingests = self.leases.held(INGEST)
            digests = []
            for name in os.listdir(self.blobs):
                if name.startswith(_INGEST_PREFIX):
                    if name not in leased_ingests:
                        log.warning("removing the half-written blob %s", name)
                        _unlink(os.path.join(self.blobs, name))
                else:
                    digests.append("sha256:" + name)
        for digest in digests:
            if digest not in keep and self.has(digest):
                log.info("removing blob %s that nothing references", digest)
                self.delete(digest)
                gone.append(digest)
        return gone

    def _release_expired(self) -> None:
        held = self.leases.drop_expired()
        if held:
            log.info("dropped expired leases holding %d resources", len(held))

    def reconcile(self, wanted: set[str] | None = None) -> None:
        """At start-up: clear the spool, drop the leases of operations that a previous
        berthd did not finish (and expired ones), and collect every blob and ingest
        that neither a referrer, `wanted`, nor a remaining lease wants."""
        shutil.rmtree(self.spool_root, ignore_errors=True)
        os.makedirs(self.spool_root, mode=0o700, exist_ok=True)
        dropped = self.leases.drop_orphans()
        if dropped:
            log.warning("dropped the leases of unfinished operations, holding %d resources", len(dropped))
        if wanted is not None:
            self._referrers.append(lambda: wanted)
        try:
            self.collect()
        finally:
            if wanted is not None:
                self._referrers.pop()

    # -- reading ------------------------------------------------------------------------

    def path(self, digest: str) -> str:
        return os.path.join(self.blobs, hex_of(digest))

    def has(self, digest: str) -> bool:
        return os.path.isfile(self.path(digest))

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def open(self, digest: str) -> IO[bytes]:
        return open(self.path(digest), "rb")

    def delete(self, digest: str) -> None:
        _unlink(self.path(digest))

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _ingest(self, lease: Lease | None) -> Iterator[str]:
        """A temp name for a new blob, held by `lease` before the file exists and until the
        blob has its own name, so that no collection can take it while it is written."""
        if lease is None:
            yield ""
            return
        name = _INGEST_PREFIX + secrets.token_hex(8)
        self.leases.add(lease, INGEST, name)
        try:
            yield name
        finally:
            self.leases.remove(lease, INGEST, name)

    async def write_stream(self, chunks: AsyncIterator[bytes], expected: str | None = None,
                           decompress: bool = False, lease: Lease | None = None) -> Blob:
        """Store a stream as a blob (decompressed first if asked); checks `expected`."""
        if expected is not None:
            hex_of(expected)
        with self._ingest(lease) as name:
            writer = await asyncio.to_thread(_Writer, self.blobs, decompress, False, name)
            try:
                await _write_batched(chunks, writer, _STREAM_BATCH)
                blob = await asyncio.to_thread(writer.close)
                verify(blob.digest, expected)
                self.hold(lease, blob.digest)
                await asyncio.to_thread(_publish, writer.tmp, self.path(blob.digest), self.blobs)
            except BaseException:
                await asyncio.to_thread(writer.abort)
                raise
        return blob

    def write_bytes(self, data: bytes, lease: Lease | None = None) -> Blob:
        """Store small bytes (a config, a manifest) synchronously."""
        with self._ingest(lease) as name:
            writer = _Writer(self.blobs, False, False, name)
            try:
                writer.write(data)
                blob = writer.close()
                self.hold(lease, blob.digest)
                _publish(writer.tmp, self.path(blob.digest), self.blobs)
            except BaseException:
                writer.abort()
                raise
        return blob

    async def write_file_range(self, path: str, offset: int, size: int, expected: str | None = None,
                               decompress: bool = False, lease: Lease | None = None) -> Blob:
        """Store `size` bytes of file `path` from `offset` as a blob (decompressed first if
        asked), in one thread; checks `expected` before the blob gets its name."""
        if expected is not None:
            hex_of(expected)

        def write(name: str) -> tuple[_Writer, Blob]:
            writer = _Writer(self.blobs, decompress, False, name)
            try:
                writer.copy_range(path, offset, size)
                blob = writer.close()
                verify(blob.digest, expected)
            except BaseException:
                writer.abort()
                raise
            return writer, blob

        with self._ingest(lease) as name:
            writer, blob = await asyncio.to_thread(write, name)
            try:
                self.hold(lease, blob.digest)  # in the event loop: the database is not the thread's
                await asyncio.to_thread(_publish, writer.tmp, self.path(blob.digest), self.blobs)
            except BaseException:
                await asyncio.to_thread(writer.abort)
                raise
        return blob

    async def spool(self, chunks: AsyncIterator[bytes], directory: str) -> str:
        """Write a stream, decompressed, to a new file in `directory`; returns its path.

        A scratch file: not hashed, not fsynced (start-up clears the spool). Chunks are
        batched so that each trip to a thread writes megabytes, not a socket read's worth.
        """
        writer = await asyncio.to_thread(_Writer, directory, True, True)
        try:
            await _write_batched(chunks, writer, _COPY_CHUNK)
            await asyncio.to_thread(writer.close)
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        return writer.tmp

    async def read_stream(self, chunks: AsyncIterator[bytes],
                          consume: Callable[[StreamReader], T]) -> T:
        """Run `consume` in a thread on a blocking reader of `chunks`, decompressed; if
        this is cancelled, the thread is stopped and waited for before it returns."""
        reader = StreamReader(chunks, asyncio.get_running_loop())
        work = asyncio.ensure_future(asyncio.to_thread(consume, reader))
        try:
            return await asyncio.shield(work)
        except BaseException:
            reader.stop()
            await asyncio.wait([work])
            raise
        finally:
            reader.stop()  # a batch read ahead that nobody will take

    def adopt(self, path: str, digest: str, synced: bool = False) -> Blob | None:
        """Make the private, complete file `path`, whose sha256 the caller computed as it
        wrote it, the blob `digest` (a hard link: no copy); None if the file is
        compressed (a blob is what it decompresses to). `synced`: the caller has made
        the file's data durable already (a syncfs of this filesystem). May run in a
        thread: a caller with a lease holds `digest` in it first (`hold`)."""
        final = self.path(digest)
        with open(path, "rb") as f:
            if compression_of(f.read(6)) != "plain":
                return None
            if not synced:
                os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        try:
            os.link(path, final)
        except FileExistsError:
            pass  # a blob is never changed once in place: the same bytes are there already
        fd = os.open(self.blobs, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return Blob(digest, size)

    def is_plain(self, path: str) -> bool:
        """Whether the file holds uncompressed data (what a blob must be)."""
        with open(path, "rb") as f:
            return compression_of(f.read(6)) == "plain"

    def spool_dir(self) -> str:
        """A private scratch directory; the caller removes it (start-up clears leftovers)."""
        return tempfile.mkdtemp(dir=self.spool_root)


async def _write_batched(chunks: AsyncIterator[bytes], writer: _Writer, batch_size: int) -> None:
    """Feed `chunks` to `writer` in a thread, batched so that each trip to the thread
    writes megabytes, not a socket read's worth."""
    batch: list[bytes] = []
    batched = 0
    async for chunk in chunks:
        batch.append(chunk)
        batched += len(chunk)
        if batched >= batch_size:
            await asyncio.to_thread(writer.write, b"".join(batch))
            batch, batched = [], 0
    if batch:
        await asyncio.to_thread(writer.write, b"".join(batch))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _publish(tmp: str, final: str, directory: str) -> None:
    os.rename(tmp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_chunks(f: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


async def file_chunks(path: str, offset: int = 0, length: int | None = None,
                      size: int = 1 << 20) -> AsyncIterator[bytes]:
    """Read part of a file in a thread, chunk by chunk."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(f.seek, offset)
        left = length
        while left is None or left > 0:
            n = size if left is None else min(size, left)
            chunk = await asyncio.to_thread(f.read, n)
            if not chunk:
                if left:
                    raise InvalidParameter("unexpected end of file")
                break
            if left is not None:
                left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(f.close)
