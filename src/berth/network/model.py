"""The records of container networking, and what is asked of the controller and given back.

Records: networks, endpoints and published ports, plain dataclasses kept as JSON
(networks in the network store, a container's endpoints and ports in the container's
record); the API layer renders Docker's JSON from them.

Requests and results: a sandbox (a container's network namespace) is asked for with a
`SandboxRequest` (one `EndpointSpec` per network, the ports to publish) and comes back
as a `Sandbox` (the namespace, one `EndpointResult` per network, the published ports).
The controller never sees a container record; the container side builds the request
from its record and writes the result into it.
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
    ipam_config: bool = False  # IPAMConfig was sent, even empty: inspect shows {} then, not null
    link_local_ips: list[str] = field(default_factory=list)  # IPAMConfig.LinkLocalIPs, as sent


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

    def assign(self, result: EndpointResult) -> None:
        """What the controller gave this attachment, kept in the record while it runs."""
        self.network_id = result.network_id
        self.endpoint_id, self.ifname, self.host_ifname, self.mac = (
            result.endpoint_id, result.ifname, result.host_ifname, result.mac)
        self.ipv4, self.ipv4_prefixlen, self.gateway = result.ipv4, result.ipv4_prefixlen, result.gateway
        self.ipv6, self.ipv6_prefixlen, self.ipv6_gateway = result.ipv6, result.ipv6_prefixlen, result.ipv6_gateway

    def result(self) -> EndpointResult | None:
        """What the controller gave this attachment; None when it holds nothing (not running)."""
        if not (self.endpoint_id or self.ifname or self.host_ifname or self.ipv4 or self.ipv6):
            return None
        return EndpointResult(self.network_id, self.endpoint_id, self.ifname, self.host_ifname, self.mac,
                              self.ipv4, self.ipv4_prefixlen, self.gateway,
                              self.ipv6, self.ipv6_prefixlen, self.ipv6_gateway,
                              tuple(self.request.link_local_ips))


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


# -- requests to the controller, and its results --------------------------------------------------


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint asked for: the network (as the container names it, and its ID, empty
    when not known yet) and the user's wishes (addresses, aliases, MAC, links)."""

    network: str
    network_id: str = ""
    request: EndpointRequest = field(default_factory=EndpointRequest)


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint as made: the interface inside the sandbox (and its host side, if the
    driver made one), its addresses, gateways and MAC."""

    network_id: str
    endpoint_id: str
    ifname: str  # "eth0", inside the sandbox
    host_ifname: str = ""  # the veth's host end; "" when the driver made none (macvlan)
    mac: str = ""
    ipv4: str = ""
    ipv4_prefixlen: int = 0
    gateway: str = ""
    ipv6: str = ""
    ipv6_prefixlen: int = 0
    ipv6_gateway: str = ""
    link_local: tuple[str, ...] = ()  # link-local addresses on the interface besides (/16, /64)


@dataclass(frozen=True)
class PortRequest:
    """The ports to publish: the user's bindings ("80/tcp" -> bindings), and with
    publish-all (-P) the image's exposed ports on ephemeral host ports."""

    bindings: dict[str, list[PortBinding]] = field(default_factory=dict)
    publish_all: bool = False
    exposed: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxRequest:
    """A container's network namespace, asked for: who it is (its name and hostname are
    names in the embedded DNS), its endpoints in order (the first one that can gets the
    default route), its ports and its nameservers."""

    container_id: str
    name: str = ""
    hostname: str = ""
    network_mode: str = "bridge"  # "bridge" or a network's name; "host", "none", "container:ID": no sandbox
    endpoints: tuple[EndpointSpec, ...] = ()
    ports: PortRequest = field(default_factory=PortRequest)
    dns: tuple[str, ...] = ()  # its own nameservers (--dns): the embedded DNS forwards to them
    links: tuple[str, ...] = ()  # legacy links ("name:alias") on the default bridge


@dataclass
class Sandbox:
    """A container's network namespace as made: the namespace's file (the runtime joins
    it by path), its endpoints by network name, and its published ports."""

    container_id: str
    key: str = ""
    networks: dict[str, EndpointResult] = field(default_factory=dict)
    ports: list[PublishedPort] = field(default_factory=list)
