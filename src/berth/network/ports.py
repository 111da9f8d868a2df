"""Published ports: host ports held, DNAT rules in berth's firewall, and the IPv6 side.

A published port is a DNAT rule (firewall.py) plus a socket bound to the host port, so
that nobody else takes it while it is published (it never listens: the rules take the
traffic), plus, for TCP on every address, a userland relay on [::]:port for IPv6 clients
of an IPv4-only container. The drivers that program external connectivity (bridge,
macvlan) share one `PortMapper`, which knows nothing of networks or containers: it maps
host ports to an address behind an interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from typing import TYPE_CHECKING, cast

from berth.errors import BerthError, SystemError_
from berth.network.model import PortRequest, PublishedPort
from berth.network.proxy import TcpProxy

if TYPE_CHECKING:
    from berth.network.firewall import Firewall, Proto

log = logging.getLogger(__name__)

EPHEMERAL_PORTS = (32768, 60999)


class PortMapper:
    def __init__(self, firewall: Firewall | None = None, *, userland_proxy: bool = True) -> None:
        self.firewall = firewall  # None: berthd runs without its firewall, ports are held only
        # dockerd's --userland-proxy: without it, nothing relays the IPv6 side of a port
        # published on all addresses to an IPv4-only container (the kernel cannot NAT it)
        self.userland_proxy = userland_proxy
        self._held: dict[tuple[str, str, int], socket.socket] = {}  # (proto, ip, port)
        self._proxies: dict[tuple[str, str, int], TcpProxy] = {}  # IPv6 sides of all-address ports

    async def close(self) -> None:
        for proxy in self._proxies.values():
            await proxy.close()
        self._proxies.clear()
        for sock in self._held.values():
            sock.close()
        self._held.clear()

    async def publish(self, req: PortRequest, target: str, interface: str, default_ip: str = "") -> list[PublishedPort]:
        """Every port `req` asks for, mapped to `target` (an address behind `interface`).
        All or nothing: what was published is taken back when one fails."""
        wanted: dict[str, list[tuple[str, str]]] = {
            k: [(b.host_ip, b.host_port) for b in v] for k, v in req.bindings.items()}
        if req.publish_all:
            for port in req.exposed:
                wanted.setdefault(port if "/" in port else f"{port}/tcp", [("", "")])
        out: list[PublishedPort] = []
        try:
            for key, bindings in sorted(wanted.items()):
                port_text, _, proto = key.partition("/")
                proto = proto or "tcp"
                container_port = int(port_text)
                for host_ip, host_port in bindings or [("", "")]:
                    host_ip = host_ip or default_ip
                    if host_ip in ("0.0.0.0", "::"):
                        host_ip = ""
                    low, _, high = (host_port or "").partition("-")
                    number = int(low) if low else 0
                    if high and int(high) != number:
                        number = self._pick_in_range(proto, host_ip, int(low), int(high))
                    elif number:
                        self._hold(proto, host_ip, number)
                    else:
                        number = self._free_ephemeral(proto, host_ip)
                    out.append(PublishedPort(proto, container_port, host_ip, number))
                    if self.firewall is not None:
                        await asyncio.to_thread(self.firewall.add_port, _proto(proto), host_ip, number, target,
                                                container_port, interface)
                    if not host_ip and proto == "tcp" and self.userland_proxy:
                        await self._proxy_ipv6(number, target, container_port)
        except BaseException:
            await self.unpublish(out, target, interface)
            raise
        return out

    async def unpublish(self, ports: list[PublishedPort], target: str, interface: str) -> None:
        for p in ports:
            if self.firewall is not None and target:
                with contextlib.suppress(BerthError):
                    await asyncio.to_thread(self.firewall.remove_port, _proto(p.proto), p.host_ip, p.host_port,
                                            target, p.container_port, interface)
            sock = self._held.pop((p.proto, p.host_ip, p.host_port), None)
            if sock is not None:
                sock.close()
            proxy = self._proxies.pop((p.proto, p.host_ip, p.host_port), None)
            if proxy is not None:
                await proxy.close()

    async def adopt(self, ports: list[PublishedPort], target: str, interface: str) -> None:
        """berthd restarted while these ports were published: hold them again, relay their
        IPv6 side, and put their rules back (the firewall may have been reloaded meanwhile)."""
        for p in ports:
            with contextlib.suppress(BerthError):
                self._hold(p.proto, p.host_ip, p.host_port)
            if target and not p.host_ip and p.proto == "tcp" and self.userland_proxy:
                await self._proxy_ipv6(p.host_port, target, p.container_port)
        await self.restore_rules(ports, target, interface)

    async def restore_rules(self, ports: list[PublishedPort], target: str, interface: str) -> None:
        """The ports' rules in the firewall again, as they were (adding a mapping that is
        there already does nothing)."""
        if self.firewall is None or not target:
            return
        for p in ports:
            try:
                await asyncio.to_thread(self.firewall.add_port, _proto(p.proto), p.host_ip, p.host_port, target,
                                        p.container_port, interface)
            except BerthError as e:
                log.error("port %s to %s: %s", p.host_port, target, e)

    def _hold(self, proto: str, host_ip: str, port: int) -> socket.socket:
        """A socket bound to the host port, so that nobody else takes it while it is
        published (it never listens: the DNAT rules take the traffic)."""
        where = f"{host_ip or '0.0.0.0'}:{port}"
        for (p, ip, n) in self._held:
            if p == proto and n == port and (ip == host_ip or not ip or not host_ip):
                raise SystemError_(f"driver failed programming external connectivity on endpoint: Bind for {where} "
                                   "failed: port is already allocated")
        family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        try:
            sock.bind((host_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError as e:
            sock.close()
            why = "bind: address already in use" if e.errno == 98 else f"bind: {(e.strerror or '').lower()}"
            raise SystemError_(f"driver failed programming external connectivity on endpoint: failed to bind port "
                               f"{where}/{proto}: Error starting userland proxy: listen {proto}"
                               f"{'6' if family == socket.AF_INET6 else '4'} {where}: {why}") from None
        self._held[(proto, host_ip, port)] = sock
        return sock

    def _free_ephemeral(self, proto: str, host_ip: str) -> int:
        low, high = EPHEMERAL_PORTS
        for _ in range(200):
            port = random.randint(low, high)
            if (proto, host_ip, port) in self._held:
                continue
            try:
                self._hold(proto, host_ip, port)
            except SystemError_:
                continue
            return port
        raise SystemError_("no port available in the ephemeral range")

    def _pick_in_range(self, proto: str, host_ip: str, low: int, high: int) -> int:
        for port in range(low, high + 1):
            try:
                self._hold(proto, host_ip, port)
            except SystemError_:
                continue
            return port
        raise SystemError_(f"driver failed programming external connectivity on endpoint: Bind for "
                           f"{host_ip or '0.0.0.0'}:{low}-{high} failed: port is already allocated")

    async def _proxy_ipv6(self, port: int, target: str, target_port: int) -> None:
        """[::]:port, relayed in userland: IPv6 clients of an IPv4-only container."""
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::", port))
        except OSError as e:
            sock.close()
            log.warning("no IPv6 side for published port %d: %s", port, e.strerror)
            return
        proxy = TcpProxy(sock, target, target_port)
        await proxy.start()
        self._proxies[("tcp", "", port)] = proxy


def _proto(proto: str) -> Proto:
    return cast("Proto", proto)
