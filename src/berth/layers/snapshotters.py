"""Snapshotters: how a container's root is made from its image's layer directories.

One small interface, two back ends, picked once at start-up (`pick`):
  overlay2  an overlayfs mount: the layers as lowerdirs, the container's writes in
            <dir>/upper, the root at <dir>/merged. Cheap to create; needs overlayfs.
  vfs       no mount at all: at create, the layers are copied into <dir>/merged, bottom
            layer first, each layer's whiteouts applied as deletions. Slow and
            space-hungry, but works on any filesystem, as Docker's vfs driver does.

Each snapshotter owns the directories under its `root` (one per container). Layer
directories are given top layer first, as overlayfs's lowerdir lists them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Protocol

from berth.errors import InvalidParameter, SystemError_
from berth.layers.diff import OPAQUE_XATTR, is_whiteout
from berth.layers.extract import lstat_or_none, remove_path
from berth.runtime import linux

log = logging.getLogger(__name__)

DRIVERS = ("overlay2", "vfs")


@dataclass(frozen=True)
class GraphDriver:
    """Where a container's or an image's files lie, as `docker inspect` shows them:
    the driver's name and its own description (None: it has nothing to say)."""

    name: str
    data: dict[str, str] | None


class Snapshotter(Protocol):
    name: str
    root: str

    def prepare(self, container_id: str, lowers: list[str], owner: tuple[int, int] | None = None) -> None:
        """Create the container's writable layer on top of `lowers`; its root directory
        belongs to `owner` (the remapped containers' root), else to root."""

    def mount(self, container_id: str, lowers: list[str]) -> str:
        """Make the container's root available and return its path."""

    def unmount(self, container_id: str) -> None: ...

    def mounted(self, container_id: str) -> bool:
        """Whether the container's root is mounted now (what a crash may leave)."""

    def remove(self, container_id: str) -> None: ...

    def upper(self, container_id: str) -> str:
        """The directory holding only the container's own changes (for diff and commit)."""

    def rw_size(self, container_id: str) -> int: ...

    def describe(self, container_id: str) -> GraphDriver:
        """Where the container's layer and root lie."""

    def describe_layers(self, layers: list[str]) -> GraphDriver:
        """Where an image's layer directories (`layers`, top first) lie, as this driver
        would stack them."""


def pick(requested: str, root: str, tmp: str) -> Snapshotter:
    """The snapshotter for `requested` ("" = overlay2, or vfs where overlayfs cannot mount)."""
    if requested not in ("", *DRIVERS):
        raise InvalidParameter(f"error initializing graphdriver: driver not supported: {requested}")
    if requested == "vfs":
        return Vfs(os.path.join(root, "vfs", "containers"))
    overlay = Overlay(os.path.join(root, "overlay", "containers"))
    if requested == "":
        problem = overlay_problem(tmp)
        if problem:
            log.warning("overlayfs cannot be mounted here (%s): using the vfs storage driver", problem)
            return Vfs(os.path.join(root, "vfs", "containers"))
    return overlay


def overlay_problem(tmp: str) -> str:
    """Why an overlay mount fails in `tmp` (a scratch directory), or "" when it works."""
    probe = tempfile.mkdtemp(prefix="probe-", dir=tmp)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(probe, sub))
        merged = os.path.join(probe, "merged")
        try:
            linux.mount("overlay", merged, "overlay", 0,
                        f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work")
        except OSError as e:
            return str(e)
        linux.umount(merged, linux.MNT_DETACH)
        return ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Overlay:
    name = "overlay2"

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def prepare(self, container_id: str, lowers: list[str], owner: tuple[int, int] | None = None) -> None:
        d = self._dir(container_id)
        for sub in ("upper", "work", "merged"):
            os.makedirs(os.path.join(d, sub), mode=0o755, exist_ok=True)
        if owner is not None:
            os.chown(os.path.join(d, "upper"), *owner)

    def mount(self, container_id: str, lowers: list[str]) -> str:
        d = self._dir(container_id)
        merged = os.path.join(d, "merged")
        if os.path.ismount(merged):
            return merged
        if not os.path.isdir(os.path.join(d, "upper")):
            raise SystemError_(f"container {container_id[:12]} has no overlay2 layer "
                               "(was it created with another storage driver?)")
        lowerdir = ":".join(lowers)
        if not lowerdir:
            lowerdir = os.path.join(d, "empty")
            os.makedirs(lowerdir, exist_ok=True)
        opts = f"lowerdir={lowerdir},upperdir={d}/upper,workdir={d}/work"
        try:
            linux.mount("overlay", merged, "overlay", 0, opts)
        except OSError as e:
            raise SystemError_(f"cannot mount the root of container {container_id[:12]}: {e}") from None
        return merged

    def mounted(self, container_id: str) -> bool:
        return os.path.ismount(os.path.join(self._dir(container_id), "merged"))

    def unmount(self, container_id: str) -> None:
        merged = os.path.join(self._dir(container_id), "merged")
        if os.path.ismount(merged):
            try:
                linux.umount(merged, linux.MNT_DETACH)
            except OSError as e:
                # another clean-up (a removal runs in a thread) unmounted it first
                if e.errno not in (errno.EINVAL, errno.ENOENT):
                    raise

    def remove(self, container_id: str) -> None:
        self.unmount(container_id)
        shutil.rmtree(self._dir(container_id), ignore_errors=True)

    def upper(self, container_id: str) -> str:
        return os.path.join(self._dir(container_id), "upper")

    def rw_size(self, container_id: str) -> int:
        return _tree_size(self.upper(container_id))

    def describe(self, container_id: str) -> GraphDriver:
        d = self._dir(container_id)
        return GraphDriver(self.name, {"MergedDir": f"{d}/merged", "UpperDir": f"{d}/upper", "WorkDir": f"{d}/work"})

    def describe_layers(self, layers: list[str]) -> GraphDriver:
        if not layers:
            return GraphDriver(self.name, None)
        data = {"UpperDir": layers[0]}
        if len(layers) > 1:
            data["LowerDir"] = ":".join(layers[1:])
        return GraphDriver(self.name, data)


class Vfs:
    name = "vfs"

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def prepare(self, container_id: str, lowers: list[str], owner: tuple[int, int] | None = None) -> None:
        d = self._dir(container_id)
        os.makedirs(d, mode=0o711 if owner else 0o700, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="merged-", dir=d)
        try:
            os.chmod(tmp, 0o755)
            if owner is not None:
                os.chown(tmp, *owner)
            for layer in reversed(lowers):
                copy_layer(layer, tmp)
            os.rename(tmp, os.path.join(d, "merged"))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def mount(self, container_id: str, lowers: list[str]) -> str:
        merged = os.path.join(self._dir(container_id), "merged")
        if not os.path.isdir(merged):
            raise SystemError_(f"container {container_id[:12]} has no vfs layer "
                               "(was it created with another storage driver?)")
        return merged

    def unmount(self, container_id: str) -> None:
        pass

    def mounted(self, container_id: str) -> bool:
        return False  # a vfs root is a plain directory

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self._dir(container_id), ignore_errors=True)

    def upper(self, container_id: str) -> str:
        raise InvalidParameter(f"container {container_id[:12]}: listing or committing a container's changes "
                               "is not supported on the vfs storage driver")

    def rw_size(self, container_id: str) -> int:
        return _tree_size(os.path.join(self._dir(container_id), "merged"))

    def describe(self, container_id: str) -> GraphDriver:
        return GraphDriver(self.name, {"Dir": f"{self._dir(container_id)}/merged"})

    def describe_layers(self, layers: list[str]) -> GraphDriver:
        return GraphDriver(self.name, None)  # vfs copies layers into each container: nothing to show


# -- vfs: copying layers ----------------------------------------------------------------------


def copy_layer(layer: str, dest: str) -> None:
    """Apply one extracted layer (overlayfs whiteouts) onto the full tree at `dest`.

    The walk is top-down, so every parent in `dest` has been made a real directory
    (replacing whatever file or symlink a lower layer had there) before anything is
    written into it; no path in `dest` is ever followed through a symlink.
    """
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(layer):
        rel = os.path.relpath(dirpath, layer)
        target_dir = dest if rel == "." else os.path.join(dest, rel)
        if rel != "." and _opaque(dirpath):
            for name in os.listdir(target_dir):
                remove_path(os.path.join(target_dir, name))
        for name in dirnames + filenames:
            src = os.path.join(dirpath, name)
            dst = os.path.join(target_dir, name)
            st = os.lstat(src)
            if is_whiteout(st):
                remove_path(dst)
                continue
            old = lstat_or_none(dst)
            if stat.S_ISDIR(st.st_mode):
                if old is not None and not stat.S_ISDIR(old.st_mode):
                    remove_path(dst)
                    old = None
                if old is None:
                    os.mkdir(dst, 0o700)
                _attributes(src, dst, st)
                dirs.append((dst, st))
                continue
            if old is not None:
                remove_path(dst)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dst)
                continue
            if stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(dst, 0o600)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                os.mknod(dst, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
            else:
                continue  # sockets: not part of an image
            _attributes(src, dst, st)
            if st.st_nlink > 1:
                links[key] = dst
    for dst, st in reversed(dirs):  # children first: writing them changed the times
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _attributes(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    for name in _xattrs(src):
        if name.startswith("trusted.overlay."):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _xattrs(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
