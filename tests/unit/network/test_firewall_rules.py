"""The firewall's pure parts: nft script generation, listing parsing, error lines."""

from __future__ import annotations

import ipaddress
import json

import pytest

from berth.errors import InvalidParameter
from berth.network.firewall import (
    BridgeNetwork,
    PublishedPort,
    RuleRef,
    TableState,
    _first_error,
    add_network_script,
    add_port_script,
    docker_user_rules,
    network_rules,
    parse_table,
    remove_network_script,
    setup_script,
)


def net(bridge: str, *subnets: str, **flags: bool) -> BridgeNetwork:
    return BridgeNetwork(bridge, tuple(ipaddress.ip_network(s) for s in subnets), **flags)


def test_setup_script_creates_base_chains_and_refills_them() -> None:
    script = setup_script("ip")
    assert script.startswith("add table ip berth\n")
    assert "add chain ip berth nat-PREROUTING { type nat hook prerouting priority dstnat;" in script
    assert "add chain ip berth nat-OUTPUT { type nat hook output priority -100;" in script
    assert "type nat hook postrouting priority srcnat;" in script
    assert "type filter hook forward priority filter;" in script
    for chain in ("nat-PREROUTING", "nat-OUTPUT", "nat-POSTROUTING", "filter-FORWARD"):
        assert f"flush chain ip berth {chain}\n" in script
    assert "flush chain ip berth nat-ports" not in script  # ports survive a re-setup
    assert "add rule ip berth nat-OUTPUT fib daddr type local jump nat-ports" in script


def test_setup_script_ip6_excludes_loopback_and_raw() -> None:
    script = setup_script("ip6")
    assert "add rule ip6 berth nat-OUTPUT ip6 daddr != ::1 fib daddr type local" in script
    assert "raw" not in script


def test_network_rules_default() -> None:
    rules = network_rules(net("br1", "192.0.2.0/24", "fd00::/64"), "ip")
    assert rules["filter-forward-in"] == [
        "ct state established,related accept",
        'ct status dnat accept comment "PUBLISHED PORT"',
        'iifname "br1" accept comment "ICC"',
        'drop comment "UNPUBLISHED PORT DROP"',
    ]
    assert rules["filter-forward-out"][-1] == 'accept comment "OUTGOING"'
    assert rules["nat-postrouting-out"] == [
        'oifname != "br1" ip saddr 192.0.2.0/24 masquerade comment "MASQUERADE"'
    ]
    assert (
        'ip saddr 127.0.0.0/8 masquerade comment "MASQUERADE FROM LOOPBACK"'
        in (rules["nat-postrouting-in"])
    )
    assert rules["raw-prerouting"] == ['ip daddr 127.0.0.0/8 drop comment "LOOPBACK FROM BRIDGE"']
    six = network_rules(net("br1", "192.0.2.0/24", "fd00::/64"), "ip6")
    assert six["nat-postrouting-out"] == [
        'oifname != "br1" ip6 saddr fd00::/64 masquerade comment "MASQUERADE"'
    ]
    assert "raw-prerouting" not in six


def test_network_rules_internal_no_icc_no_masquerade() -> None:
    internal = network_rules(net("br2", "192.0.2.0/24", internal=True, icc=False), "ip")
    assert internal["filter-forward-in"] == [
        "ct state established,related accept",
        'iifname != "br2" drop comment "INTERNAL NETWORK INGRESS"',
        "jump filter-links",
        'iifname "br2" drop comment "ICC"',
    ]
    assert internal["filter-forward-out"][-1] == (
        'oifname != "br2" drop comment "INTERNAL NETWORK EGRESS"'
    )
    assert internal["nat-postrouting-out"] == [] and internal["nat-postrouting-in"] == []
    plain = network_rules(net("br3", "192.0.2.0/24", masquerade=False), "ip")
    assert plain["nat-postrouting-out"] == []


def test_add_network_script_refills_chains_then_maps() -> None:
    script = add_network_script(net("br1", "192.0.2.0/24"), "ip")
    lines = script.splitlines()
    assert lines.index("flush chain ip berth filter-forward-in__br1") < lines.index(
        'add element ip berth filter-forward-in-jumps { "br1" : jump filter-forward-in__br1 }'
    )
    assert sum(line.startswith("add element") for line in lines) == 5


def test_remove_network_script_deletes_only_what_exists() -> None:
    state = TableState(
        chains={"filter-forward-in__br1", "nat-ports", "filter-forward-in__br10"},
        rules=[
            RuleRef("nat-ports", 7, "br1 tcp *:80 > 192.0.2.2:80"),
            RuleRef("nat-ports", 8, "br10 tcp *:81 > 192.0.2.3:80"),
            RuleRef("filter-forward-in__br1", 9, "ICC"),
        ],
        map_keys={"filter-forward-in-jumps": {"br1", "br10"}},
    )
    assert remove_network_script("br1", "ip", state).splitlines() == [
        'delete element ip berth filter-forward-in-jumps { "br1" }',
        "delete rule ip berth nat-ports handle 7",
        "flush chain ip berth filter-forward-in__br1",
        "delete chain ip berth filter-forward-in__br1",
    ]
    assert remove_network_script("gone", "ip", state) == ""


def test_port_rules() -> None:
    port = PublishedPort("tcp", "", 8080, "192.0.2.2", 80, "br1")
    assert add_port_script(port) == (
        "add rule ip berth nat-ports tcp dport 8080 dnat to 192.0.2.2:80"
        ' comment "br1 tcp *:8080 > 192.0.2.2:80"\n'
    )
    lo = PublishedPort("udp", "127.0.0.1", 53, "192.0.2.2", 5353, "br1")
    assert add_port_script(lo).splitlines() == [
        "add rule ip berth nat-ports ip daddr 127.0.0.1 udp dport 53 dnat to 192.0.2.2:5353"
        ' comment "br1 udp 127.0.0.1:53 > 192.0.2.2:5353"',
        'add rule ip berth raw-ports iifname != "lo" ip daddr 127.0.0.1 udp dport 53 drop'
        ' comment "br1 udp 127.0.0.1:53 > 192.0.2.2:5353"',
    ]
    six = PublishedPort("tcp", "::", 80, "fd00::2", 8080, "br1")
    assert six.family == "ip6" and six.host_address is None
    assert add_port_script(six) == (
        "add rule ip6 berth nat-ports tcp dport 80 dnat to [fd00::2]:8080"
        ' comment "br1 tcp *:80 > [fd00::2]:8080"\n'
    )
    longest = PublishedPort(
        "tcp", "ffff:" * 7 + "ffff", 65535, "ffff:" * 7 + "fffe", 65535, "b" * 15
    )
    assert len(longest.key) <= 128


@pytest.mark.parametrize(
    "args",
    [
        ("sctp", "", 80, "192.0.2.2", 80, "br1"),
        ("tcp", "", 0, "192.0.2.2", 80, "br1"),
        ("tcp", "", 80, "192.0.2.2", 70000, "br1"),
        ("tcp", "::", 80, "192.0.2.2", 80, "br1"),
        ("tcp", "", 80, "not-an-ip", 80, "br1"),
        ("tcp", "", 80, "192.0.2.2", 80, 'br"; flush ruleset'),
    ],
)
def test_port_validation(args: tuple[str, str, int, str, int, str]) -> None:
    with pytest.raises(InvalidParameter):
        PublishedPort(*args)  # type: ignore[arg-type]


def test_bridge_names_are_checked() -> None:
    for bad in ("", "a" * 16, 'x" accept', "a b"):
        with pytest.raises(InvalidParameter):
            BridgeNetwork(bad)


def test_docker_user_rules_are_tagged() -> None:
    assert docker_user_rules("br1") == [
        'iifname "br1" accept comment "berth br1"',
        'oifname "br1" accept comment "berth br1"',
    ]


def test_parse_table() -> None:
    doc = json.loads(
        """{"nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "berth", "handle": 1}},
        {"map": {"family": "ip", "name": "filter-forward-in-jumps", "table": "berth",
                 "type": "ifname", "handle": 1, "map": "verdict",
                 "elem": [["br1", {"jump": {"target": "filter-forward-in__br1"}}]]}},
        {"map": {"family": "ip", "name": "raw-prerouting-jumps", "table": "berth",
                 "type": "ifname", "handle": 2, "map": "verdict"}},
        {"chain": {"family": "ip", "table": "berth", "name": "nat-ports", "handle": 6}},
        {"rule": {"family": "ip", "table": "berth", "chain": "nat-ports", "handle": 44,
                  "comment": "br1 tcp *:8080 > 192.0.2.2:80", "expr": []}},
        {"rule": {"family": "ip", "table": "berth", "chain": "nat-ports", "handle": 45,
                  "expr": []}}
    ]}"""
    )
    state = parse_table(doc)
    assert state.chains == {"nat-ports"}
    assert state.rules == [
        RuleRef("nat-ports", 44, "br1 tcp *:8080 > 192.0.2.2:80"),
        RuleRef("nat-ports", 45, ""),
    ]
    assert state.map_keys == {"filter-forward-in-jumps": {"br1"}, "raw-prerouting-jumps": set()}


def test_first_error_is_one_line() -> None:
    err = (
        "Error: Could not process rule: No such file or directory\n"
        "delete chain ip berth nope\n"
        "                      ^^^^\n"
    )
    assert _first_error(err) == (
        "Could not process rule: No such file or directory (in: delete chain ip berth nope)"
    )
    assert _first_error("") == "unknown error"


def test_legacy_link_rules_open_the_childs_ports_both_ways() -> None:
    from berth.network.firewall import LegacyLink, link_rules

    link = LegacyLink("berth0", "a" * 64, "172.17.0.2", "b" * 64, "172.17.0.3", (("tcp", 8080), ("udp", 53)))
    assert link.key == f"berth0 link {'a' * 12} {'b' * 12}"
    rules = link_rules(link)
    assert rules[0] == ('iifname "berth0" oifname "berth0" ip saddr 172.17.0.2 ip daddr 172.17.0.3 '
                        f'tcp dport 8080 accept comment "{link.key}"')
    assert rules[1].startswith('iifname "berth0" oifname "berth0" ip saddr 172.17.0.3 ip daddr 172.17.0.2 '
                               "tcp sport 8080 accept")
    assert "udp dport 53" in rules[2] and "udp sport 53" in rules[3]
    with pytest.raises(InvalidParameter):
        LegacyLink("berth0", "a", "172.17.0.2", "b", "172.17.0.3", (("tcp", 0),))
    script = setup_script("ip")
    assert "add chain ip berth filter-links\n" in script
    assert "flush chain ip berth filter-links" not in script  # links survive a re-setup
    rules = network_rules(net("br-x", "172.17.0.0/16", icc=False), "ip")["filter-forward-in"]
    assert rules.index("jump filter-links") == rules.index('iifname "br-x" drop comment "ICC"') - 1
    assert "jump filter-links" not in network_rules(net("br-y", "172.18.0.0/16"), "ip")["filter-forward-in"]
    assert "add chain ip berth filter-links\n" in add_network_script(net("br-x", icc=False), "ip")


def test_removing_a_network_removes_its_link_rules() -> None:
    state = TableState(rules=[RuleRef("filter-links", 7, "br-x link aaaaaaaaaaaa bbbbbbbbbbbb"),
                              RuleRef("filter-links", 8, "br-y link cccccccccccc dddddddddddd")])
    script = remove_network_script("br-x", "ip", state)
    assert "delete rule ip berth filter-links handle 7" in script
    assert "handle 8" not in script
