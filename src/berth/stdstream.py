"""Docker's multiplexed stdio stream, as pure code on bytes: the one codec of it, and
the detach keys a terminal's attach is left with.

Without a terminal, attach, exec and logs carry stdout and stderr in frames of an
8-byte header (stream type, three zero bytes, big-endian uint32 length) and the
payload. With a terminal the stream is raw. The shim encodes; berthd's API, exec and
builder, and the CLI's Engine API client decode and encode with this module.

It owns the frame format and the detach keys' syntax and matching only: nothing here
touches a socket, a file or a thread.
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


# -- detach keys ------------------------------------------------------------------------
# With a terminal, the keys a user types to leave an attach (or an exec) without ending
# the process: ctrl-p ctrl-q unless the client names others ("ctrl-x,x"). berthd watches
# for them in what an attach's client sends, as dockerd does, and so does the CLI.

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
_CTRL_KEYS = {f"ctrl-{c}": i for i, c in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")}


class DetachKeysError(ValueError):
    """A detach-keys string that names a key there is no byte for."""


def parse_detach_keys(spec: str) -> bytes:
    """The bytes of a comma-separated key list, as moby/term's ToBytes reads it: one
    character stands for itself, `ctrl-a` … `ctrl-z`, `ctrl-@`, `ctrl-[`, `ctrl-\\`,
    `ctrl-]`, `ctrl-^`, `ctrl-_` and `DEL` for their codes; case and spaces count."""
    out = bytearray()
    for key in spec.split(","):
        raw = key.encode("utf-8", "surrogateescape")
        if len(raw) == 1:
            out += raw
        elif key in _CTRL_KEYS:
            out.append(_CTRL_KEYS[key])
        elif key == "DEL":
            out.append(127)
        else:
            raise DetachKeysError(f"Unknown character: '{key}'")
    return bytes(out)


class EscapeScanner:
    """Finds the detach keys in a stream of input, cut anywhere.

    `feed` returns the bytes to pass on and whether the keys were completed (what came
    after them in the same chunk is dropped). The start of a match is held back; when
    the next byte breaks it, the held bytes are passed on after all, and that byte is
    not taken as a new start (moby/term's escape proxy)."""

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.keys = keys or DEFAULT_DETACH_KEYS
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        keys = self.keys
        if self.matched == 0 and keys[0] not in data:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += keys[:self.matched]
                self.matched = 0
            out.append(byte)
        return bytes(out), False
