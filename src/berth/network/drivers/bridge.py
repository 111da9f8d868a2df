"""The bridge driver: a Linux bridge per network, a veth pair per endpoint.

A network is a bridge holding its subnets' gateway addresses, plus its rules in berth's
firewall (NAT, isolation, inter-container traffic); an endpoint is a veth pair, one end
a port of the bridge, the other the container's interface. Published ports are DNAT
rules to the endpoint's address (the shared port mapper). Makes nothing but links,
addresses, sysctls and firewall rules; keeps no records.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from berth.errors import BerthError, Conflict, InvalidParameter, SystemError_
from berth.network import ipam, netlink
from berth.network.drivers.driver import (
    HostNetworking,
    LinkDriver,
    Scope,
    delete_link,
    gone_with_namespace,
    link_name,
)
from berth.network.model import (
    BRIDGE_NAME_OPTION,
    ICC_OPTION,
    MASQUERADE_OPTION,
    MTU_OPTION,
    EndpointResult,
    Network,
)

if TYPE_CHECKING:
    from berth.network.firewall import BridgeNetwork


class BridgeDriver(LinkDriver):
    name = "bridge"
    scope: Scope = "local"

    def __init__(self, host: HostNetworking, networks: Callable[[], Iterable[Network]]) -> None:
        super().__init__(host)
        self._networks = networks  # every network known, for bridge names already taken

    def check_create(self, options: dict[str, str]) -> None:
        pass

    async def create_network(self, n: Network) -> None:
        n.interface = n.options.get(BRIDGE_NAME_OPTION) or f"br-{n.id[:12]}"
        if any(o.interface == n.interface and o.id != n.id for o in self._networks()):
            raise Conflict(f"bridge name {n.interface} is already used by another network")
        if len(n.interface) > 15:
            raise InvalidParameter(f"bridge name {n.interface} is longer than 15 characters")
        await self._bring_up(n, fresh=True)

    async def restore_network(self, n: Network) -> None:
        await self._bring_up(n)

    async def _bring_up(self, n: Network, fresh: bool = False) -> None:
        addresses = [netlink.Address(s.gateway, ipam.prefix_len(s.subnet)) for s in n.subnets if s.gateway]
        mtu = int(n.options.get(MTU_OPTION) or 0)
        try:
            created = await asyncio.wrap_future(
                self.host.links.call(lambda ipr: netlink.ensure_bridge(ipr, n.interface, addresses, mtu)))
        except BerthError:
            raise
        except Exception as e:  # noqa: BLE001 - netlink's errors
            raise SystemError_(f"failed to set up bridge {n.interface}: {e}") from None
        try:
            rules = self.firewall_rules(n)
            if self.host.firewall is not None and rules is not None:
                await asyncio.to_thread(self.host.firewall.add_network, rules)
        except BaseException:
            if created or fresh:
                await delete_link(self.host, n.interface)
            raise
        await asyncio.to_thread(netlink.set_sysctl, "net/ipv4/ip_forward", "1")

    async def delete_network(self, n: Network) -> None:
        if self.host.firewall is not None:
            with contextlib.suppress(BerthError):
                await asyncio.to_thread(self.host.firewall.remove_network, n.interface)
        await delete_link(self.host, n.interface)

    def firewall_rules(self, n: Network) -> BridgeNetwork | None:
        from berth.network.firewall import BridgeNetwork

        return BridgeNetwork(
            n.interface, tuple(ipaddress.ip_network(s.subnet, strict=False) for s in n.subnets),
            internal=n.internal, masquerade=n.options.get(MASQUERADE_OPTION, "true") != "false",
            icc=n.options.get(ICC_OPTION, "true") != "false")

    async def create_endpoint(self, n: Network, ep: EndpointResult) -> EndpointResult:
        ep = replace(ep, host_ifname="veth" + secrets.token_hex(4)[:7])
        mtu = int(n.options.get(MTU_OPTION) or 0)
        try:
            await asyncio.wrap_future(self.host.links.call(
                lambda ipr: netlink.create_veth(ipr, ep.host_ifname, link_name(ep), n.interface, mtu)))
        except BaseException:
            await self.delete_endpoint(n, ep)
            raise
        return ep

    async def delete_endpoint(self, n: Network, ep: EndpointResult, *, sandbox_gone: bool = False) -> None:
        if sandbox_gone and ep.ifname and ep.host_ifname:
            # the peer was in the sandbox: the pair goes with its namespace, in a batch of
            # the kernel's; wait for that (containers stopping together wait together)
            # rather than delete the links one at a time, and only then say it is done
            if await gone_with_namespace(self.host, ep.host_ifname):
                return
        if ep.host_ifname:
            await delete_link(self.host, ep.host_ifname)  # its peer goes with it, wherever it is
