"""The macvlan driver: endpoints are macvlan links on a parent interface of the host.

A network is only its record: the parent (`-o parent=IFACE`) must exist, nothing is
made on the host until an endpoint joins. An endpoint is a macvlan link on the parent,
moved into the sandbox (deleting the sandbox deletes it). Published ports, as berth has
always done for them, are DNAT rules to the endpoint's address through the parent.
Keeps no records.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from berth.errors import InvalidParameter
from berth.network import netlink
from berth.network.drivers.driver import (
    LinkDriver,
    Scope,
    delete_link,
    link_name,
)
from berth.network.model import (
    MACVLAN_MODE_OPTION,
    MACVLAN_PARENT_OPTION,
    EndpointResult,
    Network,
)

if TYPE_CHECKING:
    from berth.network.firewall import BridgeNetwork

MODES = ("bridge", "private", "vepa", "passthru")


class MacvlanDriver(LinkDriver):
    name = "macvlan"
    scope: Scope = "local"

    def check_create(self, options: dict[str, str]) -> None:
        pass

    async def create_network(self, n: Network) -> None:
        parent = n.options.get(MACVLAN_PARENT_OPTION, "")
        if not parent:
            raise InvalidParameter("macvlan: the parent interface is required (-o parent=IFACE)")
        mode = n.options.get(MACVLAN_MODE_OPTION, "bridge")
        if mode not in MODES:
            raise InvalidParameter(f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan driver default")
        exists = await asyncio.wrap_future(self.host.links.call(lambda ipr: netlink.link_exists(ipr, parent)))
        if not exists:
            raise InvalidParameter(f"-o parent interface was not found on the host: {parent}")
        n.interface = parent

    async def restore_network(self, n: Network) -> None:
        pass

    async def delete_network(self, n: Network) -> None:
        pass

    def firewall_rules(self, n: Network) -> BridgeNetwork | None:
        return None

    async def create_endpoint(self, n: Network, ep: EndpointResult) -> EndpointResult:
        mode = n.options.get(MACVLAN_MODE_OPTION, "bridge")
        try:
            await asyncio.wrap_future(self.host.links.call(
                lambda ipr: netlink.create_macvlan(ipr, link_name(ep), n.interface, mode)))
        except BaseException:
            await self.delete_endpoint(n, ep)
            raise
        return ep

    async def delete_endpoint(self, n: Network, ep: EndpointResult, *, sandbox_gone: bool = False) -> None:
        if sandbox_gone and ep.ifname:
            return
        # once joined, the link lives in the sandbox only and goes with it; before, it is
        # on the host under its temporary name
        await delete_link(self.host, link_name(ep))
