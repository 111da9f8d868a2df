"""Reading a file-backed log back for `docker logs`: all retained files, oldest first,
in large chunks of whole lines, then following the live file across rotations.

Blocking file IO: berthd calls it in a thread. The files are opened when the reader
is made, so that neither a removal of the container nor a rotation can take lines
from under a reader that has started. What the lines mean is `jsonfile.render`'s.
"""

from __future__ import annotations

import gzip
import os
from typing import IO

from berth.logs import files

CHUNK = 4 << 20


class LogReader:
    def __init__(self, path: str, tail: int | None = None) -> None:
        self.path = path
        opened: list[IO[bytes]] = []
        for name in files.retained(path):
            try:
                f: IO[bytes] = gzip.GzipFile(name, "rb") if name.endswith(".gz") else open(name, "rb")  # type: ignore[assignment]
                opened.append(f)
            except FileNotFoundError:
                continue  # rotated away between the listing and the opening
        live = opened[-1] if opened and getattr(opened[-1], "name", "") == path else None
        self._files = opened
        self._live = live
        self._pos = 0  # in the live file: just past the last whole line handed out
        starts = _tail_starts(opened, tail)
        self._queue = [(f, start) for f, start in zip(opened, starts, strict=True) if start is not None]
        if live is not None and (not self._queue or self._queue[-1][0] is not live):
            self._pos = _complete_end(live)  # nothing of it is wanted: follow from its end
        self._current: IO[bytes] | None = None
        self._carry = b""

    def read(self) -> bytes | None:
        """The next chunk of whole lines of what was there at the start; None at the end."""
        while True:
            if self._current is None:
                if not self._queue:
                    return None
                self._current, start = self._queue.pop(0)
                self._current.seek(start)
                self._carry = b""
                if self._current is self._live:
                    self._pos = start
            f = self._current
            raw = f.read(CHUNK)
            data = self._carry + raw
            cut = data.rfind(b"\n") + 1
            if len(raw) == CHUNK:
                self._carry = data[cut:]
            else:
                self._current = None  # its end; a partial last line is left for follow
            if f is self._live:
                self._pos += cut
            if cut:
                return data[:cut]

    def follow(self) -> bytes:
        """Whole lines added to the live file since the last call; it moves on to a new
        file after a rotation, and to the start after a truncation (max-file 1)."""
        out = []
        if self._live is None:
            try:
                self._live = open(self.path, "rb")
            except FileNotFoundError:
                return b""
            self._files.append(self._live)
            self._pos = 0
        try:
            rotated = os.stat(self.path).st_ino != os.fstat(self._live.fileno()).st_ino
        except FileNotFoundError:
            rotated = False  # removed, or between renames: read what the open file has
        if os.fstat(self._live.fileno()).st_size < self._pos:
            self._pos = 0
        out.append(self._take_new())
        if rotated:
            for name in self._newer_than_live():
                try:
                    fresh = open(name, "rb")
                except FileNotFoundError:
                    continue
                self._files.append(fresh)
                self._live, self._pos = fresh, 0
                out.append(self._take_new())
        return b"".join(out)

    def _newer_than_live(self) -> list[str]:
        """The files written after the live one, oldest first, the new live one last
        (more than one when it rotated more than once since the last look; a file
        compressed meanwhile cannot be recognised, and the follower skips to the end)."""
        assert self._live is not None
        inode = os.fstat(self._live.fileno()).st_ino
        names = files.retained(self.path)
        for i, name in enumerate(names):
            try:
                if os.stat(name).st_ino == inode:
                    return names[i + 1:]
            except FileNotFoundError:
                continue
        return [self.path]

    def _take_new(self) -> bytes:
        assert self._live is not None
        self._live.seek(self._pos)
        data = self._live.read()
        data = data[: data.rfind(b"\n") + 1]
        self._pos += len(data)
        return data

    def close(self) -> None:
        for f in self._files:
            f.close()


def _complete_end(f: IO[bytes]) -> int:
    """The offset just past the last whole line of `f`."""
    start, _ = _tail_offset(f, 0)
    return start


def _tail_starts(opened: list[IO[bytes]], tail: int | None) -> list[int | None]:
    """Where to start in each file to give the last `tail` lines (None: skip it)."""
    if tail is None:
        return [0] * len(opened)
    starts: list[int | None] = [None] * len(opened)
    remaining = max(0, tail)
    for i in range(len(opened) - 1, -1, -1):
        starts[i], found = _tail_offset(opened[i], remaining)
        remaining -= found
        if remaining == 0:
            break
    return starts


def _tail_offset(f: IO[bytes], n: int) -> tuple[int, int]:
    """(offset of the n-th whole line from the end, lines found up to n)."""
    if isinstance(f, gzip.GzipFile):
        f.seek(0)
        return _tail_in(f.read(), n, 0)
    end = f.seek(0, os.SEEK_END)
    count = 0
    pos = end
    block = 1 << 16
    while pos > 0:
        size = min(block, pos)
        pos -= size
        f.seek(pos)
        data = f.read(size)
        hits = data.count(b"\n")
        if count + hits > n:
            return _tail_in(data, n - count, pos)[0], n
        count += hits
        block = min(block * 2, CHUNK)
    return 0, count


def _tail_in(data: bytes, n: int, base: int) -> tuple[int, int]:
    """As `_tail_offset`, in bytes that start at offset `base` of their file."""
    count = data.count(b"\n")
    if count <= n:
        return base, count
    p = len(data)
    for _ in range(n + 1):
        p = data.rfind(b"\n", 0, p)
    return base + p + 1, n
