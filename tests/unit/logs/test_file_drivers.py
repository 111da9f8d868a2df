"""The file-backed log writers (json-file, local, the syslog cache) and their reader:
one suite, run for each driver's defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth import clock
from berth.logs import jsonfile, sinks
from berth.logs.files import from_human_size, retained
from berth.logs.reader import LogReader
from berth.stdstream import FrameDecoder


def read_all(path: str, sel: jsonfile.Selection | None = None, tail: int | None = None) -> list[tuple[int, bytes]]:
    reader = LogReader(path, tail)
    runs: list[tuple[int, bytes]] = []
    try:
        while (chunk := reader.read()) is not None:
            runs += jsonfile.render(chunk, sel or jsonfile.Selection())
    finally:
        reader.close()
    return runs


def text(runs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(data for _, data in runs)


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_round_trip_of_both_streams(tmp_path: Path, driver: str) -> None:
    path = str(tmp_path / "c.log")
    sink = sinks.open_sink(driver, path, {})
    assert sink is not None
    sink.write("stdout", b"a\nb")
    sink.write("stderr", b"e\n")
    sink.write("stdout", b"\n\"q\" \\ \xc3\xa9\t\n")
    sink.close()
    # one frame per message (line), as dockerd sends them
    assert read_all(path) == [(1, b"a\n"), (2, b"e\n"), (1, b"b\n"), (1, b'"q" \\ \xc3\xa9\t\n')]
    assert read_all(path, jsonfile.Selection(stderr=False)) == [(1, b"a\n"), (1, b"b\n"),
                                                               (1, b'"q" \\ \xc3\xa9\t\n')]


@pytest.mark.parametrize("compress", ["false", "true"])
def test_rotation_keeps_max_file_files_in_order(tmp_path: Path, compress: str) -> None:
    path = str(tmp_path / "c.log")
    sink = sinks.open_sink("json-file", path, {"max-size": "1k", "max-file": "3", "compress": compress})
    assert sink is not None
    for i in range(500):
        sink.write("stdout", b"line %d\n" % i)
    sink.close()
    names = [os.path.basename(p) for p in retained(path)]
    gz = ".gz" if compress == "true" else ""
    assert names == [f"c.log.2{gz}", f"c.log.1{gz}", "c.log"]
    lines = text(read_all(path)).splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers[-1] == 499 and numbers == list(range(numbers[0], 500))
    assert text(read_all(path, tail=3)) == b"line 497\nline 498\nline 499\n"
    assert len(text(read_all(path, tail=10**6)).splitlines()) == len(lines)


def test_max_file_1_truncates_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "c.log")
    sink = sinks.open_sink("json-file", path, {"max-size": "200"})
    assert sink is not None
    for i in range(20):
        sink.write("stdout", b"%d\n" % i)
    sink.close()
    assert retained(path) == [path]
    assert os.path.getsize(path) < 300
    assert text(read_all(path)).endswith(b"19\n")


def test_follow_moves_on_after_a_rotation(tmp_path: Path) -> None:
    path = str(tmp_path / "c.log")
    writer = jsonfile.Writer(path, max_size=100, max_file=5)
    writer.write("stdout", b"one\n")
    reader = LogReader(path)
    assert reader.read() is not None and reader.read() is None
    for word in (b"two\n", b"three\n", b"four\n", b"five\n"):
        writer.write("stdout", word)
    got = reader.follow()
    writer.close()
    got += reader.follow()
    reader.close()
    assert text(jsonfile.render(got, jsonfile.Selection())) == b"two\nthree\nfour\nfive\n"


def test_render_selections(tmp_path: Path) -> None:
    path = str(tmp_path / "c.log")
    writer = jsonfile.Writer(path)
    writer.write("stdout", b"x\n")
    writer.close()
    with open(path, "rb") as f:
        chunk = f.read()
    stamp = chunk.split(b'"time":"')[1][:30]
    ns = clock.parse_time(stamp.decode())
    assert jsonfile.render(chunk, jsonfile.Selection(timestamps=True)) == [(1, stamp + b" x\n")]
    assert jsonfile.render(chunk, jsonfile.Selection(details=b"k=v ")) == [(1, b"k=v x\n")]
    assert jsonfile.render(chunk, jsonfile.Selection(since=ns)) == []
    assert jsonfile.render(chunk, jsonfile.Selection(since=ns - 1)) == [(1, b"x\n")]
    assert jsonfile.render(chunk, jsonfile.Selection(until=ns - 1)) == []


def test_reads_dockerd_lines_with_attrs() -> None:
    line = (b'{"log":"hi\\u003c\\n","stream":"stderr","attrs":{"a":"}"},'
            b'"time":"2024-01-02T03:04:05.5Z"}\n')
    assert jsonfile.render(line, jsonfile.Selection()) == [(2, b"hi<\n")]
    assert jsonfile.render(line, jsonfile.Selection(timestamps=True)) == [(2, b"2024-01-02T03:04:05.5Z hi<\n")]


def test_long_lines_are_cut_at_16k(tmp_path: Path) -> None:
    path = str(tmp_path / "c.log")
    writer = jsonfile.Writer(path)
    writer.write("stdout", b"x" * 40000 + b"\n")
    writer.close()
    with open(path, "rb") as f:
        assert len(f.readlines()) == 3
    assert text(read_all(path)) == b"x" * 40000 + b"\n"


def test_from_human_size_is_decimal() -> None:
    assert from_human_size("10k") == 10_000
    assert from_human_size("1.5m") == 1_500_000
    assert from_human_size("20MB") == 20_000_000
    assert from_human_size("100") == 100
    with pytest.raises(ValueError, match="invalid size: 'abc'"):
        from_human_size("abc")


def test_rendered_frames_each_message_as_dockerd_does(tmp_path: Path) -> None:
    path = str(tmp_path / "c.log")
    sink = sinks.open_sink("json-file", path, {})
    assert sink is not None
    sink.write("stdout", b"one\ntwo\n")
    sink.write("stdout", b"three")  # no newline yet: a message of its own at the end
    sink.close()
    with open(path, "rb") as f:
        chunk = f.read()
    framed = jsonfile.rendered(chunk, jsonfile.Selection(), framed=True)
    assert FrameDecoder().feed(framed) == [(1, b"one\n"), (1, b"two\n"), (1, b"three")]
    assert jsonfile.rendered(chunk, jsonfile.Selection(), framed=False) == b"one\ntwo\nthree"
    assert jsonfile.rendered(chunk, jsonfile.Selection(stdout=False), framed=True) == b""
    # the fast path (every message a whole line) frames the same way
    whole = chunk[:chunk.rindex(b'{"log":"three')]
    assert FrameDecoder().feed(jsonfile.rendered(whole, jsonfile.Selection(), framed=True)) == [
        (1, b"one\n"), (1, b"two\n")]
