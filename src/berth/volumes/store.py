"""The volume store: every volume's record, its driver, and who may remove it.

Records live in SQLite (table `volumes`, this module's, with its migrations), written
in one statement, so a volume that `create` returned survives a crash of berthd. The data lives with the driver
(volumes/drivers.py: `local`, or a plugin found by name). Which containers use a
volume is the container manager's knowledge: callers pass it in where it matters
(remove, prune), so this module never looks at containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.errors import BerthError, Conflict, NotFound
from berth.metadata import Step, migrate
from berth.volumes import safepath
from berth.volumes.drivers import LocalDriver, VolumeDriver, check_name

log = logging.getLogger(__name__)

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LIST_FILTERS = {"dangling", "driver", "label", "name"}
PRUNE_FILTERS = {"label", "label!", "all"}

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS volumes ("
     " name TEXT PRIMARY KEY,"
     " doc  TEXT NOT NULL)"],
]


@dataclass(frozen=True)
class VolumeFilters:
    """`docker volume ls --filter …`, checked. A field that is None does not filter."""

    dangling: frozenset[bool] | None = None  # True: unused volumes; False: used ones
    driver: tuple[str, ...] | None = None
    name: tuple[str, ...] | None = None  # regular expressions found in the name
    label: tuple[str, ...] = ()  # every one must hold: "key" or "key=value"


@dataclass(frozen=True)
class VolumePruneFilters:
    """`docker volume prune --filter …`, checked."""

    label: tuple[str, ...] = ()  # every one must hold
    label_not: tuple[str, ...] = ()  # `label!`: none may hold
    all: bool | None = None  # named volumes too (None: the API version's default)


@dataclass
class Volume:
    name: str
    driver: str = "local"
    created_at: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] | None = None
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeStore:
    def __init__(self, data_root: str, db: sqlite3.Connection, owner: tuple[int, int] | None = None) -> None:
        """`owner`: the host uid and gid of a remapped daemon's containers' root."""
        self.db = db
        migrate(db, "volumes", MIGRATIONS)
        self.local = LocalDriver(os.path.join(data_root, "volumes"), owner)
        self.subpath_root = os.path.join(data_root, "volume-subpaths")  # safepath.hold's mount points
        self._release_stale_holds()
        self._plugins: dict[str, VolumeDriver] = {}
        self._plugin_paths: dict[str, str] = {}  # what plugins last said a volume's path is
        # managed plugins (berth/plugins) by name: their driver, None for no such plugin
        self.managed_plugin: Callable[[str], VolumeDriver | None] = lambda name: None
        # (action, volume name, attributes): berthd's event log listens here
        self.on_event: Callable[[str, str, dict[str, str]], None] = lambda *a: None

    # -- drivers -------------------------------------------------------------------------

    def driver(self, name: str) -> VolumeDriver:
        if name in ("", "local"):
            return self.local
        managed = self.managed_plugin(name)
        if managed is not None:
            return managed
        plugin = self._plugins.get(name)
        if plugin is None:
            from berth.volumes.plugin import find_plugin

            plugin = self._plugins[name] = find_plugin(name)
        return plugin

    # -- records -------------------------------------------------------------------------

    def _row(self, name: str) -> Volume | None:
        row = self.db.execute("SELECT doc FROM volumes WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        doc = json.loads(row[0])
        return Volume(name, doc.get("driver", "local"), doc.get("created_at", ""),
                      dict(doc.get("labels") or {}), doc.get("options"), doc.get("scope", "local"))

    def _save(self, v: Volume) -> None:
        doc = {"driver": v.driver, "created_at": v.created_at, "labels": v.labels,
               "options": v.options, "scope": v.scope}
        self.db.execute("INSERT OR REPLACE INTO volumes VALUES (?,?)", (v.name, json.dumps(doc)))

    def get(self, name: str) -> Volume:
        v = self._row(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def all(self) -> list[Volume]:
        return [v for (name,) in self.db.execute("SELECT name FROM volumes ORDER BY name")
                if (v := self._row(name)) is not None]

    def reconcile(self) -> None:
        """Local volume directories the database does not know (a crash between the
        directory and the record) are kept, and recorded: their data is the user's."""
        known = {n for (n,) in self.db.execute("SELECT name FROM volumes")}
        for dv in self.local.list():
            if dv.name not in known:
                log.warning("adopting volume directory %s that the database did not know", dv.name)
                self._save(Volume(dv.name, "local", _now(), {}, self.local.options(dv.name) or None))

    # -- operations ------------------------------------------------------------------------

    async def create(self, name: str = "", driver: str = "local", options: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None, anonymous: bool = False) -> Volume:
        """`docker volume create`; an existing volume of that name and driver is returned."""
        driver = driver or "local"
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        if driver == "local":
            check_name(name)  # a plugin judges its own names
        impl = self.driver(driver)
        driver = impl.name if driver != "local" else driver  # a managed plugin's full name: "x:latest"
        existing = self._row(name)
        if existing is not None:
            if existing.driver != driver:
                raise Conflict(f'create {name}: a volume with the name {name} already exists with '
                               f'driver "{existing.driver}"')
            return existing
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        await asyncio.to_thread(impl.create, name, dict(options or {}))
        if driver != "local":
            with contextlib.suppress(BerthError):
                self._plugin_paths[name] = await asyncio.to_thread(impl.path, name)
        v = Volume(name, driver, _now(), labels, dict(options) if options is not None else None, impl.scope)
        try:
            self._save(v)
        except BaseException:
            await asyncio.to_thread(impl.remove, name)
            raise
        self.on_event("create", name, {"driver": driver})
        return v

    async def remove(self, name: str, users: list[str], force: bool = False) -> None:
        """`docker volume rm`: refused while `users` (container IDs) hold it."""
        v = self._row(name)
        if v is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        try:
            await asyncio.to_thread(self.driver(v.driver).remove, name)
        except NotFound:
            pass
        except BerthError:
            if not force:
                raise
        self.db.execute("DELETE FROM volumes WHERE name=?", (name,))
        self.on_event("destroy", name, {"driver": v.driver})

    def mountpoint(self, v: Volume) -> str:
        """Where the volume's data is on the host, as inspect shows it."""
        if v.driver == "local":
            return self.local.path(v.name)
        return self._plugin_paths.get(v.name, "")  # asking the plugin would block the caller

    async def mount(self, v: Volume, container_id: str) -> str:
        path = await asyncio.to_thread(self.driver(v.driver).mount, v.name, container_id)
        if v.driver != "local":
            self._plugin_paths[v.name] = path
        return path

    async def unmount(self, v: Volume, container_id: str) -> None:
        try:
            await asyncio.to_thread(self.driver(v.driver).unmount, v.name, container_id)
        except BerthError as e:
            log.warning("unmount of volume %s for %s failed: %s", v.name, container_id[:12], e)

    async def hold_subpath(self, source: str, subpath: str, container_id: str, index: int) -> str:
        """The directory `subpath` names in a mounted volume (`source`), held for the
        container's runtime to mount (volumes/safepath.py); dockerd's errors."""
        mount_point = os.path.join(self.subpath_root, f"{container_id}-{index}")
        return await asyncio.to_thread(safepath.hold, source, subpath, mount_point)

    def _release_stale_holds(self) -> None:
        """At start-up: holds an earlier berthd left (killed while it started a container).
        A hold is needed only until the runtime has mounted it, so none is needed now."""
        try:
            names = os.listdir(self.subpath_root)
        except FileNotFoundError:
            return
        for name in names:
            safepath.release(os.path.join(self.subpath_root, name))
        if names:
            log.warning("let go of %d volume subpath holds an earlier berthd left", len(names))

    async def release_subpaths(self, container_id: str) -> None:
        """Let go of every hold of the container's (found on disk, so that one made just
        before berthd was killed goes too)."""
        def release_all() -> None:
            try:
                names = os.listdir(self.subpath_root)
            except FileNotFoundError:
                return
            for name in names:
                if name.startswith(f"{container_id}-"):
                    safepath.release(os.path.join(self.subpath_root, name))

        await asyncio.to_thread(release_all)

    def size(self, v: Volume) -> int:
        """Bytes of the volume's data; -1 where berth cannot know (a plugin's)."""
        if v.driver != "local":
            return -1
        total = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, _dirnames, filenames in os.walk(self.local.path(v.name)):
            for n in filenames:  # as Docker: what the files hold, a hard link counted once
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except OSError:
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
        return total

    def find(self, filters: VolumeFilters, in_use: Callable[[str], bool]) -> list[Volume]:
        out = []
        for v in self.all():
            if filters.dangling is not None and (not in_use(v.name)) not in filters.dangling:
                continue
            if filters.driver is not None and v.driver not in filters.driver:
                continue
            if filters.name is not None and not any(_matches(p, v.name) for p in filters.name):
                continue
            if not all(label_matches(v.labels, x) for x in filters.label):
                continue
            out.append(v)
        return out

    async def prune(self, filters: VolumePruneFilters, in_use: Callable[[str], bool],
                    all_volumes: bool) -> tuple[list[str], int]:
        """Remove unused local volumes (only anonymous ones unless `all_volumes`, which
        the filters' `all` overrides)."""
        if filters.all is not None:
            all_volumes = filters.all
        deleted: list[str] = []
        reclaimed = 0
        for v in self.all():
            if v.driver != "local" or in_use(v.name):
                continue
            if not all_volumes and not v.anonymous:
                continue
            if not all(label_matches(v.labels, x) for x in filters.label):
                continue
            if any(label_matches(v.labels, x) for x in filters.label_not):
                continue
            size = await asyncio.to_thread(self.size, v)
            try:
                await self.remove(v.name, [])
            except BerthError as e:
                log.warning("prune: volume %s: %s", v.name, e)
                continue
            deleted.append(v.name)
            reclaimed += max(size, 0)
        self.on_event("prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed


def label_matches(labels: dict[str, str], spec: str) -> bool:
    key, eq, value = spec.partition("=")
    if key not in labels:
        return False
    return not eq or labels[key] == value


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name
