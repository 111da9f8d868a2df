"""A container's changes as a layer tar, in Docker's format: what `docker commit` stores.

`write_changes(upper, lowers, out)` walks the container's overlay upperdir and writes
what Docker's overlay2 driver writes for it: every entry of the upperdir as a normal
tar entry (numeric owner, mode, mtime, hard links kept as links), an overlay whiteout
as an empty `.wh.NAME` file, and an opaque directory as the directory followed by
`DIR/.wh..wh..opq`. The files the runtime puts in a container (INIT_PATHS: hostname,
hosts, resolv.conf, /.dockerenv, mount points) are left out when no image layer has
them, as Docker keeps them in a separate init layer. The archive ends with Go's two
zero blocks and no record padding, so an empty change set has Docker's empty-layer
digest.

For a remapped daemon (`--userns-remap`) owners are written as the ids they are in the
container (`id_maps`), as Docker's tar does; whiteouts, which overlayfs makes as the
mounter (the host's root), belong to the container's root.

It only reads. Every directory is opened relative to its parent's descriptor with
O_NOFOLLOW, so a running container that swaps a directory for a symlink while we
walk cannot make us read outside its upperdir.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import IO

from berth.errors import SystemError_
from berth.layers.diff import INIT_PATHS, OPAQUE_XATTR, exists_below, is_whiteout
from berth.runtime.userns import IdMappings, container_id

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
BLOCK = 512
END = b"\0" * (2 * BLOCK)
_CHUNK = 1 << 20
_CAPABILITY_XATTR = "security.capability"

# The digest of END alone: Docker's (and our) layer for a commit that changed nothing.
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


class _Writer:
    def __init__(self, out: IO[bytes], lowers: list[str], id_maps: IdMappings | None = None) -> None:
        self.out = out
        self.lowers = lowers
        self.links: dict[tuple[int, int], str] = {}
        self.id_maps = id_maps

    def _info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = _info(name, st)
        if self.id_maps is not None:
            uid, gid = container_id(self.id_maps.uid, st.st_uid), container_id(self.id_maps.gid, st.st_gid)
            for host, inside in ((st.st_uid, uid), (st.st_gid, gid)):
                if inside is None:
                    raise SystemError_(f"Host ID {host} cannot be mapped to a container ID")
            info.uid, info.gid = uid, gid  # type: ignore[assignment]
        return info

    def empty_file(self, name: str, st: os.stat_result, mode: int | None = None) -> None:
        if mode is not None and self.id_maps is not None:  # a whiteout
            info = _info(name, st)
            info.uid = info.gid = 0
        else:
            info = self._info(name, st)
        if mode is not None:
            info.mode = mode
        info.type = tarfile.REGTYPE
        info.size = 0
        self.out.write(_header(info))

    def entry(self, dir_fd: int, entry: str, name: str, st: os.stat_result) -> None:
        info = self._info(name, st)
        kind = stat.S_IFMT(st.st_mode)
        if kind != stat.S_IFDIR and st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                self.out.write(_header(info))
                return
            self.links[(st.st_dev, st.st_ino)] = name
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif kind == stat.S_IFLNK:
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(entry, dir_fd=dir_fd)
        elif kind == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFREG:
            self._regular(dir_fd, entry, info)
            return
        else:
            return  # a socket: Docker's tar leaves them out too
        capability = _capability(dir_fd, entry) if kind != stat.S_IFLNK else None
        if capability is not None:
            info.pax_headers = {"SCHILY.xattr." + _CAPABILITY_XATTR: capability}
        self.out.write(_header(info))

    def _regular(self, dir_fd: int, entry: str, info: tarfile.TarInfo) -> None:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return  # replaced while we looked; what is there now is not a file
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            capability = _capability_fd(f.fileno())
            if capability is not None:
                info.pax_headers = {"SCHILY.xattr." + _CAPABILITY_XATTR: capability}
            self.out.write(_header(info))
            left = st.st_size
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.out.write(chunk)
                left -= len(chunk)
            if left:  # the file shrank while we read it: keep the header's promise
                self.out.write(b"\0" * left)
            pad = -st.st_size % BLOCK
            if pad:
                self.out.write(b"\0" * pad)

    def walk(self, dir_fd: int, rel: str) -> None:
        for entry in sorted(os.listdir(dir_fd)):
            path = f"{rel}/{entry}"
            try:
                st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            name = path.lstrip("/")
            if path in INIT_PATHS and not exists_below(self.lowers, path):
                continue
            if is_whiteout(st):
                self.empty_file(f"{rel}/{WHITEOUT}{entry}".lstrip("/"), st, 0o600)
                continue
            if not stat.S_ISDIR(st.st_mode):
                self.entry(dir_fd, entry, name, st)
                continue
            try:
                child = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError, OSError):
                continue  # gone, or no longer a directory
            try:
                self.entry(dir_fd, entry, name + "/", st)
                if _opaque(child):
                    self.empty_file(f"{name}/{OPAQUE}", st)
                self.walk(child, path)
            finally:
                os.close(child)


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _capability(dir_fd: int, entry: str) -> str | None:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _capability_fd(fd)
    finally:
        os.close(fd)


def _capability_fd(fd: int) -> str | None:
    try:
        value = os.getxattr(fd, _CAPABILITY_XATTR)
    except OSError:
        return None
    return value.decode("utf-8", "surrogateescape")


def write_changes(upper: str, lowers: list[str], out: IO[bytes], id_maps: IdMappings | None = None) -> None:
    """Write the layer tar of the changes in `upper` over `lowers` (top layer first);
    with `id_maps`, owners as the container sees them."""
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _Writer(out, lowers, id_maps).walk(fd, "")
    finally:
        os.close(fd)
    out.write(END)
