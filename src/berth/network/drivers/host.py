"""The host driver: the one `host` network, whose containers share the host's namespace.

There is nothing to make: a container on it gets no sandbox and no endpoint (the
runtime keeps it in the host's network namespace), so the endpoint operations are never
called for it; if they were, that is a bug, and they say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from berth.errors import Forbidden, SystemError_
from berth.network.drivers.driver import Scope
from berth.network.model import EndpointResult, Network, PortRequest, PublishedPort

if TYPE_CHECKING:
    from berth.network.firewall import BridgeNetwork


class NoEndpoints:
    """A driver of one built-in network and no endpoints (host, null)."""

    name = ""
    scope: Scope = "local"

    def check_create(self, options: dict[str, str]) -> None:
        raise Forbidden(f"only one instance of \"{self.name}\" network is allowed")

    async def create_network(self, n: Network) -> None:
        self.check_create(n.options)

    async def restore_network(self, n: Network) -> None:
        pass

    async def delete_network(self, n: Network) -> None:
        pass

    def firewall_rules(self, n: Network) -> BridgeNetwork | None:
        return None

    def _none(self) -> SystemError_:
        return SystemError_(f"the {self.name} driver has no endpoints")

    async def create_endpoint(self, n: Network, ep: EndpointResult) -> EndpointResult:
        raise self._none()

    async def delete_endpoint(self, n: Network, ep: EndpointResult, *, sandbox_gone: bool = False) -> None:
        pass

    async def join(self, n: Network, sandbox: str, ep: EndpointResult, default_route: bool) -> None:
        raise self._none()

    async def leave(self, n: Network, sandbox: str, ep: EndpointResult) -> None:
        raise self._none()

    async def program_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: PortRequest) -> list[PublishedPort]:
        raise self._none()

    async def adopt_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        pass

    async def restore_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: list[PublishedPort]) -> None:
        pass

    async def revoke_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        pass


class HostDriver(NoEndpoints):
    name = "host"
