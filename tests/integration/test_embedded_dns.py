"""The embedded DNS server on the real kernel: 127.0.0.11:53 inside a network namespace.

Each test makes a private named namespace ("berthdns-<random>", deleted however the test
ends), attaches an EmbeddedDns to it, and asks from inside with a small client run under
`ip netns exec` (and busybox nslookup). Forwarded names go to a fake upstream server the
test runs on 127.0.0.1 in the host namespace, on a port of its own.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from berth.network import dns
from berth.network.resolver import EmbeddedDns

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

CONTAINER = "c1"
SHORT_ID = "0123456789ab"
NAMES: dict[tuple[str, int], list[str]] = {
    ("web", dns.TYPE_A): ["10.0.0.2"],
    ("web", dns.TYPE_AAAA): [],
    ("self", dns.TYPE_A): ["10.0.0.9"],
    (SHORT_ID, dns.TYPE_A): ["10.0.0.9"],
    ("db.mynet", dns.TYPE_A): ["10.0.0.3"],
    ("2.0.0.10.in-addr.arpa", dns.TYPE_PTR): ["web.mynet"],
}
OTHER_NETWORK_NAMES = {("elsewhere", dns.TYPE_A): ["10.9.0.2"]}  # only container c2 sees it


def lookup(container_id: str, name: str, qtype: int) -> list[str] | None:
    table = NAMES if container_id == CONTAINER else OTHER_NETWORK_NAMES
    return table.get((name, qtype))


# what runs inside the namespace: one query, the reply as JSON on stdout
CLIENT = r"""
import json, random, socket, struct, sys
from berth.network import dns
name, qtype, transport = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qid = random.randrange(65536)
if transport == "garbage":
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\xff" * 11, b"\x00" * 12, b"\x12\x34\x01\x00\x00\x01" + b"\xc0\x0c" * 40,
                     bytes(range(256)) * 4, dns.build_query(name, qtype, 1)[:-3]):
            s.sendto(junk, ("127.0.0.11", 53))
    with socket.create_connection(("127.0.0.11", 53), timeout=5) as s:
        s.sendall(b"\xff\xff" + b"\x00" * 100)
    print(json.dumps({"sent": True}))
    sys.exit(0)
query = dns.build_query(name, qtype, qid)
if transport == "tcp":
    with socket.create_connection(("127.0.0.11", 53), timeout=10) as s:
        s.sendall(struct.pack(">H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        reply = data[2:]
else:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(query, ("127.0.0.11", 53))
        reply = s.recv(65536)
m = dns.parse_message(reply)
print(json.dumps({"id_ok": m.header.id == qid, "rcode": m.header.rcode, "tc": m.header.truncated,
                  "ra": m.header.recursion_available, "aa": m.header.authoritative,
                  "answers": [r.value for r in m.answers], "ttls": [r.ttl for r in m.answers],
                  "question": m.questions[0].name if m.questions else None}))
"""


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    async def run(self, *argv: str, timeout: float = 30) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0 or argv[0] == "busybox", err.decode()
        return out.decode()

    async def ask(self, name: str, qtype: int = dns.TYPE_A, transport: str = "udp") -> dict[str, Any]:
        out = await self.run(sys.executable, "-c", CLIENT, name, str(qtype), transport)
        result: dict[str, Any] = json.loads(out)
        return result


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = Netns(f"berthdns-{secrets.token_hex(4)}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns.name], check=True)
        assert not os.path.exists(ns.path)


@dataclass
class FakeUpstream:
    """A DNS server on 127.0.0.1 (host namespace), UDP and TCP on one port.

    example.test: 192.0.2.7; big.test: TC over UDP, 20 addresses over TCP; slow.test: no
    reply ever; fail.test: SERVFAIL; anything else: NXDOMAIN."""

    port: int = 0
    asked: list[tuple[str, str]] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def reply(self, data: bytes, transport: str) -> bytes | None:
        query = dns.parse_query(data)
        name = query.question.name
        self.asked.append((transport, name))
        tcp = transport == "tcp"
        if name == "example.test":
            return dns.answer_addresses(query, ["192.0.2.7"], tcp=tcp)
        if name == "big.test":
            if not tcp:
                return dns.truncated_reply(query)
            return dns.answer_addresses(query, [f"192.0.2.{i}" for i in range(1, 21)], tcp=True)
        if name == "slow.test":
            return None
        if name == "fail.test":
            return dns.servfail(query)
        return dns.nxdomain(query)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                reply = upstream.reply(data, "udp")
                if reply is not None:
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.reply(await reader.readexactly(length), "tcp")
                if reply is None:
                    await self._released.wait()
                    return
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
            finally:
                writer.close()

        # one port for both: the kernel picks a free UDP port, whose TCP twin may be some
        # client connection's local port just then (EADDRINUSE): then pick another
        for attempt in range(20):
            self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(serve_tcp, "127.0.0.1", self.port)
                return
            except OSError as e:
                self._udp.close()
                if e.errno != errno.EADDRINUSE or attempt == 19:
                    raise

    async def stop(self) -> None:
        self._released.set()
        await asyncio.sleep(0)
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def run_with_server(
    netns: Netns,
    body: Callable[[EmbeddedDns, FakeUpstream], Awaitable[None]],
    *,
    upstreams: Callable[[FakeUpstream], list[str]] = lambda up: [f"127.0.0.1:{up.port}"],
    max_inflight: int = 1024,
) -> None:
    async def main() -> None:
        upstream = FakeUpstream()
        await upstream.start()
        server = EmbeddedDns(lookup, lambda: upstreams(upstream), timeout=1.5,
                             max_inflight=max_inflight)
        try:
            await server.attach(CONTAINER, netns.path)
            await body(server, upstream)
        finally:
            await server.close()
            await upstream.stop()

    asyncio.run(main())


def test_own_names_resolve_over_udp_and_tcp(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        for transport in ("udp", "tcp"):
            web = await netns.ask("web", transport=transport)
            assert web["answers"] == ["10.0.0.2"] and web["rcode"] == dns.RCODE_NOERROR
            assert web["id_ok"] and web["ra"] and not web["aa"] and web["ttls"] == [600]
        assert (await netns.ask("WEB"))["answers"] == ["10.0.0.2"]
        assert (await netns.ask("web."))["answers"] == ["10.0.0.2"]
        assert (await netns.ask("self"))["answers"] == ["10.0.0.9"]
        assert (await netns.ask(SHORT_ID))["answers"] == ["10.0.0.9"]
        assert (await netns.ask("db.mynet"))["answers"] == ["10.0.0.3"]
        no_v6 = await netns.ask("web", dns.TYPE_AAAA)
        assert no_v6["rcode"] == dns.RCODE_NOERROR and no_v6["answers"] == []
        ptr = await netns.ask("2.0.0.10.in-addr.arpa", dns.TYPE_PTR)
        assert ptr["answers"] == ["web.mynet"]
        assert upstream.asked == []  # berth's own names never leave the host

    run_with_server(netns, body)


def test_busybox_nslookup(netns: Netns) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("needs busybox")

    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        out = await netns.run("busybox", "nslookup", "web", "127.0.0.11")
        assert "10.0.0.2" in out, out
        out = await netns.run("busybox", "nslookup", "example.test", "127.0.0.11")
        assert "192.0.2.7" in out, out

    run_with_server(netns, body)


def test_other_names_are_forwarded_from_the_host_namespace(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        answer = await netns.ask("example.test")
        assert answer["answers"] == ["192.0.2.7"] and answer["id_ok"]
        assert ("udp", "example.test") in upstream.asked
        over_tcp = await netns.ask("example.test", transport="tcp")
        assert over_tcp["answers"] == ["192.0.2.7"] and ("tcp", "example.test") in upstream.asked
        # names of containers on networks c1 is not attached to go upstream like any other
        assert (await netns.ask("elsewhere"))["rcode"] == dns.RCODE_NXDOMAIN
        assert ("udp", "elsewhere") in upstream.asked
        assert (await netns.ask("missing.test"))["rcode"] == dns.RCODE_NXDOMAIN
        # a PTR berth does not own is forwarded too
        assert (await netns.ask("7.2.0.192.in-addr.arpa", dns.TYPE_PTR))["rcode"] == dns.RCODE_NXDOMAIN

    run_with_server(netns, body)


def test_truncated_udp_reply_is_retried_over_tcp(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        big = await netns.ask("big.test")
        assert not big["tc"] and len(big["answers"]) == 20
        assert upstream.asked.count(("udp", "big.test")) == 1
        assert upstream.asked.count(("tcp", "big.test")) == 1

    run_with_server(netns, body)


def test_failing_upstreams_are_skipped_and_none_left_is_servfail(netns: Netns) -> None:
    dead = _closed_port()

    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        assert (await netns.ask("example.test"))["answers"] == ["192.0.2.7"]
        assert (await netns.ask("fail.test"))["rcode"] == dns.RCODE_SERVFAIL

    run_with_server(netns, body, upstreams=lambda up: [f"127.0.0.1:{dead}", "not an address",
                                                       f"127.0.0.1:{up.port}"])


def test_no_upstream_is_servfail(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        for transport in ("udp", "tcp"):
            answer = await netns.ask("unknown", transport=transport)
            assert answer["rcode"] == dns.RCODE_SERVFAIL and answer["question"] == "unknown"
        assert (await netns.ask("web"))["answers"] == ["10.0.0.2"]

    run_with_server(netns, body, upstreams=lambda up: [])


def test_a_slow_upstream_blocks_nothing_else(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        loop = asyncio.get_running_loop()
        slow = asyncio.ensure_future(netns.ask("slow.test"))
        await asyncio.sleep(0.3)
        started = loop.time()
        quick = await asyncio.gather(netns.ask("web"), netns.ask("example.test"),
                                     netns.ask("example.test", transport="tcp"))
        assert [q["answers"] for q in quick] == [["10.0.0.2"], ["192.0.2.7"], ["192.0.2.7"]]
        assert loop.time() - started < 1.4  # the slow one is still waiting for its 1.5 s
        assert (await slow)["rcode"] == dns.RCODE_SERVFAIL

    run_with_server(netns, body)


def test_forwarded_queries_in_flight_are_bounded(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        slow = asyncio.ensure_future(netns.ask("slow.test"))
        await asyncio.sleep(0.5)
        assert (await netns.ask("example.test"))["rcode"] == dns.RCODE_REFUSED
        assert (await netns.ask("web"))["answers"] == ["10.0.0.2"]  # own names need no place
        assert (await slow)["rcode"] == dns.RCODE_SERVFAIL
        assert (await netns.ask("example.test"))["answers"] == ["192.0.2.7"]  # the place is back

    run_with_server(netns, body, max_inflight=1)


def test_detach_cancels_queries_in_flight(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        slow = asyncio.ensure_future(netns.run(sys.executable, "-c", CLIENT, "slow.test", "1", "tcp"))
        await asyncio.sleep(0.5)
        await asyncio.wait_for(server.detach(CONTAINER), 1)
        with pytest.raises(AssertionError, match="0 bytes"):  # closed without a reply
            await slow
        assert server._inflight == 0

    run_with_server(netns, body)


def test_hostile_messages_do_not_hurt_the_server(netns: Netns) -> None:
    async def body(server: EmbeddedDns, upstream: FakeUpstream) -> None:
        await netns.ask("web", transport="garbage")
        for transport in ("udp", "tcp"):
            assert (await netns.ask("web", transport=transport))["answers"] == ["10.0.0.2"]

    run_with_server(netns, body)


def test_detach_closes_the_listeners_and_lo_is_brought_up(netns: Netns) -> None:
    async def main() -> None:
        server = EmbeddedDns(lookup, lambda: [])
        await server.attach(CONTAINER, netns.path)
        listening = await netns.run("ss", "-Hlnu", "sport = :53") + await netns.run("ss", "-Hlnt", "sport = :53")
        assert listening.count("127.0.0.11:53") == 2
        assert "UP" in await netns.run("ip", "-br", "link", "show", "lo")
        await server.detach(CONTAINER)
        await server.detach(CONTAINER)  # a no-op now
        listening = await netns.run("ss", "-Hlnu", "sport = :53") + await netns.run("ss", "-Hlnt", "sport = :53")
        assert "127.0.0.11:53" not in listening
        await server.attach(CONTAINER, netns.path)  # and again, after a restart
        assert (await netns.ask("web"))["answers"] == ["10.0.0.2"]
        await server.close()

    asyncio.run(main())
