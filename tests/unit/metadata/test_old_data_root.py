"""A data root written by 623d42e (before stores had versions) opens under the new
stores with everything there: layers and their tars, images with tags and parents,
the build cache, volumes, networks and containers.

The database is made here with 623d42e's own schema (its metadata.py, verbatim) and
rows as that berth wrote them; the end-to-end upgrade with a live old berthd is
tests/e2e's business."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from berth.builder.cache import BuildCache
from berth.containers.manager import ContainerManager
from berth.containers.model import Container, HostConfig, RunConfig, State, Status
from berth.containers.store import ContainerStore
from berth.images.model import ImageConfig
from berth.images.model import RunConfig as ImageRunConfig
from berth.images.store import ImageStore
from berth.layers.store import LayerStore
from berth.metadata import GENERATION, open_db, store_version
from berth.network.model import Network, SubnetConfig
from berth.network.store import SqliteNetworkStore
from berth.volumes.store import VolumeStore

# git show 623d42e:src/berth/metadata.py, SCHEMA
SCHEMA_623D42E = """
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


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_old_data_root(root: Path) -> dict[str, Any]:
    """berth.db as 623d42e's open_db made it, with rows as its stores wrote them, and
    the files they stand for (a layer directory, the layer's tar as a blob)."""
    db = sqlite3.connect(root / "berth.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_623D42E)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0

    tar = b"a layer tar" * 100
    diff_id = sha(tar)
    os.makedirs(root / "content" / "sha256")
    (root / "content" / "sha256" / diff_id.split(":")[1]).write_bytes(tar)
    os.makedirs(root / "overlay" / "layers" / diff_id.split(":")[1] / "diff")
    db.execute("INSERT INTO layers VALUES (?,?,?,?)", (diff_id, diff_id, None, 1100))

    base = ImageConfig(created="2026-01-01T00:00:00Z", architecture="amd64", os="linux",
                       config=ImageRunConfig(cmd=["sh"]), diff_ids=[diff_id]).to_bytes()
    child = ImageConfig(created="2026-01-02T00:00:00Z", architecture="amd64", os="linux",
                        config=ImageRunConfig(cmd=["sh"]), diff_ids=[diff_id], comment="built").to_bytes()
    db.execute("INSERT INTO images VALUES (?,?,?,?)", (sha(base), base, "2026-01-01T00:00:00Z", 1100))
    db.execute("INSERT INTO images VALUES (?,?,?,?)", (sha(child), child, "2026-01-02T00:00:00Z", 1100))
    db.execute("INSERT INTO image_parents VALUES (?,?)", (sha(child), sha(base)))
    db.execute("INSERT INTO tags VALUES (?,?)", ("docker.io/library/busybox:latest", sha(base)))
    db.execute("INSERT INTO tags VALUES (?,?)", ("docker.io/library/built:1", sha(child)))
    db.execute("INSERT INTO build_cache VALUES (?,?,?)", (sha(base), "run|echo hi", sha(child)))

    db.execute("INSERT INTO volumes VALUES (?,?)", ("data", json.dumps(
        {"driver": "local", "created_at": "2026-01-01T00:00:00Z", "labels": {"app": "db"},
         "options": None, "scope": "local"})))
    net = Network(id="ab" * 32, name="appnet", driver="bridge", created="2026-01-01T00:00:00Z",
                  subnets=[SubnetConfig(subnet="172.30.0.0/16", gateway="172.30.0.1")],
                  interface="br-abababababab")
    db.execute("INSERT INTO networks VALUES (?,?,?)", (net.id, net.name, json.dumps(asdict(net))))
    c = Container(id="c0ffee" * 10 + "abcd", name="web", created="2026-01-03T00:00:00Z",
                  image_id=sha(child), config=RunConfig(image="built:1"), host_config=HostConfig(),
                  state=State(status=Status.RUNNING, pid=4242, started_at="2026-01-03T00:00:01Z"))
    db.execute("INSERT INTO containers VALUES (?,?,?)", (c.id, c.name, json.dumps(c.to_doc())))
    db.close()
    return {"diff_id": diff_id, "base": sha(base), "child": sha(child), "network": net, "container": c}


def test_a_data_root_of_623d42e_opens_with_everything_there(tmp_path: Path) -> None:
    old = make_old_data_root(tmp_path)
    db = open_db(str(tmp_path / "berth.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == GENERATION

    layers = LayerStore(str(tmp_path), db, storage_driver="vfs")
    layers.reconcile()  # start-up: nothing of the old root is taken for garbage
    layer = layers.get(old["diff_id"])
    assert layer is not None and layer.size == 1100
    assert os.path.isdir(layers.diff_dir(old["diff_id"]))
    assert layers.content.has(old["diff_id"]) and layers.content.size(old["diff_id"]) == 1100

    images = ImageStore(db, layers)
    listed = {img.id: img for img in images.all()}
    assert set(listed) == {old["base"], old["child"]}
    assert listed[old["base"]].repo_tags == ["busybox:latest"]
    assert listed[old["child"]].repo_tags == ["built:1"]
    assert listed[old["child"]].parent == old["base"]
    assert images.resolve("busybox").id == old["base"]

    cache = BuildCache(db)
    assert cache.get(old["base"], "run|echo hi") == old["child"]

    volumes = VolumeStore(str(tmp_path), db)
    vol = volumes.get("data")
    assert (vol.driver, vol.labels, vol.created_at) == ("local", {"app": "db"}, "2026-01-01T00:00:00Z")

    (network,) = SqliteNetworkStore(db).load()
    assert network == old["network"]

    assert [cid for cid, _ in ContainerStore(db).records()] == [old["container"].id]
    nothing = cast(Any, None)
    manager = ContainerManager(str(tmp_path / "containers"), str(tmp_path / "exec"), db,
                               images=images, layers=layers, volumes=volumes, network=nothing)
    manager.load()
    assert manager.containers[old["container"].id] == old["container"]

    for store in ("layers", "images", "build_cache", "volumes", "networks", "containers", "leases"):
        assert store_version(db, store) == 1, store

    # and it opens again, unchanged, as berthd's next start would
    db.close()
    db = open_db(str(tmp_path / "berth.db"))
    images = ImageStore(db, LayerStore(str(tmp_path), db, storage_driver="vfs"))
    assert {img.id for img in images.all()} == {old["base"], old["child"]}
