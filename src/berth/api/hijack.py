"""Taking over an HTTP connection for attach and exec (`Upgrade: tcp`, 101), and
pumping a client's stdio to and from a container's process.

After the 101 response the connection carries raw bytes both ways. aiohttp does not
hand connections over, so we duplicate the socket: our own asyncio streams read and
write the duplicate while aiohttp's transport is paused; when the stream ends, both
close. The client's half-close (stdin EOF) reaches us as EOF on the reader.

`pump` copies between a client (a hijacked connection or a websocket) and the shim's
stream; with a terminal it watches the client's input for the detach keys, as dockerd
does, and ends the attach, not the process, when they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from collections.abc import Awaitable, Callable

from aiohttp import web

from berth.api import versions
from berth.api.server import HIJACKED, server_header
from berth.errors import InvalidParameter
from berth.stdstream import DetachKeysError, EscapeScanner, FrameDecoder, parse_detach_keys

RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


def stream_type(request: web.Request, tty: bool, hijacked: bool = True) -> str:
    """The Content-Type of a logs, attach or exec stream, as dockerd gives it: multiplexed
    when there is no tty, for clients of API 1.42 and later, and for a hijack only when
    it is an upgrade (a plain 200 is always called raw)."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    if tty or (hijacked and not upgrade) or not versions.client_at_least(request, versions.MULTIPLEXED_STREAM_TYPE):
        return RAW
    return MULTIPLEXED


async def hijack(request: web.Request, content_type: str, *, head_read_first: bool = False
                 ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, web.StreamResponse]:
    """The connection, its head written. `head_read_first`: wait (a moment at most) for
    the client to have read it, when something follows at once (attach's `logs=1`)."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    tail = bytes(getattr(request.protocol, "_message_tail", b"") or b"")
    transport.pause_reading()
    request[HIJACKED] = True
    head = ("HTTP/1.1 101 UPGRADED\r\n" if upgrade else "HTTP/1.1 200 OK\r\n")
    head += f"Content-Type: {content_type}\r\nApi-Version: 1.51\r\nServer: {server_header()}\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    head += "\r\n"
    dup: socket.socket = sock.dup()
    dup.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=dup) if dup.family == socket.AF_UNIX \
        else await asyncio.open_connection(sock=dup)
    if tail:
        reader.feed_data(tail)
    writer.write(head.encode())
    await writer.drain()
    if head_read_first and dup.family == socket.AF_UNIX:
        await _until_read(dup)
    response = web.StreamResponse()
    response.force_close()
    return reader, writer, response


async def _until_read(sock: socket.socket, limit: float = 1.0) -> None:
    """Wait (a moment at most) for the client to read the response's head. A client
    that reads the head through a buffer and then the socket itself (docker-py) loses
    whatever came in the same read: the logs of `logs=1`.
    On a UNIX socket the bytes the peer has not read yet are counted (SIOCOUTQ)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    buf = struct.pack("i", 0)
    try:
        while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf))[0] > 0:
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.0005)
    except OSError:
        return


async def finish(request: web.Request, writer: asyncio.StreamWriter) -> web.StreamResponse:
    """Close our side; aiohttp's own transport is closed without writing anything more."""
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp must not write a response on this connection


def detach_keys(spec: str, message: str) -> bytes:
    """The bytes of a client's detach keys ("" for ctrl-p ctrl-q); `message` (with {}
    for the keys) is dockerd's error for keys that do not parse."""
    try:
        return parse_detach_keys(spec) if spec else b""
    except DetachKeysError:
        raise InvalidParameter(message.format(spec)) from None


async def pump(read_client: Callable[[], Awaitable[bytes]], write_client: Callable[[bytes], Awaitable[None]],
               shim_r: asyncio.StreamReader, shim_w: asyncio.StreamWriter,
               escape: EscapeScanner | None = None, input_end_ends: bool = False) -> bool:
    """Copy the client's input to the shim and the output back until the output ends;
    with `escape` (a terminal's attach) also until the client types the detach keys:
    then the shim's stream is closed (the process goes on) and the answer is True.

    The end of the client's input is passed on as a half-close (the shim closes the
    process's stdin if it is StdinOnce's); with `input_end_ends` it ends the attach as
    well, as dockerd ends one with a terminal (or without StdinOnce) when its client's
    input ends: a client that detached by itself (the docker CLI) and went away."""

    async def upstream() -> bool:
        try:
            while True:
                data = await read_client()
                if not data:
                    break
                detach = False
                if escape is not None:
                    data, detach = escape.feed(data)
                if data:
                    shim_w.write(data)
                    await shim_w.drain()
                if detach:
                    return True
            if shim_w.can_write_eof():
                shim_w.write_eof()
        except (ConnectionError, OSError):
            pass
        return False

    async def downstream() -> None:
        while True:
            data = await shim_r.read(65536)
            if not data:
                break
            await write_client(data)

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    detached = False
    try:
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if up.done():
            detached = up.result()
            if not detached and not input_end_ends:
                await down  # input ended: the output goes on to its end
        if down.done():
            down.result()  # a client gone away ends the copy with its error
    finally:
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        shim_w.close()
    return detached


def stream_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                  ) -> tuple[Callable[[], Awaitable[bytes]], Callable[[bytes], Awaitable[None]]]:
    """`pump`'s two ends for a hijacked connection."""

    async def read() -> bytes:
        return await reader.read(65536)

    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return read, write


class WebsocketClient:
    """A websocket client's ends (`/attach/ws`), as dockerd serves it: every message the
    client sends, text or binary, is input; output goes out unframed (stdout and stderr
    alike), one message per write, binary (text for API versions before 1.28)."""

    def __init__(self, ws: web.WebSocketResponse, binary: bool) -> None:
        self.ws = ws
        self.opcode = web.WSMsgType.BINARY if binary else web.WSMsgType.TEXT

    async def read(self) -> bytes:
        msg = await self.ws.receive()
        if msg.type in (web.WSMsgType.BINARY, web.WSMsgType.TEXT):
            data = msg.data
            return data if isinstance(data, bytes) else data.encode()
        return b""  # closed, closing or broken: the end of input

    async def send(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the websocket is closed")
        if data:
            await self.ws.send_frame(data, self.opcode)

    def output_writer(self, framed: bool) -> Callable[[bytes], Awaitable[None]]:
        """`pump`'s writer of the shim's output; `framed`: it comes in Docker's frames
        (no terminal), whose payloads are sent."""
        if not framed:
            return self.send
        decoder = FrameDecoder()

        async def write(data: bytes) -> None:
            for _, payload in decoder.feed(data):
                await self.send(payload)

        return write
