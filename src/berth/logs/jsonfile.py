"""Docker's json-file log format: one JSON object a line, as dockerd writes them.

`{"log":"hi\\n","stream":"stdout","time":"2026-11-28T02:18:26.123456789Z"}`

The writer runs in the shim and must stay light (stdlib only). Output is cut into
messages at newlines; a line longer than 16 KiB is written in pieces without the
newline, as Docker's copier does. Times are always written with nine fraction digits
in UTC, so that they order as text.

The reader (`render`) is used by berthd for `docker logs`; it works on large chunks of
whole lines with one regular-expression pass and one JSON decode per run of same-stream
messages, not a JSON decode per line: 200,000 lines are read in tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from berth.clock import format_time, parse_time
from berth.logs.files import RotatingFile
from berth.stdstream import encode_frame, encode_lines

MAX_MESSAGE = 16 * 1024


# Printable ASCII but '"' and '\\', and an optional final newline: needs no escaping.
_PLAIN = re.compile(rb'[\x20\x21\x23-\x5b\x5d-\x7e]*\n?')


class Writer:
    """The shim's json-file writer (also the `local` driver's, and the dual-logging
    cache's): messages to a `RotatingFile`."""

    def __init__(self, path: str, max_size: int = -1, max_file: int = 1, compress: bool = False) -> None:
        self._file = RotatingFile(path, max_size, max_file, compress)
        self._partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial.pop(stream, b"") + data
        out = []
        tail = f'","stream":"{stream}","time":"{format_time(time.time_ns())}"}}\n'.encode()
        start = 0
        end = len(buf)
        while start < end:
            nl = buf.find(b"\n", start, start + MAX_MESSAGE)
            if nl >= 0:
                out.append(_record(buf[start:nl + 1], tail))
                start = nl + 1
            elif end - start >= MAX_MESSAGE:
                out.append(_record(buf[start:start + MAX_MESSAGE], tail))
                start += MAX_MESSAGE
            else:
                break
        if start < end:
            self._partial[stream] = buf[start:]
        if out:
            self._file.write_records(out)

    def flush(self) -> None:
        now = format_time(time.time_ns())
        out = [_record(buf, f'","stream":"{stream}","time":"{now}"}}\n'.encode())
               for stream, buf in self._partial.items() if buf]
        self._partial.clear()
        if out:
            self._file.write_records(out)

    def close(self) -> None:
        self.flush()
        self._file.close()


def _record(chunk: bytes, tail: bytes) -> bytes:
    if _PLAIN.fullmatch(chunk):
        body = chunk[:-1] + b"\\n" if chunk.endswith(b"\n") else chunk
    else:
        body = json.dumps(chunk.decode("utf-8", "replace")).encode()[1:-1]
    return b'{"log":"' + body + tail


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
    file already open. One decode a line: for small reads (attach's `logs`)."""
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


# -- the fast reader ------------------------------------------------------------------

# One message. `attrs` (written by dockerd's json-file, not by berth) is skipped.
_MESSAGE = re.compile(
    rb'\{"log":"([^"\\]*(?:\\.[^"\\]*)*)","stream":"(std(?:out|err))",'
    rb'(?:"attrs":\{(?:[^"}]|"[^"\\]*(?:\\.[^"\\]*)*")*\},)?"time":"([^"]*)"\}\n')
_DECODER = json.JSONDecoder(strict=False)


@dataclass
class Selection:
    """What `docker logs` asked for. Times are ns since the epoch; 0 is no bound."""

    stdout: bool = True
    stderr: bool = True
    timestamps: bool = False
    since: int = 0
    until: int = 0
    details: bytes | None = None  # the `--details` prefix ("k=v,k2=v2 "), if asked


# What lies between two messages' texts when both are of one stream.
_SEPARATOR = {name: re.compile(rb'","stream":"' + name + rb'","time":"[^"\\]*"\}\n(?:\{"log":")?')
              for name in (b"stdout", b"stderr")}


def rendered(chunk: bytes, sel: Selection, framed: bool) -> bytes:
    """What `docker logs` sends for whole lines of a json-file log: with `framed` (no
    terminal) each message in a frame of its own, as dockerd sends them (clients that
    stream the logs, docker-py's included, get one message at a time); else the texts."""
    fast = _fast(chunk, sel)
    if fast is not None:
        kind, text, messages = fast
        if not framed:
            return text
        lines = _lines(text, messages)
        if lines is not None:
            return encode_lines(kind, lines)
    runs = render(chunk, sel)
    return b"".join(encode_frame(kind, data) if framed else data for kind, data in runs)


def render(chunk: bytes, sel: Selection) -> list[tuple[int, bytes]]:
    """Whole lines of a json-file log as (1 stdout | 2 stderr, text), one a message."""
    fast = _fast(chunk, sel)
    if fast is not None:
        kind, text, messages = fast
        lines = _lines(text, messages)
        if lines is not None:
            return [(kind, line + b"\n") for line in lines]
    found = _MESSAGE.findall(chunk)
    if sel.since or sel.until:
        found = _between(found, sel.since, sel.until)
    wanted = {b"stdout": sel.stdout, b"stderr": sel.stderr}
    return [(1 if m[1] == b"stdout" else 2, _decode([m], sel)) for m in found if wanted[m[1]]]


def _fast(chunk: bytes, sel: Selection) -> tuple[int, bytes, int] | None:
    """For a chunk of one stream's messages and a plain selection: (stream, the texts
    joined, how many messages), by one substitution in C; None when it does not apply
    (and (stream, b"", 0) when that stream is not wanted)."""
    if sel.timestamps or sel.since or sel.until or sel.details is not None:
        return None
    has_stdout, has_stderr = b'"stream":"stdout"' in chunk, b'"stream":"stderr"' in chunk
    if has_stdout == has_stderr:
        return None
    kind = 1 if has_stdout else 2
    if not (sel.stdout if kind == 1 else sel.stderr):
        return kind, b"", 0
    text = _one_stream(chunk, b"stdout" if has_stdout else b"stderr")
    return None if text is None else (kind, text, chunk.count(b"\n"))


def _lines(text: bytes, messages: int) -> list[bytes] | None:
    """The texts of `messages` messages joined, cut back into them (without their
    newlines): possible when each ends with, and holds no other, newline (as berth's
    shim writes them)."""
    if messages == 0:
        return []
    if not text.endswith(b"\n") or text.count(b"\n") != messages:
        return None
    lines = text.split(b"\n")
    lines.pop()
    return lines


def _one_stream(chunk: bytes, name: bytes) -> bytes | None:
    """The fast path: the texts of a chunk of one stream's messages, cut out by one
    substitution in C; None if some line is not as berth writes them."""
    body, joined = _SEPARATOR[name].subn(b"", chunk)
    if joined != chunk.count(b"\n") or not body.startswith(b'{"log":"') or b'{"log":"' in body[8:]:
        return None
    try:
        return _unescape(body[8:])
    except ValueError:
        return None


def _between(found: list[tuple[bytes, bytes, bytes]], since: int, until: int) -> list[tuple[bytes, bytes, bytes]]:
    low = format_time(since).encode() if since else b""
    high = format_time(until).encode() if until else b"\xff"

    def stamp(t: bytes) -> bytes:  # berth writes fixed-width UTC; others are normalised
        return t if len(t) == 30 and t.endswith(b"Z") else format_time(parse_time(t.decode())).encode()

    return [m for m in found if low < stamp(m[2]) <= high]


def _decode(found: list[tuple[bytes, bytes, bytes]], sel: Selection) -> bytes:
    details = sel.details.replace(b"\\", b"\\\\").replace(b'"', b'\\"') if sel.details is not None else b""
    if sel.timestamps:
        body = b"".join([t + b" " + details + m for m, _, t in found])
    elif details:
        body = b"".join([details + m for m, _, _ in found])
    else:
        body = b"".join([m for m, _, _ in found])
    return _unescape(body)


def _unescape(body: bytes) -> bytes:
    """JSON string contents to the bytes they stand for."""
    if b"\\" not in body.replace(b"\\n", b""):
        return body.replace(b"\\n", b"\n")
    text: str = _DECODER.decode('"' + body.decode("utf-8", "replace") + '"')
    return text.encode("utf-8", "surrogatepass")
