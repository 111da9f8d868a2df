"""Reading an image's files straight from its extracted layers, without mounting it.

The builder asks small questions of the image it builds on (does /app exist and is it a
directory, what does /etc/passwd say, which files are under /src of another stage) and
COPY --from reads whole trees. The layers are directories with overlayfs whiteouts
(a 0/0 character device hides a lower file, the trusted.overlay.opaque xattr hides a
lower directory's contents), top layer first; symlinks are followed inside the image.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator

OPAQUE_XATTR = "trusted.overlay.opaque"


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class ImageFS:
    def __init__(self, layer_dirs: list[str]) -> None:
        self.layers = list(layer_dirs)  # top first

    def _find(self, path: str) -> tuple[str, os.stat_result] | None:
        """The host path of `path` (no symlink followed in its last part) in the top-most
        layer that has it, and its lstat."""
        parts = [p for p in path.split("/") if p]
        for layer in self.layers:
            host = os.path.join(layer, *parts) if parts else layer
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                # an opaque parent directory in this layer hides every lower layer
                if self._hidden_below(layer, parts):
                    return None
                continue
            if _whiteout(st):
                return None
            return host, st
        return None

    def _hidden_below(self, layer: str, parts: list[str]) -> bool:
        for n in range(len(parts) - 1, 0, -1):
            parent = os.path.join(layer, *parts[:n])
            try:
                st = os.lstat(parent)
            except OSError:
                continue
            if _whiteout(st) or not stat.S_ISDIR(st.st_mode):
                return True
            if _opaque(parent):
                return True
        return False

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` with every symlink followed inside the image (as a chroot would)."""
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        current = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, name)
            found = self._find(candidate)
            if found is not None and stat.S_ISLNK(found[1].st_mode) and (parts or follow_last):
                hops += 1
                if hops > 40:
                    raise OSError(40, "too many levels of symbolic links", path)
                target = os.readlink(found[0])
                base = "/" if target.startswith("/") else current
                parts = [p for p in target.split("/") if p] + parts
                current = base
                continue
            current = candidate
        return current

    def lstat(self, path: str) -> os.stat_result | None:
        found = self._find(self.resolve(path, follow_last=False))
        return found[1] if found else None

    def stat(self, path: str) -> os.stat_result | None:
        found = self._find(self.resolve(path))
        return found[1] if found else None

    def host_path(self, path: str, follow_last: bool = True) -> str | None:
        """Where a regular file's (or link's) bytes are on the host."""
        found = self._find(self.resolve(path, follow_last))
        return found[0] if found else None

    def read_text(self, path: str) -> str:
        host = self.host_path(path)
        if host is None:
            return ""
        try:
            with open(host, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def listdir(self, path: str) -> list[str]:
        """A directory's names, merged across layers, whiteouts applied."""
        parts = [p for p in self.resolve(path).split("/") if p]
        names: dict[str, bool] = {}  # name -> visible
        for layer in self.layers:
            host = os.path.join(layer, *parts) if parts else layer
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                if self._hidden_below(layer, parts):
                    break
                continue
            if _whiteout(st) or not stat.S_ISDIR(st.st_mode):
                break
            for name in os.listdir(host):
                if name in names:
                    continue
                try:
                    child = os.lstat(os.path.join(host, name))
                except OSError:
                    continue
                names[name] = not _whiteout(child)
            if _opaque(host):
                break
        return sorted(n for n, visible in names.items() if visible)

    def walk(self, path: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every entry below `path` (image paths), parents before children."""
        top = self.resolve(path)
        for name in self.listdir(top):
            child = posixpath.join(top, name)
            found = self._find(child)
            if found is None:
                continue
            yield child, found[1]
            if stat.S_ISDIR(found[1].st_mode):
                yield from self.walk(child)


def user_ids(fs: ImageFS, spec: str) -> tuple[int, int]:
    """`--chown` / USER: "name[:group]" or ids, resolved with the image's passwd and group."""
    user, _, group = spec.partition(":")
    uid: int | None = int(user) if user.isdigit() else None
    gid: int | None = None
    if uid is None:
        for line in fs.read_text("/etc/passwd").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == user and fields[2].isdigit():
                uid = int(fields[2])
                break
    if uid is None:
        raise LookupError(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = None
            for line in fs.read_text("/etc/group").splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and fields[0] == group:
                    gid = int(fields[2])
                    break
            if gid is None:
                raise LookupError(f"unable to find group {group}: no matching entries in group file")
    # as Docker's --chown: a user without a group gets the same number as its group
    return uid, gid if gid is not None else uid
