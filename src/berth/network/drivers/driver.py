"""The network driver interface, and what every driver is given to work with.

A driver makes a network's host side (a bridge and its rules, nothing at all for
macvlan); makes an endpoint's link and deletes it; puts the endpoint into a sandbox (a
container's network namespace: join) and takes it out again (leave); and programs
external connectivity (published ports) for an endpoint. Addresses come from the controller's IPAM, names of records
from the controller: a driver sees one network and one endpoint at a time, never a
container, and keeps no records (what it needs again is in the network's record or in
the endpoint it is handed).

`scope` is "local" (the network exists on this host only) or "swarm" (one network
across a cluster, its record kept in the cluster store: overlay).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from berth.network import netlink
from berth.network.model import (
    HOST_BINDING_OPTION,
    EndpointResult,
    Network,
    PortRequest,
    PublishedPort,
)
from berth.network.ports import PortMapper

if TYPE_CHECKING:
    from berth.network.firewall import BridgeNetwork, Firewall

Scope = Literal["local", "swarm"]


@dataclass
class HostNetworking:
    """The host's networking, shared by the drivers: the netlink thread, berth's
    firewall (None when berthd runs with it off, or before start) and the ports held
    (through the same firewall: the controller sets both at start)."""

    links: netlink.HostLinks = field(default_factory=netlink.HostLinks)
    firewall: Firewall | None = None
    ports: PortMapper = field(default_factory=PortMapper)


class NetworkDriver(Protocol):
    name: str  # as a network's Driver field names it: "bridge", "macvlan", …
    scope: Scope

    def check_create(self, options: dict[str, str]) -> None:
        """Before anything is made for a new network: refuses what this driver never makes."""
        ...

    async def create_network(self, n: Network) -> None:
        """Checks the network's options, and makes its host side (sets `n.interface`).
        Either it is all made, or nothing is left behind and an error is raised."""
        ...

    async def restore_network(self, n: Network) -> None:
        """At start-up: puts back what a reboot (or anyone) took from the host side."""
        ...

    async def delete_network(self, n: Network) -> None:
        """Removes the host side of a network that has no endpoints left."""
        ...

    def firewall_rules(self, n: Network) -> BridgeNetwork | None:
        """The network's own rules in berth's firewall (None: it has none), so that they
        can be put back whole after a firewall reload."""
        ...

    async def create_endpoint(self, n: Network, ep: EndpointResult) -> EndpointResult:
        """Makes the endpoint's link, on the host under the name `link_name(ep)` until it
        joins a sandbox. Returns the endpoint with what the driver chose (the name of a
        host side that stays, if any). On failure nothing of it is left."""
        ...

    async def delete_endpoint(self, n: Network, ep: EndpointResult, *, sandbox_gone: bool = False) -> None:
        """Removes what of the endpoint is on the host (its host side, or the link that
        never joined); what is in a sandbox goes with the sandbox. With `sandbox_gone`
        (its namespace was just deleted), what the kernel takes down with it — a veth's
        host end, with its peer — is left to the kernel, which does it in a batch rather
        than one link at a time."""
        ...

    async def join(self, n: Network, sandbox: str, ep: EndpointResult, default_route: bool) -> None:
        """Moves the endpoint's link into the namespace at path `sandbox` and sets it up
        there: its name, MAC, addresses, and the default route through its gateways
        when asked."""
        ...

    async def leave(self, n: Network, sandbox: str, ep: EndpointResult) -> None:
        """Takes the endpoint's interface out of a sandbox that lives on (disconnect)."""
        ...

    async def program_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: PortRequest) -> list[PublishedPort]:
        """Publishes the ports asked for on the host, to this endpoint. All or nothing."""
        ...

    async def adopt_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        """berthd restarted while these ports were published: holds them again."""
        ...

    async def restore_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: list[PublishedPort]) -> None:
        """The ports' firewall rules back, after a firewall reload."""
        ...

    async def revoke_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        """Unpublishes the ports (nothing is left of them on the host)."""
        ...


def link_name(ep: EndpointResult) -> str:
    """The name of an endpoint's link on the host between create_endpoint and join."""
    return "vt" + ep.endpoint_id[:12]


async def plug_in(host: HostNetworking, sandbox: str, ep: EndpointResult, default_route: bool) -> None:
    """The endpoint's link, made on the host as `link_name(ep)`, moved into the sandbox
    and set up there as its interface (name, MAC, addresses, routes)."""
    temp = link_name(ep)
    addresses = [netlink.Address(a, p) for a, p in ((ep.ipv4, ep.ipv4_prefixlen), (ep.ipv6, ep.ipv6_prefixlen)) if a]
    addresses += [netlink.Address(a, 64 if ":" in a else 16) for a in ep.link_local]  # libnetwork's masks
    gateways = [g for g in (ep.gateway, ep.ipv6_gateway) if g] if default_route else []
    await asyncio.wrap_future(host.links.call(lambda ipr: netlink.move_to_netns(ipr, temp, sandbox)))
    await asyncio.to_thread(netlink.configure_inside, sandbox, temp, ep.ifname, ep.mac, addresses, gateways)


async def delete_link(host: HostNetworking, name: str) -> None:
    await asyncio.wrap_future(host.links.call(lambda ipr: netlink.delete_link(ipr, name)))


async def gone_with_namespace(host: HostNetworking, name: str, within: float = 2.0) -> bool:
    """Whether the host link `name` (a veth whose peer was in a namespace just deleted)
    has gone with it within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    delay = 0.002
    while await asyncio.wrap_future(host.links.call(lambda ipr: netlink.link_exists(ipr, name))):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


class LinkDriver:
    """What the drivers that give an endpoint a link of the host's (bridge's veth,
    macvlan's sub-interface) do alike: join moves the link into the sandbox, leave
    deletes it there, and published ports are DNAT rules to the endpoint's address
    through the network's interface on the host."""

    def __init__(self, host: HostNetworking) -> None:
        self.host = host

    async def join(self, n: Network, sandbox: str, ep: EndpointResult, default_route: bool) -> None:
        await plug_in(self.host, sandbox, ep, default_route)

    async def leave(self, n: Network, sandbox: str, ep: EndpointResult) -> None:
        await asyncio.to_thread(netlink.delete_inside, sandbox, ep.ifname)

    async def program_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: PortRequest) -> list[PublishedPort]:
        return await self.host.ports.publish(ports, ep.ipv4, n.interface, n.options.get(HOST_BINDING_OPTION, ""))

    async def adopt_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        await self.host.ports.adopt(ports, ep.ipv4, n.interface)

    async def restore_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: list[PublishedPort]) -> None:
        await self.host.ports.restore_rules(ports, ep.ipv4, n.interface)

    async def revoke_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        await self.host.ports.unpublish(ports, ep.ipv4, n.interface)
