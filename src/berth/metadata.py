"""berthd's metadata database: one SQLite file in WAL mode under the data root.

Each store (layers, images, containers) owns its tables and creates them here.
SQLite gives atomic, crash-safe updates: a `kill -9` at any moment leaves a database
that opens cleanly with each change either fully there or not at all.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id  TEXT NOT NULL,
    parent   TEXT,
    size     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id      TEXT PRIMARY KEY,
    config  BLOB NOT NULL,
    created TEXT NOT NULL,
    size    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_parents (
    id     TEXT PRIMARY KEY,
    parent TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache (
    parent   TEXT NOT NULL,
    key      TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (parent, key)
);
CREATE TABLE IF NOT EXISTS tags (
    name     TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db
