"""The LogEntry frames a log driver plugin reads: the bytes Docker's LogEntryEncoder
writes for the same entries (protocol buffers by hand, checked field by field)."""

from __future__ import annotations

import struct

import pytest

from berth.logs.pluginlog import as_json_file, decode_entries, encode_entry, entries


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


def test_frames_read_back_as_json_file_lines() -> None:
    data = entries("stdout", b"one\ntwo", 1_000_000_000) + encode_entry("stderr", 2_000_000_000, b"err")
    decoded = decode_entries(data + b"\x00\x00")  # a frame cut short at the end is left out
    assert decoded == [("stdout", 1_000_000_000, b"one", False), ("stdout", 1_000_000_000, b"two", True),
                       ("stderr", 2_000_000_000, b"err", False)]
    lines = as_json_file(decoded).splitlines()
    assert lines[0] == b'{"log":"one\\n","stream":"stdout","time":"1970-01-01T00:00:01.000000000Z"}'
    assert lines[1].startswith(b'{"log":"two","stream":"stdout"')
    with pytest.raises(ValueError):
        decode_entries(b"\x00\x00\x00\x02\x0b\x00")  # wire type 3: no LogEntry
