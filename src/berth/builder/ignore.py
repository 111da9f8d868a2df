""".dockerignore: which paths of a build context are left out, with Docker's semantics.

The model is github.com/moby/patternmatcher (and its `ignorefile.ReadAll`), which the
docker CLI and dockerd use: a line starting with `#` is a comment; the rest is trimmed,
cleaned like Go's filepath.Clean and stripped of a leading `/`; `!` makes an exception;
the last pattern that matches a path (or one of its parent directories) decides.
`*` and `?` never cross a `/`, `**` spans any number of directories, `[...]` is a
character class and `\\` escapes. Matching is pure string work; `walk` is the only
function here that touches the file system, and it only lists it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from berth.errors import InvalidParameter

_REGEX_ESCAPED = set(".+()|{}$")


def clean(path: str) -> str:
    """Go's path.Clean: collapse `//`, `.` and `..`; "" becomes "."."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def _check_syntax(pattern: str) -> bool:
    """Whether Go's filepath.Match would accept the pattern (classes and escapes)."""
    i, n = 0, len(pattern)

    def escaped_char(j: int) -> int | None:
        # getEsc: a class member, possibly escaped; something must follow it
        if j >= n or pattern[j] in "-]":
            return None
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                return None
        j += 1
        return j if j < n else None

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                return False
            i += 2
            continue
        if ch != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        ranges = 0
        while True:
            if i < n and pattern[i] == "]" and ranges > 0:
                i += 1
                break
            after = escaped_char(i)
            if after is None:
                return False
            i = after
            if pattern[i] == "-":
                after = escaped_char(i + 1)
                if after is None:
                    return False
                i = after
            ranges += 1
    return True


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool
    kind: str  # "exact", "prefix", "suffix" or "regexp"
    regexp: re.Pattern[str] | None

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.fullmatch(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """patternmatcher's Pattern.compile, on "/" separators."""
    out: list[str] = []
    kind = "exact"
    i, n = 0, len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + text[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    if kind != "regexp":
        return _Pattern(text, exclusion, kind, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expression = re.compile("".join(out))
    return _Pattern(text, exclusion, "regexp", expression)


class IgnoreMatcher:
    """The compiled patterns of one .dockerignore."""

    def __init__(self, patterns: list[_Pattern]) -> None:
        self._patterns = patterns

    @classmethod
    def from_text(cls, text: str | bytes) -> IgnoreMatcher:
        """Read a .dockerignore; a malformed pattern is an InvalidParameter naming its line."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        text = text.removeprefix("\ufeff")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        patterns: list[_Pattern] = []
        for number, line in enumerate(lines, start=1):
            line = line.removesuffix("\r")
            if line.startswith("#"):
                continue
            pattern = line.strip()
            if not pattern:
                continue
            exclusion = pattern.startswith("!")
            if exclusion:
                pattern = pattern[1:].strip()
            if pattern:
                pattern = clean(pattern)
                if len(pattern) > 1 and pattern.startswith("/"):
                    pattern = pattern[1:]
            patterns.append(cls._pattern(number, pattern, exclusion))
        return cls(patterns)

    @classmethod
    def from_patterns(cls, lines: list[str]) -> IgnoreMatcher:
        """Patterns already read (one per item, `!` for exceptions), as Docker's API takes them."""
        patterns: list[_Pattern] = []
        for number, raw in enumerate(lines, start=1):
            pattern = raw.strip()
            if not pattern:
                continue
            exclusion = pattern.startswith("!")
            if exclusion:
                pattern = pattern[1:]
            patterns.append(cls._pattern(number, pattern, exclusion))
        return cls(patterns)

    @staticmethod
    def _pattern(number: int, pattern: str, exclusion: bool) -> _Pattern:
        where = f"error parsing .dockerignore line {number}"
        if exclusion and not pattern:
            raise InvalidParameter(f'{where}: illegal exclusion pattern: "!"')
        pattern = clean(pattern)
        if not _check_syntax(pattern):
            raise InvalidParameter(f"{where}: syntax error in pattern {pattern!r}")
        try:
            return _compile(pattern, exclusion)
        except (re.error, RecursionError, OverflowError):
            raise InvalidParameter(f"{where}: syntax error in pattern {pattern!r}") from None

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self._patterns)

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative to the context, "/" separated) is left out."""
        path = clean(path)
        if path == ".":
            return False
        parent = path.rpartition("/")[0]
        parents: list[str] = []
        if parent:
            pieces = parent.split("/")
            parents = ["/".join(pieces[: i + 1]) for i in range(len(pieces))]
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path) or any(pattern.matches(p) for p in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def _may_reinclude_below(self, directory: str) -> bool:
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self._patterns)

    def walk(self, root: str) -> Iterator[str]:
        """The included paths under `root`, relative and "/" separated, parents first.

        An excluded directory is not descended into unless an exception pattern names
        something below it (Docker's rule); symbolic links are listed, not followed.
        """
        yield from self._walk(root, "")

    def _walk(self, root: str, relative: str) -> Iterator[str]:
        directory = os.path.join(root, relative) if relative else root
        with os.scandir(directory) as listing:
            entries = sorted(
                listing, key=lambda entry: entry.name.encode("utf-8", "surrogateescape")
            )
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if self.excluded(path):
                if is_dir and self._may_reinclude_below(path):
                    yield from self._walk(root, path)
                continue
            yield path
            if is_dir:
                yield from self._walk(root, path)
