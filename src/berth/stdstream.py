"""Docker's multiplexed stdio stream, as pure code on bytes: the one codec of it.

Without a terminal, attach, exec and logs carry stdout and stderr in frames of an
8-byte header (stream type, three zero bytes, big-endian uint32 length) and the
payload. With a terminal the stream is raw. The shim encodes; berthd's API, exec and
builder, and the CLI's Engine API client decode and encode with this module.

It owns the frame format only: nothing here touches a socket, a file or a thread.
The shim imports it, and the shim loads only what it must (it starts once per
container): so this module imports `struct` alone, which the shim has loaded anyway
(berth.runtime.linux, which it needs to create the container, imports it).
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 0xFFFFFFFF  # what the header's length field holds


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame. `data` longer than MAX_PAYLOAD is the caller's to split."""
    return _HEADER.pack(stream, len(data)) + data


def encode_lines(stream: int, lines: list[bytes]) -> bytes:
    """Each of `lines` (given without its newline) in a frame of its own, newline
    included: what dockerd sends for log messages. One pass, for 200,000 lines a go."""
    pack = _HEADER.pack
    return b"".join([pack(stream, len(line) + 1) + line + b"\n" for line in lines])


class FrameDecoder:
    """Feed bytes in, as they arrive, cut anywhere; get the (stream, payload) frames
    out as they complete. What is left of an unfinished frame waits in `pending`."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        unpack = _HEADER.unpack_from
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= HEADER_SIZE:
            stream, size = unpack(buf, pos)
            end = pos + HEADER_SIZE + size
            if end > end_of_data:
                break
            frames.append((stream, bytes(buf[pos + HEADER_SIZE:end])))
            pos = end
        if pos:
            del buf[:pos]  # once per feed, not once per frame
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


def join_payloads(data: bytes | bytearray) -> bytes:
    """The payloads of a whole framed stream, stdout and stderr joined in their order;
    of a last frame cut short, what there is of its payload."""
    parts = []
    pos, end_of_data = 0, len(data)
    while end_of_data - pos >= HEADER_SIZE:
        _, size = _HEADER.unpack_from(data, pos)
        parts.append(data[pos + HEADER_SIZE:pos + HEADER_SIZE + size])
        pos += HEADER_SIZE + size
    return b"".join(parts)
