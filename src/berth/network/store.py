"""The network store: every network's record, in berthd's metadata database.

Its own table (`networks`: ID, unique name, the record as JSON) and migrations. It
stores and returns records as the controller writes them and knows nothing of drivers
or the host; a cluster-scoped store can later stand in its place.
"""

from __future__ import annotations

import sqlite3

from berth.metadata import Step, migrate

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS networks ("
     " id   TEXT PRIMARY KEY,"
     " name TEXT NOT NULL UNIQUE,"
     " doc  TEXT NOT NULL)"],
]


class NetworkStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        migrate(db, "networks", MIGRATIONS)

    def docs(self) -> list[str]:
        """Every network's record (JSON)."""
        return [doc for (doc,) in self.db.execute("SELECT doc FROM networks")]

    def save(self, network_id: str, name: str, doc: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO networks VALUES (?,?,?)", (network_id, name, doc))

    def delete(self, network_id: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id=?", (network_id,))
