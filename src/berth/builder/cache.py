"""The build cache: which image a build step made, by parent image and step key.

Its own table (`build_cache`) and migrations, in berthd's metadata database. It knows
nothing of images beyond their IDs: the image store tells it when one is deleted
(`forget`), so a rebuild never lands on an image that is gone.
"""

from __future__ import annotations

import sqlite3

from berth.metadata import Step, migrate

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS build_cache ("
     " parent   TEXT NOT NULL,"
     " key      TEXT NOT NULL,"
     " image_id TEXT NOT NULL,"
     " PRIMARY KEY (parent, key))"],
]


class BuildCache:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        migrate(db, "build_cache", MIGRATIONS)

    def get(self, parent: str, key: str) -> str | None:
        row = self.db.execute("SELECT image_id FROM build_cache WHERE parent=? AND key=?", (parent, key)).fetchone()
        return row[0] if row else None

    def put(self, parent: str, key: str, image_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO build_cache VALUES (?,?,?)", (parent, key, image_id))

    def forget(self, image_id: str) -> None:
        self.db.execute("DELETE FROM build_cache WHERE image_id=?", (image_id,))

    def prune(self) -> int:
        cur = self.db.execute("DELETE FROM build_cache")
        return cur.rowcount
