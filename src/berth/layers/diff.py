"""What a container changed in its root: `docker diff`, read from its overlay upperdir.

`changes(upper, lowers)` walks the upperdir and classifies each entry against the
image layers below it (`lowers`, top layer first): MODIFIED if the path exists below,
ADDED if not, DELETED for an overlayfs whiteout (a 0/0 character device) and for the
entries below that an opaque directory hides. It only reads; it never mounts, and it
never follows a symlink it finds in a layer (a lower path is looked up component by
component, so a symlinked directory in an image cannot point the lookup at the host).
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass

from berth.layers.extract import lstat_or_none

OPAQUE_XATTR = "trusted.overlay.opaque"

# Files the runtime creates as mount points or bind targets. Docker keeps them in an
# "init" layer under the container's own, so they never show up in `docker diff`.
INIT_PATHS = frozenset({
    "/.dockerenv", "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue",
    "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab", "/proc", "/sys",
})


class ChangeKind(enum.IntEnum):
    MODIFIED = 0
    ADDED = 1
    DELETED = 2


@dataclass(frozen=True, order=True)
class Change:
    path: str
    kind: ChangeKind


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False




def exists_below(lowers: list[str], path: str) -> bool:
    """Whether `path` (absolute, inside the container) is visible in the union of `lowers`."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return True
    for layer in lowers:
        current = layer
        hidden_below = False
        for i, part in enumerate(parts):
            current = os.path.join(current, part)
            st = lstat_or_none(current)
            if st is None:
                break
            if is_whiteout(st):
                return False
            if i == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False  # a file or symlink here hides anything below it
            if is_opaque(current):
                hidden_below = True
        if hidden_below:
            return False
    return False


def _names_below(lowers: list[str], path: str) -> set[str]:
    """The entries of directory `path` as the union of `lowers` shows them."""
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in lowers:
        if not exists_below([layer], path):
            continue
        directory = os.path.join(layer, path.lstrip("/"))
        st = lstat_or_none(directory)
        if st is None or not stat.S_ISDIR(st.st_mode):
            break
        try:
            entries = os.listdir(directory)
        except OSError:
            entries = []
        for name in entries:
            if name in hidden:
                continue
            entry = lstat_or_none(os.path.join(directory, name))
            if entry is not None and is_whiteout(entry):
                hidden.add(name)
            else:
                names.add(name)
        if is_opaque(directory):
            break
    return names


def _stat_below(lowers: list[str], path: str) -> os.stat_result | None:
    for layer in lowers:
        if exists_below([layer], path):
            return lstat_or_none(os.path.join(layer, path.lstrip("/")))
    return None


def changes(upper: str, lowers: list[str]) -> list[Change]:
    """The container's changes, sorted by path; `lowers` are the image layers, top first.

    A directory that overlayfs only copied up (to hold a changed child) is reported as
    modified because of that child; on its own, only if its mode or owner changed.
    """
    found: dict[str, ChangeKind] = {}

    def record(path: str, kind: ChangeKind) -> None:
        if kind == ChangeKind.ADDED and path in INIT_PATHS:
            return
        found.setdefault(path, kind)
        parent = os.path.dirname(path)
        while parent != "/":
            found.setdefault(parent, ChangeKind.MODIFIED)
            parent = os.path.dirname(parent)

    for dirpath, dirnames, filenames in os.walk(upper):
        rel = "/" + os.path.relpath(dirpath, upper).lstrip(".").lstrip("/")
        if rel != "/" and is_opaque(dirpath) and exists_below(lowers, rel):
            present = set(dirnames) | set(filenames)
            for name in _names_below(lowers, rel) - present:
                record(os.path.join(rel, name), ChangeKind.DELETED)
        for name in dirnames + filenames:
            path = os.path.join(rel, name)
            st = lstat_or_none(os.path.join(dirpath, name))
            if st is None:
                continue
            if is_whiteout(st):
                if exists_below(lowers, path):
                    record(path, ChangeKind.DELETED)
                continue
            if not exists_below(lowers, path):
                record(path, ChangeKind.ADDED)
            elif not stat.S_ISDIR(st.st_mode):
                record(path, ChangeKind.MODIFIED)
            else:
                old = _stat_below(lowers, path)
                if old is None or (old.st_mode, old.st_uid, old.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
                    record(path, ChangeKind.MODIFIED)
    return sorted(Change(p, k) for p, k in found.items())
