"""Reading a container's log back through typed LogOptions: streams, tail, since/until,
timestamps, and the refusals dockerd makes before it answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from berth.containers.logs import LogOptions, LogStream, logged_output
from berth.containers.model import Container, HostConfig, RunConfig
from berth.errors import InvalidParameter
from berth.stdstream import STDERR, STDOUT, encode_frame

LINES = [
    ("stdout", "one", "2026-01-01T00:00:01.000000000Z"),
    ("stderr", "two", "2026-01-01T00:00:02.000000000Z"),
    ("stdout", "three", "2026-01-01T00:00:03.000000000Z"),
]
SECOND = 1_000_000_000
T0 = 1767225600 * SECOND  # 2026-01-01T00:00:00Z


NO_PLUGINS = SimpleNamespace(log_plugins=None)


def _container(tmp_path: Path) -> Container:
    log = tmp_path / "c-json.log"
    log.write_bytes(b"".join(f'{{"log":"{text}\\n","stream":"{stream}","time":"{t}"}}\n'.encode()
                             for stream, text, t in LINES))
    return Container("c" * 64, "c", "", "", RunConfig(image="busybox"), HostConfig(), log_path=str(log))


def _read(c: Container, options: LogOptions, framed: bool = False) -> bytes:
    async def run() -> bytes:
        # no follow and no log plugins: a manager with nothing but that
        stream = await LogStream.open(NO_PLUGINS, c, options)  # type: ignore[arg-type]
        try:
            return b"".join([(b.frames() if framed else b.text()) async for b in stream.batches()])
        finally:
            stream.close()

    return asyncio.run(run())


def test_both_streams_in_order(tmp_path: Path) -> None:
    assert _read(_container(tmp_path), LogOptions()) == b"one\ntwo\nthree\n"


def test_frames_name_their_stream(tmp_path: Path) -> None:
    assert _read(_container(tmp_path), LogOptions(), framed=True) == (
        encode_frame(STDOUT, b"one\n") + encode_frame(STDERR, b"two\n") + encode_frame(STDOUT, b"three\n"))


def test_one_stream(tmp_path: Path) -> None:
    assert _read(_container(tmp_path), LogOptions(stderr=False)) == b"one\nthree\n"
    assert _read(_container(tmp_path), LogOptions(stdout=False)) == b"two\n"


def test_tail(tmp_path: Path) -> None:
    c = _container(tmp_path)
    assert _read(c, LogOptions(tail=2)) == b"two\nthree\n"
    assert _read(c, LogOptions(tail=0)) == b""
    assert _read(c, LogOptions(tail=-1)) == b"one\ntwo\nthree\n"  # negative: all, as dockerd


def test_since_and_until(tmp_path: Path) -> None:
    c = _container(tmp_path)
    assert _read(c, LogOptions(since=T0 + SECOND)) == b"two\nthree\n"
    assert _read(c, LogOptions(until=T0 + 2 * SECOND)) == b"one\ntwo\n"


def test_timestamps(tmp_path: Path) -> None:
    out = _read(_container(tmp_path), LogOptions(timestamps=True, stderr=False))
    assert out == b"2026-01-01T00:00:01.000000000Z one\n2026-01-01T00:00:03.000000000Z three\n"


def test_no_stream_chosen_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="you must choose at least one stream"):
        _read(_container(tmp_path), LogOptions(stdout=False, stderr=False))


def test_a_driver_without_a_file_cannot_be_read(tmp_path: Path) -> None:
    c = _container(tmp_path)
    c.log_path = ""
    with pytest.raises(InvalidParameter, match="does not support reading"):
        _read(c, LogOptions())


def test_logged_output_for_attach(tmp_path: Path) -> None:
    c = _container(tmp_path)

    def messages(stdout: bool, stderr: bool) -> list[tuple[int, bytes]]:
        async def run() -> list[tuple[int, bytes]]:
            return [m async for batch in logged_output(None, c, stdout, stderr)  # type: ignore[arg-type]
                    for m in batch.messages()]

        return asyncio.run(run())

    assert messages(True, False) == [(STDOUT, b"one\n"), (STDOUT, b"three\n")]
    assert messages(True, True)[1] == (STDERR, b"two\n")
    assert messages(False, False) == []
