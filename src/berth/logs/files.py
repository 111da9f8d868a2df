"""A log kept in rotated files, as Docker keeps them: `path`, `path.1` … `path.N-1`.

The newest entries are in `path`; when it reaches `max_size` it becomes `path.1`
(gzipped to `path.1.gz` when `compress` is on), the older ones move up one number,
and the oldest beyond `max_file` is dropped. With `max_file` 1 the file is emptied in
place instead. `RotatingFile` is the writer and runs in the shim (stdlib only, no
threads: compression happens in the shim's loop, at the fastest level, so that it
holds the container's output back only briefly). `retained` lists the files for a
reader, oldest first. Nothing here knows what a line holds.
"""

from __future__ import annotations

import os


class RotatingFile:
    def __init__(self, path: str, max_size: int = -1, max_file: int = 1, compress: bool = False) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.compress = compress
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write_records(self, records: list[bytes]) -> None:
        """Append whole records; a file is rotated between records once it is full,
        so a file exceeds `max_size` by at most one record (as Docker's do)."""
        if self.max_size <= 0:
            self._write(b"".join(records))
            return
        start = 0
        pending = 0
        for i, record in enumerate(records):
            if self._size + pending >= self.max_size:
                self._write(b"".join(records[start:i]))
                self.rotate()
                start, pending = i, 0
            pending += len(record)
        self._write(b"".join(records[start:]))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def rotate(self) -> None:
        if self.max_file == 1:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        os.close(self._fd)
        last = self.max_file - 1
        for suffix in ("", ".gz"):
            _remove(f"{self.path}.{last}{suffix}")
        for n in range(last - 1, 0, -1):
            for suffix in ("", ".gz"):
                if os.path.exists(f"{self.path}.{n}{suffix}"):
                    os.rename(f"{self.path}.{n}{suffix}", f"{self.path}.{n + 1}{suffix}")
        os.rename(self.path, self.path + ".1")
        if self.compress:
            _gzip(self.path + ".1")
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _gzip(path: str) -> None:
    import gzip
    import shutil

    tmp = path + ".gz.tmp"
    with open(path, "rb") as src, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.rename(tmp, path + ".gz")
    os.unlink(path)


def retained(path: str) -> list[str]:
    """The files of the log at `path` that exist, oldest first, the live one last."""
    older = []
    n = 1
    while True:
        for candidate in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.exists(candidate):
                older.append(candidate)
                break
        else:
            break
        n += 1
    older.reverse()
    return [*older, path] if os.path.exists(path) else older


_DECIMAL = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def from_human_size(text: str) -> int:
    """go-units FromHumanSize, as Docker parses `max-size`: "10k" is 10,000 bytes,
    "1.5m", "20MB", "100" (bytes)."""
    s = text.strip()
    num = s.rstrip("kKmMgGtTpPiIbB ")
    unit = s[len(num):].strip().lower().rstrip("b").rstrip("i")
    try:
        if unit not in _DECIMAL or not num:
            raise ValueError
        value = float(num)
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None
    if value < 0:
        raise ValueError(f"invalid size: '{text}'")
    return int(value * _DECIMAL[unit])
