"""Volume drivers: where a volume's data lives and how it is made available to a container.

One interface, `VolumeDriver`, with two kinds of back end: the built-in `local` driver
(a directory under the data root, optionally a tmpfs, a bind of a host path or any
filesystem mount(2) accepts, as Docker's `local` driver does) and plugins speaking
Docker's volume plugin protocol (volumes/plugin.py). The store (volumes/store.py) owns
the records and the references; a driver only keeps data. Calls block: the store runs
them in a thread.

A driver's errors are berth.errors (InvalidParameter for bad options, NotFound for an
unknown volume, SystemError_ for a host or plugin failure), one line each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from typing import Protocol

from berth.errors import InvalidParameter, NotFound, SystemError_
from berth.runtime import linux

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
LOCAL_OPTIONS = ("type", "device", "o", "size")


@dataclass
class DriverVolume:
    """What a driver reports of one volume."""

    name: str
    mountpoint: str = ""
    status: dict[str, object] = field(default_factory=dict)


class VolumeDriver(Protocol):
    name: str
    scope: str  # "local" or "global", as the driver's capabilities say

    def create(self, name: str, options: dict[str, str]) -> None:
        """Make the volume; InvalidParameter for options the driver does not take."""

    def remove(self, name: str) -> None:
        """Delete the volume and its data."""

    def mount(self, name: str, mount_id: str) -> str:
        """Make the volume's data available for user `mount_id` (a container ID); the
        host path to bind into the container."""

    def unmount(self, name: str, mount_id: str) -> None:
        """`mount_id` no longer uses the volume."""

    def path(self, name: str) -> str:
        """The volume's host path ("" where the driver has none until mounted)."""

    def get(self, name: str) -> DriverVolume:
        """NotFound when the driver does not know the volume."""

    def list(self) -> list[DriverVolume]:
        """Every volume the driver knows."""


def check_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not VOLUME_NAME_RE.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


class LocalDriver:
    """Docker's `local` driver: <root>/<name>/_data, plus an opts.json when the volume was
    created with --opt (type/device/o), mounted on _data while any container uses it."""

    name = "local"
    scope = "local"

    def __init__(self, root: str, owner: tuple[int, int] | None = None) -> None:
        self.root = root
        self.owner = owner  # a remapped daemon's containers' root: it owns each volume's _data
        os.makedirs(root, mode=0o701, exist_ok=True)
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def path(self, name: str) -> str:
        return os.path.join(self._dir(name), "_data")

    def create(self, name: str, options: dict[str, str]) -> None:
        check_name(name)
        for key in options:
            if key not in LOCAL_OPTIONS:
                raise InvalidParameter(f'create {name}: invalid option key: "{key}"')
        if options.get("size") and options.get("type") != "tmpfs":
            raise InvalidParameter(f"create {name}: quota size requested but no quota support")
        if options.get("type") and not options.get("device") and options.get("type") != "tmpfs":
            raise InvalidParameter(f"create {name}: missing required option: \"device\"")
        if options.get("device") and not options.get("type"):
            raise InvalidParameter(f"create {name}: missing required option: \"type\"")
        if options.get("o") and "bind" in options["o"].split(",") and not os.path.isabs(options.get("device", "")):
            raise InvalidParameter(f"create {name}: invalid bind device {options.get('device')!r}: "
                                   "it must be an absolute path")
        data = self.path(name)
        if os.path.isdir(data):
            return
        os.makedirs(self._dir(name), mode=0o701, exist_ok=True)
        if options:
            opts = os.path.join(self._dir(name), "opts.json")
            with open(opts + ".tmp", "w") as f:
                json.dump(options, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(opts + ".tmp", opts)
        tmp = data + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o755)
        if self.owner is not None:
            os.chown(tmp, *self.owner)
        os.rename(tmp, data)
        _fsync_dir(self._dir(name))

    def remove(self, name: str) -> None:
        with self._lock:
            if self._users.get(name):
                raise SystemError_(f"remove {name}: volume is still mounted")
            _unmount_all(self.path(name))
            if linux.is_mount_point(self.path(name)):  # never delete through a mount: it may be a host dir
                raise SystemError_(f"remove {name}: its mount on {self.path(name)} could not be undone")
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def options(self, name: str) -> dict[str, str]:
        """The --opt values the volume was created with."""
        try:
            with open(os.path.join(self._dir(name), "opts.json")) as f:
                doc = json.load(f)
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}

    def mount(self, name: str, mount_id: str) -> str:
        data = self.path(name)
        if not os.path.isdir(data):
            raise NotFound(f"get {name}: no such volume")
        options = self.options(name)
        with self._lock:
            users = self._users.setdefault(name, set())
            if options.get("type") and not users and not linux.is_mount_point(data):
                _mount_options(data, options)
            users.add(mount_id)
        return data

    def unmount(self, name: str, mount_id: str) -> None:
        with self._lock:
            users = self._users.get(name, set())
            users.discard(mount_id)
            if not users:
                self._users.pop(name, None)
                _unmount_all(self.path(name))

    def get(self, name: str) -> DriverVolume:
        if not os.path.isdir(self.path(name)):
            raise NotFound(f"get {name}: no such volume")
        return DriverVolume(name, self.path(name))

    def list(self) -> list[DriverVolume]:
        return [DriverVolume(n, self.path(n)) for n in sorted(os.listdir(self.root))
                if os.path.isdir(self.path(n))]


def _mount_options(target: str, options: dict[str, str]) -> None:
    """mount(2) what `--opt type=… device=… o=…` describe on `target`."""
    kind = options.get("type", "")
    device = options.get("device", "") or kind
    data = [o for o in options.get("o", "").split(",") if o]
    if kind == "tmpfs" and options.get("size"):
        data.append(f"size={options['size']}")
    flags = 0
    if "bind" in data or "rbind" in data:
        flags |= linux.MS_BIND | (linux.MS_REC if "rbind" in data else 0)
        data = [o for o in data if o not in ("bind", "rbind")]
        kind = ""
    if "ro" in data:
        flags |= linux.MS_RDONLY
        data.remove("ro")
    try:
        linux.mount(device, target, kind or None, flags, ",".join(data) or None)
    except OSError as e:
        raise SystemError_(f"error while mounting volume '{target}': failed to mount local volume: "
                           f"mount {device}:{target}, data: {','.join(data)}: {e.strerror}") from None


def _unmount_all(path: str) -> None:
    """Undo every mount stacked on `path`."""
    for _ in range(16):
        if not linux.is_mount_point(path):
            return
        try:
            linux.umount(path, linux.MNT_DETACH)
        except OSError:
            return


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
