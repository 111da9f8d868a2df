"""Links, addresses, routes and network namespaces, through netlink (pyroute2).

Every call blocks; berthd makes them in a thread (`HostLinks` keeps one thread and one
netlink socket for the host's namespace). Work inside a container's namespace runs in a
fresh thread that setns()es there first: a thread's network namespace is its own, so
the event loop never leaves the host's. Names: a bridge per network, a veth pair per
endpoint, the host end named `veth` + 7 hex (as Docker), the container end renamed to
ethN once it is inside.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from berth.errors import SystemError_
from berth.runtime import linux

log = logging.getLogger(__name__)

T = TypeVar("T")


def _iproute() -> Any:
    from pyroute2 import IPRoute  # imported lazily: 0.15 s, and only berthd needs it

    return IPRoute()


@contextlib.contextmanager
def _in_netns(path: str) -> Iterator[None]:
    """Move the calling thread into the namespace at `path`, and back after."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(target, linux.CLONE_NEWNET)
        try:
            yield
        finally:
            linux.setns(home, linux.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def run_in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a new thread and return its result (or raise its error): for work
    that changes the thread's namespace."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    t = threading.Thread(target=body, name="berth-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# -- namespaces -----------------------------------------------------------------------------


CONTAINER_SYSCTLS = {"net/ipv4/ip_unprivileged_port_start": "0", "net/ipv4/ping_group_range": "0 2147483647"}


def create_netns(path: str) -> None:
    """A new network namespace, kept alive by a bind mount on the file `path`, with lo up."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)

    def make() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.unshare(linux.CLONE_NEWNET)
            try:
                linux.mount("/proc/thread-self/ns/net", path, None, linux.MS_BIND)
                linux.interface_up("lo")
                # the sysctls dockerd puts in every container's spec with a network of its
                # own (ports below 1024 and ICMP echo sockets without capabilities), set
                # here, by the namespace's owner: a container in a user namespace of its
                # own (--userns-remap) has no capability over this namespace
                for key, value in CONTAINER_SYSCTLS.items():
                    set_sysctl(key, value)
            finally:
                linux.setns(home, linux.CLONE_NEWNET)
        finally:
            os.close(home)

    try:
        run_in_thread(make)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise SystemError_(f"creating the network namespace {path}: {e.strerror or e}") from None


def delete_netns(path: str) -> None:
    """Drop the namespace's bind mount and file; it goes when its last user does."""
    if linux.is_mount_point(path):
        with contextlib.suppress(OSError):
            linux.umount(path, linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- the host's links ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    address: str  # "10.1.0.1"
    prefixlen: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4


class HostLinks:
    """Netlink on the host's namespace, from one worker thread (pyroute2's sync API
    keeps its socket per thread and may not run inside the event loop's thread)."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-netlink")
        self._local = threading.local()

    def _ipr(self) -> Any:
        ipr = getattr(self._local, "ipr", None)
        if ipr is None:
            ipr = self._local.ipr = _iproute()
        return ipr

    def call(self, fn: Callable[[Any], T]) -> concurrent.futures.Future[T]:
        """Run fn(IPRoute) on the netlink thread."""
        return self._pool.submit(lambda: fn(self._ipr()))

    def close(self) -> None:
        def shut() -> None:
            ipr = getattr(self._local, "ipr", None)
            if ipr is not None:
                ipr.close()
                self._local.ipr = None
        with contextlib.suppress(Exception):
            self._pool.submit(shut).result(timeout=5)
        self._pool.shutdown(wait=False)


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_exists(ipr: Any, name: str) -> bool:
    return _index(ipr, name) is not None


def ensure_bridge(ipr: Any, name: str, addresses: list[Address], mtu: int = 0) -> bool:
    """The bridge `name`, up, holding `addresses`; True when it was made now."""
    created = False
    idx = _index(ipr, name)
    if idx is None:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except Exception as e:  # noqa: BLE001 - pyroute2 raises NetlinkError and others
            raise SystemError_(f"failed to create bridge {name}: {e}") from None
        created = True
        idx = _index(ipr, name)
        assert idx is not None
    if mtu:
        ipr.link("set", index=idx, mtu=mtu)
    if any(a.family == 6 for a in addresses):  # the gateway answers at once, without DAD
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{name}/accept_dad", "w") as f:
            f.write("0")
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
    for a in addresses:
        if (a.address, a.prefixlen) not in have:
            ipr.addr("add", index=idx, address=a.address, prefixlen=a.prefixlen)
    ipr.link("set", index=idx, state="up")
    return created


def delete_link(ipr: Any, name: str) -> None:
    idx = _index(ipr, name)
    if idx is not None:
        with contextlib.suppress(Exception):
            ipr.link("del", index=idx)


def veths_on(ipr: Any, bridge: str) -> list[str]:
    """The names of the veth links attached to `bridge` (none when it is missing)."""
    idx = _index(ipr, bridge)
    if idx is None:
        return []
    found = []
    for link in ipr.get_links():
        info = link.get_attr("IFLA_LINKINFO")
        if link.get_attr("IFLA_MASTER") == idx and info is not None and info.get_attr("IFLA_INFO_KIND") == "veth":
            found.append(str(link.get_attr("IFLA_IFNAME")))
    return found


def link_names(ipr: Any) -> list[str]:
    return [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()]


def routed_networks(ipr: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The destinations of the host's routes and the networks of its addresses (a
    default route excluded): what a new network's subnet must not overlap."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for family in (2, 10):
        for r in ipr.get_routes(family=family):
            dst = r.get_attr("RTA_DST")
            if dst and r["dst_len"]:
                with contextlib.suppress(ValueError):
                    out.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
    for a in ipr.get_addr():
        addr = a.get_attr("IFA_ADDRESS")
        if addr:
            with contextlib.suppress(ValueError):
                net = ipaddress.ip_network(f"{addr}/{a['prefixlen']}", strict=False)
                if not net.is_loopback and not net.is_link_local:
                    out.append(net)
    return out


@dataclass(frozen=True)
class Endpoint:
    """One interface of a container: the host end of its veth and what it was given."""

    host_ifname: str
    ifname: str  # inside the container
    mac: str


def create_veth(ipr: Any, host_name: str, peer_name: str, bridge: str, mtu: int = 0) -> None:
    """A veth pair with `host_name` on `bridge` (up) and `peer_name` still on the host.

    The pair is made on the bridge in one message: a berthd killed right after still
    finds it there at its next start (NetworkController.reconcile), not loose on the host."""
    bridge_idx = _index(ipr, bridge)
    if bridge_idx is None:
        raise SystemError_(f"network bridge {bridge} is missing")
    try:
        ipr.link("add", ifname=host_name, kind="veth", peer={"ifname": peer_name}, master=bridge_idx)
    except Exception as e:  # noqa: BLE001
        raise SystemError_(f"failed to add the host ({host_name}) <=> sandbox ({peer_name}) pair "
                           f"interfaces: {e}") from None
    host_idx = _index(ipr, host_name)
    if host_idx is None:
        raise SystemError_(f"the link {host_name} vanished as it was made")
    if mtu:
        ipr.link("set", index=host_idx, mtu=mtu)
        peer_idx = _index(ipr, peer_name)
        if peer_idx is not None:
            ipr.link("set", index=peer_idx, mtu=mtu)
    ipr.link("set", index=host_idx, state="up")
    # hairpin: a container reaching its own published port comes back through its port
    try:
        with open(f"/sys/class/net/{host_name}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except OSError as e:
        log.warning("hairpin mode on %s: %s", host_name, e.strerror)


def create_macvlan(ipr: Any, name: str, parent: str, mode: str) -> None:
    """A macvlan link `name` on `parent`, in `mode` (bridge, private, vepa, passthru)."""
    parent_idx = _index(ipr, parent)
    if parent_idx is None:
        raise SystemError_(f"the macvlan parent interface {parent} is missing")
    try:
        ipr.link("add", ifname=name, kind="macvlan", link=parent_idx, macvlan_mode=mode)
    except Exception as e:  # noqa: BLE001
        raise SystemError_(f"failed to create the macvlan port on {parent}: {e}") from None


def move_to_netns(ipr: Any, name: str, netns_path: str) -> None:
    idx = _index(ipr, name)
    if idx is None:
        raise SystemError_(f"interface {name} is missing")
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("set", index=idx, net_ns_fd=fd)
    finally:
        os.close(fd)


def configure_inside(netns_path: str, temp_name: str, ifname: str, mac: str, addresses: list[Address],
                     gateways: list[str]) -> None:
    """In the container's namespace: rename the moved interface, give it its MAC and
    addresses, bring it up, and route through `gateways` (default routes, when given)."""

    def work() -> None:
        with _in_netns(netns_path):
            ipr = _iproute()
            try:
                idx = _index(ipr, temp_name)
                if idx is None:
                    raise SystemError_(f"interface {temp_name} did not arrive in the container's namespace")
                ipr.link("set", index=idx, ifname=ifname, **({"address": mac} if mac else {}))
                if any(a.family == 6 for a in addresses):
                    # no duplicate address detection (as Docker): the address works at once
                    for conf in ("default", ifname):
                        with contextlib.suppress(OSError), \
                                open(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad", "w") as f:
                            f.write("0")
                for a in addresses:
                    ipr.addr("add", index=idx, address=a.address, prefixlen=a.prefixlen)
                ipr.link("set", index=idx, state="up")
                for gw in gateways:
                    dst = "::/0" if ":" in gw else "0.0.0.0/0"
                    with contextlib.suppress(Exception):
                        ipr.route("del", dst=dst)
                    ipr.route("add", dst=dst, gateway=gw)
            finally:
                ipr.close()

    run_in_thread(work)


def delete_inside(netns_path: str, ifname: str) -> None:
    """Remove interface `ifname` from the container's namespace (its veth peer goes too)."""

    def work() -> None:
        with _in_netns(netns_path):
            ipr = _iproute()
            try:
                delete_link(ipr, ifname)
            finally:
                ipr.close()

    run_in_thread(work)


def set_sysctl(path: str, value: str) -> None:
    """Write /proc/sys/`path` (e.g. net/ipv4/conf/br0/route_localnet)."""
    try:
        with open(os.path.join("/proc/sys", path), "w") as f:
            f.write(value)
    except OSError as e:
        log.warning("sysctl %s=%s: %s", path, value, e.strerror)
