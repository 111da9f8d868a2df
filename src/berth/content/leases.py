"""Leases: what a multi-step operation holds while it runs, so garbage collection
neither takes it from under the operation nor leaks it when the operation fails.

A lease (containerd's, in spirit) has an ID, a creation time, an optional expiry and
labels, and holds resources named by kind: complete blobs (`BLOB`, by digest) and
blobs being written (`INGEST`, by temp file name). A `docker load`, an import, a
commit, a build's layer and later a pull or a push each take one, and release it when
they end, failed or not; what the lease held and nothing else references is then
collected.

Two sorts, told apart by the expiry:
- no expiry: the lease of an operation running inside berthd. It cannot outlive the
  process, so start-up drops every such lease left by a berthd that was killed, and
  the half-done operation's blobs are collected.
- an expiry: a lease meant to survive a restart (a registry upload session, a pull to
  resume). It lives until it is deleted or expires; expired leases are dropped at
  start-up and by every garbage collection.

Records live in SQLite (tables `leases`, `lease_resources`), this module's own, with
its own migrations (see berth.metadata). Times are RFC 3339 text, which orders as time.
Nothing here touches files: the content store decides what to delete.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.clock import format_time
from berth.errors import NotFound
from berth.metadata import Step, migrate

BLOB = "blob"
INGEST = "ingest"

MIGRATIONS: list[Step] = [
    # 1: leases and what they hold
    ["CREATE TABLE IF NOT EXISTS leases ("
     " id      TEXT PRIMARY KEY,"
     " created TEXT NOT NULL,"
     " expires TEXT,"
     " labels  TEXT NOT NULL)",
     "CREATE TABLE IF NOT EXISTS lease_resources ("
     " lease TEXT NOT NULL,"
     " kind  TEXT NOT NULL,"
     " ref   TEXT NOT NULL,"
     " PRIMARY KEY (lease, kind, ref))",
     "CREATE INDEX IF NOT EXISTS lease_resources_by_ref ON lease_resources (kind, ref)"],
]


@dataclass(frozen=True)
class Lease:
    id: str
    created: str
    expires: str | None = None  # None: held by an operation of the running berthd
    labels: dict[str, str] = field(default_factory=dict)


class LeaseStore:
    def __init__(self, db: sqlite3.Connection, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.db = db
        self._now_ns = now_ns  # a test moves time forward through this
        migrate(db, "leases", MIGRATIONS)

    def _now(self) -> str:
        return format_time(self._now_ns())

    def create(self, labels: dict[str, str] | None = None, expires_in: float | None = None) -> Lease:
        """A new lease; `expires_in` seconds from now, or held until deleted (or restart)."""
        now = self._now_ns()
        expires = format_time(now + int(expires_in * 1e9)) if expires_in is not None else None
        lease = Lease(secrets.token_hex(16), format_time(now), expires, dict(labels or {}))
        self.db.execute("INSERT INTO leases VALUES (?,?,?,?)",
                        (lease.id, lease.created, lease.expires, json.dumps(lease.labels)))
        return lease

    def get(self, lease_id: str) -> Lease | None:
        row = self.db.execute("SELECT id, created, expires, labels FROM leases WHERE id=?",
                              (lease_id,)).fetchone()
        return Lease(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def all(self) -> list[Lease]:
        return [Lease(r[0], r[1], r[2], json.loads(r[3])) for r in
                self.db.execute("SELECT id, created, expires, labels FROM leases ORDER BY created")]

    def add(self, lease: Lease, kind: str, ref: str) -> None:
        """Make `lease` hold resource `ref` of `kind`; NotFound if the lease is gone."""
        if self.db.execute("SELECT 1 FROM leases WHERE id=?", (lease.id,)).fetchone() is None:
            raise NotFound(f"lease {lease.id} not found")
        self.db.execute("INSERT OR IGNORE INTO lease_resources VALUES (?,?,?)", (lease.id, kind, ref))

    def remove(self, lease: Lease, kind: str, ref: str) -> None:
        self.db.execute("DELETE FROM lease_resources WHERE lease=? AND kind=? AND ref=?",
                        (lease.id, kind, ref))

    def resources(self, lease: Lease) -> list[tuple[str, str]]:
        return [(k, r) for k, r in self.db.execute(
            "SELECT kind, ref FROM lease_resources WHERE lease=? ORDER BY kind, ref", (lease.id,))]

    def held(self, kind: str) -> set[str]:
        """The resources of `kind` that a live (unexpired) lease holds."""
        return {r for (r,) in self.db.execute(
            "SELECT DISTINCT r.ref FROM lease_resources r JOIN leases l ON l.id = r.lease"
            " WHERE r.kind=? AND (l.expires IS NULL OR l.expires > ?)", (kind, self._now()))}

    def delete(self, lease: Lease) -> list[tuple[str, str]]:
        """Drop a lease; returns what it held (now for the collector to judge)."""
        return self._drop("id=?", (lease.id,))

    def drop_expired(self) -> list[tuple[str, str]]:
        """Drop leases past their expiry; returns what they held."""
        return self._drop("expires IS NOT NULL AND expires <= ?", (self._now(),))

    def drop_orphans(self) -> list[tuple[str, str]]:
        """At start-up: drop the leases of operations of a berthd that is gone (those
        without an expiry) and the expired ones; returns what they held."""
        return self._drop("expires IS NULL OR expires <= ?", (self._now(),))

    def _drop(self, where: str, args: tuple[str, ...]) -> list[tuple[str, str]]:
        ids = [i for (i,) in self.db.execute(f"SELECT id FROM leases WHERE {where}", args)]
        if not ids:
            return []  # the common case of a collection: no write at all
        held: list[tuple[str, str]] = []
        # a savepoint, not BEGIN: it nests in a caller's transaction, if there is one
        self.db.execute("SAVEPOINT drop_leases")
        try:
            for lease_id in ids:
                held += self.db.execute("SELECT kind, ref FROM lease_resources WHERE lease=?",
                                        (lease_id,)).fetchall()
                self.db.execute("DELETE FROM lease_resources WHERE lease=?", (lease_id,))
                self.db.execute("DELETE FROM leases WHERE id=?", (lease_id,))
            self.db.execute("RELEASE drop_leases")
        except BaseException:
            self.db.execute("ROLLBACK TO drop_leases")
            self.db.execute("RELEASE drop_leases")
            raise
        return held
