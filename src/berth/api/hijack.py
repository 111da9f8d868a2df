"""Taking over an HTTP connection for attach and exec (`Upgrade: tcp`, 101).

After the 101 response the connection carries raw bytes both ways. aiohttp does not
hand connections over, so we duplicate the socket: our own asyncio streams read and
write the duplicate while aiohttp's transport is paused; when the stream ends, both
close. The client's half-close (stdin EOF) reaches us as EOF on the reader.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from berth.api import versions
from berth.api.server import server_header

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


async def hijack(request: web.Request, content_type: str
                 ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, web.StreamResponse]:
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    tail = bytes(getattr(request.protocol, "_message_tail", b"") or b"")
    transport.pause_reading()
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
    response = web.StreamResponse()
    response.force_close()
    return reader, writer, response


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
