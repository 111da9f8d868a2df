"""Leases and garbage collection: a leased blob is never collected, an unleased and
unreferenced one is; a failed write leaves no ingest; start-up drops the leases of a
berthd that is gone and expired ones."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.content.leases import BLOB, INGEST, LeaseStore
from berth.content.store import ContentStore
from berth.errors import InvalidParameter, NotFound
from berth.metadata import open_db


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 5):
        yield data[i:i + 5]


def test_a_lease_holds_its_blobs_and_its_end_collects_them(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    with store.lease({"berth.operation": "test"}) as lease:
        held = store.write_bytes(b"held", lease=lease)
        assert store.leases.resources(lease) == [(BLOB, held.digest)]
        assert store.collect() == [] and store.has(held.digest)
    assert not store.has(held.digest)  # nothing references it: gone with the lease
    assert store.leases.all() == []


def test_a_referenced_blob_outlives_the_lease(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    referenced: set[str] = set()
    store.add_referrer(lambda: referenced)
    with store.lease() as lease:
        blob = asyncio.run(store.write_stream(chunks_of(b"a layer tar"), lease=lease))
        referenced.add(blob.digest)  # the operation made it part of something
    assert store.has(blob.digest)
    referenced.clear()
    assert store.collect([blob.digest]) == [blob.digest] and not store.has(blob.digest)


def test_gc_collects_an_unleased_unreferenced_blob_and_keeps_a_leased_one(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    loose = store.write_bytes(b"loose")
    with store.lease() as lease:
        kept = store.write_bytes(b"kept", lease=lease)
        assert store.collect() == [loose.digest]
        assert store.has(kept.digest) and not store.has(loose.digest)


def test_a_blob_held_by_two_leases_stays_until_both_end(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    with store.lease() as first:
        blob = store.write_bytes(b"shared", lease=first)
        with store.lease() as second:
            store.hold(second, blob.digest)
        assert store.has(blob.digest)
    assert not store.has(blob.digest)


def test_an_expired_lease_is_collected(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    lasting = store.leases.create(expires_in=3600)
    expired = store.leases.create(expires_in=0)
    a = store.write_bytes(b"lasting", lease=lasting)
    b = store.write_bytes(b"expired", lease=expired)
    assert store.collect() == [b.digest]
    assert store.has(a.digest) and not store.has(b.digest)
    assert [lease.id for lease in store.leases.all()] == [lasting.id]
    with pytest.raises(NotFound):
        store.leases.add(expired, BLOB, b.digest)


def test_expiry_follows_the_clock(tmp_path: Path) -> None:
    now = [1_000_000_000_000_000_000]
    leases = LeaseStore(open_db(str(tmp_path / "berth.db")), now_ns=lambda: now[0])
    lease = leases.create({"k": "v"}, expires_in=60)
    leases.add(lease, BLOB, digest(b"x"))
    assert leases.get(lease.id) == lease and lease.labels == {"k": "v"}
    assert leases.held(BLOB) == {digest(b"x")}
    now[0] += 59 * 10**9
    assert leases.drop_expired() == [] and leases.held(BLOB) == {digest(b"x")}
    now[0] += 2 * 10**9
    assert leases.held(BLOB) == set()  # past its expiry it holds nothing, dropped or not
    assert leases.drop_expired() == [(BLOB, digest(b"x"))] and leases.get(lease.id) is None


def test_start_up_drops_the_leases_of_unfinished_operations(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    store = ContentStore(str(tmp_path), db)
    operation = store.leases.create()  # no expiry: a berthd operation, killed with berthd
    session = store.leases.create(expires_in=3600)  # meant to survive a restart
    half = store.write_bytes(b"half a load", lease=operation)
    upload = store.write_bytes(b"an upload", lease=session)
    Path(store.blobs, ".ingest-left-by-a-kill").write_bytes(b"hal")
    db.close()

    db = open_db(str(tmp_path / "berth.db"))
    store = ContentStore(str(tmp_path), db)
    store.reconcile()
    assert not store.has(half.digest) and store.has(upload.digest)
    assert [lease.id for lease in store.leases.all()] == [session.id]
    assert [n for n in os.listdir(store.blobs) if n.startswith(".")] == []


def test_an_ingest_under_a_lease_survives_a_collection(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))

    async def write_while_collecting() -> None:
        gate = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"first "
            gate.set()
            await asyncio.sleep(0.05)
            yield b"second"

        with store.lease() as lease:
            writing = asyncio.ensure_future(store.write_stream(slow(), lease=lease))
            await gate.wait()
            ingests = store.leases.held(INGEST)
            assert len(ingests) == 1
            store.collect()  # a full collection while the blob is being written
            blob = await writing
            assert store.has(blob.digest) and store.leases.held(INGEST) == set()
            assert store.leases.resources(lease) == [(BLOB, digest(b"first second"))]

    asyncio.run(write_while_collecting())


def test_a_failed_write_leaves_no_ingest_and_no_blob(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    src = tmp_path / "src"
    src.write_bytes(b"not what was expected")
    with store.lease() as lease:
        with pytest.raises(InvalidParameter, match="digest mismatch"):
            asyncio.run(store.write_file_range(str(src), 0, src.stat().st_size,
                                               expected=digest(b"other"), lease=lease))
        with pytest.raises(InvalidParameter, match="digest mismatch"):
            asyncio.run(store.write_stream(chunks_of(b"x"), expected=digest(b"y"), lease=lease))
        assert store.leases.resources(lease) == []
    assert os.listdir(store.blobs) == []
