"""The content store: atomic writes, digest checks, decompression, no temp files left."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import hashlib
import lzma
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.content.compression import Decompressor
from berth.content.store import ContentStore, file_chunks
from berth.errors import InvalidParameter


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def leftovers(store: ContentStore) -> list[str]:
    return [n for n in os.listdir(store.blobs) if n.startswith(".")]


def test_write_stream_stores_under_the_digest(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    data = b"hello layer" * 1000
    blob = asyncio.run(store.write_stream(chunks_of(data)))
    assert blob.digest == digest(data) and blob.size == len(data)
    assert store.has(blob.digest)
    with store.open(blob.digest) as f:
        assert f.read() == data
    assert leftovers(store) == []
    store.delete(blob.digest)
    assert not store.has(blob.digest)
    store.delete(blob.digest)  # twice is fine


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    wrong = digest(b"something else")
    with pytest.raises(InvalidParameter, match="digest mismatch"):
        asyncio.run(store.write_stream(chunks_of(b"data"), expected=wrong))
    assert os.listdir(store.blobs) == []


def test_a_failing_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(store.write_stream(broken()))
    assert os.listdir(store.blobs) == []


def test_invalid_digests_are_refused(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    for bad in ("md5:abc", "sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha256:"):
        with pytest.raises(InvalidParameter):
            store.path(bad)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda d: d])
def test_decompressing_write(tmp_path: Path, compress: object) -> None:
    store = ContentStore(str(tmp_path))
    data = os.urandom(5000) + b"x" * 100000
    blob = asyncio.run(store.write_stream(chunks_of(compress(data), 333),  # type: ignore[operator]
                                          expected=digest(data), decompress=True))
    assert blob.size == len(data)


def test_truncated_gzip_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    packed = gzip.compress(os.urandom(100000))
    with pytest.raises(InvalidParameter, match="unexpected end"):
        asyncio.run(store.write_stream(chunks_of(packed[:-100], 1000), decompress=True))
    assert os.listdir(store.blobs) == []


def test_concatenated_gzip_members() -> None:
    d = Decompressor()
    out = d.feed(gzip.compress(b"one ") + gzip.compress(b"two"))
    assert out + d.finish() == b"one two"


def test_tiny_plain_input() -> None:
    d = Decompressor()
    assert d.feed(b"abc") == b""
    assert d.finish() == b"abc"


def test_reconcile_removes_half_written_and_unwanted_blobs(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    kept = store.write_bytes(b"kept")
    gone = store.write_bytes(b"gone")
    Path(store.blobs, ".ingest-abc").write_bytes(b"half")
    spool = store.spool_dir()
    Path(spool, "x").write_bytes(b"x")
    store.reconcile({kept.digest})
    assert store.has(kept.digest) and not store.has(gone.digest)
    assert leftovers(store) == [] and os.listdir(store.spool_root) == []


def test_file_chunks_reads_a_range_and_notices_truncation(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")

    async def collect(offset: int, length: int | None) -> bytes:
        return b"".join([c async for c in file_chunks(str(path), offset, length, size=3)])

    assert asyncio.run(collect(2, 5)) == b"23456"
    assert asyncio.run(collect(0, None)) == b"0123456789"
    with pytest.raises(InvalidParameter, match="unexpected end"):
        asyncio.run(collect(5, 10))


def test_adopt_links_a_plain_file_in_and_refuses_a_compressed_one(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    spool = Path(store.spool_dir())
    (spool / "plain").write_bytes(b"plain layer" * 100)
    blob = store.adopt(str(spool / "plain"), digest(b"plain layer" * 100))
    assert blob is not None and blob.size == 1100
    assert os.path.samefile(store.path(blob.digest), spool / "plain")
    assert store.adopt(str(spool / "plain"), blob.digest) == blob  # already there: kept
    (spool / "gz").write_bytes(gzip.compress(b"x"))
    assert store.adopt(str(spool / "gz"), digest(gzip.compress(b"x"))) is None
    assert not store.has(digest(gzip.compress(b"x"))) and leftovers(store) == []


def test_read_stream_decompresses_and_stops_its_thread_when_cancelled(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    data = os.urandom(100000)
    assert asyncio.run(store.read_stream(chunks_of(gzip.compress(data), 999),
                                         lambda r: r.read())) == data

    async def endless() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await asyncio.Event().wait()  # a client that never sends the rest
        yield b""

    async def cancel() -> None:
        task = asyncio.ensure_future(store.read_stream(endless(), lambda r: r.read(100)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(cancel())
