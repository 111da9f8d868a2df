"""berthd's metadata database: one SQLite file in WAL mode, and the migration runner.

This module opens the file and runs migrations; it owns no store's tables. Each store
(layers, images, content leases, volumes, networks, containers, the build cache) keeps
its schema and its SQL in its own package, as an ordered list of migration steps, and
calls `migrate(db, "<store>", STEPS)` when it is constructed.

Why this design. A data root written before stores had versions (commit 623d42e and
earlier) is one file, `berth.db`, with every table made by `CREATE TABLE IF NOT
EXISTS` and `PRAGMA user_version` 0. That file must open as it is, and transactions
that span a store's tables (a `docker load`'s images and tags) must stay one SQLite
transaction, so the stores stay in one file rather than one file each. Inside it:

- `PRAGMA user_version` is the database-wide schema generation: how the file itself is
  laid out. It is the key of this module's own migrations (`_GENERATIONS`). Generation
  1 adds the table `schema_versions`; generation 0 is 623d42e's file.
- `schema_versions(store, version)` holds one row per store: how many of that store's
  steps have been applied. A store's migrations are its own, so two stores that change
  in the same release never have to agree on a number, and a store can be moved to
  another file (or a cluster store) later without renumbering anyone.

Each store's first step is its 623d42e schema, written `CREATE TABLE IF NOT EXISTS`:
on an old file it finds the tables there and only records version 1; on a new one it
makes them. Every run of steps (and the version it leaves) is one transaction begun
with `BEGIN IMMEDIATE`, so a `kill -9` in the middle leaves the old version and the old
tables, and the next start runs the steps again. A file whose version is higher than
this berth knows was written by a newer berth: it is refused rather than misread.

A step is a sequence of SQL statements, or a function of the connection for what SQL
alone cannot say. Statements run one by one, never through `executescript`, which
would commit the transaction half way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from berth.errors import BerthError

Step = Sequence[str] | Callable[[sqlite3.Connection], None]


class SchemaTooNew(BerthError):
    """The database was written by a newer berth, whose schema this one cannot read."""


_GENERATIONS: list[Step] = [
    # 1: per-store versions; generation 0 (623d42e) had none
    ["CREATE TABLE IF NOT EXISTS schema_versions ("
     " store   TEXT PRIMARY KEY,"
     " version INTEGER NOT NULL)"],
]
GENERATION = len(_GENERATIONS)


def open_db(path: str) -> sqlite3.Connection:
    """Open (or create) the metadata database and bring its own layout up to date.

    Stores migrate their tables themselves; see the module's doc.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    upgrade_generation(db)
    return db


def upgrade_generation(db: sqlite3.Connection) -> None:
    """Apply the database-wide steps above `PRAGMA user_version`."""
    _run(db, "the metadata database", _GENERATIONS,
         read=lambda: int(db.execute("PRAGMA user_version").fetchone()[0]),
         write=lambda version: db.execute(f"PRAGMA user_version={int(version)}"))


def migrate(db: sqlite3.Connection, store: str, steps: Sequence[Step]) -> int:
    """Apply the steps of `store` it has not had yet, in one transaction; returns the
    store's version. Idempotent: a store that is up to date costs one read."""
    upgrade_generation(db)  # a connection not made by open_db (tests, tools)

    def write(version: int) -> None:
        db.execute("INSERT OR REPLACE INTO schema_versions VALUES (?,?)", (store, version))

    return _run(db, f"store {store!r}", steps, read=lambda: store_version(db, store), write=write)


def store_version(db: sqlite3.Connection, store: str) -> int:
    """How many of its steps `store` has had (0: none, or a file older than versions)."""
    row = db.execute("SELECT version FROM schema_versions WHERE store=?", (store,)).fetchone()
    return int(row[0]) if row else 0


def _run(db: sqlite3.Connection, what: str, steps: Sequence[Step],
         read: Callable[[], int], write: Callable[[int], object]) -> int:
    if _version_or_none(read) == len(steps):
        return len(steps)  # the common case, without taking the write lock
    db.execute("BEGIN IMMEDIATE")  # read and upgrade under one lock: two openers cannot both migrate
    try:
        current = read()
        if current > len(steps):
            raise SchemaTooNew(f"{what} has schema version {current}, but this berth knows "
                               f"only up to {len(steps)}: it was written by a newer berth")
        for step in steps[current:]:
            if callable(step):
                step(db)
            else:
                for statement in step:
                    db.execute(statement)
        write(len(steps))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(steps)


def _version_or_none(read: Callable[[], int]) -> int | None:
    try:
        return read()
    except sqlite3.OperationalError:  # schema_versions not made yet
        return None
