"""IP address management: which subnets a network gets, and which address each container gets.

Pure code, as Docker's default IPAM driver (libnetwork/ipams/defaultipam) is at heart: no
sockets, no netlink, no files. The caller brings what the host knows (the subnets of the
other networks, the host's routes) and keeps the result: a network's subnets are
`model.SubnetConfig` records and its allocator is a JSON-able document (`to_doc()`,
`from_doc()`) stored with the network, so that the state survives a berthd restart.

The rules are Docker 28's (API 1.51), and so are the messages:

* Subnets the user gives are validated as the daemon's `network.ValidateIPAM` does (every
  problem of every subnet reported at once), then may not overlap another network's subnet.
* A network without a subnet of a family gets the first candidate of the default pools
  that overlaps neither another network's subnet nor a host route: 172.17.0.0/16 …
  172.31.0.0/16, then 192.168.0.0/16 in /20s for IPv4; for IPv6 the /64s of a ULA /48
  derived from the host ID, as Docker 28 derives it (daemon.deriveULABaseNetwork).
* In a subnet, the network address (IPv4 and IPv6), the IPv4 broadcast address, the
  gateway and the auxiliary addresses are never handed out. Addresses come from the
  ip-range if there is one (else the whole subnet), in order; a preferred address (--ip)
  may be anywhere in the subnet.

Address sets are Python sets of the addresses in use, never of the addresses free, and
every search walks from a cursor past addresses in use only, so a /8 of IPv6 costs what a
/24 of IPv4 does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berth.errors import Forbidden, InvalidParameter, Unavailable
from berth.network.model import SubnetConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# libnetwork/ipamapi/contract.go
ERR_POOL_OVERLAP = "Pool overlaps with other one on this address space"
ERR_NO_MORE_SUBNETS = "all predefined address pools have been fully subnetted"
ERR_NO_AVAILABLE_IPS = "no available addresses on this pool"
ERR_IP_ALREADY_ALLOCATED = "Address already in use"
ERR_IP_OUT_OF_RANGE = "requested address is out of range"
# runconfig/errors.go
ERR_NO_SUBNET_AND_IP = ("user specified IP address is supported only when connecting to "
                        "networks with user configured subnets")

_PREFIX_BITS = re.compile(r"0|[1-9][0-9]{0,2}")
_MAX_SHOWN = 100  # characters of a user's string quoted back in a message


class PoolExhausted(Unavailable):
    """No address left in any subnet of the family asked for (Docker's ErrNoAvailableIPs);
    the caller may say which network, as dockerd's endpoint code does."""


@dataclass(frozen=True)
class PoolSpec:
    """A default address pool: `base` cut into subnets of prefix length `size`
    (Docker's ipamutils.NetworkToSplit, the entries of daemon.json's default-address-pools)."""

    base: IPNetwork
    size: int

    def __post_init__(self) -> None:
        if not self.base.prefixlen <= self.size <= self.base.max_prefixlen:
            raise InvalidParameter(f"invalid default address pool {self.base} with size {self.size}")

    def candidates(self) -> Iterator[IPNetwork]:
        """The subnets, in order (lazily: a /48 holds 65536 /64s)."""
        step = 1 << (self.base.max_prefixlen - self.size)
        start = int(self.base.network_address)
        for n in range(start, int(self.base.broadcast_address) + 1, step):
            yield _network(self.base.version, n, self.size)


# ipamutils.localScopeDefaultNetworks: 172.20/14, 172.24/14 and 172.28/14 cut in /16s are
# the /16s from 172.20 to 172.31.
DEFAULT_POOLS_V4: tuple[PoolSpec, ...] = (
    PoolSpec(ipaddress.IPv4Network("172.17.0.0/16"), 16),
    PoolSpec(ipaddress.IPv4Network("172.18.0.0/16"), 16),
    PoolSpec(ipaddress.IPv4Network("172.19.0.0/16"), 16),
    PoolSpec(ipaddress.IPv4Network("172.20.0.0/14"), 16),
    PoolSpec(ipaddress.IPv4Network("172.24.0.0/14"), 16),
    PoolSpec(ipaddress.IPv4Network("172.28.0.0/14"), 16),
    PoolSpec(ipaddress.IPv4Network("192.168.0.0/16"), 20),
)


def default_pools() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets a network may be given, in the order Docker tries them."""
    out: list[ipaddress.IPv4Network] = []
    for spec in DEFAULT_POOLS_V4:
        out.extend(n for n in spec.candidates() if isinstance(n, ipaddress.IPv4Network))
    return out


def ula_pool(host_id: str) -> PoolSpec:
    """The host's IPv6 default pool: fd00::/8 plus a 40-bit global ID taken from
    sha256(host_id), a /48 cut into /64s (RFC 4193, as Docker 28 derives it)."""
    gid = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    base = int(ipaddress.IPv6Address("fd00::")) + (gid << 80)
    return PoolSpec(ipaddress.IPv6Network((base, 48)), 64)


def default_address_pools(host_id: str = "") -> list[PoolSpec]:
    """Docker's default pools: the IPv4 ones, then the host's ULA /48."""
    return [*DEFAULT_POOLS_V4, ula_pool(host_id)]


def choose_subnet(taken: Sequence[IPNetwork], host_routes: Sequence[IPNetwork], *,
                  family: int = 4, pools: Sequence[PoolSpec] | None = None) -> IPNetwork:
    """The first subnet of the default pools (of `family`) that overlaps neither a subnet
    in `taken` (the other networks') nor one of `host_routes` (default routes ignored)."""
    if pools is None:
        pools = default_address_pools()
    blockers = [n for n in taken if n.version == family]
    blockers += [r for r in host_routes if r.version == family and not r.network_address.is_unspecified]
    for spec in pools:
        if spec.base.version == family:
            found = _first_free_block(spec, blockers)
            if found is not None:
                return found
    raise InvalidParameter(ERR_NO_MORE_SUBNETS)


def _first_free_block(spec: PoolSpec, blockers: Sequence[IPNetwork]) -> IPNetwork | None:
    # Jump past whatever overlaps the candidate: each blocker stops at most one candidate,
    # however many subnets the pool holds.
    step = 1 << (spec.base.max_prefixlen - spec.size)
    cand, stop = int(spec.base.network_address), int(spec.base.broadcast_address) + 1
    spans = [(int(b.network_address), int(b.broadcast_address)) for b in blockers]
    while cand + step <= stop:
        hit = [last for first, last in spans if first <= cand + step - 1 and last >= cand]
        if not hit:
            return _network(spec.base.version, cand, spec.size)
        cand = (max(hit) + step) // step * step
    return None


def plan_subnets(requested: Sequence[SubnetConfig], taken: Sequence[IPNetwork],
                 host_routes: Sequence[IPNetwork], ipv6: bool, *, ipv4: bool = True,
                 pools: Sequence[PoolSpec] | None = None) -> list[SubnetConfig]:
    """A new network's subnets, IPv4 first then IPv6, each with its gateway.

    `requested` are the user's IPAM.Config entries, as the API layer translated them.
    Requests are validated as dockerd validates IPAM.Config (IPv6 ones only when `ipv6`;
    all problems in one InvalidParameter), must not overlap `taken` nor each other
    (Forbidden), and keep their ip-range and aux addresses. A family that is enabled but
    has no request gets a subnet from `pools` (default: `default_address_pools()`), which
    must not overlap `taken` or `host_routes` either. Requests of a disabled family are
    dropped, as Docker does.
    """
    errors: list[str] = []
    parsed: list[tuple[SubnetConfig, _Interface]] = []
    for req in requested:
        sub = _validate_request(req, ipv6, errors)
        if sub is not None:
            parsed.append((req, sub))
    if errors:
        raise InvalidParameter("invalid network config: " + "; ".join(errors))

    planned: list[SubnetConfig] = []
    in_use = list(taken)
    for family, enabled in ((4, ipv4), (6, ipv6)):
        if not enabled:
            continue
        mine = [(req, sub) for req, sub in parsed if sub.version == family]
        if not mine:
            net = choose_subnet(in_use, host_routes, family=family, pools=pools)
            in_use.append(net)
            planned.append(_with_gateway(SubnetConfig(str(net))))
            continue
        for req, sub in mine:
            if any(sub.network.overlaps(other) for other in in_use if other.version == family):
                raise Forbidden(f"invalid pool request: {ERR_POOL_OVERLAP}")
            in_use.append(sub.network)
            planned.append(_with_gateway(SubnetConfig(
                str(sub.network), req.gateway and str(_parse_addr(req.gateway)),
                req.ip_range and _canonical_subnet(req.ip_range),
                {k: str(_parse_addr(v)) for k, v in req.aux_addresses.items()})))
    return planned


def _validate_request(req: SubnetConfig, ipv6: bool, errors: list[str]) -> _Interface | None:
    """daemon's network.ValidateIPAM for one IPAM.Config entry: the parsed (not yet
    masked) subnet, or None when it is invalid or of a family not enabled."""
    sub = _parse_prefix(req.subnet)
    if sub is None:
        errors.append(f"invalid subnet {_show(req.subnet)}: invalid CIDR block notation")
        return None
    if sub.version == 6 and not ipv6:
        return None
    before = len(errors)
    if sub.ip != sub.network.network_address:
        errors.append(f"invalid subnet {sub}: it should be {sub.network}")
    errors.extend(_ip_range_errors(req.ip_range, sub))
    if req.gateway and (why := _address_error(req.gateway, sub)):
        errors.append(f"invalid gateway {_show(req.gateway)}: {why}")
    for name, aux in req.aux_addresses.items():
        if why := _address_error(aux, sub):
            errors.append(f"invalid auxiliary address {_show(name)}: {why}")
    return sub if len(errors) == before else None


def _ip_range_errors(text: str, sub: _Interface) -> list[str]:
    if not text:
        return []
    rng = _parse_prefix(text)
    shown = _show(text)
    if rng is None:
        return [f"invalid ip-range {shown}: invalid CIDR block notation"]
    if rng.version != sub.version:
        return [f"invalid ip-range {shown}: parent subnet is an IPv{sub.version} block"]
    out = []
    if rng.network.prefixlen < sub.network.prefixlen:
        out.append(f"invalid ip-range {shown}: CIDR block is bigger than its parent subnet {sub}")
    if rng.ip != rng.network.network_address:
        out.append(f"invalid ip-range {rng}: it should be {rng.network}")
    if not sub.network.overlaps(rng.network):
        out.append(f"invalid ip-range {shown}: parent subnet {sub} doesn't contain ip-range")
    return out


def _address_error(text: str, sub: _Interface) -> str:
    addr = _parse_addr(text)
    if addr is None:
        return "invalid address"
    if addr.version != sub.version:
        return f"parent subnet is an IPv{sub.version} block"
    if addr not in sub.network:
        return f"parent subnet {sub} doesn't contain this address"
    return ""


def _with_gateway(s: SubnetConfig) -> SubnetConfig:
    """`s` with its gateway defaulted, checked against the addresses it may not take, and
    its aux addresses checked against those and each other."""
    pool = _Pool.of(s, gateway_default=True)
    s.gateway = _show_addr(pool.version, pool.gateway) if pool.gateway is not None else ""
    return s


def prefix_len(subnet: str) -> int:
    """The prefix length of a CIDR ("10.0.0.0/24" -> 24)."""
    sub = _parse_prefix(subnet)
    if sub is None:
        raise InvalidParameter(f"invalid subnet {_show(subnet)}: invalid CIDR block notation")
    return sub.network.prefixlen


class _Pool:
    """One subnet's bookkeeping, in integers: what is reserved, what is handed out, and
    where the next search starts."""

    def __init__(self, config: SubnetConfig, net: IPNetwork, first: int, last: int,
                 reserved: set[int], gateway: int | None) -> None:
        self.config = config
        self.net = net
        self.version = net.version
        self.first, self.last = first, last  # the ip-range, or the subnet
        self.reserved = reserved  # network, broadcast, gateway, aux addresses
        self.gateway = gateway
        self.allocated: set[int] = set()
        self.cursor: int | None = None  # the last address given by a search

    @classmethod
    def of(cls, s: SubnetConfig, gateway_default: bool = False) -> _Pool:
        sub = _parse_prefix(s.subnet)
        if sub is None or sub.ip != sub.network.network_address:
            raise InvalidParameter(f"invalid subnet {_show(s.subnet)}: invalid CIDR block notation")
        net = sub.network
        lo, hi = int(net.network_address), int(net.broadcast_address)
        reserved: set[int] = set()
        # as libnetwork's newPoolData: an IPv4 /31 or /32 has no network or broadcast address
        if net.version == 6 or net.num_addresses > 2:
            reserved.add(lo)
        if net.version == 4 and net.num_addresses > 2:
            reserved.add(hi)
        first, last = lo, hi
        if s.ip_range:
            rng = _parse_prefix(s.ip_range)
            if (rng is None or rng.version != net.version or rng.network.prefixlen < net.prefixlen
                    or rng.ip not in net):
                raise InvalidParameter(f"invalid ip-range {_show(s.ip_range)}: parent subnet {net} doesn't contain ip-range")
            first, last = int(rng.network.network_address), int(rng.network.broadcast_address)
        pool = cls(s, net, first, last, reserved, None)
        if s.gateway:
            gw = pool._inside(s.gateway, "gateway")
            if gw in reserved:
                raise Forbidden(f"failed to allocate gateway ({_show(s.gateway)}): {ERR_IP_ALREADY_ALLOCATED}")
            pool.gateway = gw
        elif gateway_default:
            # libnetwork asks the pool (ip-range included) for any address: the first free one
            gw_default = pool._scan(first, last)
            if gw_default is None:
                raise Unavailable(f"failed to allocate gateway (): {ERR_NO_AVAILABLE_IPS}")
            pool.gateway = gw_default
        if pool.gateway is not None:
            reserved.add(pool.gateway)
        for name, text in s.aux_addresses.items():
            aux = pool._inside(text, f"auxiliary address {_show(name)}")
            if aux in reserved:
                raise Forbidden(f"failed to allocate secondary ip address ({_show(name)}:{_show(text)}): "
                                f"{ERR_IP_ALREADY_ALLOCATED}")
            reserved.add(aux)
        return pool

    def _inside(self, text: str, what: str) -> int:
        addr = _parse_addr(text)
        if addr is None:
            raise InvalidParameter(f"invalid {what} {_show(text)}: invalid address")
        if addr.version != self.version or addr not in self.net:
            raise InvalidParameter(f"invalid {what} {_show(text)}: parent subnet {self.net} doesn't contain this address")
        return int(addr)

    def taken(self, n: int) -> bool:
        return n in self.reserved or n in self.allocated

    def _scan(self, start: int, stop: int) -> int | None:
        """The first address in [start, stop] neither reserved nor handed out. Walks over
        taken addresses only, so the cost is bounded by how many are taken."""
        n = start
        while n <= stop:
            if not self.taken(n):
                return n
            n += 1
        return None

    def next_free(self, serial: bool) -> int | None:
        """libnetwork's bitmap SetAny(Range): from the address after the last one given
        (serial) or from the start of the range, wrapping around once."""
        found = None
        if serial and self.cursor is not None and self.first <= self.cursor < self.last:
            found = self._scan(self.cursor + 1, self.last)
        if found is None:
            found = self._scan(self.first, self.last)
        return found

    def in_use(self) -> Iterator[int]:
        return iter(sorted(self.allocated))


class Allocator:
    """The addresses of one network: its subnets, and which addresses are handed out.

    `serial` (the default) keeps searching upward from the last address handed out and
    wraps around at the end of the range, like libnetwork's bitmap with the
    "com.docker.network.ipam.serial" option (which swarm networks set); without it the
    lowest free address is handed out, which is what dockerd does for local networks.
    `dynamic` names the subnets picked from the default pools rather than given by the
    user: a preferred address in those is refused, as dockerd refuses it.
    """

    def __init__(self, subnets: Sequence[SubnetConfig], allocated: Iterable[str] = (),
                 last: Mapping[str, str] | None = None, *, dynamic: Collection[str] = (),
                 serial: bool = True) -> None:
        self.subnets = [SubnetConfig(s.subnet, s.gateway, s.ip_range, dict(s.aux_addresses)) for s in subnets]
        self.serial = serial
        self._pools = [_Pool.of(s) for s in self.subnets]
        for i, p in enumerate(self._pools):
            if any(p.net.overlaps(q.net) for q in self._pools[:i] if q.version == p.version):
                raise Forbidden(f"invalid pool request: {ERR_POOL_OVERLAP}")
        dyn = {_canonical_subnet(d) for d in dynamic}
        self._dynamic = {p.config.subnet for p in self._pools if str(p.net) in dyn}
        for text in allocated:
            addr = _parse_addr(text)
            pool = self._pool_of(addr) if addr is not None else None
            if addr is None or pool is None:
                raise InvalidParameter(f"allocated address {_show(text)} is in no subnet of the network")
            if pool.taken(int(addr)):
                raise Forbidden(f"allocated address {_show(text)}: {ERR_IP_ALREADY_ALLOCATED}")
            pool.allocated.add(int(addr))
        for subnet, text in (last or {}).items():
            pool = next((p for p in self._pools if str(p.net) == _canonical_subnet(subnet)), None)
            addr = _parse_addr(text)
            if pool is None or addr is None or self._pool_of(addr) is not pool:
                raise InvalidParameter(f"last address {_show(text)} is not in subnet {_show(subnet)}")
            pool.cursor = int(addr)

    def _pool_of(self, addr: IPAddress) -> _Pool | None:
        return next((p for p in self._pools if p.version == addr.version and addr in p.net), None)

    def _preferred(self, family: int, text: str) -> tuple[_Pool, int]:
        """dockerd's checks of an endpoint's IPv4Address / IPv6Address."""
        addr = _parse_addr(text)
        if addr is None or addr.version != family or addr.is_unspecified:
            raise InvalidParameter(f"invalid IPv{family} address: {_show(text)}")
        mine = [p for p in self._pools if p.version == family]
        static = [p for p in mine if p.config.subnet not in self._dynamic]
        if not static:
            raise InvalidParameter(ERR_NO_SUBNET_AND_IP)
        pool = next((p for p in static if addr in p.net), None)
        if pool is None:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {_show(text)}")
        return pool, int(addr)

    def check(self, preferred: str) -> None:
        """Whether `preferred` may be asked for (at container create or connect, before
        any address is taken): InvalidParameter if not. Whether it is free is seen at
        allocation, as in Docker."""
        self._preferred(6 if ":" in preferred else 4, preferred)

    def allocate(self, family: int = 4, preferred: str = "") -> str:
        """An address of `family` (no prefix length): `preferred` if given and free,
        else the next free one of the first subnet that has one."""
        if family not in (4, 6):
            raise InvalidParameter(f"invalid IP family {family}")
        if preferred:
            pool, n = self._preferred(family, preferred)
            if pool.taken(n):
                raise Forbidden(ERR_IP_ALREADY_ALLOCATED)
            pool.allocated.add(n)
            return _show_addr(family, n)
        mine = [p for p in self._pools if p.version == family]
        if not mine:
            raise InvalidParameter(f"the network has no IPv{family} subnet")
        for pool in mine:
            found = pool.next_free(self.serial)
            if found is not None:
                pool.allocated.add(found)
                pool.cursor = found
                return _show_addr(family, found)
        raise PoolExhausted(ERR_NO_AVAILABLE_IPS)

    def release(self, address: str) -> None:
        """Give `address` back; releasing one not handed out (a gateway, twice) does nothing."""
        addr = _parse_addr(address)
        if addr is None:
            raise InvalidParameter(f"invalid address {_show(address)}")
        pool = self._pool_of(addr)
        if pool is None:
            raise InvalidParameter(ERR_IP_OUT_OF_RANGE)
        pool.allocated.discard(int(addr))

    def allocated(self) -> list[str]:
        """The addresses handed out, subnet by subnet, in address order."""
        return [_show_addr(p.version, n) for p in self._pools for n in p.in_use()]

    def available(self, family: int = 4) -> int:
        """How many addresses of `family` may still be handed out (arithmetic, not counted)."""
        total = 0
        for p in self._pools:
            if p.version == family:
                taken = sum(1 for n in p.reserved | p.allocated if p.first <= n <= p.last)
                total += p.last - p.first + 1 - taken
        return total

    def to_doc(self) -> dict[str, Any]:
        return {
            "subnets": [{"subnet": s.subnet, "gateway": s.gateway, "ip_range": s.ip_range,
                         "aux_addresses": dict(s.aux_addresses)} for s in self.subnets],
            "allocated": self.allocated(),
            "last": {str(p.net): _show_addr(p.version, p.cursor) for p in self._pools if p.cursor is not None},
            "dynamic": sorted(self._dynamic),
            "serial": self.serial,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Allocator:
        """The allocator `to_doc()` described; InvalidParameter for a document that is not one."""
        if not isinstance(doc, Mapping):
            raise InvalidParameter("invalid IPAM state: not an object")
        subnets_doc = doc.get("subnets", [])
        allocated = doc.get("allocated", [])
        last = doc.get("last", {})
        dynamic = doc.get("dynamic", [])
        serial = doc.get("serial", True)
        if (not isinstance(subnets_doc, list) or not _strings(allocated) or not _strings(dynamic)
                or not isinstance(last, Mapping) or not _strings(list(last)) or not _strings(list(last.values()))
                or not isinstance(serial, bool)):
            raise InvalidParameter("invalid IPAM state: malformed document")
        subnets = []
        for d in subnets_doc:
            if not isinstance(d, Mapping):
                raise InvalidParameter("invalid IPAM state: malformed subnet")
            aux = d.get("aux_addresses", {})
            fields = (d.get("subnet"), d.get("gateway", ""), d.get("ip_range", ""))
            if (not _strings(list(fields)) or not isinstance(aux, Mapping)
                    or not _strings(list(aux)) or not _strings(list(aux.values()))):
                raise InvalidParameter("invalid IPAM state: malformed subnet")
            subnets.append(SubnetConfig(str(fields[0]), str(fields[1]), str(fields[2]), dict(aux)))
        return cls(subnets, allocated, last, dynamic=dynamic, serial=serial)


def _strings(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def _parse_addr(text: str) -> IPAddress | None:
    """An address as Go's netip.ParseAddr takes it (zones refused; no leading zeros)."""
    if not isinstance(text, str) or not text or len(text) > 45 or not text.isascii() or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_prefix(text: str) -> _Interface | None:
    """A CIDR as Go's netip.ParsePrefix takes it: the address as given (host bits kept,
    so the caller can say "it should be …") and a decimal prefix length."""
    if not isinstance(text, str):
        return None
    addr_text, slash, bits_text = text.partition("/")
    if not slash or not _PREFIX_BITS.fullmatch(bits_text):
        return None
    addr = _parse_addr(addr_text)
    if addr is None or int(bits_text) > addr.max_prefixlen:
        return None
    return ipaddress.ip_interface((addr, int(bits_text)))


def _canonical_subnet(text: str) -> str:
    sub = _parse_prefix(text)
    return str(sub.network) if sub is not None else text


def _network(version: int, n: int, bits: int) -> IPNetwork:
    if version == 4:
        return ipaddress.IPv4Network((n, bits))
    return ipaddress.IPv6Network((n, bits))


def _show_addr(version: int, n: int) -> str:
    return str(ipaddress.IPv4Address(n) if version == 4 else ipaddress.IPv6Address(n))


def _show(text: object) -> str:
    """A user's string, quoted back in a message: one line, not too long."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s if len(s) <= _MAX_SHOWN else s[:_MAX_SHOWN] + "…"
