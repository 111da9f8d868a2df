"""berth.network.ipam: Docker's default IPAM rules and messages, as pure code."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from berth.errors import BerthError, Forbidden, InvalidParameter, Unavailable
from berth.network import ipam
from berth.network.ipam import Allocator, PoolExhausted, PoolSpec
from berth.network.model import SubnetConfig


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def plan(*requests: SubnetConfig, taken: tuple[str, ...] = (), routes: tuple[str, ...] = (),
         ipv6: bool = False, ipv4: bool = True) -> list[SubnetConfig]:
    return ipam.plan_subnets(list(requests), [net(t) for t in taken], [net(r) for r in routes], ipv6, ipv4=ipv4)


def allocator(*requests: SubnetConfig, ipv6: bool = False, serial: bool = True) -> Allocator:
    return Allocator(plan(*requests, ipv6=ipv6), serial=serial)


# -- default pools ---------------------------------------------------------------------------


def test_default_pools_are_dockers_in_order() -> None:
    pools = ipam.default_pools()
    assert [str(p) for p in pools[:15]] == [f"172.{i}.0.0/16" for i in range(17, 32)]
    assert [str(p) for p in pools[15:]] == [f"192.168.{i}.0/20" for i in range(0, 256, 16)]
    assert len(pools) == 31


def test_choose_subnet_takes_the_first_free_pool() -> None:
    assert str(ipam.choose_subnet([], [])) == "172.17.0.0/16"
    assert str(ipam.choose_subnet([net("172.17.0.0/16")], [])) == "172.18.0.0/16"


def test_choose_subnet_skips_pools_overlapping_networks_or_routes() -> None:
    taken = [net("172.17.0.0/16"), net("172.19.5.0/24")]  # a user subnet blocks its whole /16
    routes = [net("172.18.0.0/15")]  # a VPN route over 172.18 and 172.19
    assert str(ipam.choose_subnet(taken, routes)) == "172.20.0.0/16"


def test_choose_subnet_ignores_default_routes_and_other_families() -> None:
    routes = [net("0.0.0.0/0"), net("::/0"), net("2001:db8::/32")]
    assert str(ipam.choose_subnet([], routes)) == "172.17.0.0/16"


def test_choose_subnet_uses_192_168_in_slices_of_20() -> None:
    taken = [net("172.16.0.0/12")]
    assert str(ipam.choose_subnet(taken, [])) == "192.168.0.0/20"
    taken.append(net("192.168.1.0/24"))
    assert str(ipam.choose_subnet(taken, [])) == "192.168.16.0/20"
    taken += [net("192.168.16.0/20"), net("192.168.32.0/19")]
    assert str(ipam.choose_subnet(taken, [])) == "192.168.64.0/20"


def test_choose_subnet_when_every_default_is_taken() -> None:
    with pytest.raises(InvalidParameter, match="^all predefined address pools have been fully subnetted$"):
        ipam.choose_subnet([net("172.16.0.0/12")], [net("192.168.0.0/16")])
    taken = [net("172.16.0.0/12"), *(net(f"192.168.{i}.0/20") for i in range(0, 256, 16))]
    with pytest.raises(InvalidParameter):
        ipam.choose_subnet(taken, [])


def test_every_default_pool_can_be_given_once() -> None:
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for _ in range(31):
        taken.append(ipam.choose_subnet(taken, []))
    assert [str(t) for t in taken] == [str(p) for p in ipam.default_pools()]
    with pytest.raises(InvalidParameter):
        ipam.choose_subnet(taken, [])


def test_ula_pool_is_stable_per_host() -> None:
    a, b = ipam.ula_pool("host-a"), ipam.ula_pool("host-b")
    assert a == ipam.ula_pool("host-a") and a != b
    assert a.size == 64 and a.base.prefixlen == 48
    assert a.base.subnet_of(net("fd00::/8"))  # type: ignore[arg-type]


def test_ipv6_default_pool_skips_taken_64s() -> None:
    spec = ipam.ula_pool("h")
    first = next(spec.candidates())
    got = ipam.choose_subnet([first], [], family=6, pools=[spec])
    assert got.prefixlen == 64 and int(got.network_address) == int(first.network_address) + (1 << 64)


def test_bad_pool_spec_is_refused() -> None:
    with pytest.raises(InvalidParameter):
        PoolSpec(net("10.0.0.0/16"), 8)


# -- planning a network's subnets -------------------------------------------------------------


def test_plan_without_subnets_picks_a_default_with_gateway() -> None:
    (s,) = plan(taken=("172.17.0.0/16",))
    assert (s.subnet, s.gateway, s.ip_range, s.aux_addresses) == ("172.18.0.0/16", "172.18.0.1", "", {})


def test_plan_avoids_host_routes_for_defaults_but_not_user_subnets() -> None:
    (s,) = plan(routes=("172.17.0.0/16",))
    assert s.subnet == "172.18.0.0/16"
    (u,) = plan(SubnetConfig("172.17.0.0/16"), routes=("172.17.0.0/16",))
    assert u.subnet == "172.17.0.0/16"


def test_plan_ipv6_without_subnet_takes_a_ula_64() -> None:
    v4, v6 = plan(ipv6=True)
    assert v4.subnet == "172.17.0.0/16"
    n6 = net(v6.subnet)
    assert n6.prefixlen == 64 and n6.subnet_of(net("fd00::/8"))  # type: ignore[arg-type]
    assert v6.gateway == str(n6.network_address + 1)


def test_plan_ipv4_disabled_and_ipv6_subnets_ignored_without_ipv6() -> None:
    (s,) = plan(SubnetConfig("10.1.0.0/24"), SubnetConfig("2001:db8::/64"))
    assert s.subnet == "10.1.0.0/24"
    (only6,) = plan(SubnetConfig("10.1.0.0/24"), SubnetConfig("2001:db8::/64"), ipv6=True, ipv4=False)
    assert only6.subnet == "2001:db8::/64"


def test_plan_orders_ipv4_first_and_keeps_user_settings() -> None:
    got = plan(SubnetConfig("2001:db8::/64", gateway="2001:db8::fe"),
               SubnetConfig("10.1.0.0/16", gateway="10.1.255.254", ip_range="10.1.4.0/24",
                             aux_addresses={"router": "10.1.0.9"}), ipv6=True)
    assert got == [SubnetConfig("10.1.0.0/16", "10.1.255.254", "10.1.4.0/24", {"router": "10.1.0.9"}),
                   SubnetConfig("2001:db8::/64", "2001:db8::fe", "", {})]


def test_plan_takes_model_subnet_configs() -> None:
    (s,) = ipam.plan_subnets([SubnetConfig("10.9.0.0/24")], [], [], False)
    assert s.gateway == "10.9.0.1"


def test_gateway_default_is_first_free_of_the_ip_range_as_docker() -> None:
    # libnetwork asks the (sub)pool for any address: ip-range 10.1.4.0/24 yields 10.1.4.0
    (s,) = plan(SubnetConfig("10.1.0.0/16", ip_range="10.1.4.0/24"))
    assert s.gateway == "10.1.4.0"
    (t,) = plan(SubnetConfig("10.1.0.0/16", ip_range="10.1.0.0/24"))
    assert t.gateway == "10.1.0.1"  # the network address itself is reserved


def test_plan_canonicalises_ipv6_text() -> None:
    (s,) = plan(SubnetConfig("2001:DB8:0::/64", gateway="2001:DB8::0:1"), ipv6=True, ipv4=False)
    assert (s.subnet, s.gateway) == ("2001:db8::/64", "2001:db8::1")


def test_overlap_with_another_network_is_forbidden() -> None:
    msg = "^invalid pool request: Pool overlaps with other one on this address space$"
    with pytest.raises(Forbidden, match=msg):
        plan(SubnetConfig("172.17.5.0/24"), taken=("172.17.0.0/16",))
    with pytest.raises(Forbidden, match=msg):
        plan(SubnetConfig("10.0.0.0/8"), taken=("10.1.2.0/24",))
    with pytest.raises(Forbidden, match=msg):
        plan(SubnetConfig("10.0.0.0/24"), SubnetConfig("10.0.0.128/25"))
    with pytest.raises(Forbidden, match=msg):
        plan(SubnetConfig("2001:db8::/64"), taken=("2001:db8::/48",), ipv6=True)


@pytest.mark.parametrize(("request_", "message"), [
    (SubnetConfig("10.0.0.0/33"), "invalid subnet 10.0.0.0/33: invalid CIDR block notation"),
    (SubnetConfig("banana"), "invalid subnet banana: invalid CIDR block notation"),
    (SubnetConfig(""), "invalid subnet : invalid CIDR block notation"),
    (SubnetConfig("10.0.0.0"), "invalid subnet 10.0.0.0: invalid CIDR block notation"),
    (SubnetConfig("10.0.0.0/255.255.0.0"), "invalid subnet 10.0.0.0/255.255.0.0: invalid CIDR block notation"),
    (SubnetConfig("010.0.0.0/8"), "invalid subnet 010.0.0.0/8: invalid CIDR block notation"),
    (SubnetConfig("10.0.0.0/08"), "invalid subnet 10.0.0.0/08: invalid CIDR block notation"),
    (SubnetConfig("fe80::%eth0/64"), "invalid subnet fe80::%eth0/64: invalid CIDR block notation"),
    (SubnetConfig("10.0.0.1/24"), "invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24"),
    (SubnetConfig("10.0.0.0/24", gateway="10.0.1.1"),
     "invalid gateway 10.0.1.1: parent subnet 10.0.0.0/24 doesn't contain this address"),
    (SubnetConfig("10.0.0.0/24", gateway="2001:db8::1"), "invalid gateway 2001:db8::1: parent subnet is an IPv4 block"),
    (SubnetConfig("10.0.0.0/24", gateway="10.0.0.300"), "invalid gateway 10.0.0.300: invalid address"),
    (SubnetConfig("10.0.0.0/24", ip_range="10.0.1.0/25"),
     "invalid ip-range 10.0.1.0/25: parent subnet 10.0.0.0/24 doesn't contain ip-range"),
    (SubnetConfig("10.0.0.0/24", ip_range="10.0.0.0/16"),
     "invalid ip-range 10.0.0.0/16: CIDR block is bigger than its parent subnet 10.0.0.0/24"),
    (SubnetConfig("10.0.0.0/24", ip_range="10.0.0.5/30"), "invalid ip-range 10.0.0.5/30: it should be 10.0.0.4/30"),
    (SubnetConfig("10.0.0.0/24", ip_range="2001:db8::/64"),
     "invalid ip-range 2001:db8::/64: parent subnet is an IPv4 block"),
    (SubnetConfig("10.0.0.0/24", ip_range="nope"), "invalid ip-range nope: invalid CIDR block notation"),
    (SubnetConfig("10.0.0.0/24", aux_addresses={"host1": "10.0.9.9"}),
     "invalid auxiliary address host1: parent subnet 10.0.0.0/24 doesn't contain this address"),
    (SubnetConfig("10.0.0.0/24", aux_addresses={"host1": "x"}), "invalid auxiliary address host1: invalid address"),
])
def test_invalid_requests_get_dockers_messages(request_: SubnetConfig, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        plan(request_, ipv6=True)
    assert str(err.value) == f"invalid network config: {message}"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidParameter) as err:
        plan(SubnetConfig("10.0.0.1/24", gateway="11.0.0.1"), SubnetConfig("bad"))
    assert str(err.value) == ("invalid network config: invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24; "
                              "invalid gateway 11.0.0.1: parent subnet 10.0.0.1/24 doesn't contain this address; "
                              "invalid subnet bad: invalid CIDR block notation")


def test_gateway_or_aux_on_a_reserved_address() -> None:
    with pytest.raises(Forbidden, match=r"^failed to allocate gateway \(10\.0\.0\.0\): Address already in use$"):
        plan(SubnetConfig("10.0.0.0/24", gateway="10.0.0.0"))
    with pytest.raises(Forbidden, match="^failed to allocate gateway"):
        plan(SubnetConfig("10.0.0.0/24", gateway="10.0.0.255"))
    with pytest.raises(Forbidden, match=r"^failed to allocate secondary ip address \(r:10\.0\.0\.1\): Address already in use$"):
        plan(SubnetConfig("10.0.0.0/24", aux_addresses={"r": "10.0.0.1"}))


def test_aux_address_outside_the_ip_range_is_still_reserved() -> None:
    (s,) = plan(SubnetConfig("10.0.0.0/24", ip_range="10.0.0.0/28", aux_addresses={"a": "10.0.0.2", "b": "10.0.0.200"}))
    a = Allocator([s])
    assert a.allocate() == "10.0.0.3"
    with pytest.raises(Forbidden, match="^Address already in use$"):
        a.allocate(4, "10.0.0.200")


def test_messages_stay_on_one_line() -> None:
    with pytest.raises(InvalidParameter) as err:
        plan(SubnetConfig("10.0.0.0/24\nInjected: yes"))
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidParameter) as err:
        plan(SubnetConfig("x" * 10_000))
    assert len(str(err.value)) < 300


def test_prefix_len() -> None:
    assert ipam.prefix_len("10.0.0.0/24") == 24
    assert ipam.prefix_len("2001:db8::/64") == 64
    with pytest.raises(InvalidParameter):
        ipam.prefix_len("10.0.0.0")


# -- allocating addresses ----------------------------------------------------------------------


def test_addresses_come_in_order_after_the_gateway() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    assert [a.allocate() for _ in range(3)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_serial_allocation_goes_upward_after_release_then_wraps() -> None:
    a = allocator(SubnetConfig("10.0.0.0/29"))  # .1 gateway, .2-.6 usable, .7 broadcast
    assert [a.allocate() for _ in range(3)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    a.release("10.0.0.2")
    assert a.allocate() == "10.0.0.5"
    assert a.allocate() == "10.0.0.6"
    assert a.allocate() == "10.0.0.2"  # wrapped around
    with pytest.raises(PoolExhausted, match="^no available addresses on this pool$"):
        a.allocate()
    a.release("10.0.0.4")
    assert a.allocate() == "10.0.0.4"


def test_first_free_allocation_reuses_the_lowest_address() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"), serial=False)
    assert [a.allocate() for _ in range(3)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    a.release("10.0.0.2")
    assert a.allocate() == "10.0.0.2"


def test_gateway_elsewhere_leaves_the_first_address_free() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24", gateway="10.0.0.254"))
    assert a.allocate() == "10.0.0.1"


def test_ip_range_limits_automatic_allocation() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24", gateway="10.0.0.1", ip_range="10.0.0.16/30"))
    assert [a.allocate() for _ in range(4)] == ["10.0.0.16", "10.0.0.17", "10.0.0.18", "10.0.0.19"]
    with pytest.raises(PoolExhausted):
        a.allocate()
    assert a.allocate(4, "10.0.0.100") == "10.0.0.100"  # --ip may be outside the range


def test_exhaustion_is_unavailable_and_moves_on_to_the_next_subnet() -> None:
    a = allocator(SubnetConfig("10.0.0.0/30"), SubnetConfig("10.0.1.0/30"))
    assert [a.allocate(), a.allocate()] == ["10.0.0.2", "10.0.1.2"]
    with pytest.raises(Unavailable):
        a.allocate()


def test_slash_31_and_32_have_no_network_or_broadcast() -> None:
    a = allocator(SubnetConfig("10.0.0.0/31"))
    assert a.subnets[0].gateway == "10.0.0.0"
    assert a.allocate() == "10.0.0.1"
    (s,) = plan(SubnetConfig("10.0.0.7/32"))
    assert s.gateway == "10.0.0.7"
    with pytest.raises(PoolExhausted):
        Allocator([s]).allocate()


def test_preferred_address() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    assert a.allocate(4, "10.0.0.50") == "10.0.0.50"
    with pytest.raises(Forbidden, match="^Address already in use$"):
        a.allocate(4, "10.0.0.50")
    for reserved in ("10.0.0.0", "10.0.0.1", "10.0.0.255"):
        with pytest.raises(Forbidden, match="^Address already in use$"):
            a.allocate(4, reserved)
    with pytest.raises(InvalidParameter, match="^no configured subnet or ip-range contain the IP address 10.0.1.5$"):
        a.allocate(4, "10.0.1.5")
    with pytest.raises(InvalidParameter, match="^invalid IPv4 address: 2001:db8::5$"):
        a.allocate(4, "2001:db8::5")
    with pytest.raises(InvalidParameter, match="^invalid IPv4 address: 0.0.0.0$"):
        a.allocate(4, "0.0.0.0")
    with pytest.raises(InvalidParameter, match="^invalid IPv4 address: 10.0.0.999$"):
        a.allocate(4, "10.0.0.999")
    # a preferred address does not move the serial cursor
    assert a.allocate() == "10.0.0.2"


def test_check_validates_without_taking() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    a.check("10.0.0.9")
    assert a.allocated() == []
    with pytest.raises(InvalidParameter):
        a.check("192.168.0.1")


def test_preferred_address_on_a_default_subnet_is_refused_like_docker() -> None:
    subnets = plan()
    a = Allocator(subnets, dynamic=[s.subnet for s in subnets])
    with pytest.raises(InvalidParameter, match="^user specified IP address is supported only when connecting to "
                                               "networks with user configured subnets$"):
        a.allocate(4, "172.17.0.9")
    assert a.allocate() == "172.17.0.2"
    b = Allocator.from_doc(json.loads(json.dumps(a.to_doc())))
    with pytest.raises(InvalidParameter, match="^user specified"):
        b.check("172.17.0.9")


def test_ipv6_allocation() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"), SubnetConfig("2001:db8::/64"), ipv6=True)
    assert a.allocate(6) == "2001:db8::2"
    assert a.allocate(6, "2001:db8::dead") == "2001:db8::dead"
    with pytest.raises(InvalidParameter, match="^invalid IPv6 address: 10.0.0.5$"):
        a.allocate(6, "10.0.0.5")
    assert a.allocate(4) == "10.0.0.2"


def test_ipv6_has_no_broadcast_and_reserves_the_subnet_router_address() -> None:
    a = Allocator(plan(SubnetConfig("2001:db8::/126", gateway="2001:db8::3"), ipv6=True, ipv4=False))
    assert [a.allocate(6), a.allocate(6)] == ["2001:db8::1", "2001:db8::2"]
    with pytest.raises(PoolExhausted):
        a.allocate(6)
    with pytest.raises(Forbidden):
        a.allocate(6, "2001:db8::")


def test_family_without_subnet() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    with pytest.raises(InvalidParameter, match="IPv6"):
        a.allocate(6)
    with pytest.raises(InvalidParameter, match="^user specified"):
        a.allocate(6, "2001:db8::1")
    with pytest.raises(InvalidParameter):
        a.allocate(5)


def test_release() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    ip = a.allocate()
    a.release(ip)
    a.release(ip)  # twice: nothing
    a.release("10.0.0.1")  # the gateway is not handed out, so not given back either
    assert a.allocate(4, "10.0.0.2") == "10.0.0.2"
    with pytest.raises(Forbidden):
        a.allocate(4, "10.0.0.1")
    with pytest.raises(InvalidParameter, match="^requested address is out of range$"):
        a.release("10.9.9.9")
    with pytest.raises(InvalidParameter):
        a.release("junk")


def test_available_counts_by_arithmetic() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"))
    assert a.available() == 253
    a.allocate()
    assert a.available() == 252
    big = Allocator(plan(SubnetConfig("2001:db8::/32"), ipv6=True, ipv4=False))
    assert big.available(6) == 2**96 - 2


# -- persistence -------------------------------------------------------------------------------


def test_doc_round_trip_keeps_addresses_and_cursor() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24", ip_range="10.0.0.0/25", aux_addresses={"x": "10.0.0.9"}),
                  SubnetConfig("2001:db8::/64"), ipv6=True)
    got = [a.allocate(), a.allocate(), a.allocate(4, "10.0.0.200"), a.allocate(6)]
    a.release(got[0])
    doc = json.loads(json.dumps(a.to_doc()))
    b = Allocator.from_doc(doc)
    assert b.to_doc() == doc
    assert sorted(b.allocated()) == sorted(got[1:])
    assert b.allocate() == "10.0.0.4"  # the cursor survived: upward from .3, not back to .2
    assert b.subnets == a.subnets


def test_doc_keeps_the_allocation_mode() -> None:
    a = allocator(SubnetConfig("10.0.0.0/24"), serial=False)
    a.allocate()
    a.allocate()
    a.release("10.0.0.2")
    b = Allocator.from_doc(a.to_doc())
    assert b.allocate() == "10.0.0.2"


def test_allocator_from_controller_style_plan() -> None:
    # the controller builds Allocator(plan) and keeps only the document
    subnets = ipam.plan_subnets([SubnetConfig("172.17.0.0/16")], [], [], False)
    doc = Allocator(subnets).to_doc()
    assert Allocator.from_doc(doc).allocate() == "172.17.0.2"
    assert Allocator.from_doc({}).to_doc()["subnets"] == []


@pytest.mark.parametrize("doc", [
    None, [], "x", {"subnets": "x"}, {"subnets": [1]}, {"subnets": [{"subnet": 5}]},
    {"subnets": [{"subnet": "10.0.0.0/24", "aux_addresses": []}]},
    {"subnets": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}], "allocated": ["10.0.1.1"]},
    {"subnets": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}], "allocated": ["10.0.0.1"]},
    {"subnets": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}], "allocated": ["10.0.0.5", "10.0.0.5"]},
    {"subnets": [{"subnet": "10.0.0.0/24"}], "allocated": [7]},
    {"subnets": [{"subnet": "10.0.0.0/24"}], "last": {"10.0.0.0/24": "10.0.1.1"}},
    {"subnets": [{"subnet": "10.0.0.0/24"}], "last": {"10.1.0.0/24": "10.1.0.1"}},
    {"subnets": [{"subnet": "10.0.0.0/24"}], "serial": "yes"},
    {"subnets": [{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]},
    {"subnets": [{"subnet": "10.0.0.5/24"}]},
    {"subnets": [{"subnet": "10.0.0.0/24", "gateway": "11.0.0.1"}]},
    {"subnets": [{"subnet": "10.0.0.0/24", "ip_range": "10.0.1.0/24"}]},
    {"subnets": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "aux_addresses": {"a": "10.0.0.1"}}]},
])
def test_hostile_documents_are_refused(doc: object) -> None:
    with pytest.raises(BerthError):
        Allocator.from_doc(doc)  # type: ignore[arg-type]


# -- hostile input: huge ranges cost nothing ---------------------------------------------------


def test_huge_ipv6_subnet_allocates_quickly_and_small() -> None:
    start = time.monotonic()
    a = Allocator(plan(SubnetConfig("::/0"), ipv6=True, ipv4=False))
    assert a.subnets[0].gateway == "::1"
    got = [a.allocate(6) for _ in range(1000)]
    assert got[0] == "::2" and got[-1] == "::3e9"
    a.release(got[10])
    assert a.allocate(6) == "::3ea"
    assert len(json.dumps(a.to_doc())) < 20_000
    assert time.monotonic() - start < 2


def test_huge_ipv6_ip_range_near_its_end() -> None:
    (s,) = plan(SubnetConfig("2001:db8::/32", ip_range="2001:db8:ffff:ffff::/64"), ipv6=True, ipv4=False)
    assert s.gateway == "2001:db8:ffff:ffff::"
    a = Allocator([s], last={"2001:db8::/32": "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"})
    assert a.allocate(6) == "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
    assert a.allocate(6) == "2001:db8:ffff:ffff::1"  # wrapped to the start of the range


def test_choose_subnet_in_a_huge_pool_is_arithmetic() -> None:
    spec = PoolSpec(net("fd00::/8"), 64)
    taken = [net("fd00::/16"), net("fd01::/17")]
    start = time.monotonic()
    got = ipam.choose_subnet(taken, [], family=6, pools=[spec])
    assert str(got) == "fd01:8000::/64"
    with pytest.raises(InvalidParameter):
        ipam.choose_subnet([net("fd00::/8")], [], family=6, pools=[spec])
    assert time.monotonic() - start < 1


def test_many_aux_addresses_and_garbage_do_not_hurt() -> None:
    aux = {f"h{i}": f"10.0.{i // 256}.{i % 256}" for i in range(1, 4000)}
    (s,) = plan(SubnetConfig("10.0.0.0/16", gateway="10.0.255.1", aux_addresses=aux))
    a = Allocator([s])
    assert a.allocate() == "10.0.15.160"
    for junk in ("", "/", "1.2.3.4/", "/24", "1.2.3.4/-1", "1.2.3.4/+8", "::/129", "1.2.3.4/24/1", "\x00",
                 "١.٢.٣.٤/8", "1.2.3.4 /8", " 1.2.3.4/8"):
        with pytest.raises(InvalidParameter):
            plan(SubnetConfig(junk))
