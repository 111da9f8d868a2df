"""Turning a container's mount points into volumes and OCI mounts, over its life.

At create, the volumes its mount points name (or anonymous ones) are made, and a new
empty one is filled with what the image has at its path (Docker's copy-up, with owners
and modes; again at start for one still empty); at start, each volume is mounted by
its driver (of one mounted with a `Subpath`, the directory is held for the runtime by
volumes/safepath.py), missing `-v` host directories are made, and the OCI mount
entries come out; at exit the drivers are told the container let go; at `rm -v` (and
`--rm`) its anonymous volumes are removed. `view` is the container as `docker cp` sees
it, running or not, its volumes mounted for the duration. Parsing and precedence are
containers/mounts.py's; volume records, the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from typing import Any

from berth.containers.model import Container, MountPoint
from berth.errors import BerthError, InvalidParameter
from berth.layers import archive
from berth.layers.snapshotters import copy_layer
from berth.volumes.store import ANONYMOUS_LABEL, Volume, VolumeStore

log = logging.getLogger(__name__)


async def create_volumes(store: VolumeStore, points: list[MountPoint]) -> list[str]:
    """Make the volumes `points` name (naming the anonymous ones); returns the names it
    created, so that a failed create can remove them again."""
    created: list[str] = []
    try:
        for mp in points:
            if mp.type != "volume":
                continue
            labels = dict(mp.volume_labels)
            if not mp.name:
                v = await store.create("", mp.driver, mp.volume_options or None, labels, anonymous=True)
                created.append(v.name)
            else:
                try:
                    v = store.get(mp.name)
                except BerthError:
                    v = await store.create(mp.name, mp.driver, mp.volume_options or None, labels)
                    created.append(v.name)
                else:
                    if mp.driver not in ("", "local", v.driver):
                        raise InvalidParameter(f'create {mp.name}: a volume with the name {mp.name} already '
                                               f'exists with driver "{v.driver}"')
            mp.name, mp.driver = v.name, v.driver
            mp.source = store.mountpoint(v)
            mp.volume_options = {}
    except BaseException:
        await remove_volumes(store, created)
        raise
    return created


async def populate(store: VolumeStore, c: Container, root: str) -> None:
    """At create, as dockerd does: each volume that takes the image's data (not `nocopy`)
    and is still empty gets what the container's `root` has at its destination, so that
    `docker cp` into or out of a created container finds it there. One mounted with a
    `Subpath` is filled at start only, as before."""
    for mp in c.mounts:
        if mp.type != "volume" or not mp.copy_data or mp.subpath:
            continue
        v = store.get(mp.name)
        mount_id = f"{c.id}-populate"
        source = await store.mount(v, mount_id)
        try:
            await asyncio.to_thread(copy_up, root, mp.destination, source)
        finally:
            await store.unmount(v, mount_id)


async def remove_volumes(store: VolumeStore, names: list[str]) -> None:
    for name in names:
        try:
            await store.remove(name, [], force=True)
        except BerthError as e:
            log.warning("could not remove volume %s: %s", name, e)


async def remove_anonymous(store: VolumeStore, c: Container, used_elsewhere: Callable[[str], bool]) -> None:
    """`docker rm -v`: the container's anonymous volumes that no other container uses."""
    for mp in c.mounts:
        if mp.type != "volume" or not mp.name:
            continue
        try:
            v = store.get(mp.name)
        except BerthError:
            continue
        if ANONYMOUS_LABEL in v.labels and not used_elsewhere(v.name):
            await remove_volumes(store, [v.name])


async def prepare(store: VolumeStore, c: Container, root: str) -> list[dict[str, Any]]:
    """Mount the container's volumes and return its OCI mounts. On failure, what was
    mounted is let go again."""
    mounted: list[Volume] = []
    out: list[dict[str, Any]] = []
    try:
        for index, mp in enumerate(c.mounts):
            if mp.type == "tmpfs":
                opts = ["nosuid", "nodev", "noexec"]
                if mp.tmpfs_size:
                    opts.append(f"size={mp.tmpfs_size}")
                if mp.tmpfs_mode:
                    opts.append(f"mode={mp.tmpfs_mode & 0o7777:o}")
                if not mp.rw:
                    opts.append("ro")
                out.append({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
                continue
            if mp.type == "volume":
                v = store.get(mp.name)
                source = await store.mount(v, c.id)
                mounted.append(v)
                store.on_event("mount", v.name, {
                    "driver": v.driver, "container": c.id, "destination": mp.destination,
                    "read/write": "true" if mp.rw else "false", "propagation": mp.propagation})
                mp.source = source
                if mp.subpath:  # the runtime mounts berthd's hold on it, never a path it could be tricked on
                    source = await store.hold_subpath(source, mp.subpath, c.id, index)
                if mp.copy_data:
                    await asyncio.to_thread(copy_up, root, mp.destination, source)
            else:
                source = mp.source
                await asyncio.to_thread(_bind_source, mp)
            options = ["rbind", mp.propagation or "rprivate"]
            if not mp.rw:
                options.append("ro")
            out.append({"destination": mp.destination, "type": "bind", "source": source, "options": options})
    except BaseException:
        await store.release_subpaths(c.id)
        for v in mounted:
            await store.unmount(v, c.id)
        raise
    return out


async def release(store: VolumeStore, c: Container) -> None:
    """The container stopped: its volumes' drivers may unmount."""
    await store.release_subpaths(c.id)
    for mp in c.mounts:
        if mp.type != "volume":
            continue
        try:
            v = store.get(mp.name)
        except BerthError:
            continue
        await store.unmount(v, c.id)
        store.on_event("unmount", v.name, {"driver": v.driver, "container": c.id})


@contextlib.asynccontextmanager
async def view(store: VolumeStore, c: Container, root: str) -> AsyncIterator[str]:
    """The container's filesystem as dockerd shows it to `docker cp`, whether it runs or
    not: its `root` with its volumes and bind mounts bound in (read-only ones read-only)
    and its /etc/hosts, /etc/hostname and /etc/resolv.conf once it has them. Not its
    tmpfs mounts, nor /proc, /dev or what the container mounted itself: Docker's view
    has none of them. Each volume is mounted (and let go after) under an ID of the view's
    own, with the volume events dockerd sends for it."""
    # not prefixed with the container's ID: its own release at exit must not take the
    # view's subpath holds with it
    view_id = f"cp{secrets.token_hex(8)}"
    mounted: list[Volume] = []
    binds: list[archive.Bind] = []
    try:
        hidden = {os.path.normpath(t) for t in c.host_config.tmpfs}
        for index, mp in enumerate(c.mounts):
            if mp.type == "tmpfs" or mp.destination in hidden:
                continue
            if mp.type == "volume":
                v = store.get(mp.name)
                source = await store.mount(v, view_id)
                mounted.append(v)
                store.on_event("mount", v.name, {
                    "driver": v.driver, "container": c.id, "destination": mp.destination,
                    "read/write": "true" if mp.rw else "false", "propagation": mp.propagation})
                if mp.subpath:
                    source = await store.hold_subpath(source, mp.subpath, view_id, index)
            else:
                await asyncio.to_thread(_bind_source, mp)
                source = mp.source
            binds.append(archive.Bind(source, mp.destination, mp.rw))
        taken = {mp.destination for mp in c.mounts}
        for destination, path in (("/etc/resolv.conf", c.resolv_conf_path), ("/etc/hostname", c.hostname_path),
                                  ("/etc/hosts", c.hosts_path)):
            if destination not in taken and path and os.path.exists(path):
                binds.append(archive.Bind(path, destination, not c.host_config.readonly_rootfs))
        async with archive.view(root, binds) as view_root:
            yield view_root
    finally:
        await store.release_subpaths(view_id)
        for v in mounted:
            await store.unmount(v, view_id)
            store.on_event("unmount", v.name, {"driver": v.driver, "container": c.id})


def _bind_source(mp: MountPoint) -> None:
    if os.path.lexists(mp.source):
        return
    if not mp.create_source:
        raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: {mp.source}')
    os.makedirs(mp.source, mode=0o755, exist_ok=True)


def copy_up(root: str, destination: str, volume: str) -> None:
    """Fill an empty `volume` with the container root's content at `destination`
    (symlinks in the root resolved inside it), owners, modes and times kept; the
    volume's own directory takes the owner and mode of the image's directory."""
    try:
        if os.listdir(volume):
            return
    except FileNotFoundError:
        return
    source = archive.resolve_dir(root, destination).host
    try:
        st = os.lstat(source)
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    copy_layer(source, volume)
    os.chown(volume, st.st_uid, st.st_gid)
    os.chmod(volume, stat.S_IMODE(st.st_mode))


# -- IPC: the /dev/shm a shareable container lends to others -----------------------------------

def shm_path(container_dir: str) -> str:
    """Where a container of IpcMode "shareable" keeps its /dev/shm on the host (as
    dockerd's containers/ID/mounts/shm), for the containers that join its IPC."""
    return os.path.join(container_dir, "mounts", "shm")


def mount_shm(container_dir: str, size: int) -> str:
    """The shareable /dev/shm of a container, a tmpfs on the host, mounted for its run."""
    from berth.runtime import linux

    path = shm_path(container_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.path.ismount(path):
        try:
            linux.mount("shm", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                        f"mode=1777,size={size}")
        except OSError as e:
            raise BerthError(f"mounting shm tmpfs: {e.strerror}") from None
    return path


def unmount_shm(container_dir: str) -> None:
    """The run is over: its shareable /dev/shm goes (nothing if it had none)."""
    from berth.runtime import linux

    path = shm_path(container_dir)
    if os.path.ismount(path):
        linux.umount(path, linux.MNT_DETACH)
