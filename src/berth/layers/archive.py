"""Tar archives into and out of a container's root: `docker cp` and `docker export`.

The daemon side resolves a path the way Docker does (`resolve`, `stat_path`): every
lookup goes through `secure_join`, so a symlink in the container resolves inside its
root. Reading and writing the tar happens in a child process,
`python -m berth.layers.archive pack|unpack ROOT …`, that first chroots into the
container's root: inside it "/" *is* that root, so no name, `..`, symlink or hard link
in a hostile archive (or planted in the container while we work) can reach the host.
The child resolves no user names (that would load the container's NSS libraries):
owners are numeric both ways. For a remapped daemon (`--userns-remap`) they are the ids
the container sees (`id_maps`, encode_id_maps's text): host ids when extracting, container
ids when packing (a host id outside the container's ranges shows as 65534, as inside).

`view(root, binds)` is dockerd's view of a container for `docker cp`, held by a thread
of its own (berth.runtime.view) that binds the container's volumes into its root in a
mount namespace of that thread's; the root, held by a descriptor, is what pack and
unpack chroot into, and every mount of the view ends with that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import stat
import sys
import tarfile
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from berth.errors import InvalidParameter, NotFound, SystemError_
from berth.layers.extract import (
    DECODE_ERRORS,
    Owners,
    child_env,
    decode_id_maps,
    decompressed,
    hard_link,
    lstat_or_none,
    remove_path,
)
from berth.runtime import view as container_view
from berth.runtime.rootfs import secure_join

# Go's os.FileMode type bits, which Docker puts in the path stat of `docker cp`.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20

_CHUNK = 1 << 16


def go_file_mode(mode: int) -> int:
    """A Unix st_mode as Go's os.FileMode."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        out |= GO_MODE_DIR
    elif kind == stat.S_IFLNK:
        out |= GO_MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        out |= GO_MODE_DEVICE
    elif kind == stat.S_IFCHR:
        out |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        out |= GO_MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        out |= GO_MODE_SOCKET
    if mode & stat.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & stat.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


def rfc3339_nano(ns: int) -> str:
    """A time in nanoseconds as Go's time.Time marshals it (RFC 3339, trailing zeros cut)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: str  # RFC 3339
    link_target: str


@dataclass(frozen=True)
class Resolved:
    """A path inside a container: as asked (absolute, cleaned) and on the host."""

    path: str
    host: str
    root: str

    @property
    def inside(self) -> str:
        """The resolved path as the container sees it (what the chrooted child uses)."""
        return self.host[len(self.root):] or "/"


def _absolute(path: str) -> str:
    """`path` made absolute and cleaned, keeping a trailing "/" or "/." (they mean: follow)."""
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean != "/" and (path.endswith("/") or path.endswith("/.")):
        clean += "/." if path.endswith("/.") else "/"
    return clean


def resolve(root: str, path: str) -> Resolved:
    """Docker's ResolvePath: the parent is resolved with symlinks, the last name is not
    followed (unless the path ends in "/" or "/.")."""
    absolute = _absolute(path)
    parent, base = absolute.rsplit("/", 1)
    resolved_parent = secure_join(root, parent + "/")
    if base in ("", "."):
        return Resolved(absolute, resolved_parent, root)
    return Resolved(absolute, resolved_parent.rstrip("/") + "/" + base, root)


def resolve_dir(root: str, path: str) -> Resolved:
    """Fully resolved, the last name included: where `docker cp` extracts into."""
    absolute = _absolute(path)
    return Resolved(absolute, secure_join(root, absolute), root)


def _base(path: str) -> str:
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def stat_path(resolved: Resolved, container: str) -> PathStat:
    try:
        st = os.lstat(resolved.host)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {resolved.path} in container {container}") from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        target = secure_join(resolved.root, resolved.path)
        link_target = target[len(resolved.root):] or "/"
    return PathStat(name=_base(resolved.path), size=st.st_size, mode=go_file_mode(st.st_mode),
                    mtime=rfc3339_nano(st.st_mtime_ns), link_target=link_target)


# -- the view of a container ---------------------------------------------------------------


@dataclass(frozen=True)
class Bind:
    """A host path to bind at `destination` in the view of a container."""

    source: str
    destination: str
    writable: bool


@contextlib.asynccontextmanager
async def view(root: str, binds: Sequence[Bind]) -> AsyncIterator[str]:
    """The container's root with `binds` bound in (in this order: a deeper mount after
    the one it lies in), as a path that berthd and the pack and unpack children can
    use; the mounts last until the block ends. With nothing to bind, the view is `root`."""
    if not binds:
        yield root
        return
    ready: Future[int] = Future()
    release = threading.Event()
    # a thread started for the view alone, never one of the loop's executor: the mount
    # namespace it takes is its own until it ends
    threading.Thread(target=container_view.hold, name="berth-cp-view", daemon=True,
                     args=(root, [(b.source, b.destination, b.writable) for b in binds], ready, release)).start()
    try:
        try:
            fd = await asyncio.wrap_future(ready)
        except (OSError, ValueError) as e:
            raise SystemError_(str(e)) from None
        yield f"/proc/{os.getpid()}/fd/{fd}/."
    finally:
        release.set()


# -- the chrooted child ---------------------------------------------------------------------


async def pack(root: str, inside: str, name: str, id_maps: str = "") -> AsyncGenerator[bytes, None]:
    """Stream a tar of `inside` (a path in the container) with its top entry named `name`;
    `name` "" packs the directory's contents with no prefix (what `docker export` sends)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-m", "berth.layers.archive", "pack", root, inside, name, id_maps,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while chunk := await proc.stdout.read(_CHUNK):
            yield chunk
        err = await proc.stderr.read()
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise SystemError_(err.decode(errors="replace").strip() or f"cannot archive {inside}")


async def unpack(root: str, inside: str, chunks: AsyncIterator[bytes], *,
                 no_overwrite_dir_non_dir: bool = False, owner: tuple[int, int] | None = None,
                 id_maps: str = "") -> None:
    """Extract a tar (maybe compressed) into the directory `inside` of the container's root."""
    args = ["unpack", root, inside, "1" if no_overwrite_dir_non_dir else "0",
            f"{owner[0]}:{owner[1]}" if owner else "", id_maps]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-m", "berth.layers.archive", *args,
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    assert proc.stdin is not None and proc.stderr is not None
    try:
        async for chunk in chunks:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    err = await proc.stderr.read()
    await proc.wait()
    if proc.returncode != 0:
        raise InvalidParameter(err.decode(errors="replace").strip() or "cannot extract the archive")


def _relative(name: str) -> str | None:
    """A member name relative to the extraction directory; None for the directory itself."""
    clean = posixpath.normpath("/" + name).lstrip("/")
    if clean in ("", "."):
        return None
    return clean


def _in_archive_dir(name: str) -> str:
    """Like `_relative`, but `..` that climbs above the extraction directory is refused."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"invalid archive entry {name!r}: it leaves the extraction directory")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def extract_members(stream: IO[bytes], no_overwrite_dir_non_dir: bool,
                    owner: tuple[int, int] | None, owners: Owners | None = None) -> None:
    """Extract into the current directory (the caller has chrooted and changed into it)."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = _in_archive_dir(member.name)
            if not name:
                continue
            member.name = name
            if member.islnk():
                member.linkname = _in_archive_dir(member.linkname)
            existing = lstat_or_none(name)
            if existing is not None and not (stat.S_ISDIR(existing.st_mode) and member.isdir()):
                if no_overwrite_dir_non_dir:
                    if stat.S_ISDIR(existing.st_mode):
                        raise ValueError(f"cannot overwrite directory {name!r} with non-directory")
                    if member.isdir():
                        raise ValueError(f"cannot overwrite non-directory {name!r} with directory")
                remove_path(name)
            if member.islnk():
                hard_link(member.linkname, name)
                continue
            if owner is not None:
                member.uid, member.gid = owner
            if owners is not None:
                member.uid, member.gid = owners.host(member.uid, member.gid)
            tar.extract(member, ".", set_attrs=True, numeric_owner=True, filter="fully_trusted")


def write_archive(out: IO[bytes], source: str, name: str, owners: Owners | None = None) -> None:
    """Tar `source` (a path in the current root) to `out`, numeric owners only."""
    tarfile.pwd = None  # type: ignore[attr-defined]
    tarfile.grp = None  # type: ignore[attr-defined]

    def as_inside(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if owners is not None:
            info.uid, info.gid = owners.container(info.uid, info.gid)
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if name:
            tar.add(source, arcname=name, filter=as_inside)
            return
        for child in sorted(os.listdir(source)):
            tar.add(os.path.join(source, child), arcname=child, filter=as_inside)


def main() -> None:
    command, root, inside = sys.argv[1:4]
    try:
        os.chroot(root)
        os.chdir("/")
        if command == "pack":
            write_archive(sys.stdout.buffer, inside, sys.argv[4], decode_id_maps(sys.argv[5] if len(sys.argv) > 5 else ""))
            sys.stdout.flush()
        else:
            os.umask(0)
            try:
                os.chdir(inside)
            except NotADirectoryError:
                raise ValueError("extraction point is not a directory") from None
            no_overwrite, owner_text = sys.argv[4], sys.argv[5]
            owner = None
            if owner_text:
                uid, gid = owner_text.split(":")
                owner = (int(uid), int(gid))
            extract_members(decompressed(sys.stdin.buffer), no_overwrite == "1", owner,
                            decode_id_maps(sys.argv[6] if len(sys.argv) > 6 else ""))
    except DECODE_ERRORS as e:
        sys.stderr.write(f"{e}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
