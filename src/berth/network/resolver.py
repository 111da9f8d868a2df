"""The embedded DNS server: Docker's 127.0.0.11, inside each container's network namespace.

A container on a user-defined network gets `nameserver 127.0.0.11` and `options
ndots:0` in its resolv.conf (written elsewhere). `EmbeddedDns.attach` binds UDP and TCP
127.0.0.11:53 in that container's namespace; every query that arrives there is answered
from berth's own names through the `lookup` callback, or relayed upstream as libnetwork
relays it: to the container's own nameservers (`--dns`), dialled from its namespace
(127.0.0.1 there is the container's loopback), or when it has none to the host's,
dialled from the daemon's (host) namespace.

This module owns the sockets, the per-container listeners, and forwarding: at most
three upstreams tried in order, each with a 4 s budget (libnetwork's maxExtDNS and
extIOTimeout); the client's transport is used upstream, and a truncated UDP reply is
asked again over TCP; SERVFAIL and REFUSED move on to the next upstream; none left, or
none configured, is SERVFAIL. At most `max_inflight` forwarded queries are in flight
(libnetwork's 1024); past that a query gets REFUSED at once, so a flood cannot pile up
tasks. Everything about the bytes is in `berth.network.dns`.

It must not decide which names exist (the `lookup` callback does), write resolv.conf,
or touch firewall rules. The namespace switch happens only in a thread made for it,
never in the event loop's thread nor in a pooled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.errors import Conflict
from berth.network import dns
from berth.runtime import linux

log = logging.getLogger(__name__)

Lookup = Callable[[str, str, int], list[str] | None]
Socks = tuple[socket.socket, ...]

DEFAULT_ADDRESS = "127.0.0.11"
DNS_PORT = 53
UPSTREAM_TIMEOUT = 4.0  # libnetwork's extIOTimeout, per upstream tried
MAX_UPSTREAMS = 3  # libnetwork's maxExtDNS
MAX_INFLIGHT = 1024  # libnetwork's maxConcurrent forwarded queries
MAX_TCP_CONNECTIONS = 128  # per container
TCP_IDLE_TIMEOUT = 10.0  # a TCP client that sends nothing for this long is dropped


@dataclass(frozen=True)
class Upstream:
    address: str
    port: int = DNS_PORT

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


def parse_upstream(text: str) -> Upstream:
    """"1.1.1.1", "1.1.1.1:5353", "2606:4700::1111" or "[::1]:5353"; ValueError otherwise."""
    text = text.strip()
    port = DNS_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid DNS server address {text!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    if not 0 < port < 65536:
        raise ValueError(f"invalid port in DNS server address {text!r}")
    return Upstream(str(ipaddress.ip_address(host)), port)


@dataclass
class _Attachment:
    container_id: str
    netns_path: str
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    tcp_writers: set[asyncio.StreamWriter] = field(default_factory=set)
    closing: bool = False


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDns, container_id: str):
        self.server = server
        self.container_id = container_id

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.server._on_datagram(self.container_id, data, addr)
        except Exception:
            log.exception("embedded DNS: unexpected failure on a UDP query for %s", self.container_id)

    def error_received(self, exc: Exception) -> None:
        log.debug("embedded DNS: UDP error for %s: %s", self.container_id, exc)


class EmbeddedDns:
    """One server for all containers; one pair of listeners per attached container.

    `lookup(container_id, name, qtype)` answers for berth's names as the container
    sees them (the networks it is attached to): addresses for TYPE_A/TYPE_AAAA, names
    for TYPE_PTR (asked as "4.3.2.1.in-addr.arpa"), None when the name is not berth's.
    It runs on the event loop, so it must be quick and must not block.
    `upstreams()` returns the host's nameservers ("ip" or "ip:port"), read on every
    forwarded query so that changes to them apply at once. `own_upstreams(container_id)`
    returns the container's own nameservers, None when it has none (the host's serve it).
    """

    def __init__(
        self,
        lookup: Lookup,
        upstreams: Callable[[], list[str]],
        *,
        own_upstreams: Callable[[str], list[str] | None] = lambda container_id: None,
        address: str = DEFAULT_ADDRESS,
        port: int = DNS_PORT,
        timeout: float = UPSTREAM_TIMEOUT,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self._lookup = lookup
        self._upstreams = upstreams
        self._own_upstreams = own_upstreams
        self._address = address
        self._port = port
        self._timeout = timeout
        self._max_inflight = max_inflight
        self._inflight = 0
        self._attachments: dict[str, _Attachment] = {}

    @property
    def address(self) -> str:
        return self._address

    async def attach(self, container_id: str, netns_path: str) -> None:
        """Listen on the resolver address, UDP and TCP, in the network namespace at
        `netns_path` (its lo is brought up if it is down)."""
        if container_id in self._attachments:
            raise Conflict(f"embedded DNS is already attached to container {container_id}")
        udp_sock, tcp_sock = await _bind_in_netns_thread(netns_path, self._address, self._port)
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self, container_id), sock=udp_sock
            )
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        try:
            tcp = await asyncio.start_server(
                lambda r, w: self._serve_tcp(container_id, r, w), sock=tcp_sock
            )
        except BaseException:
            udp.close()
            tcp_sock.close()
            raise
        if container_id in self._attachments:  # attached twice at once: the first one won
            udp.close()
            tcp.close()
            raise Conflict(f"embedded DNS is already attached to container {container_id}")
        self._attachments[container_id] = _Attachment(container_id, netns_path, udp, tcp)

    async def detach(self, container_id: str) -> None:
        """Close that container's listeners, connections and queries; a no-op when it
        is not attached."""
        attachment = self._attachments.pop(container_id, None)
        if attachment is None:
            return
        attachment.closing = True
        attachment.udp.close()
        attachment.tcp.close()
        for writer in list(attachment.tcp_writers):
            writer.close()
        tasks = list(attachment.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await attachment.tcp.wait_closed()

    async def close(self) -> None:
        for container_id in list(self._attachments):
            await self.detach(container_id)

    # --- answering ---------------------------------------------------------------

    def _lookup_for(self, container_id: str) -> dns.NameLookup:
        def lookup(name: str, qtype: int) -> list[str] | None:
            found = self._lookup(container_id, name, qtype)
            if found is None:
                return None
            found = list(found)
            random.shuffle(found)  # round robin over replicas, as libnetwork shuffles
            return found

        return lookup

    def _answer_now(self, container_id: str, data: bytes, tcp: bool) -> bytes | dns.Query | None:
        """The reply when it can be given at once, None when nothing is to be sent, or
        the query when it must be forwarded: then it holds one of the `max_inflight`
        places, which the caller must give back."""
        try:
            query = dns.parse_query(data)
        except dns.DnsFormatError as err:
            log.debug("embedded DNS: refused a query for %s: %s", container_id, err)
            return err.reply
        try:
            local = dns.answer_locally(query, self._lookup_for(container_id), tcp=tcp)
        except Exception:
            log.exception("embedded DNS: lookup of %r failed", query.question.name)
            return dns.servfail(query)
        if local is not None:
            return local
        if self._inflight >= self._max_inflight:
            log.warning("embedded DNS: more than %d concurrent forwarded queries", self._max_inflight)
            return dns.refused(query)
        self._inflight += 1  # released by whoever forwards it, however that ends
        return query

    def _on_datagram(self, container_id: str, data: bytes, addr: tuple[str | int, ...]) -> None:
        attachment = self._attachments.get(container_id)
        if attachment is None or attachment.closing:
            return
        outcome = self._answer_now(container_id, data, tcp=False)
        if isinstance(outcome, bytes):
            attachment.udp.sendto(outcome, addr)
        elif isinstance(outcome, dns.Query):
            task = asyncio.get_running_loop().create_task(
                self._forward_and_send(attachment, outcome, data, addr)
            )
            attachment.tasks.add(task)
            task.add_done_callback(self._forward_done)
            task.add_done_callback(attachment.tasks.discard)

    def _forward_done(self, task: asyncio.Task[None]) -> None:
        self._inflight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("embedded DNS: forwarding failed", exc_info=task.exception())

    async def _forward_and_send(self, attachment: _Attachment, query: dns.Query, data: bytes,
                                addr: tuple[str | int, ...]) -> None:
        reply = await self._forward(attachment, query, data, tcp=False)
        if not attachment.closing:
            attachment.udp.sendto(reply, addr)

    async def _serve_tcp(self, container_id: str, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        attachment = self._attachments.get(container_id)
        task = asyncio.current_task()
        if (attachment is None or attachment.closing or task is None
                or len(attachment.tcp_writers) >= MAX_TCP_CONNECTIONS):
            writer.close()
            return
        attachment.tcp_writers.add(writer)
        attachment.tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    prefix = await reader.readexactly(2)
                    (length,) = struct.unpack(">H", prefix)
                    data = await reader.readexactly(length)
                outcome = self._answer_now(container_id, data, tcp=True)
                if isinstance(outcome, dns.Query):
                    try:
                        outcome = await self._forward(attachment, outcome, data, tcp=True)
                    finally:
                        self._inflight -= 1
                if outcome is None:
                    continue
                writer.write(struct.pack(">H", len(outcome)) + outcome)
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("embedded DNS: TCP connection for %s failed", container_id)
        finally:
            attachment.tcp_writers.discard(writer)
            attachment.tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    # --- forwarding --------------------------------------------------------------

    def _configured_upstreams(self, attachment: _Attachment) -> tuple[list[Upstream], str | None]:
        """The servers to try for the attached container, and the namespace to dial them
        from (None: the host's)."""
        netns: str | None = None
        try:
            own = self._own_upstreams(attachment.container_id)
            if own is not None:
                listed, netns = list(own), attachment.netns_path
            else:
                listed = list(self._upstreams())
        except Exception:
            log.exception("embedded DNS: could not read the upstream DNS servers")
            return [], None
        servers: list[Upstream] = []
        for text in listed:
            try:
                server = parse_upstream(text)
            except ValueError:
                log.warning("embedded DNS: ignoring upstream DNS server %r", text)
                continue
            if server.address == self._address and server.port == self._port:
                continue  # Docker never forwards to itself
            servers.append(server)
        return servers[:MAX_UPSTREAMS], netns

    async def _forward(self, attachment: _Attachment, query: dns.Query, data: bytes, tcp: bool) -> bytes:
        """The upstream's reply under the client's ID, or SERVFAIL when none gives one."""
        servers, netns = self._configured_upstreams(attachment)
        for server in servers:
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await self._exchange(server, query, data, tcp, netns)
            except (OSError, TimeoutError, dns.DnsFormatError) as err:
                log.debug("embedded DNS: upstream %s failed for %r: %s",
                          server.address, query.question.name, err)
                continue
            rcode = dns.parse_header(reply).rcode
            if rcode in (dns.RCODE_SERVFAIL, dns.RCODE_REFUSED):
                continue
            reply = dns.with_id(reply, query.header.id)
            if len(reply) > query.max_reply_size(tcp):
                return dns.truncated_reply(query)
            return reply
        return dns.servfail(query)

    async def _exchange(self, server: Upstream, query: dns.Query, data: bytes, tcp: bool,
                        netns: str | None) -> bytes:
        if tcp:
            return await _exchange_tcp(server, query.question, data, netns)
        reply = await _exchange_udp(server, query.question, data, netns)
        if dns.parse_header(reply).truncated:
            try:
                full = await _exchange_tcp(server, query.question, data, netns)
            except (OSError, dns.DnsFormatError):
                return reply  # the client gets TC and may try TCP itself
            if len(full) <= query.max_reply_size(False):
                return full
        return reply


async def _upstream_socket(server: Upstream, kind: socket.SocketKind, netns: str | None) -> socket.socket:
    """A non-blocking socket to reach `server` with, made in the namespace at `netns`
    (the host's when None)."""
    if netns is None:
        sock = socket.socket(server.family, kind)
    else:
        (sock,) = await _in_netns_thread(netns, lambda: (socket.socket(server.family, kind),))
    sock.setblocking(False)
    return sock


async def _exchange_udp(server: Upstream, question: dns.Question, data: bytes, netns: str | None) -> bytes:
    """One query over UDP, from the namespace at `netns` (the host's when None); replies
    that are not to it (another ID, another question, garbage) are ignored, so a spoofer
    must guess 32 bits."""
    loop = asyncio.get_running_loop()
    id = secrets.randbits(16)
    with await _upstream_socket(server, socket.SOCK_DGRAM, netns) as sock:
        sock.connect((server.address, server.port))  # the kernel drops other sources
        await loop.sock_sendall(sock, dns.with_id(data, id))
        while True:
            reply = await loop.sock_recv(sock, dns.MAX_MESSAGE_SIZE)
            try:
                dns.check_upstream_reply(reply, id, question)
            except dns.DnsFormatError:
                continue
            return reply


async def _exchange_tcp(server: Upstream, question: dns.Question, data: bytes, netns: str | None) -> bytes:
    id = secrets.randbits(16)
    sock = await _upstream_socket(server, socket.SOCK_STREAM, netns)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (server.address, server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        query = dns.with_id(data, id)
        writer.write(struct.pack(">H", len(query)) + query)
        await writer.drain()
        try:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            reply = await reader.readexactly(length)
        except asyncio.IncompleteReadError as err:
            raise ConnectionError("upstream closed the TCP connection mid-reply") from err
        dns.check_upstream_reply(reply, id, question)
        return reply
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# --- sockets in another network namespace -------------------------------------------------


def _in_netns(netns_path: str, make: Callable[[], Socks]) -> Socks:
    """Enter the namespace (this thread only), make the sockets, and come back.

    Runs in a thread of its own: if coming back failed, the thread ends there and no
    other work can run in the wrong namespace.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(target, linux.CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            return make()
        finally:
            linux.setns(own, linux.CLONE_NEWNET)
    finally:
        os.close(own)


def _bind_here(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    linux.interface_up("lo")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.bind((address, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


async def _bind_in_netns_thread(
    netns_path: str, address: str, port: int
) -> tuple[socket.socket, socket.socket]:
    udp, tcp = await _in_netns_thread(netns_path, lambda: _bind_here(address, port))
    return udp, tcp


async def _in_netns_thread(netns_path: str, make: Callable[[], Socks]) -> Socks:
    """`make()` run in the namespace at `netns_path`, in a thread made for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Socks] = loop.create_future()

    def deliver(result: Socks | None, error: BaseException | None) -> None:
        if future.done():  # the caller gave up: nobody will close these
            for sock in result or ():
                sock.close()
        elif error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)

    def run() -> None:
        try:
            result = _in_netns(netns_path, make)
        except BaseException as err:
            loop.call_soon_threadsafe(deliver, None, err)
        else:
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=run, name="berth-dns-netns", daemon=True).start()
    return await future
