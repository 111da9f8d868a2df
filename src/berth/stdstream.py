"""Docker's multiplexed stdio stream, as pure code on bytes: the one codec of it.

Without a terminal, attach, exec and logs carry stdout and stderr in frames of an
8-byte header (stream type, three zero bytes, big-endian uint32 length) and the
payload. With a terminal the stream is raw. The shim encodes; berthd's API, exec and
builder, and the CLI's Engine API client decode and encode with this module.

It owns the frame format only: nothing here touches a socket, a file or a thread.
It imports nothing, not even `struct`: the shim imports it, and the shim loads only
what it must (it starts once per container).
"""

from __future__ import annotations

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3
HEADER_SIZE = 8
MAX_PAYLOAD = 0xFFFFFFFF  # what the header's length field holds


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame. `data` longer than MAX_PAYLOAD is the caller's to split."""
    return ((stream << 56) + len(data)).to_bytes(8) + data


def encode_lines(stream: int, lines: list[bytes]) -> bytes:
    """Each of `lines` (given without its newline) in a frame of its own, newline
    included: what dockerd sends for log messages. One pass, for 200,000 lines a go."""
    head = (stream << 56) + 1  # the header of an empty line: len(line) is added to it
    return b"".join([(head + len(line)).to_bytes(8) + line + b"\n" for line in lines])


class FrameDecoder:
    """Feed bytes in, as they arrive, cut anywhere; get the (stream, payload) frames
    out as they complete. What is left of an unfinished frame waits in `pending`."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= HEADER_SIZE:
            end = pos + HEADER_SIZE + int.from_bytes(buf[pos + 4:pos + HEADER_SIZE])
            if end > end_of_data:
                break
            frames.append((buf[pos], bytes(buf[pos + HEADER_SIZE:end])))
            pos = end
        if pos:
            del buf[:pos]  # once per feed, not once per frame
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


def join_payloads(data: bytes | bytearray) -> bytes:
    """The payloads of a whole framed stream, stdout and stderr joined in their order;
    an unfinished last frame is dropped."""
    return b"".join(payload for _, payload in FrameDecoder().feed(data))
