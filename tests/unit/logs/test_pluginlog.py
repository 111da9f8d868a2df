"""The LogEntry frames a log driver plugin reads: the bytes Docker's LogEntryEncoder
writes for the same entries (protocol buffers by hand, checked field by field)."""

from __future__ import annotations

import struct

from berth.logs.pluginlog import encode_entry, entries


def test_one_entry_is_framed_as_docker_frames_it() -> None:
    frame = encode_entry("stdout", 300, b"hello")
    (length,) = struct.unpack(">I", frame[:4])
    body = frame[4:]
    assert length == len(body)
    # source = 1 (string), time_nano = 2 (varint: 300 is ac 02, the protobuf docs' example), line = 3
    assert body == b"\x0a\x06stdout" + b"\x10\xac\x02" + b"\x1a\x05hello"


def test_lines_lose_their_newline_and_a_tail_is_partial() -> None:
    data = entries("stderr", b"a\nbc\ntail", 1)
    frames = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        frames.append(data[4:4 + n])
        data = data[4 + n:]
    assert frames == [b"\x0a\x06stderr\x10\x01\x1a\x01a", b"\x0a\x06stderr\x10\x01\x1a\x02bc",
                      b"\x0a\x06stderr\x10\x01\x1a\x04tail\x20\x01"]
