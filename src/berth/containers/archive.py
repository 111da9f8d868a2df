"""Files in and out of a container's root: `docker cp` (stat, read, extract) and
`docker export`.

Each operation works on the container's merged root for its duration (the container
manager mounts a stopped container's root and holds its lock meanwhile); cp's work on
dockerd's view of it, running or not, its volumes and bind mounts bound in
(containers/mounting.py). A path is resolved inside it as Docker does
(berth.layers.archive: no symlink leads out of the root, nor out of a volume to the
host), and each operation emits the container event Docker emits. The tar streams are
made and taken by a child process (berth.layers.archive); this module opens no socket
and knows no HTTP or JSON.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator

from berth.containers.manager import ContainerManager
from berth.containers.model import Container
from berth.containers.users import resolve_user
from berth.errors import InvalidParameter, NotFound
from berth.layers import archive
from berth.layers.archive import PathStat

__all__ = ["PathStat", "export", "extract", "read_path", "stat_path"]


async def stat_path(containers: ContainerManager, ref: str, path: str) -> PathStat:
    """What `path` in the container is (`docker cp`'s HEAD)."""
    async with containers.root_of(ref, with_mounts=True) as (_c, root):
        return archive.stat_path(archive.resolve(root, path), ref)


@contextlib.asynccontextmanager
async def read_path(containers: ContainerManager, ref: str,
                    path: str) -> AsyncIterator[tuple[PathStat, AsyncGenerator[bytes, None]]]:
    """`path` in the container: what it is, and a tar of it (named as `docker cp` names
    it: "." for a path ending in "/."). The root stays mounted until the block ends."""
    async with containers.root_of(ref, with_mounts=True) as (c, root):
        resolved = archive.resolve(root, path)
        st = archive.stat_path(resolved, ref)
        name = "." if resolved.path.endswith("/.") else st.name
        containers.on_event("archive-path", c, {})
        yield st, archive.pack(root, resolved.inside, name, containers.layers.id_maps_arg())


async def extract(containers: ContainerManager, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                  copy_uid_gid: bool = False, no_overwrite_dir_non_dir: bool = False) -> None:
    """Extract a tar into the directory `path` of the container; with `copy_uid_gid`
    its files belong to the container's user, as `docker cp -a` asks."""
    async with containers.root_of(ref, with_mounts=True) as (c, root):
        resolved = archive.resolve_dir(root, path)
        try:
            st = os.lstat(resolved.host)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParameter("extraction point is not a directory")
        writable = _mount_writable(c, resolved.inside)
        if writable is False:
            raise InvalidParameter("mounted volume is marked read-only")
        if writable is None and c.host_config.readonly_rootfs:
            raise InvalidParameter("container rootfs is marked read-only")
        owner = None
        if copy_uid_gid:
            user = resolve_user(root, c.config.user)
            owner = (user.uid, user.gid)
        await archive.unpack(root, resolved.inside, chunks, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                             owner=owner, id_maps=containers.layers.id_maps_arg())
    containers.on_event("extract-to-dir", c, {})


def _mount_writable(c: Container, inside: str) -> bool | None:
    """Whether the mount point `inside` (a resolved path in the container) lies under is
    writable; None when it lies on the container's root. Docker's check before `docker cp`
    writes: over its mount points, so `--tmpfs` paths count as the root (dockerd's view
    has no tmpfs), and a path under nested mounts takes the deepest."""
    best, rw = "", None
    for dest, mrw in [(m.destination, m.rw) for m in c.mounts]:
        d = dest.rstrip("/") or "/"
        if (inside == d or inside.startswith(d.rstrip("/") + "/")) and len(d) > len(best):
            best, rw = d, mrw
    return rw


@contextlib.asynccontextmanager
async def export(containers: ContainerManager, ref: str) -> AsyncIterator[AsyncGenerator[bytes, None]]:
    """A tar of the container's whole root (`docker export`); the event goes out once
    the block ends without an error."""
    async with containers.root_of(ref) as (c, root):
        yield archive.pack(root, "/", "", containers.layers.id_maps_arg())
    containers.on_event("export", c, {})
