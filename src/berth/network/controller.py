"""The network controller: networks, and each container's sandbox, endpoints and ports.

Docker's Container Network Model, single host. A network is a record (kept in a
`NetworkStore`) plus what its driver made on the host; the driver is picked by the
record's driver name (`drivers.Drivers`), and the controller never asks which one it
has. A running container has a sandbox (a network namespace, kept by a bind mount
under the exec root, joined by the runtime by path) with one endpoint per network, its
published ports and, on user-defined networks, the embedded DNS server at 127.0.0.11.

The controller works on requests and returns results (model.SandboxRequest ->
model.Sandbox, an endpoint request -> model.Endpoint): it never sees a container
record; the container side writes what it is given into its records. It remembers
the sandboxes it made (or adopted after a restart) while they live: their names and
addresses are what the embedded DNS answers, their ports what a firewall reload puts
back. Addresses are handed out at setup and given back at release, as Docker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from berth.errors import BerthError, Conflict, Forbidden, InvalidParameter, NotFound, SystemError_
from berth.network import ipam, netlink
from berth.network.drivers import Drivers, HostNetworking, NetworkDriver, local_drivers
from berth.network.drivers.driver import delete_link
from berth.network.model import (
    BRIDGE_NAME_OPTION,
    DEFAULT_BRIDGE_OPTION,
    ICC_OPTION,
    MASQUERADE_OPTION,
    MTU_OPTION,
    Endpoint,
    EndpointRequest,
    EndpointResult,
    EndpointSpec,
    Network,
    Sandbox,
    SandboxRequest,
    SubnetConfig,
)
from berth.network.ports import PortMapper
from berth.network.store import NetworkStore

if TYPE_CHECKING:
    from berth.network.firewall import LegacyLink

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "berth0"
FIREWALL_CHECK_INTERVAL = 5.0  # seconds between checks that berth's nftables rules are still there
BUILTIN = ("bridge", "host", "none")
NETWORK_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}


def _now() -> str:
    from berth.clock import now_rfc3339

    return now_rfc3339()


@dataclass
class LiveSandbox:
    """A sandbox the controller made (or adopted) and that still lives: what was asked
    (names, for the embedded DNS) and what was made. `id`, `name` and `networks` are
    what the network API shows of a container attached to a network."""

    request: SandboxRequest
    sandbox: Sandbox
    specs: list[EndpointSpec] = field(default_factory=list)  # as asked, and connected since

    @property
    def id(self) -> str:
        return self.request.container_id

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def networks(self) -> dict[str, EndpointResult]:
        return self.sandbox.networks


class NetworkController:
    def __init__(self, store: NetworkStore, exec_root: str, *, default_bridge: str = DEFAULT_BRIDGE,
                 firewall: bool = True, icc: bool = True, userland_proxy: bool = True) -> None:
        self.store = store
        self.netns_dir = os.path.join(exec_root, "netns")
        self.default_bridge = default_bridge
        self.icc = icc  # dockerd's --icc: the default bridge's enable_icc, set again at every start
        self.userland_proxy = userland_proxy
        self.host = HostNetworking()
        self.networks: dict[str, Network] = {}
        self.drivers: Drivers = local_drivers(self.host, lambda: self.networks.values())
        self._lock = asyncio.Lock()
        self._use_firewall = firewall
        self._fw_watch: asyncio.Task[None] | None = None
        self._dns: Any = None
        self._live: dict[str, LiveSandbox] = {}  # container id -> its sandbox, while it lives
        # IDs of the containers, running or not, whose configuration names a network (by
        # ID): a network they name is in use, for prune and the dangling filter
        self.named_by: Callable[[str], list[str]] = lambda network_id: []
        # (action, network, attributes): berthd's event log listens here
        self.on_event: Callable[[str, Network, dict[str, str]], None] = lambda *a: None
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)

    def _driver(self, n: Network) -> NetworkDriver:
        return self.drivers.get(n.driver)

    # -- start-up and shutdown ---------------------------------------------------------------

    async def start(self) -> None:
        """Load the records, make the built-in networks, and put every network's host side
        back (links and rules may be gone after a reboot)."""
        for n in self.store.load():
            self.networks[n.id] = n
        if self._use_firewall:
            from berth.network.firewall import Firewall

            self.host.firewall = Firewall()
            self.host.ports = PortMapper(self.host.firewall, userland_proxy=self.userland_proxy)
            await asyncio.to_thread(self.host.firewall.setup)
        default = self._by_name("bridge")
        if default is not None and self.default_bridge != "none" and default.interface != self.default_bridge:
            log.info("the default bridge is now %s (was %s)", self.default_bridge, default.interface)
            if self.host.firewall is not None:
                with contextlib.suppress(BerthError):
                    await asyncio.to_thread(self.host.firewall.remove_network, default.interface)
            default.interface = default.options[BRIDGE_NAME_OPTION] = self.default_bridge
            self._save(default)
        if self.default_bridge != "none" and default is None:
            await self._create_default_bridge()
        elif default is not None and default.options.get(ICC_OPTION) != _flag(self.icc):
            log.info("inter-container traffic on the default bridge: %s", "on" if self.icc else "off")
            default.options[ICC_OPTION] = _flag(self.icc)  # restore_network below rewrites its rules
            self._save(default)
        for name, driver in (("host", "host"), ("none", "null")):
            if self._by_name(name) is None:
                n = Network(secrets.token_hex(32), name, driver, _now())
                self._save(n)
        for n in list(self.networks.values()):
            try:
                await self._driver(n).restore_network(n)
            except BerthError as e:
                log.error("network %s: %s", n.name, e)
        if self.host.firewall is not None:
            await asyncio.to_thread(self.host.firewall.sync_docker_user)
            self._fw_watch = asyncio.create_task(self._watch_firewall())
        from berth.network.resolver import EmbeddedDns

        self._dns = EmbeddedDns(self._dns_lookup, _host_resolvers, own_upstreams=self._dns_upstreams)

    async def _watch_firewall(self) -> None:
        """Running containers' ports come back within a few seconds of a flush, not at
        the next container start (a check costs ~0.3 ms)."""
        while True:
            await asyncio.sleep(FIREWALL_CHECK_INTERVAL)
            try:
                await self.ensure_firewall()
            except Exception as e:  # noqa: BLE001  (logged; the next check tries again)
                log.error("putting berth's nftables rules back: %s", e)

    async def close(self) -> None:
        if self._fw_watch is not None:
            self._fw_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fw_watch
            self._fw_watch = None
        if self._dns is not None:
            await self._dns.close()
        await self.host.ports.close()
        self.host.links.close()

    # -- records ---------------------------------------------------------------------------

    def _save(self, n: Network) -> None:
        self.store.save(n)
        self.networks[n.id] = n

    def _by_name(self, name: str) -> Network | None:
        for n in self.networks.values():
            if n.name == name:
                return n
        return None

    def get(self, ref: str) -> Network:
        """By full ID, name, or unique ID prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        by_name = self._by_name(ref)
        if by_name is not None:
            return by_name
        matches = [n for nid, n in self.networks.items() if nid.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def all(self) -> list[Network]:
        return sorted(self.networks.values(), key=lambda n: n.created)

    def scope(self, n: Network) -> str:
        return self._driver(n).scope

    # -- creating and removing networks ----------------------------------------------------------

    async def _host_routes(self) -> list[Any]:
        return await asyncio.wrap_future(self.host.links.call(netlink.routed_networks))

    def _taken_subnets(self, skip: str = "") -> list[Any]:
        out = []
        for n in self.networks.values():
            if n.id == skip:
                continue
            for s in n.subnets:
                out.append(ipaddress.ip_network(s.subnet, strict=False))
        return out

    async def _create_default_bridge(self) -> None:
        routes = await self._host_routes()
        # the bridge's own addresses are routes too once it exists: reuse what it holds
        existing = await asyncio.wrap_future(
            self.host.links.call(lambda ipr: _bridge_subnets(ipr, self.default_bridge)))
        subnet = existing[0] if existing else ipam.choose_subnet(self._taken_subnets(), routes)
        plan = ipam.plan_subnets([SubnetConfig(str(subnet))], self._taken_subnets(), [], False)
        n = Network(secrets.token_hex(32), "bridge", "bridge", _now(),
                    options={BRIDGE_NAME_OPTION: self.default_bridge, DEFAULT_BRIDGE_OPTION: "true",
                             ICC_OPTION: _flag(self.icc), MASQUERADE_OPTION: "true", MTU_OPTION: "1500"},
                    subnets=plan, interface=self.default_bridge)
        n.ipam_state = ipam.Allocator(plan, serial=False).to_doc()
        self._save(n)

    async def create(self, name: str, driver: str = "bridge", *, internal: bool = False, attachable: bool = False,
                     enable_ipv6: bool = False, options: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None, ipam_driver: str = "default",
                     ipam_options: dict[str, str] | None = None, subnets: list[SubnetConfig] | None = None,
                     check_duplicate: bool = True) -> Network:
        driver = driver or "bridge"
        if not name:
            raise InvalidParameter("network name cannot be empty")
        if name in BUILTIN:
            raise Forbidden(f"operation is not permitted on predefined {name} network")
        d = self.drivers.get(driver)
        d.check_create(dict(options or {}))
        if ipam_driver not in ("", "default"):
            raise NotFound(f'could not find plugin {ipam_driver} in v1 plugin registry: plugin not found')
        await self.ensure_firewall()
        async with self._lock:
            if self._by_name(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            options = dict(options or {})
            routes = await self._host_routes()
            plan = ipam.plan_subnets(list(subnets or []), self._taken_subnets(), routes, enable_ipv6)
            n = Network(secrets.token_hex(32), name, driver, _now(), internal=internal, attachable=attachable,
                        enable_ipv6=enable_ipv6, options=options, labels=dict(labels or {}),
                        ipam_driver="default", ipam_options=dict(ipam_options or {}), subnets=plan)
            n.ipam_state = ipam.Allocator(plan, serial=False).to_doc()
            await d.create_network(n)
            try:
                self._save(n)
            except BaseException:
                await d.delete_network(n)
                raise
        self.on_event("create", n, {})
        return n

    async def ensure_firewall(self) -> None:
        """Put berth's nftables rules back if they are gone: `nft flush ruleset`, or a
        firewall service that reloads, removes them, and with them every network's NAT
        and isolation and every published port. They come back whole: the base chains,
        each network's rules, the live sandboxes' ports. Under the lock that network
        creation, removal and a sandbox's unpublishing hold, so nothing is put back that
        is being taken away."""
        fw = self.host.firewall
        if fw is None:
            return
        async with self._lock:
            rules = [(n, r) for n in self.networks.values() if (r := self._driver(n).firewall_rules(n)) is not None]
            if not await asyncio.to_thread(fw.missing, {r.bridge for _, r in rules}):
                return
            log.warning("berth's nftables rules were removed (a firewall reload?); putting them back")
            await asyncio.to_thread(fw.setup)
            for n, r in rules:
                try:
                    await asyncio.to_thread(fw.add_network, r)
                except BerthError as e:
                    log.error("network %s: %s", n.name, e)
            for live in list(self._live.values()):
                with contextlib.suppress(BerthError):
                    await self._program_links(live)
                primary = self._primary(live.sandbox)
                if primary is not None and live.sandbox.ports:
                    n, ep = primary
                    await self._driver(n).restore_external_connectivity(n, ep, live.sandbox.ports)

    def attached(self, n: Network) -> list[LiveSandbox]:
        """The live sandboxes with an endpoint on `n`."""
        return [live for live in self._live.values()
                if any(ep.network_id == n.id for ep in live.sandbox.networks.values())]

    def in_use(self, n: Network) -> bool:
        """A live sandbox has an endpoint on `n`, or a container (running or not) names it."""
        return bool(self.attached(n) or self.named_by(n.id))

    async def remove(self, ref: str) -> None:
        n = self.get(ref)
        if n.builtin:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            # as Docker: only running containers have endpoints; a stopped one that names
            # the network fails at its next start
            users = self.attached(n)
            if users:
                names = ", ".join(f'name:"{u.name}" id:"{u.id[:12]}"' for u in users)
                raise Forbidden(f"error while removing network: network {n.name} has active endpoints ({names})")
            await self._driver(n).delete_network(n)
            self.store.delete(n.id)
            del self.networks[n.id]
        self.on_event("destroy", n, {})

    async def prune(self, filters: dict[str, list[str]]) -> list[str]:
        gone = []
        for n in list(self.networks.values()):
            if n.builtin or self.in_use(n):
                continue
            if not all(_label_match(n.labels, x) for x in filters.get("label", [])):
                continue
            if any(_label_match(n.labels, x) for x in filters.get("label!", [])):
                continue
            if "until" in filters and not _before(n.created, filters["until"]):
                continue
            try:
                await self.remove(n.id)
            except BerthError as e:
                log.warning("network prune: %s: %s", n.name, e)
                continue
            gone.append(n.name)
        return gone

    def find(self, filters: dict[str, list[str]]) -> list[Network]:
        for key in filters:
            if key not in NETWORK_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        out = []
        for n in self.all():
            if "driver" in filters and n.driver not in filters["driver"]:
                continue
            if "id" in filters and not any(n.id.startswith(v) for v in filters["id"]):
                continue
            if "name" in filters and not any(v in n.name for v in filters["name"]):
                continue
            if "label" in filters and not all(_label_match(n.labels, v) for v in filters["label"]):
                continue
            if "scope" in filters and self.scope(n) not in filters["scope"]:
                continue
            if "type" in filters:
                for v in filters["type"]:
                    if v not in ("custom", "builtin"):
                        raise InvalidParameter(f"invalid filter: 'type'='{v}'")
                if ("builtin" if n.builtin else "custom") not in filters["type"]:
                    continue
            if "dangling" in filters:
                for v in filters["dangling"]:
                    if v.lower() not in ("true", "false", "1", "0"):
                        raise InvalidParameter(f"invalid value for filter 'dangling', must be 'true' (or '1'), "
                                               f"or 'false' (or '0'): {v}")
                want = {v.lower() in ("true", "1") for v in filters["dangling"]}
                if (not n.builtin and not self.in_use(n)) not in want:
                    continue
            out.append(n)
        return out

    # -- containers: checking at create -------------------------------------------------------------

    def plan_endpoints(self, network_mode: str, requests: dict[str, EndpointRequest]) -> dict[str, Endpoint]:
        """The networks a new container joins (by network name), checked as Docker checks them."""
        mode = network_mode or "bridge"
        if mode == "default":
            mode = "bridge"
        if mode.startswith("container:") or mode in ("host", "none"):
            for name in requests:
                if name not in (mode, "default"):
                    raise InvalidParameter("conflicting options: container cannot be connected to multiple "
                                           "networks with one of the networks in private (none) mode"
                                           if mode == "none" else
                                           "container sharing network namespace with another container or host "
                                           "cannot be connected to any other network")
            return {}
        out: dict[str, Endpoint] = {}
        names = [mode] + [n for n in requests if n not in (mode, "default")]
        for name in names:
            req = requests.get(name) or (requests.get("default") if name == mode else None) or EndpointRequest()
            n = self.get(name)
            if n.name in ("host", "none"):
                raise InvalidParameter("container cannot be disconnected from host network or connected to "
                                       "host network" if n.name == "host" else
                                       "conflicting options: container cannot be connected to multiple networks "
                                       "with one of the networks in private (none) mode")
            try:
                self._check_request(n, req)
            except InvalidParameter as e:  # named as the request names it, "default" too
                key = name if name in requests or "default" not in requests else "default"
                raise InvalidParameter(f"invalid config for network {key}: {e}") from None
            out[n.name] = Endpoint(n.id, req)
        return out

    def _check_request(self, n: Network, req: EndpointRequest) -> None:
        """dockerd's validateEndpointSettings: a bad MAC address is refused on its own,
        every other fault of the settings together, one per line."""
        errs: list[str] = []
        if (req.ipv4 or req.ipv6) and not n.user_defined:
            errs.append("user specified IP address is supported on user defined networks only")
        if req.aliases and not n.user_defined:
            errs.append("network-scoped alias is supported only for containers in user defined networks")
        for addr, version in ((req.ipv4, 4), (req.ipv6, 6)):
            if addr and not _is_address(addr, version):
                errs.append(f"invalid IPv{version} address: {addr}")
        for addr in req.link_local_ips:
            if not _is_address(addr):
                errs.append(f"invalid link-local IP address: {addr}")
        for addr, version in ((req.ipv4, 4), (req.ipv6, 6)):
            if addr and _is_address(addr, version):
                try:
                    ipam.Allocator.from_doc(n.ipam_state).check(addr)
                except InvalidParameter as e:
                    errs.append(str(e))
        if req.mac and parse_mac(req.mac) is None:
            raise InvalidParameter(f"invalid MAC address {req.mac}")
        if len(errs) == 1:
            raise InvalidParameter(f"invalid endpoint settings:\n{errs[0]}")
        if errs:
            raise InvalidParameter("invalid endpoint settings:\n* " + "\n* ".join(errs))

    # -- sandboxes: at start, connect, disconnect and exit ---------------------------------------------

    def netns_path(self, container_id: str) -> str:
        return os.path.join(self.netns_dir, container_id[:24])

    def _primary(self, sb: Sandbox) -> tuple[Network, EndpointResult] | None:
        """The endpoint published ports forward to: the first with an IPv4 address."""
        ep = next((ep for ep in sb.networks.values() if ep.ipv4), None)
        if ep is None or ep.network_id not in self.networks:
            return None
        return self.networks[ep.network_id], ep

    async def setup(self, req: SandboxRequest) -> Sandbox | None:
        """Before the runtime starts a container: its sandbox, endpoints, ports and DNS.
        None when it gets no sandbox of its own (host or none: the runtime keeps it in
        the host's namespace or makes a private one; container:…: the caller joins the
        other one's). On failure nothing of it is left."""
        mode = req.network_mode or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            return None
        await self.ensure_firewall()
        path = self.netns_path(req.container_id)
        await asyncio.to_thread(netlink.create_netns, path)
        sb = Sandbox(req.container_id, path)
        try:
            first = True
            for spec in req.endpoints:
                n = self.networks.get(spec.network_id) or self.get(spec.network)
                sb.networks[spec.network] = await self._join(sb, n, spec, default_route=first and not n.internal)
                first = False
            primary = self._primary(sb)
            if primary is not None:
                n, ep = primary
                try:
                    sb.ports = await self._driver(n).program_external_connectivity(n, ep, req.ports)
                except SystemError_ as e:  # dockerd names the endpoint: the container and the ID
                    raise SystemError_(str(e).replace(
                        "on endpoint:", f"on endpoint {req.name.lstrip('/')} ({ep.endpoint_id}):", 1)) from None
            if self._dns is not None and self._user_defined(sb):
                await self._dns.attach(req.container_id, path)
        except BaseException:
            await self.release(sb)
            raise
        self._live[req.container_id] = LiveSandbox(req, sb, list(req.endpoints))
        try:
            await self._program_links(self._live[req.container_id])
        except BaseException:
            await self.release(sb)
            raise
        return sb

    def _icc_off(self) -> bool:
        n = self._by_name("bridge")
        return n is not None and n.options.get(ICC_OPTION, "true") == "false"

    def _legacy_links(self, live: LiveSandbox) -> list[LegacyLink]:
        """The rules the sandbox's legacy links need on a default bridge without ICC, as
        libnetwork's bridge driver programs them at join: to the children it links to, and
        from the parents that link to it (a child that restarts has a new address)."""
        from berth.network.firewall import LegacyLink

        n = self._by_name("bridge")
        if n is None or n.options.get(ICC_OPTION, "true") != "false":
            return []
        own = next((ep for ep in live.sandbox.networks.values() if ep.network_id == n.id and ep.ipv4), None)
        if own is None:
            return []
        out = []
        for other in self._live.values():
            theirs = next((ep for ep in other.sandbox.networks.values() if ep.network_id == n.id and ep.ipv4), None)
            if other is live or theirs is None:
                continue
            if self._links_to(live, other):
                out.append(LegacyLink(n.interface, live.id, own.ipv4, other.id, theirs.ipv4,
                                      _linked_ports(other.request.ports.exposed)))
            if self._links_to(other, live):
                out.append(LegacyLink(n.interface, other.id, theirs.ipv4, live.id, own.ipv4,
                                      _linked_ports(live.request.ports.exposed)))
        return out

    @staticmethod
    def _links_to(parent: LiveSandbox, child: LiveSandbox) -> bool:
        for link in parent.request.links:
            target = link.partition(":")[0].lstrip("/")
            if target and (target == child.name.lstrip("/") or child.id.startswith(target)):
                return True
        return False

    async def _program_links(self, live: LiveSandbox) -> None:
        fw = self.host.firewall
        if fw is None:
            return
        for link in self._legacy_links(live):
            await asyncio.to_thread(fw.add_link, link)

    def _user_defined(self, sb: Sandbox) -> bool:
        return any(self.networks[ep.network_id].user_defined for ep in sb.networks.values()
                   if ep.network_id in self.networks)

    async def _join(self, sb: Sandbox, n: Network, spec: EndpointSpec, default_route: bool) -> EndpointResult:
        driver = self._driver(n)
        for addr in spec.request.link_local_ips:  # checked when made, as libnetwork's CreateEndpoint
            if not ipaddress.ip_address(addr).is_link_local:
                raise InvalidParameter(f"invalid link local IP address: {addr}")
        async with self._lock:
            alloc = ipam.Allocator.from_doc(n.ipam_state)
            ipv4 = alloc.allocate(4, spec.request.ipv4) if any(":" not in s.subnet for s in n.subnets) else ""
            ipv6 = ""
            if n.enable_ipv6 and any(":" in s.subnet for s in n.subnets):
                try:
                    ipv6 = alloc.allocate(6, spec.request.ipv6)
                except BaseException:
                    if ipv4:
                        alloc.release(ipv4)
                    raise
            n.ipam_state = alloc.to_doc()
            self._save(n)
        ipv4_prefixlen = ipv6_prefixlen = 0
        gateway = ipv6_gateway = ""
        for s in n.subnets:
            net = ipaddress.ip_network(s.subnet, strict=False)
            if ipv4 and ":" not in s.subnet and ipaddress.ip_address(ipv4) in net:
                ipv4_prefixlen, gateway = net.prefixlen, s.gateway
            if ipv6 and ":" in s.subnet and ipaddress.ip_address(ipv6) in net:
                ipv6_prefixlen, ipv6_gateway = net.prefixlen, s.gateway
        taken = {ep.ifname for ep in sb.networks.values() if ep.ifname}
        index = len(taken)
        while f"eth{index}" in taken:
            index += 1
        ep = EndpointResult(n.id, secrets.token_hex(32), f"eth{index}",
                            mac=parse_mac(spec.request.mac) or (_mac_of(ipv4) if ipv4 else _random_mac()),
                            ipv4=ipv4, ipv4_prefixlen=ipv4_prefixlen, gateway=gateway,
                            ipv6=ipv6, ipv6_prefixlen=ipv6_prefixlen, ipv6_gateway=ipv6_gateway,
                            link_local=tuple(str(ipaddress.ip_address(a)) for a in spec.request.link_local_ips))
        try:
            ep = await driver.create_endpoint(n, ep)
        except BaseException:
            await self._give_back(n, ep)
            raise
        try:
            await driver.join(n, sb.key, ep, default_route)
        except BaseException:
            await driver.delete_endpoint(n, ep)
            await self._give_back(n, ep)
            raise
        self.on_event("connect", n, {"container": sb.container_id})
        return ep

    async def _give_back(self, n: Network, ep: EndpointResult) -> None:
        async with self._lock:
            alloc = ipam.Allocator.from_doc(n.ipam_state)
            for a in (ep.ipv4, ep.ipv6):
                if a:
                    alloc.release(a)
            n.ipam_state = alloc.to_doc()
            self._save(n)

    async def release(self, sb: Sandbox) -> None:
        """After the container exited (or failed to start): everything setup made, undone."""
        self._live.pop(sb.container_id, None)
        if self.host.firewall is not None and self._icc_off():  # links have rules only then
            with contextlib.suppress(BerthError):
                await asyncio.to_thread(self.host.firewall.remove_links, sb.container_id)
        await self._unpublish(sb)
        if self._dns is not None:
            await self._dns.detach(sb.container_id)
        # The namespace first: the links in it, and their veth peers on the host, go with
        # it in one batch of the kernel's (one link at a time is ~15 ms each, in series).
        if sb.key:
            await asyncio.to_thread(netlink.delete_netns, sb.key)
        for ep in sb.networks.values():
            n = self.networks.get(ep.network_id)
            if n is not None:
                await self._driver(n).delete_endpoint(n, ep, sandbox_gone=bool(sb.key))
                await self._give_back(n, ep)
                if ep.ifname:
                    self.on_event("disconnect", n, {"container": sb.container_id})
            elif ep.host_ifname and not (sb.key and ep.ifname):  # its network is gone: what is left on the host
                await delete_link(self.host, ep.host_ifname)

    async def _unpublish(self, sb: Sandbox) -> None:
        if not sb.ports:
            return
        primary = self._primary(sb)
        async with self._lock:  # ensure_firewall must not put back what goes here
            if primary is not None:
                n, ep = primary
                await self._driver(n).revoke_external_connectivity(n, ep, sb.ports)
            else:  # nothing to forward to any more: the host ports only
                await self.host.ports.unpublish(sb.ports, "", "")

    async def readopt(self, req: SandboxRequest, sb: Sandbox) -> None:
        """berthd restarted while the container ran on: remember its sandbox, hold its
        ports (and put their rules back, in case the firewall was reloaded meanwhile) and
        serve its DNS again."""
        primary = self._primary(sb)
        if primary is not None:
            n, ep = primary
            await self._driver(n).adopt_external_connectivity(n, ep, sb.ports)
        else:
            await self.host.ports.adopt(sb.ports, "", "")
        self._live[req.container_id] = LiveSandbox(req, sb, list(req.endpoints))
        if sb.key and self._dns is not None and self._user_defined(sb):
            with contextlib.suppress(Exception):
                await self._dns.attach(req.container_id, sb.key)

    async def reconcile(self) -> list[str]:
        """At berthd's start, once the sandboxes of the containers that still run are
        adopted again (readopt): what a berthd killed part-way through a container's
        start or exit left of other sandboxes goes: namespaces in the exec root, veths
        on this daemon's bridges, addresses still handed out. What was removed, in
        words, for the log."""
        held = [live.sandbox for live in self._live.values()]
        keys = {sb.key for sb in held if sb.key}
        links = {ep.host_ifname for sb in held for ep in sb.networks.values() if ep.host_ifname}
        addresses: dict[str, set[str]] = {}
        for sb in held:
            for ep in sb.networks.values():
                addresses.setdefault(ep.network_id, set()).update(a for a in (ep.ipv4, ep.ipv6) if a)
        removed: list[str] = []
        for name in sorted(os.listdir(self.netns_dir)):
            path = os.path.join(self.netns_dir, name)
            if path not in keys:
                await asyncio.to_thread(netlink.delete_netns, path)
                removed.append(f"network namespace {name}")
        for n in list(self.networks.values()):
            if n.driver != "bridge" or not n.interface:
                continue
            bridge = n.interface

            def attached(ipr: Any, bridge: str = bridge) -> list[str]:
                return netlink.veths_on(ipr, bridge)

            found = await asyncio.wrap_future(self.host.links.call(attached))
            for link in found:
                if link not in links:
                    await delete_link(self.host, link)  # its peer goes with it
                    removed.append(f"veth {link} on {bridge}")
            async with self._lock:
                alloc = ipam.Allocator.from_doc(n.ipam_state)
                stray = [a for a in alloc.allocated() if a not in addresses.get(n.id, set())]
                if stray:
                    for a in stray:
                        alloc.release(a)
                    n.ipam_state = alloc.to_doc()
                    self._save(n)
                    removed.append(f"address{'es' if len(stray) > 1 else ''} {', '.join(stray)} of network {n.name}")
            if self.host.firewall is not None:
                fw = self.host.firewall
                with contextlib.suppress(BerthError):
                    if count := await asyncio.to_thread(fw.prune_links, bridge, set(self._live)):
                        removed.append(f"{count} link rule{'s' if count > 1 else ''} on {bridge}")
        return removed

    def rename(self, container_id: str, name: str) -> None:
        """The container is called `name` now (in the embedded DNS too)."""
        live = self._live.get(container_id)
        if live is not None:
            live.request = replace(live.request, name=name)

    async def connect(self, req: SandboxRequest, ref: str, wish: EndpointRequest) -> tuple[str, Endpoint]:
        """`docker network connect`: the container described by `req` (its endpoints so
        far) asks for one more, on network `ref`. Returns the network's name and the new
        endpoint, joined at once when the container's sandbox lives."""
        n = self.get(ref)
        mode = req.network_mode or ""
        if n.name in ("host", "none") or mode.startswith(("container:", "host", "none")):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network" if n.name not in ("none",) else
                            "container cannot be disconnected from host network or connected to host network")
        if any(s.network == n.name or s.network_id == n.id for s in req.endpoints):
            raise Forbidden(f"endpoint with name {req.name} already exists in network {n.name}")
        self._check_request(n, wish)
        out = Endpoint(n.id, wish)
        spec = EndpointSpec(n.name, n.id, wish)
        live = self._live.get(req.container_id)
        if live is not None:
            sb = live.sandbox
            default_route = not any(e.gateway for e in sb.networks.values()) and not n.internal
            ep = await self._join(sb, n, spec, default_route)
            sb.networks[n.name] = ep
            live.specs.append(spec)
            out.assign(ep)
            if n.user_defined and self._dns is not None:
                with contextlib.suppress(Conflict):  # served already, for another network
                    await self._dns.attach(req.container_id, sb.key)
        return n.name, out

    async def disconnect(self, req: SandboxRequest, ref: str, force: bool = False) -> str:
        """`docker network disconnect`: the name of the network the container described by
        `req` leaves (its interface is gone at once when its sandbox lives)."""
        n = self.get(ref)
        name = next((s.network for s in req.endpoints if s.network_id == n.id), None)
        if name is None:
            raise Forbidden(f"container {req.container_id} is not connected to network {n.name}")
        live = self._live.get(req.container_id)
        if live is not None:
            ep = live.sandbox.networks.get(name)
            if ep is not None and ep.ifname and live.sandbox.key:
                await self._driver(n).leave(n, live.sandbox.key, ep)
                await self._give_back(n, ep)
                self.on_event("disconnect", n, {"container": req.container_id})
            live.sandbox.networks.pop(name, None)
            live.specs = [s for s in live.specs if s.network != name]
        return name

    # -- names, for the embedded DNS ---------------------------------------------------

    def _dns_lookup(self, container_id: str, name: str, qtype: int) -> list[str] | None:
        asker = self._live.get(container_id)
        if asker is None:
            return None
        nets = {s.network_id for s in asker.specs if self.networks.get(s.network_id) and
                self.networks[s.network_id].user_defined}
        name = name.rstrip(".").lower()
        if qtype == 12:  # PTR
            return self._ptr(name, nets)
        for s in asker.specs:  # --link name:alias on a user network: the asker's own alias
            for link in s.request.links:
                target, _, alias = link.partition(":")
                if name == (alias or target).lower().lstrip("/"):
                    name = target.lower().lstrip("/")
        out: list[str] = []
        for live in self._live.values():
            for s in live.specs:
                if s.network_id not in nets:
                    continue
                names = {live.name.lower(), live.id[:12]} | {a.lower() for a in s.request.aliases}
                if live.request.hostname:  # on every user network, as its endpoint's DNSNames
                    names.add(live.request.hostname.lower())
                if name in names:
                    ep = live.sandbox.networks.get(s.network)
                    addr = (ep.ipv4 if qtype == 1 else ep.ipv6 if qtype == 28 else "") if ep is not None else ""
                    if addr:
                        out.append(addr)
                    elif qtype in (1, 28):
                        return []
        return out or None

    def _dns_upstreams(self, container_id: str) -> list[str] | None:
        """The container's own nameservers (--dns), which its queries the embedded DNS
        does not answer go to, as Docker's; None: it has none, the host's serve it."""
        live = self._live.get(container_id)
        return list(live.request.dns) if live is not None and live.request.dns else None

    def _ptr(self, name: str, nets: set[str]) -> list[str] | None:
        try:
            addr = _address_of_ptr(name)
        except ValueError:
            return None
        for live in self._live.values():
            for ep in live.sandbox.networks.values():
                if ep.network_id in nets and addr in (ep.ipv4, ep.ipv6):
                    n = self.networks[ep.network_id]
                    return [f"{live.name}.{n.name}"]
        return None


# -- helpers ------------------------------------------------------------------------------------


def _linked_ports(exposed: tuple[str, ...]) -> tuple[tuple[Literal["tcp", "udp"], int], ...]:
    """A child's exposed ports ("80/tcp", "53/udp") that a link opens; ranges and other
    protocols are left out."""
    out: list[tuple[Literal["tcp", "udp"], int]] = []
    for text in exposed:
        number, _, proto = text.partition("/")
        proto = proto or "tcp"
        if number.isdigit() and proto in ("tcp", "udp"):
            out.append(("tcp" if proto == "tcp" else "udp", int(number)))
    return tuple(out)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _bridge_subnets(ipr: Any, name: str) -> list[Any]:
    found = ipr.link_lookup(ifname=name)
    if not found:
        return []
    out = []
    for a in ipr.get_addr(index=found[0], family=2):
        out.append(ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False))
    return out


def _label_match(labels: dict[str, str], spec: str) -> bool:
    key, eq, value = spec.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _before(created: str, until: list[str]) -> bool:
    from berth import clock

    try:
        stamp = clock.parse_time(created) / 1e9
    except ValueError:
        return True
    for u in until:
        try:
            limit = float(u)
        except ValueError:
            try:
                limit = clock.parse_time(u) / 1e9
            except ValueError:
                raise InvalidParameter(f"invalid filter 'until={u}'") from None
        if stamp >= limit:
            return False
    return True


def parse_mac(mac: str) -> str | None:
    """A 48-bit MAC address in a form Go's net.ParseMAC takes ("02:42:ac:11:00:02",
    "02-42-AC-11-00-02", "0242.ac11.0002"), as Linux shows it; None if it is none."""
    hexdigits = "0123456789abcdefABCDEF"
    if len(mac) == 17 and mac[2] in ":-":
        parts = mac.split(mac[2])
        if len(parts) != 6 or not all(len(p) == 2 for p in parts):
            return None
    elif len(mac) == 14 and mac[4] == ".":
        parts = mac.split(".")
        if len(parts) != 3 or not all(len(p) == 4 for p in parts):
            return None
    else:
        return None
    digits = "".join(parts)
    if not all(ch in hexdigits for ch in digits):
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2)).lower()


def _is_address(text: str, version: int = 0) -> bool:
    """An IP address (of `version`, when given) that names a host: not 0.0.0.0 or ::."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return (not version or addr.version == version) and not addr.is_unspecified


def _mac_of(ipv4: str) -> str:
    """Docker's MAC for an address: 02:42 and the four bytes of the IPv4 address."""
    b = ipaddress.IPv4Address(ipv4).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def _random_mac() -> str:
    return "02:42:" + ":".join(f"{x:02x}" for x in secrets.token_bytes(4))


def _address_of_ptr(name: str) -> str:
    if name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        return str(ipaddress.IPv4Address(".".join(reversed(parts))))
    if name.endswith(".ip6.arpa"):
        nibbles = name[: -len(".ip6.arpa")].split(".")
        hexed = "".join(reversed(nibbles))
        return str(ipaddress.IPv6Address(int(hexed, 16)))
    raise ValueError(name)


def _host_resolvers() -> list[str]:
    """The host's nameservers, for names the embedded DNS does not own."""
    servers = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    servers.append(words[1])
    except OSError:
        pass
    return servers
