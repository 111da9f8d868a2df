"""A userland TCP proxy for published ports, where the kernel's DNAT cannot serve.

Published ports go through nftables DNAT (firewall.py). That cannot carry a connection
made over IPv6 to a container that has only an IPv4 address (there is no NAT64), so for
a port published on all addresses berthd also listens on [::]:PORT itself and relays
each connection to the container, as Docker's docker-proxy does for every port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
REFUSED_RETRIES = 40  # x REFUSED_BACKOFF: a refused upstream is tried again for about 2 s
REFUSED_BACKOFF = 0.05


class TcpProxy:
    def __init__(self, sock: socket.socket, target_host: str, target_port: int) -> None:
        self.sock = sock
        self.target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.sock.listen(128)
        self.sock.setblocking(False)
        self._server = await asyncio.start_server(self._serve, sock=self.sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The container's side. Refused, it is tried again for a moment: the proxy
        accepts as soon as the port is published, before the container's server may
        listen, and the client of a refused connection should see what an IPv4 client
        sees through DNAT at that moment (a wait, then its retry), not an empty reply."""
        for _ in range(REFUSED_RETRIES):
            try:
                return await asyncio.open_connection(*self.target)
            except ConnectionRefusedError:
                await asyncio.sleep(REFUSED_BACKOFF)
        return await asyncio.open_connection(*self.target)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(self._connect_upstream(), 10)
            except (OSError, TimeoutError) as e:
                log.debug("proxy to %s:%d: %s", *self.target, e)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        pass
