"""A build context as the Engine API takes it: the directory packed into a tar,
honouring ``.dockerignore`` the way moby's patternmatcher does (ordered patterns, ``!``
re-includes, ``**`` spans directories). Used by ``berth build`` and ``berth compose build``.
``DockerIgnore`` is pure; the rest reads the context directory.
"""

from __future__ import annotations

import os
import re
from typing import IO, TYPE_CHECKING

from berth.client.engine import ClientError

if TYPE_CHECKING:
    import tarfile


class DockerIgnore:
    """moby/patternmatcher: ordered patterns, ``!`` re-includes, ``**`` spans directories.

    A path is excluded when it, or one of its parent directories, matches the
    last pattern that says anything about it.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str], str]] = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negate = pattern.startswith("!")
            if negate:
                pattern = pattern[1:].strip()
            pattern = _clean(pattern)
            if pattern in ("", "."):
                continue
            self.rules.append((negate, _compile(pattern), pattern))

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        return cls(text.splitlines())

    def excluded(self, path: str) -> bool:
        """MatchesOrParentMatches for a slash-separated path relative to the context."""
        path = _clean(path)
        parents = _parent_paths(path)
        matched = False
        for negate, regex, _ in self.rules:
            hit = regex.match(path) is not None or any(regex.match(p) for p in parents)
            if hit:
                matched = not negate
        return matched

    @property
    def patterns(self) -> list[str]:
        return [("!" if neg else "") + pat for neg, _, pat in self.rules]


def _clean(pattern: str) -> str:
    """filepath.Clean plus dropping a leading "/"."""
    parts: list[str] = []
    for part in pattern.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _parent_paths(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _compile(pattern: str) -> re.Pattern[str]:
    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                if i + 1 >= n:
                    out += ".*"
                else:
                    out += "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out += re.escape(pattern[i])
            else:
                out += "\\\\"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += "\\["
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = end
        elif ch in ".+()|{}$^":
            out += "\\" + ch
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


def read_dockerignore(context_dir: str, dockerfile: str = "Dockerfile") -> DockerIgnore:
    """``<Dockerfile>.dockerignore`` next to the Dockerfile wins over ``.dockerignore``."""
    candidates = [os.path.join(context_dir, dockerfile + ".dockerignore"), os.path.join(context_dir, ".dockerignore")]
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return DockerIgnore.parse(fh.read())
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            continue
    return DockerIgnore([])


def write_context_tar(context_dir: str, ignore: DockerIgnore, keep: list[str], out: IO[bytes]) -> None:
    """Tar ``context_dir`` (uid/gid 0, relative names), leaving out ignored paths
    except ``keep`` (the Dockerfile and .dockerignore are always sent)."""
    import tarfile

    keep_set = {_clean(k) for k in keep}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(context_dir):
            rel_root = os.path.relpath(root, context_dir)
            rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
            dirs.sort()
            kept_dirs = []
            for name in dirs:
                rel = f"{rel_root}/{name}" if rel_root else name
                full = os.path.join(root, name)
                if ignore.excluded(rel) and not _has_reinclude(ignore, rel):
                    continue
                if os.path.islink(full):
                    _add(tar, full, rel)
                    continue
                if not ignore.excluded(rel):
                    _add(tar, full, rel)
                kept_dirs.append(name)
            dirs[:] = kept_dirs
            for name in sorted(files):
                rel = f"{rel_root}/{name}" if rel_root else name
                if ignore.excluded(rel) and rel not in keep_set:
                    continue
                _add(tar, os.path.join(root, name), rel)
    # like Go's archive/tar: end at the two zero blocks, no padding to a 10 KiB record
    out.truncate(tar.offset)
    out.seek(tar.offset)


def _has_reinclude(ignore: DockerIgnore, rel_dir: str) -> bool:
    """Whether some ``!pattern`` could re-include something under ``rel_dir``."""
    return any(neg and (pat + "/").startswith(rel_dir + "/") for neg, _, pat in ignore.rules)


def _add(tar: tarfile.TarFile, full: str, rel: str) -> None:
    try:
        info = tar.gettarinfo(full, arcname=rel)
    except OSError as exc:
        raise ClientError(f"error checking context: can't stat '{full}': {exc.strerror}", 1) from None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    if info.isfile():
        try:
            with open(full, "rb") as fh:
                tar.addfile(info, fh)
        except PermissionError:
            raise ClientError(f"error checking context: can't open '{rel}': permission denied", 1) from None
    else:
        tar.addfile(info)
