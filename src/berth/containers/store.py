"""The container store: every container's record, in berthd's metadata database.

Its own table (`containers`: ID, unique name, the record as JSON) and migrations.
It stores and returns records; what they mean is the container manager's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from berth.metadata import Step, migrate

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS containers ("
     " id   TEXT PRIMARY KEY,"
     " name TEXT NOT NULL UNIQUE,"
     " doc  TEXT NOT NULL)"],
]


class ContainerStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        migrate(db, "containers", MIGRATIONS)

    def records(self) -> Iterator[tuple[str, str]]:
        """(ID, record as JSON) of every container."""
        yield from self.db.execute("SELECT id, doc FROM containers").fetchall()

    def save(self, container_id: str, name: str, doc: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO containers VALUES (?,?,?)", (container_id, name, doc))

    def delete(self, container_id: str) -> None:
        self.db.execute("DELETE FROM containers WHERE id=?", (container_id,))
