"""The network controller: networks, and each container's sandbox, endpoints and ports.

Docker's Container Network Model, single host. A network is a record (SQLite table
`networks`) plus what its driver made on the host: for `bridge`, a Linux bridge with
the gateway addresses and berth's firewall rules for it; for `macvlan`, nothing until
a container joins. A running container has a sandbox (a network namespace, kept by a
bind mount under the exec root, joined by the runtime by path) with one endpoint (a
veth pair, or a macvlan link) per network, its published ports (DNAT rules, each host
port held by a socket so that nobody else takes it) and, on user-defined networks, the
embedded DNS server at 127.0.0.11 inside it.

Addresses are handed out at start and given back at exit, as Docker does; what the
user asked for (networks, --ip, aliases, ports) stays in the container's record.
Container records are the container manager's; this module changes their network
fields only, and the caller saves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from berth.errors import BerthError, Conflict, Forbidden, InvalidParameter, NotFound, SystemError_
from berth.network import ipam, netlink
from berth.network.model import (
    BRIDGE_NAME_OPTION,
    DEFAULT_BRIDGE_OPTION,
    HOST_BINDING_OPTION,
    ICC_OPTION,
    MACVLAN_MODE_OPTION,
    MACVLAN_PARENT_OPTION,
    MASQUERADE_OPTION,
    MTU_OPTION,
    Endpoint,
    EndpointRequest,
    Network,
    PublishedPort,
    SubnetConfig,
)
from berth.network.proxy import TcpProxy
from berth.network.store import NetworkStore

if TYPE_CHECKING:
    from berth.containers.model import Container

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "berth0"
EPHEMERAL_PORTS = (32768, 60999)
FIREWALL_CHECK_INTERVAL = 5.0  # seconds between checks that berth's nftables rules are still there
BUILTIN = ("bridge", "host", "none")
DRIVERS = ("bridge", "macvlan", "host", "null")
NETWORK_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}


def _now() -> str:
    from berth.clock import now_rfc3339

    return now_rfc3339()


class NetworkController:
    def __init__(self, db: sqlite3.Connection, exec_root: str, *, default_bridge: str = DEFAULT_BRIDGE,
                 firewall: bool = True) -> None:
        self.db = db
        self.store = NetworkStore(db)
        self.netns_dir = os.path.join(exec_root, "netns")
        self.default_bridge = default_bridge
        self.links = netlink.HostLinks()
        self.networks: dict[str, Network] = {}
        self._lock = asyncio.Lock()
        self._held_ports: dict[tuple[str, str, int], socket.socket] = {}  # (proto, ip, port)
        self._proxies: dict[tuple[str, str, int], TcpProxy] = {}  # IPv6 sides of all-address ports
        self._fw: Any = None
        self._use_firewall = firewall
        self._fw_watch: asyncio.Task[None] | None = None
        self._dns: Any = None
        # who is attached where, for DNS: container id -> Container
        self.containers: Callable[[], Iterable[Container]] = lambda: ()
        # (action, network, attributes): berthd's event log listens here
        self.on_event: Callable[[str, Network, dict[str, str]], None] = lambda *a: None
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)

    # -- start-up and shutdown ---------------------------------------------------------------

    async def start(self) -> None:
        """Load the records, make the built-in networks, and put every bridge network's
        links and rules back (they may be gone after a reboot)."""
        for doc in self.store.docs():
            n = _network_from_doc(json.loads(doc))
            self.networks[n.id] = n
        if self._use_firewall:
            from berth.network.firewall import Firewall

            self._fw = Firewall()
            await asyncio.to_thread(self._fw.setup)
        default = self._by_name("bridge")
        if default is not None and self.default_bridge != "none" and default.interface != self.default_bridge:
            log.info("the default bridge is now %s (was %s)", self.default_bridge, default.interface)
            if self._fw is not None:
                with contextlib.suppress(BerthError):
                    await asyncio.to_thread(self._fw.remove_network, default.interface)
            default.interface = default.options[BRIDGE_NAME_OPTION] = self.default_bridge
            self._save(default)
        if self.default_bridge != "none" and default is None:
            await self._create_default_bridge()
        for name, driver in (("host", "host"), ("none", "null")):
            if self._by_name(name) is None:
                n = Network(secrets.token_hex(32), name, driver, _now())
                self._save(n)
        for n in list(self.networks.values()):
            if n.driver == "bridge":
                try:
                    await self._bring_up_bridge(n)
                except BerthError as e:
                    log.error("network %s: %s", n.name, e)
        if self._use_firewall:
            await asyncio.to_thread(self._fw.sync_docker_user)
            self._fw_watch = asyncio.create_task(self._watch_firewall())
        from berth.network.resolver import EmbeddedDns

        self._dns = EmbeddedDns(self._dns_lookup, _host_resolvers)

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
        for proxy in self._proxies.values():
            await proxy.close()
        self._proxies.clear()
        for sock in self._held_ports.values():
            sock.close()
        self._held_ports.clear()
        self.links.close()

    # -- records ---------------------------------------------------------------------------

    def _save(self, n: Network) -> None:
        self.store.save(n.id, n.name, json.dumps(asdict(n)))
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

    # -- creating and removing networks ----------------------------------------------------------

    async def _host_routes(self) -> list[Any]:
        return await asyncio.wrap_future(self.links.call(netlink.routed_networks))

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
        existing = await asyncio.wrap_future(self.links.call(lambda ipr: _bridge_subnets(ipr, self.default_bridge)))
        subnet = existing[0] if existing else ipam.choose_subnet(self._taken_subnets(), routes)
        plan = ipam.plan_subnets([SubnetConfig(str(subnet))], self._taken_subnets(), [], False)
        n = Network(secrets.token_hex(32), "bridge", "bridge", _now(),
                    options={BRIDGE_NAME_OPTION: self.default_bridge, DEFAULT_BRIDGE_OPTION: "true",
                             ICC_OPTION: "true", MASQUERADE_OPTION: "true", MTU_OPTION: "1500"},
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
        if driver not in ("bridge", "macvlan"):
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            if driver in ("overlay", "ipvlan"):
                raise InvalidParameter(f"the {driver} driver is not supported by berth")
            raise NotFound(f'could not find plugin {driver} in v1 plugin registry: plugin not found')
        if ipam_driver not in ("", "default"):
            raise NotFound(f'could not find plugin {ipam_driver} in v1 plugin registry: plugin not found')
        if driver == "bridge":
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
            if driver == "bridge":
                n.interface = options.get(BRIDGE_NAME_OPTION) or f"br-{n.id[:12]}"
                if any(o.interface == n.interface for o in self.networks.values()):
                    raise Conflict(f"bridge name {n.interface} is already used by another network")
                if len(n.interface) > 15:
                    raise InvalidParameter(f"bridge name {n.interface} is longer than 15 characters")
                await self._bring_up_bridge(n, fresh=True)
            else:
                parent = options.get(MACVLAN_PARENT_OPTION, "")
                if not parent:
                    raise InvalidParameter("macvlan: the parent interface is required (-o parent=IFACE)")
                mode = options.get(MACVLAN_MODE_OPTION, "bridge")
                if mode not in ("bridge", "private", "vepa", "passthru"):
                    raise InvalidParameter(f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan driver default")
                exists = await asyncio.wrap_future(self.links.call(lambda ipr: netlink.link_exists(ipr, parent)))
                if not exists:
                    raise InvalidParameter(f"-o parent interface was not found on the host: {parent}")
                n.interface = parent
            try:
                self._save(n)
            except BaseException:
                await self._tear_down(n)
                raise
        self.on_event("create", n, {})
        return n

    async def _bring_up_bridge(self, n: Network, fresh: bool = False) -> None:
        addresses = [netlink.Address(s.gateway, ipam.prefix_len(s.subnet)) for s in n.subnets if s.gateway]
        mtu = int(n.options.get(MTU_OPTION) or 0)
        try:
            created = await asyncio.wrap_future(
                self.links.call(lambda ipr: netlink.ensure_bridge(ipr, n.interface, addresses, mtu)))
        except BerthError:
            raise
        except Exception as e:  # noqa: BLE001 - netlink's errors
            raise SystemError_(f"failed to set up bridge {n.interface}: {e}") from None
        try:
            await self._network_rules(n)
        except BaseException:
            if created or fresh:
                await asyncio.wrap_future(self.links.call(lambda ipr: netlink.delete_link(ipr, n.interface)))
            raise
        await asyncio.to_thread(netlink.set_sysctl, "net/ipv4/ip_forward", "1")

    async def _network_rules(self, n: Network) -> None:
        if self._fw is not None:
            from berth.network.firewall import BridgeNetwork

            await asyncio.to_thread(self._fw.add_network, BridgeNetwork(
                n.interface, tuple(ipaddress.ip_network(s.subnet, strict=False) for s in n.subnets),
                internal=n.internal, masquerade=n.options.get(MASQUERADE_OPTION, "true") != "false",
                icc=n.options.get(ICC_OPTION, "true") != "false"))

    async def ensure_firewall(self) -> None:
        """Put berth's nftables rules back if they are gone: `nft flush ruleset`, or a
        firewall service that reloads, removes them, and with them every network's NAT
        and isolation and every published port. They come back whole: the base chains,
        each bridge network's rules, the running containers' ports. Under the lock that
        network creation, removal and a container's unpublishing hold, so nothing is put
        back that is being taken away."""
        if self._fw is None:
            return
        async with self._lock:
            bridges = {n.interface for n in self.networks.values() if n.driver == "bridge"}
            if not await asyncio.to_thread(self._fw.missing, bridges):
                return
            log.warning("berth's nftables rules were removed (a firewall reload?); putting them back")
            await asyncio.to_thread(self._fw.setup)
            for n in list(self.networks.values()):
                if n.driver == "bridge":
                    try:
                        await self._network_rules(n)
                    except BerthError as e:
                        log.error("network %s: %s", n.name, e)
            for c in self.containers():
                if c.state.running:
                    await self._port_rules(c)

    async def _port_rules(self, c: Container) -> None:
        """`c`'s published ports in the firewall again, as they were (adding a mapping
        that is there already does nothing)."""
        primary = next((ep for ep in c.networks.values() if ep.ipv4), None)
        if self._fw is None or primary is None or primary.network_id not in self.networks:
            return
        bridge = self.networks[primary.network_id].interface
        for p in c.ports:
            try:
                await asyncio.to_thread(self._fw.add_port, p.proto, p.host_ip, p.host_port, primary.ipv4,
                                        p.container_port, bridge)
            except BerthError as e:
                log.error("container %s: port %s: %s", c.id[:12], p.host_port, e)

    async def _tear_down(self, n: Network) -> None:
        if n.driver != "bridge":
            return
        if self._fw is not None:
            with contextlib.suppress(BerthError):
                await asyncio.to_thread(self._fw.remove_network, n.interface)
        await asyncio.wrap_future(self.links.call(lambda ipr: netlink.delete_link(ipr, n.interface)))

    def attached(self, n: Network) -> list[Container]:
        return [c for c in self.containers() if any(e.network_id == n.id for e in c.networks.values())]

    async def remove(self, ref: str) -> None:
        n = self.get(ref)
        if n.builtin:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            # as Docker: only running containers have endpoints; a stopped one that names
            # the network fails at its next start
            users = [c for c in self.attached(n) if c.state.running]
            if users:
                names = ", ".join(f'name:"{c.name}" id:"{c.id[:12]}"' for c in users)
                raise Forbidden(f"error while removing network: network {n.name} has active endpoints ({names})")
            await self._tear_down(n)
            self.store.delete(n.id)
            del self.networks[n.id]
        self.on_event("destroy", n, {})

    async def prune(self, filters: dict[str, list[str]]) -> list[str]:
        gone = []
        for n in list(self.networks.values()):
            if n.builtin or self.attached(n):
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
            if "scope" in filters and "local" not in filters["scope"]:
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
                if (not n.builtin and not self.attached(n)) not in want:
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
            self._check_request(n, req)
            out[n.name] = Endpoint(n.id, req)
        return out

    def _check_request(self, n: Network, req: EndpointRequest) -> None:
        if (req.ipv4 or req.ipv6) and not n.user_defined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if req.aliases and not n.user_defined:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        for addr in (req.ipv4, req.ipv6):
            if addr:
                try:
                    ipaddress.ip_address(addr)
                except ValueError:
                    raise InvalidParameter(f"invalid IPv{'6' if ':' in addr else '4'} address: {addr}") from None
        if req.ipv4:
            ipam.Allocator.from_doc(n.ipam_state).check(req.ipv4)
        if req.mac:
            _check_mac(req.mac)

    # -- containers: at start, connect, disconnect and exit ---------------------------------------------

    def netns_path(self, container_id: str) -> str:
        return os.path.join(self.netns_dir, container_id[:24])

    async def setup(self, c: Container) -> str | None:
        """Before the runtime starts `c`: its sandbox, endpoints, ports and DNS. Returns
        the namespace to join (None: the runtime makes a private one, or none at all)."""
        mode = c.host_config.network_mode or "bridge"
        if mode == "host":
            return None
        if mode == "none":
            return None
        if mode.startswith("container:"):
            return None  # the manager resolves it to the other container's namespace
        await self.ensure_firewall()
        path = self.netns_path(c.id)
        await asyncio.to_thread(netlink.create_netns, path)
        c.sandbox_key = path
        try:
            first = True
            for name, ep in c.networks.items():
                n = self.get(ep.network_id) if ep.network_id in self.networks else self.get(name)
                await self._join(c, n, ep, default_route=first and not n.internal)
                first = False
            await self._publish(c)
            if any(self.networks[ep.network_id].user_defined for ep in c.networks.values()
                   if ep.network_id in self.networks) and self._dns is not None:
                await self._dns.attach(c.id, path)
        except BaseException:
            await self.release(c)
            raise
        return path

    async def _join(self, c: Container, n: Network, ep: Endpoint, default_route: bool) -> None:
        async with self._lock:
            alloc = ipam.Allocator.from_doc(n.ipam_state)
            ipv4 = alloc.allocate(4, ep.request.ipv4) if any(":" not in s.subnet for s in n.subnets) else ""
            ipv6 = ""
            if n.enable_ipv6 and any(":" in s.subnet for s in n.subnets):
                try:
                    ipv6 = alloc.allocate(6, ep.request.ipv6)
                except BaseException:
                    if ipv4:
                        alloc.release(ipv4)
                    raise
            n.ipam_state = alloc.to_doc()
            self._save(n)
        ep.endpoint_id = secrets.token_hex(32)
        ep.ipv4, ep.ipv6 = ipv4, ipv6
        for s in n.subnets:
            net = ipaddress.ip_network(s.subnet, strict=False)
            if ipv4 and ":" not in s.subnet and ipaddress.ip_address(ipv4) in net:
                ep.ipv4_prefixlen, ep.gateway = net.prefixlen, s.gateway
            if ipv6 and ":" in s.subnet and ipaddress.ip_address(ipv6) in net:
                ep.ipv6_prefixlen, ep.ipv6_gateway = net.prefixlen, s.gateway
        ep.mac = ep.request.mac or (_mac_of(ipv4) if ipv4 else _random_mac())
        index = len([e for e in c.networks.values() if e.ifname])
        ep.ifname = f"eth{index}"
        while any(e.ifname == ep.ifname and e is not ep for e in c.networks.values()):
            index += 1
            ep.ifname = f"eth{index}"
        ep.host_ifname = "veth" + secrets.token_hex(4)[:7]
        temp = "vt" + secrets.token_hex(6)
        addresses = [netlink.Address(a, p) for a, p in ((ipv4, ep.ipv4_prefixlen), (ipv6, ep.ipv6_prefixlen)) if a]
        gateways = [g for g in (ep.gateway, ep.ipv6_gateway) if g] if default_route else []
        mtu = int(n.options.get(MTU_OPTION) or 0)
        path = c.sandbox_key
        try:
            if n.driver == "bridge":
                await asyncio.wrap_future(self.links.call(
                    lambda ipr: netlink.create_veth(ipr, ep.host_ifname, temp, n.interface, mtu)))
            else:
                ep.host_ifname = ""
                mode = n.options.get(MACVLAN_MODE_OPTION, "bridge")
                await asyncio.wrap_future(self.links.call(
                    lambda ipr: netlink.create_macvlan(ipr, temp, n.interface, mode)))
            await asyncio.wrap_future(self.links.call(lambda ipr: netlink.move_to_netns(ipr, temp, path)))
            await asyncio.to_thread(netlink.configure_inside, path, temp, ep.ifname, ep.mac, addresses, gateways)
        except BaseException:
            name = ep.host_ifname or temp
            await asyncio.wrap_future(self.links.call(lambda ipr: netlink.delete_link(ipr, name)))
            await self._give_back(n, ep)
            ep.clear()
            raise
        self.on_event("connect", n, {"container": c.id})

    async def _delete_link(self, name: str) -> None:
        await asyncio.wrap_future(self.links.call(lambda ipr: netlink.delete_link(ipr, name)))

    async def _give_back(self, n: Network, ep: Endpoint) -> None:
        async with self._lock:
            alloc = ipam.Allocator.from_doc(n.ipam_state)
            for a in (ep.ipv4, ep.ipv6):
                if a:
                    alloc.release(a)
            n.ipam_state = alloc.to_doc()
            self._save(n)

    async def release(self, c: Container) -> None:
        """After `c` exited (or failed to start): everything setup made, undone."""
        await self._unpublish(c)
        if self._dns is not None:
            await self._dns.detach(c.id)
        for ep in c.networks.values():
            n = self.networks.get(ep.network_id)
            joined = bool(ep.ifname)
            if ep.host_ifname:
                await self._delete_link(ep.host_ifname)
            if n is not None:
                await self._give_back(n, ep)
            ep.clear()
            if n is not None and joined:
                self.on_event("disconnect", n, {"container": c.id})
        if c.sandbox_key:
            await asyncio.to_thread(netlink.delete_netns, c.sandbox_key)
            c.sandbox_key = ""

    async def readopt(self, c: Container) -> None:
        """berthd restarted while `c` ran on: hold its ports (and put their rules back, in
        case the firewall was reloaded meanwhile) and serve its DNS again."""
        primary = next((ep for ep in c.networks.values() if ep.ipv4), None)
        for p in c.ports:
            with contextlib.suppress(BerthError):
                self._hold_port(p.proto, p.host_ip, p.host_port)
            if primary is not None and not p.host_ip and p.proto == "tcp":
                await self._proxy_ipv6(p.host_port, primary.ipv4, p.container_port)
        await self._port_rules(c)
        if c.sandbox_key and self._dns is not None and any(
                self.networks[ep.network_id].user_defined for ep in c.networks.values() if ep.network_id in self.networks):
            with contextlib.suppress(Exception):
                await self._dns.attach(c.id, c.sandbox_key)

    async def connect(self, c: Container, ref: str, req: EndpointRequest) -> None:
        n = self.get(ref)
        if n.name in ("host", "none") or (c.host_config.network_mode or "").startswith(("container:", "host", "none")):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network" if n.name not in ("none",) else
                            "container cannot be disconnected from host network or connected to host network")
        if n.name in c.networks or any(ep.network_id == n.id for ep in c.networks.values()):
            raise Forbidden(f"endpoint with name {c.name} already exists in network {n.name}")
        self._check_request(n, req)
        ep = Endpoint(n.id, req)
        if c.state.running and c.sandbox_key:
            await self._join(c, n, ep, default_route=not any(e.gateway for e in c.networks.values()) and not n.internal)
            if n.user_defined and self._dns is not None:
                with contextlib.suppress(Conflict):  # served already, for another network
                    await self._dns.attach(c.id, c.sandbox_key)
        c.networks[n.name] = ep

    async def disconnect(self, c: Container, ref: str, force: bool = False) -> None:
        n = self.get(ref)
        name = next((k for k, ep in c.networks.items() if ep.network_id == n.id), None)
        if name is None:
            raise Forbidden(f"container {c.id} is not connected to network {n.name}")
        ep = c.networks[name]
        if c.state.running and ep.ifname and c.sandbox_key:
            await asyncio.to_thread(netlink.delete_inside, c.sandbox_key, ep.ifname)
            await self._give_back(n, ep)
            self.on_event("disconnect", n, {"container": c.id})
        del c.networks[name]

    # -- published ports ----------------------------------------------------------------------

    def _hold_port(self, proto: str, host_ip: str, port: int) -> socket.socket:
        """A socket bound to the host port, so that nobody else takes it while it is
        published (it never listens: the DNAT rules take the traffic)."""
        where = f"{host_ip or '0.0.0.0'}:{port}"
        for (p, ip, n) in self._held_ports:
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
        self._held_ports[(proto, host_ip, port)] = sock
        return sock

    def _free_ephemeral(self, proto: str, host_ip: str) -> int:
        low, high = EPHEMERAL_PORTS
        for _ in range(200):
            port = random.randint(low, high)
            if (proto, host_ip, port) in self._held_ports:
                continue
            try:
                self._hold_port(proto, host_ip, port)
            except SystemError_:
                continue
            return port
        raise SystemError_("no port available in the ephemeral range")

    async def _publish(self, c: Container) -> None:
        primary = next((ep for ep in c.networks.values() if ep.ipv4), None)
        h = c.host_config
        wanted: dict[str, list[tuple[str, str]]] = {
            k: [(b.host_ip, b.host_port) for b in v] for k, v in h.port_bindings.items()}
        if h.publish_all_ports:
            for port in c.config.exposed_ports:
                wanted.setdefault(port if "/" in port else f"{port}/tcp", [("", "")])
        if not wanted:
            return
        if primary is None:
            return  # nothing to forward to (Docker publishes nothing either)
        n = self.networks[primary.network_id]
        default_ip = n.options.get(HOST_BINDING_OPTION, "")
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
                    self._hold_port(proto, host_ip, number)
                else:
                    number = self._free_ephemeral(proto, host_ip)
                c.ports.append(PublishedPort(proto, container_port, host_ip, number))
                if self._fw is not None:
                    await asyncio.to_thread(self._fw.add_port, proto, host_ip, number, primary.ipv4,
                                            container_port, n.interface)
                if not host_ip and proto == "tcp":
                    await self._proxy_ipv6(number, primary.ipv4, container_port)

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

    def _pick_in_range(self, proto: str, host_ip: str, low: int, high: int) -> int:
        for port in range(low, high + 1):
            try:
                self._hold_port(proto, host_ip, port)
            except SystemError_:
                continue
            return port
        raise SystemError_(f"driver failed programming external connectivity on endpoint: Bind for "
                           f"{host_ip or '0.0.0.0'}:{low}-{high} failed: port is already allocated")

    async def _unpublish(self, c: Container) -> None:
        primary = next((ep for ep in c.networks.values() if ep.ipv4), None)
        async with self._lock:  # ensure_firewall must not put back what goes here
            for p in c.ports:
                if self._fw is not None and primary is not None:
                    n = self.networks.get(primary.network_id)
                    with contextlib.suppress(BerthError):
                        await asyncio.to_thread(self._fw.remove_port, p.proto, p.host_ip, p.host_port,
                                                primary.ipv4, p.container_port, n.interface if n else "")
                sock = self._held_ports.pop((p.proto, p.host_ip, p.host_port), None)
                if sock is not None:
                    sock.close()
                proxy = self._proxies.pop((p.proto, p.host_ip, p.host_port), None)
                if proxy is not None:
                    await proxy.close()
            c.ports = []

    # -- names, for /etc/hosts and the embedded DNS ---------------------------------------------------

    def _dns_lookup(self, container_id: str, name: str, qtype: int) -> list[str] | None:
        asker = next((c for c in self.containers() if c.id == container_id), None)
        if asker is None:
            return None
        nets = {ep.network_id for ep in asker.networks.values() if self.networks.get(ep.network_id) and
                self.networks[ep.network_id].user_defined}
        name = name.rstrip(".").lower()
        if qtype == 12:  # PTR
            return self._ptr(name, nets)
        for ep in asker.networks.values():  # --link name:alias on a user network: the asker's own alias
            for link in ep.request.links:
                target, _, alias = link.partition(":")
                if name == (alias or target).lower().lstrip("/"):
                    name = target.lower().lstrip("/")
        out: list[str] = []
        for c in self.containers():
            if not c.state.running:
                continue
            for ep in c.networks.values():
                if ep.network_id not in nets:
                    continue
                names = {c.name.lower(), c.id[:12]} | {a.lower() for a in ep.request.aliases}
                if c.config.hostname and ep is next(iter(c.networks.values())):
                    names.add(c.config.hostname.lower())
                if name in names:
                    addr = ep.ipv4 if qtype == 1 else ep.ipv6 if qtype == 28 else ""
                    if addr:
                        out.append(addr)
                    elif qtype in (1, 28):
                        return []
        return out or None

    def _ptr(self, name: str, nets: set[str]) -> list[str] | None:
        try:
            addr = _address_of_ptr(name)
        except ValueError:
            return None
        for c in self.containers():
            for ep in c.networks.values():
                if ep.network_id in nets and addr in (ep.ipv4, ep.ipv6):
                    n = self.networks[ep.network_id]
                    return [f"{c.name}.{n.name}"]
        return None


# -- helpers ------------------------------------------------------------------------------------


def _network_from_doc(doc: dict[str, Any]) -> Network:
    subnets = [SubnetConfig(**s) for s in doc.pop("subnets", [])]
    return Network(**{k: v for k, v in doc.items() if k in Network.__dataclass_fields__}, subnets=subnets)


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


def _check_mac(mac: str) -> None:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in p) for p in parts):
        raise InvalidParameter(f"{mac} is not a valid mac address")


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
