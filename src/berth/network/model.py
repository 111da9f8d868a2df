"""The records of container networking: networks, endpoints and published ports.

Plain dataclasses kept as JSON (networks in their own table, a container's endpoints
and ports in the container's record); the API layer renders Docker's JSON from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
MTU_OPTION = "com.docker.network.driver.mtu"
DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
HOST_BINDING_OPTION = "com.docker.network.bridge.host_binding_ipv4"
MACVLAN_PARENT_OPTION = "parent"
MACVLAN_MODE_OPTION = "macvlan_mode"


@dataclass
class SubnetConfig:
    subnet: str
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class Network:
    id: str
    name: str
    driver: str  # "bridge", "macvlan", "host", "null"
    created: str = ""
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ingress: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    subnets: list[SubnetConfig] = field(default_factory=list)
    ipam_state: dict[str, Any] = field(default_factory=dict)  # the allocator's document
    interface: str = ""  # the bridge (or macvlan parent) on the host

    @property
    def builtin(self) -> bool:
        return self.name in ("bridge", "host", "none")

    @property
    def user_defined(self) -> bool:
        """Docker's "user-defined network": embedded DNS, --ip, aliases."""
        return not self.builtin


@dataclass
class EndpointRequest:
    """What the user asked of a container's attachment to one network."""

    ipv4: str = ""
    ipv6: str = ""
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    mac: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)


@dataclass
class Endpoint:
    """A container's attachment to one network: asked for, and (while it runs) given."""

    network_id: str
    request: EndpointRequest = field(default_factory=EndpointRequest)
    endpoint_id: str = ""
    ipv4: str = ""  # "10.1.0.2"
    ipv4_prefixlen: int = 0
    gateway: str = ""
    ipv6: str = ""
    ipv6_prefixlen: int = 0
    ipv6_gateway: str = ""
    mac: str = ""
    host_ifname: str = ""
    ifname: str = ""

    def clear(self) -> None:
        """The container stopped: it holds no address any more."""
        self.endpoint_id = self.ipv4 = self.gateway = self.ipv6 = self.ipv6_gateway = ""
        self.mac = self.host_ifname = self.ifname = ""
        self.ipv4_prefixlen = self.ipv6_prefixlen = 0


@dataclass
class PortBinding:
    host_ip: str = ""
    host_port: str = ""


@dataclass
class PublishedPort:
    """One port actually published while the container runs."""

    proto: str
    container_port: int
    host_ip: str
    host_port: int
