"""The migration runner: steps keyed on a store's version, run once, in one transaction;
a kill in the middle leaves the old version, and a newer schema is refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from berth.metadata import GENERATION, SchemaTooNew, Step, migrate, open_db, store_version


def tables(db: sqlite3.Connection) -> set[str]:
    return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_open_db_brings_the_database_wide_generation_up(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == GENERATION >= 1
    assert "schema_versions" in tables(db)
    open_db(str(tmp_path / "berth.db")).close()  # and again: nothing to do
    assert db.execute("PRAGMA user_version").fetchone()[0] == GENERATION


def test_a_migration_runs_once_and_is_idempotent(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    runs: list[int] = []

    def count(conn: sqlite3.Connection) -> None:
        runs.append(1)
        conn.execute("INSERT INTO things VALUES ('made by step 2')")

    steps: list[Step] = [["CREATE TABLE things (name TEXT)"], count]
    assert migrate(db, "things", steps) == 2
    assert migrate(db, "things", steps) == 2
    assert open_db(str(tmp_path / "berth.db")) and migrate(db, "things", steps) == 2
    assert runs == [1]
    assert db.execute("SELECT name FROM things").fetchall() == [("made by step 2",)]
    # a later release adds a step: only that one runs
    steps.append(["ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0"])
    assert migrate(db, "things", steps) == 3
    assert runs == [1] and store_version(db, "things") == 3
    assert db.execute("SELECT name, size FROM things").fetchall() == [("made by step 2", 0)]


def test_each_store_has_its_own_version(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    migrate(db, "a", [["CREATE TABLE a (x)"], ["CREATE TABLE a2 (x)"]])
    migrate(db, "b", [["CREATE TABLE b (x)"]])
    assert (store_version(db, "a"), store_version(db, "b"), store_version(db, "c")) == (2, 1, 0)


def test_a_failing_step_rolls_the_whole_run_back(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    migrate(db, "s", [["CREATE TABLE one (x)"]])

    def fail(conn: sqlite3.Connection) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        migrate(db, "s", [["CREATE TABLE one (x)"], ["CREATE TABLE two (x)"], fail])
    assert store_version(db, "s") == 1
    assert "two" not in tables(db) and not db.in_transaction


def test_a_kill_mid_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "berth.db"
    db = open_db(str(path))
    migrate(db, "s", [["CREATE TABLE one (x)"]])
    db.close()
    # a real SIGKILL after a step's SQL ran, before COMMIT
    script = textwrap.dedent(f"""
        import os, signal
        from berth.metadata import migrate, open_db
        db = open_db({str(path)!r})
        def die(conn):
            conn.execute("INSERT INTO two VALUES (1)")
            os.kill(os.getpid(), signal.SIGKILL)
        migrate(db, "s", [["CREATE TABLE one (x)"], ["CREATE TABLE two (x)"], die])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    db = open_db(str(path))
    assert store_version(db, "s") == 1 and "two" not in tables(db)
    # and the next start runs the steps again, to the end
    assert migrate(db, "s", [["CREATE TABLE one (x)"], ["CREATE TABLE two (x)"]]) == 2
    assert "two" in tables(db)


def test_a_schema_from_a_newer_berth_is_refused(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "berth.db"))
    migrate(db, "s", [["CREATE TABLE one (x)"], ["CREATE TABLE two (x)"]])
    with pytest.raises(SchemaTooNew, match="newer berth"):
        migrate(db, "s", [["CREATE TABLE one (x)"]])
    db.execute("PRAGMA user_version=99")
    with pytest.raises(SchemaTooNew, match="newer berth"):
        open_db(str(tmp_path / "berth.db"))
