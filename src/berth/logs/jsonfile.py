"""Docker's json-file log driver: one JSON object a line, as dockerd writes them.

`{"log":"hi\\n","stream":"stdout","time":"2026-11-28T02:18:26.123456789Z"}`

The writer runs in the shim and must stay light (stdlib only). Output is cut into
messages at newlines; a line longer than 16 KiB is written in pieces without the
newline, as Docker's copier does. The reader is used by berthd for `docker logs`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

MAX_MESSAGE = 16 * 1024


def format_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_time(stamp: str) -> int:
    """RFC 3339 with up to nanoseconds, UTC ('Z'), to ns since the epoch."""
    main, _, frac = stamp.rstrip("Z").partition(".")
    secs = int(time.mktime(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) - time.timezone)
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


class Writer:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial.pop(stream, b"") + data
        out = []
        now = format_time(time.time_ns())
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_MESSAGE:
                if len(buf) >= MAX_MESSAGE:
                    out.append(self._line(buf[:MAX_MESSAGE], stream, now))
                    buf = buf[MAX_MESSAGE:]
                    continue
                break
            out.append(self._line(buf[: nl + 1], stream, now))
            buf = buf[nl + 1:]
        if buf:
            self._partial[stream] = buf
        if out:
            os.write(self._fd, b"".join(out))

    def flush(self) -> None:
        now = format_time(time.time_ns())
        out = [self._line(buf, stream, now) for stream, buf in self._partial.items() if buf]
        self._partial.clear()
        if out:
            os.write(self._fd, b"".join(out))

    def close(self) -> None:
        self.flush()
        os.close(self._fd)

    @staticmethod
    def _line(chunk: bytes, stream: str, now: str) -> bytes:
        msg = {"log": chunk.decode("utf-8", "replace"), "stream": stream, "time": now}
        return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


@dataclass
class Entry:
    stream: str
    data: bytes
    time: str


def parse_line(line: bytes) -> Entry | None:
    try:
        doc = json.loads(line)
        return Entry(doc["stream"], doc["log"].encode(), doc["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_entries(path: str | IO[bytes], offset: int = 0) -> Iterator[tuple[Entry, int]]:
    """Entries from a byte offset, each with the offset just past it; `path` may be a
    file already open (a follower keeps the log open, so that a removal of the
    container cannot take the last lines from under it)."""
    if isinstance(path, str):
        try:
            f: IO[bytes] = open(path, "rb")
        except FileNotFoundError:
            return
    else:
        f = path
    with contextlib.nullcontext(f) if not isinstance(path, str) else f:
        f.seek(offset)
        pos = offset
        for line in f:
            if not line.endswith(b"\n"):
                break  # a line still being written
            pos += len(line)
            entry = parse_line(line)
            if entry is not None:
                yield entry, pos
