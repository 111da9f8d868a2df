"""A directory inside a volume, held so that it cannot be swapped for a symlink before
the container's runtime mounts it: `VolumeOptions.Subpath`, as dockerd's safepath does.

`resolve` finds what the subpath names inside the volume, every symlink resolved, and
refuses a path that is missing or leads out of the volume, in dockerd's words. `hold`
then walks there again one component at a time without following any symlink (a
component that became one since is refused), and bind-mounts the directory it reached,
through its file descriptor, on a private mount point: the runtime mounts that, so a
container sharing the volume that renames and replaces a directory in the meantime
changes nothing. `release` undoes the hold. Only mount(2) and umount(2) are called
here, through berth.runtime.linux as the local driver does.
"""

from __future__ import annotations

import contextlib
import os
import stat

from berth.errors import InvalidParameter, NotFound, SystemError_
from berth.runtime import linux


def resolve(volume: str, subpath: str) -> str:
    """The path `subpath` names inside the mounted `volume`, symlinks resolved: NotFound
    when it does not exist, InvalidParameter when it resolves outside the volume (`..`
    through a symlink, a symlink to an absolute path)."""
    try:
        base = os.path.realpath(volume, strict=True)
    except OSError as e:
        raise NotFound(f"cannot access path {volume}: {_go_os_error('lstat', e, volume)}") from None
    combined = os.path.normpath(os.path.join(base, subpath))
    try:
        resolved = os.path.realpath(combined, strict=True)
    except OSError as e:
        raise NotFound(f"cannot access path {combined}: {_go_os_error('lstat', e, combined)}") from None
    inside = os.path.relpath(resolved, base)
    if inside == ".." or inside.startswith("../"):
        raise InvalidParameter(f"path concatenation escapes the base directory, base: {base}, subpath: {subpath}")
    return resolved


def hold(volume: str, subpath: str, mount_point: str) -> str:
    """Resolve `subpath` in `volume` and bind what it names on `mount_point` (made here,
    a directory or an empty file as the target is); returns `mount_point`."""
    resolved = resolve(volume, subpath)
    base = os.path.realpath(volume)
    inside = os.path.relpath(resolved, base)
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in [] if inside == "." else inside.split("/"):
            try:
                step = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                raise NotFound(f"cannot access path {resolved}: {_go_os_error('openat', e, resolved)}") from None
            os.close(fd)
            fd = step
            if stat.S_ISLNK(os.fstat(fd).st_mode):  # it was not one a moment ago
                raise NotFound(f"cannot access path {resolved}: a path component was replaced by a symlink")
        release(mount_point)
        os.makedirs(os.path.dirname(mount_point), mode=0o700, exist_ok=True)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(mount_point, 0o700)
        else:
            os.close(os.open(mount_point, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        try:
            linux.mount(f"/proc/self/fd/{fd}", mount_point, None, linux.MS_BIND)
        except OSError as e:
            _remove(mount_point)
            raise SystemError_(f"failed to mount resolved path: {e.strerror}") from None
    finally:
        os.close(fd)
    return mount_point


def release(mount_point: str) -> None:
    """Unmount and remove a `hold`'s mount point; nothing to do when it is gone. The
    mount point is removed only once nothing is mounted on it (rmdir/unlink of a mount
    point fails), so the volume's data is never touched."""
    for _ in range(16):
        try:
            if not linux.is_mount_point(mount_point):
                break
            linux.umount(mount_point, linux.MNT_DETACH)
        except OSError:
            break
    with contextlib.suppress(OSError):  # still mounted (EBUSY, ENOTEMPTY): left for a later release
        _remove(mount_point)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)


def _go_os_error(op: str, e: OSError, path: str) -> str:
    """An OSError as Go's *PathError prints it: "lstat /a/b: no such file or directory"."""
    reason = os.strerror(e.errno).lower() if e.errno else str(e)
    return f"{op} {e.filename or path}: {reason}"
