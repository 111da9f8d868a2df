"""The writing side of a log driver plugin (docker.logdriver/1.0): a container's
output as Docker's LogEntry messages on the FIFO the plugin reads.

Each entry is a protocol buffer (moby's logdriver.LogEntry: source = 1, time_nano = 2,
line = 3, partial = 4) after its length as a big-endian uint32, as Docker's
LogEntryEncoder writes them. A line is sent without its newline; output that does not
end in one goes as a partial entry. The encoding is pure code on bytes; `FifoWriter`
is the shim's sink around it. berthd makes the FIFO and tells the plugin about it
(berth.plugins); the shim only writes.

Stdlib only: the shim imports this at start.
"""

from __future__ import annotations

import os
import struct
import time


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # int64 as protobuf sends a negative one: ten bytes
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_entry(source: str, time_nano: int, line: bytes, partial: bool = False) -> bytes:
    """One framed LogEntry."""
    body = bytearray()
    src = source.encode()
    if src:
        body += b"\x0a" + _varint(len(src)) + src
    if time_nano:
        body += b"\x10" + _varint(time_nano)
    if line:
        body += b"\x1a" + _varint(len(line)) + line
    if partial:
        body += b"\x20\x01"
    return struct.pack(">I", len(body)) + bytes(body)


def entries(source: str, data: bytes, time_nano: int) -> bytes:
    """The framed entries for one chunk of a stream's output."""
    out = bytearray()
    for piece in data.splitlines(keepends=True):
        if piece.endswith(b"\n"):
            out += encode_entry(source, time_nano, piece[:-1])
        else:
            out += encode_entry(source, time_nano, piece, partial=True)
    return bytes(out)


class FifoWriter:
    """The sink: opens the FIFO for writing (its reader, the plugin, is there already)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def write(self, stream: str, data: bytes) -> None:
        payload = entries(stream, data, time.time_ns())
        try:
            while payload:
                n = os.write(self.fd, payload)
                payload = payload[n:]
        except BrokenPipeError:
            pass  # the plugin went away: its output is lost, as with Docker's

    def close(self) -> None:
        os.close(self.fd)


# -- the reading side: LogDriver.ReadLogs answers the same frames -------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def decode_entries(data: bytes) -> list[tuple[str, int, bytes, bool]]:
    """(source, time_nano, line, partial) of each whole frame in `data`; a frame cut
    short at the end is left out. ValueError for bytes that are no LogEntry."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if pos + 4 + length > len(data):
            break
        body, pos = data[pos + 4:pos + 4 + length], pos + 4 + length
        source, time_nano, line, partial = "", 0, b"", False
        i = 0
        while i < len(body):
            key, i = _read_varint(body, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                value, i = _read_varint(body, i)
                if field == 2:
                    time_nano = value - (1 << 64) if value >= 1 << 63 else value
                elif field == 4:
                    partial = bool(value)
            elif wire == 2:
                n, i = _read_varint(body, i)
                if i + n > len(body):
                    raise ValueError("truncated field")
                if field == 1:
                    source = body[i:i + n].decode("utf-8", "replace")
                elif field == 3:
                    line = body[i:i + n]
                i += n
            else:
                raise ValueError(f"unexpected wire type {wire}")
        out.append((source, time_nano, line, partial))
    return out


def as_json_file(entries: list[tuple[str, int, bytes, bool]]) -> bytes:
    """The entries as json-file lines, which berth's `docker logs` reads."""
    import json

    from berth.clock import format_time

    lines = []
    for source, time_nano, line, partial in entries:
        text = line.decode("utf-8", "replace") + ("" if partial else "\n")
        lines.append(json.dumps({"log": text, "stream": source, "time": format_time(time_nano)},
                                separators=(",", ":")).encode() + b"\n")
    return b"".join(lines)
