"""`docker volume ls` and `docker volume prune` over typed filters: dangling, driver,
name patterns, labels, and prune's choice of anonymous or all unused volumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from berth.metadata import open_db
from berth.volumes.store import ANONYMOUS_LABEL, VolumeFilters, VolumePruneFilters, VolumeStore


def _store(tmp_path: Path) -> VolumeStore:
    store = VolumeStore(str(tmp_path), open_db(str(tmp_path / "berth.db")))

    async def make() -> None:
        await store.create("data", labels={"env": "prod"})
        await store.create("cache", labels={"env": "dev"})
        await store.create("a" * 64, labels={ANONYMOUS_LABEL: ""})

    asyncio.run(make())
    return store


def _in_use(name: str) -> bool:
    return name == "data"


def _names(store: VolumeStore, filters: VolumeFilters) -> set[str]:
    return {v.name for v in store.find(filters, _in_use)}


def test_find(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert _names(store, VolumeFilters()) == {"data", "cache", "a" * 64}
    assert _names(store, VolumeFilters(dangling=frozenset({True}))) == {"cache", "a" * 64}
    assert _names(store, VolumeFilters(dangling=frozenset({False}))) == {"data"}
    assert _names(store, VolumeFilters(name=("^ca",))) == {"cache"}
    assert _names(store, VolumeFilters(label=("env=prod",))) == {"data"}
    assert _names(store, VolumeFilters(driver=("other",))) == set()
    assert _names(store, VolumeFilters(name=())) == set()  # given with no value: nothing


def test_prune_takes_anonymous_volumes_unless_all(tmp_path: Path) -> None:
    store = _store(tmp_path)
    deleted, _ = asyncio.run(store.prune(VolumePruneFilters(), _in_use, all_volumes=False))
    assert deleted == ["a" * 64]
    deleted, _ = asyncio.run(store.prune(VolumePruneFilters(label_not=("env=dev",)), _in_use, all_volumes=True))
    assert deleted == []
    deleted, _ = asyncio.run(store.prune(VolumePruneFilters(all=True), _in_use, all_volumes=False))
    assert deleted == ["cache"]  # "data" is in use
