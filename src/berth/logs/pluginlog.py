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
