"""Reading a container's log back: `docker logs` (the past, then the live file while the
container runs) and attach's `logs=1` replay.

Typed options in (`LogOptions`), batches of messages out (`LogStream.batches`, an async
iterator). The files are opened when the stream is opened, before the API starts its
answer (see berth.logs.reader: neither a removal nor a rotation can then take lines
from under it). Blocking file IO goes to threads. This module knows the log drivers'
files through berth.logs; it does not know HTTP: the API frames what it gets.

A batch is whole json-file lines as read in one go, not one object a message: the
200,000-line `docker logs` of the bench renders them with one substitution in C
(`jsonfile.rendered`'s fast path), which a record per message would cost many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from berth.containers.manager import ContainerManager
from berth.containers.model import Container
from berth.errors import InvalidParameter
from berth.logs import drivers as log_drivers
from berth.logs import jsonfile
from berth.logs.reader import LogReader

# how often a follower looks for new lines while the container runs
FOLLOW_INTERVAL = 0.1


@dataclass(frozen=True)
class LogOptions:
    """What `docker logs` asks for. Times are ns since the epoch; 0 is no bound."""

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since: int = 0
    until: int = 0
    tail: int | None = None  # the last `tail` lines of the past; None: all of it
    timestamps: bool = False
    details: bool = False  # each message prefixed by the log driver's attributes


@dataclass(frozen=True)
class LogBatch:
    """Whole lines of the log as read in one go, and what was asked of them."""

    lines: bytes
    selection: jsonfile.Selection

    def text(self) -> bytes:
        """The selected messages' texts, one after another (a terminal's output)."""
        return jsonfile.rendered(self.lines, self.selection, framed=False)

    def frames(self) -> bytes:
        """Each selected message in a stdout/stderr frame of its own, as dockerd sends them."""
        return jsonfile.rendered(self.lines, self.selection, framed=True)

    def messages(self) -> list[tuple[int, bytes]]:
        """The selected messages one by one, as (STDOUT or STDERR, text)."""
        return jsonfile.render(self.lines, self.selection)


class LogStream:
    """One reading of a container's log: open with `open`, iterate `batches`, `close`."""

    def __init__(self, containers: ContainerManager, c: Container, options: LogOptions,
                 reader: LogReader, selection: jsonfile.Selection) -> None:
        self._containers = containers
        self._container = c
        self._options = options
        self._reader = reader
        self._selection = selection

    @classmethod
    async def open(cls, containers: ContainerManager, c: Container, options: LogOptions) -> LogStream:
        """Check the options against the container and open its log files."""
        if not (options.stdout or options.stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        lc = c.host_config.log_config
        path = c.log_path
        if not path and containers.log_plugins is not None and containers.is_log_plugin(lc.type):
            path = await _plugin_log_copy(containers, c)
        if not path:
            raise InvalidParameter("configured logging driver does not support reading")
        selection = jsonfile.Selection(
            stdout=options.stdout, stderr=options.stderr, timestamps=options.timestamps,
            since=options.since, until=options.until,
            details=(log_drivers.details_prefix(lc.type, lc.config, c.log_info())
                     if options.details else None))
        tail = None if options.tail is not None and options.tail < 0 else options.tail
        try:
            reader = await asyncio.to_thread(LogReader, path, tail)
        finally:
            if path != c.log_path:
                os.unlink(path)  # the copy stays open in the reader
        return cls(containers, c, options, reader, selection)

    async def batches(self) -> AsyncGenerator[LogBatch, None]:
        """The past (from `tail` back), then, when following a running container, what
        it writes until it stops or `until` passes."""
        while (chunk := await asyncio.to_thread(self._reader.read)) is not None:
            yield LogBatch(chunk, self._selection)
        c = self._container
        if not (self._options.follow and c.state.running):
            return
        live = self._containers.live.get(c.id)
        until = self._selection.until
        while True:
            exited = live is None or live.exited.is_set() or not c.state.running
            chunk = await asyncio.to_thread(self._reader.follow)
            if chunk:
                yield LogBatch(chunk, self._selection)
            if exited or (until and time.time_ns() > until):
                return
            with contextlib.suppress(TimeoutError):
                assert live is not None
                await asyncio.wait_for(live.exited.wait(), FOLLOW_INTERVAL)

    def close(self) -> None:
        self._reader.close()


async def _plugin_log_copy(containers: ContainerManager, c: Container) -> str:
    """What a log driver plugin kept (LogDriver.ReadLogs), copied into a json-file the
    reader opens; "" when the plugin cannot read logs back. It is read as it was when
    asked: following a plugin's log is not done."""
    assert containers.log_plugins is not None
    data = await containers.log_plugins.read_logs(c.host_config.log_config.type, c.log_info())
    if data is None:
        return ""
    fd, path = tempfile.mkstemp(prefix="plugin-logs-", dir=os.path.join(containers.data_root, c.id))
    with os.fdopen(fd, "wb") as f:
        await asyncio.to_thread(f.write, data)
    return path


async def logged_output(containers: ContainerManager, c: Container,
                        stdout: bool, stderr: bool) -> AsyncGenerator[LogBatch, None]:
    """What the container has logged so far, read as `docker logs` reads it (every file
    the driver keeps, rotated and compressed ones too): attach's `logs=1`, which dockerd
    replays through the log driver's reader. Nothing when the driver keeps no file."""
    if not c.log_path or not (stdout or stderr):
        return
    stream = await LogStream.open(containers, c, LogOptions(stdout=stdout, stderr=stderr))
    try:
        async for batch in stream.batches():
            yield batch
    finally:
        stream.close()
