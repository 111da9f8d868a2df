"""berth.stdstream, the one stdio frame codec: what is encoded decodes to the same frames
however the bytes are cut on the way, and the header is Docker's."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.stdstream import (
    STDERR,
    STDOUT,
    DetachKeysError,
    EscapeScanner,
    FrameDecoder,
    encode_frame,
    encode_lines,
    join_payloads,
    parse_detach_keys,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")

frames_st = st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=300)), max_size=20)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points + [len(data)]:
        pieces.append(data[start:p])
        start = p
    return pieces


@settings(max_examples=300, deadline=None)
@given(frames_st, st.lists(st.integers(0, 10_000), max_size=30))
def test_decode_of_encode_is_the_same_frames_for_any_chunking(frames: list[tuple[int, bytes]],
                                                              cuts: list[int]) -> None:
    stream = b"".join(encode_frame(s, d) for s, d in frames)
    decoder = FrameDecoder()
    got: list[tuple[int, bytes]] = []
    for piece in _cut(stream, cuts):
        got += decoder.feed(piece)
    assert got == frames
    assert decoder.pending == 0


@settings(max_examples=200, deadline=None)
@given(frames_st, st.binary(min_size=1, max_size=7))
def test_an_unfinished_frame_waits(frames: list[tuple[int, bytes]], tail: bytes) -> None:
    stream = b"".join(encode_frame(s, d) for s, d in frames)
    decoder = FrameDecoder()
    assert decoder.feed(stream + tail) == frames
    assert decoder.pending == len(tail)
    payloads = b"".join(d for _, d in frames)
    assert join_payloads(stream + encode_frame(STDOUT, b"cut short")[:-1]) == payloads + b"cut shor"
    assert join_payloads(stream + tail) == payloads


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b), max_size=30), st.sampled_from([1, 2]))
def test_encode_lines_is_a_frame_per_line(lines: list[bytes], stream: int) -> None:
    assert encode_lines(stream, lines) == b"".join(encode_frame(stream, line + b"\n") for line in lines)


def test_the_header_is_dockers() -> None:
    assert encode_frame(STDERR, b"abc") == struct.pack(">BxxxL", 2, 3) + b"abc"
    assert encode_frame(STDOUT, b"x" * 70000)[:8] == b"\x01\x00\x00\x00\x00\x01\x11\x70"
    assert FrameDecoder().feed(b"\x02\x00\x00\x00\x00\x00\x00\x02hi\x01\x00\x00\x00\x00\x00\x00\x00") == [
        (2, b"hi"), (1, b"")]


def test_it_imports_only_what_the_shim_loads_anyway() -> None:
    """The shim imports it: it must bring in no module the shim does not load itself to
    create a container (berth.runtime.linux and what that imports)."""
    def loaded(imports: str) -> set[str]:
        code = (f"import sys; sys.path.insert(0, {SRC!r}); before = set(sys.modules)\n{imports}\n"
                "print(' '.join(sorted(set(sys.modules) - before)))\n")
        out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True).stdout
        return set(out.split())

    shim = loaded("import berth.runtime.linux")
    assert loaded("import berth.stdstream") - {"berth.stdstream"} <= shim


def test_detach_keys_parse_as_moby_term_does() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-[,ctrl-\\,ctrl-_,DEL") == b"a\x00\x1b\x1c\x1f\x7f"
    assert parse_detach_keys("ctrl-x,x") == b"\x18x"
    for bad in ("ctrl-P", "ctrl-p, ctrl-q", "ctrl-p,,ctrl-q", "del", "é", "bogus"):
        with pytest.raises(DetachKeysError):
            parse_detach_keys(bad)
    with pytest.raises(DetachKeysError, match="^Unknown character: 'bogus'$"):
        parse_detach_keys("ctrl-p,bogus")


def test_escape_scanner_holds_a_partial_match_back() -> None:
    m = EscapeScanner(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"x") == (b"\x10x", False)
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"\x11rest") == (b"", True)
    # as moby/term: the byte that breaks a match does not start a new one
    m = EscapeScanner(b"\x10\x11")
    assert m.feed(b"\x10\x10\x11") == (b"\x10\x10\x11", False)
    assert EscapeScanner(b"").keys == b"\x10\x11"


def _scan(keys: bytes, pieces: list[bytes]) -> tuple[bytes, bool]:
    m = EscapeScanner(keys)
    out = b""
    for piece in pieces:
        passed, detached = m.feed(piece)
        out += passed
        if detached:
            return out, True
    return out, False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\x10", b"\x11", b"a", b"\x10\x11", b"xyz"]), max_size=30),
       st.lists(st.integers(0, 1000), max_size=6))
def test_escape_scanner_is_the_same_however_input_is_cut(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    whole = _scan(b"\x10\x11", [data])
    assert _scan(b"\x10\x11", _cut(data, cuts)) == whole
    out, detached = whole
    assert data.startswith(out)
    if not detached:  # all of it passed on, but a last ctrl-p still held back
        assert data in (out, out + b"\x10")
