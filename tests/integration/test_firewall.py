"""The firewall on real nftables, always inside private network namespaces.

Every test gets fresh namespaces "berthtest-<random>" (from `ip netns add`) and runs the
firewall calls in a thread that entered one of them with setns(2): libnftables, sockets
and /proc/sys/net all act on the calling thread's namespace, so the host's own ruleset
is never touched (the `host_ruleset_unchanged` fixture checks it). The packet test
builds a host, a container and an outside machine out of namespaces, veths and a bridge,
and proves the DNAT, route_localnet, masquerade, hairpin and filtering paths with TCP.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from berth.errors import Conflict, InvalidParameter
from berth.network.firewall import BridgeNetwork, Firewall, run_nft

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="nftables needs root")

T = TypeVar("T")
CLONE_NEWNET = 0x40000000

DOCKER_FILTER = """
table ip filter {
    chain DOCKER-USER {
        counter return
    }
    chain FORWARD {
        type filter hook forward priority filter; policy drop;
        counter jump DOCKER-USER
        ct state established,related counter accept
    }
}
"""

OTHER_TABLE = """
table inet other {
    chain input {
        type filter hook input priority 10; policy accept;
        tcp dport 22 counter accept comment "keep me"
    }
}
"""


class Netns:
    """A named network namespace and a thread inside it that runs our calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[str]] = []
        subprocess.run(["ip", "netns", "add", name], check=True)
        self._thread = ThreadPoolExecutor(max_workers=1, initializer=self._enter)
        self.sh("ip link set lo up")

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._thread.submit(fn, *args).result()

    def sh(self, command: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *command.split()], check=True)

    def python(self, script: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-I", "-S", "-c", script, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self._thread.shutdown()
        subprocess.run(["ip", "netns", "del", self.name], check=True)


def _test_traces(ruleset: str) -> list[str]:
    """The lines of a ruleset that only these tests write (bridges "bt-*", inet other)."""
    return [ln for ln in ruleset.splitlines() if "bt-" in ln or "table inet other" in ln]


@pytest.fixture(autouse=True)
def host_ruleset_unchanged() -> Iterator[None]:
    # Only what the tests write: a berthd running on the host may change its own tables.
    before = run_nft("list ruleset", stateless=True)
    yield
    assert _test_traces(run_nft("list ruleset", stateless=True)) == _test_traces(before)


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(f"berthtest-{secrets.token_hex(4)}")
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns.name in names for ns in made)


@pytest.fixture
def ns(make_netns: Callable[[], Netns]) -> Netns:
    return make_netns()


def ruleset(ns: Netns) -> str:
    return ns.call(lambda: run_nft("list ruleset", stateless=True))


def net(bridge: str, *subnets: str, **flags: bool) -> BridgeNetwork:
    return BridgeNetwork(bridge, tuple(ipaddress.ip_network(s) for s in subnets), **flags)


def test_setup_is_idempotent_and_owns_only_its_tables(ns: Netns) -> None:
    fw = Firewall()
    ns.call(fw.setup)
    first = ns.call(fw.berth_rules)
    ns.call(fw.setup)
    assert ns.call(fw.berth_rules) == first
    assert "table ip berth" in first and "table ip6 berth" in first
    assert ruleset(ns) == first


def test_add_and_remove_network_restore_the_table(ns: Netns) -> None:
    fw = Firewall()
    ns.call(fw.setup)
    base = ns.call(fw.berth_rules)
    networks = [
        net("bt-plain", "192.0.2.0/24", "fd00:1::/64"),
        net("bt-internal", "198.51.100.0/24", internal=True),
        net("bt-noicc", "203.0.113.0/24", icc=False, masquerade=False),
    ]
    for n in networks:
        ns.call(fw.add_network, n)
    ns.call(fw.add_network, networks[0])  # again: refilled, not doubled
    rules = ns.call(fw.berth_rules)
    assert rules.count('oifname != "bt-plain" ip saddr 192.0.2.0/24 masquerade') == 1
    assert 'oifname != "bt-plain" ip6 saddr fd00:1::/64 masquerade' in rules
    assert 'iifname != "bt-internal" drop comment "INTERNAL NETWORK INGRESS"' in rules
    assert 'oifname != "bt-internal" drop comment "INTERNAL NETWORK EGRESS"' in rules
    assert 'iifname "bt-noicc" drop comment "ICC"' in rules
    assert '203.0.113.0/24 masquerade comment "MASQUERADE"' not in rules
    assert "198.51.100.0/24 masquerade" not in rules

    ns.call(fw.remove_network, "bt-noicc")
    assert "bt-noicc" not in ns.call(fw.berth_rules)
    assert "bt-plain" in ns.call(fw.berth_rules)
    for n in networks:
        ns.call(fw.remove_network, n.bridge)
    ns.call(fw.remove_network, "bt-plain")  # removing what is gone is a no-op
    assert ns.call(fw.berth_rules) == base


def test_add_and_remove_ports(ns: Netns) -> None:
    fw = Firewall()
    ns.call(fw.setup)
    ns.call(fw.add_network, net("bt-ports", "192.0.2.0/24", "fd00:1::/64"))
    base = ns.call(fw.berth_rules)
    ports: list[tuple[Any, ...]] = [
        ("tcp", "", 8080, "192.0.2.2", 80, "bt-ports"),
        ("udp", "127.0.0.1", 5353, "192.0.2.2", 53, "bt-ports"),
        ("tcp", "", 8080, "fd00:1::2", 80, "bt-ports"),
        ("tcp", "10.1.2.3", 8081, "192.0.2.3", 80, "bt-ports"),
    ]
    for port in ports:
        ns.call(fw.add_port, *port)
    ns.call(fw.add_port, *ports[0])  # the same mapping again is a no-op
    rules = ns.call(fw.berth_rules)
    assert rules.count("tcp dport 8080 dnat to 192.0.2.2:80") == 1
    assert "tcp dport 8080 dnat to [fd00:1::2]:80" in rules
    assert "ip daddr 10.1.2.3 tcp dport 8081 dnat to 192.0.2.3:80" in rules
    assert 'iifname != "lo" ip daddr 127.0.0.1 udp dport 5353 drop' in rules
    with pytest.raises(Conflict, match="tcp \\*:8080"):
        ns.call(fw.add_port, "tcp", "0.0.0.0", 8080, "192.0.2.9", 80, "bt-ports")
    with pytest.raises(InvalidParameter):
        ns.call(fw.add_port, "tcp", "::", 8080, "192.0.2.9", 80, "bt-ports")

    for port in ports:
        ns.call(fw.remove_port, *port)
    ns.call(fw.remove_port, *ports[0])
    assert ns.call(fw.berth_rules) == base

    # Removing the network takes its ports with it.
    ns.call(fw.add_port, *ports[1])
    ns.call(fw.add_port, *ports[2])
    ns.call(fw.remove_network, "bt-ports")
    rules = ns.call(fw.berth_rules)
    assert "dnat" not in rules and "5353" not in rules and "bt-ports" not in rules


def test_docker_user_chain_accepts_berth_bridges(ns: Netns) -> None:
    ns.call(run_nft, DOCKER_FILTER)
    docker_before = ns.call(lambda: run_nft("list table ip filter", stateless=True))
    fw = Firewall()
    ns.call(fw.setup)
    ns.call(fw.add_network, net("bt-a", "192.0.2.0/24"))
    ns.call(fw.add_network, net("bt-b", "198.51.100.0/24"))
    ns.call(fw.add_network, net("bt-a", "192.0.2.0/24"))
    chain = ns.call(lambda: run_nft("list chain ip filter DOCKER-USER", stateless=True))
    lines = [ln.strip() for ln in chain.splitlines()]
    for bridge in ("bt-a", "bt-b"):
        assert lines.count(f'iifname "{bridge}" accept comment "berth {bridge}"') == 1
        assert lines.count(f'oifname "{bridge}" accept comment "berth {bridge}"') == 1
    assert lines.index("counter return") > lines.index('oifname "bt-b" accept comment "berth bt-b"')

    ns.call(fw.remove_network, "bt-a")
    chain = ns.call(lambda: run_nft("list chain ip filter DOCKER-USER", stateless=True))
    assert "bt-a" not in chain and '"berth bt-b"' in chain
    ns.call(fw.remove_network, "bt-b")
    assert ns.call(lambda: run_nft("list table ip filter", stateless=True)) == docker_before

    # dockerd starting after berth: sync_docker_user() catches up, teardown cleans up.
    ns.call(run_nft, "delete table ip filter")
    ns.call(fw.add_network, net("bt-c", "192.0.2.0/24"))
    ns.call(run_nft, DOCKER_FILTER)
    ns.call(fw.sync_docker_user)
    ns.call(fw.sync_docker_user)
    chain = ns.call(lambda: run_nft("list chain ip filter DOCKER-USER", stateless=True))
    assert chain.count('"berth bt-c"') == 2
    ns.call(fw.teardown)
    assert ns.call(lambda: run_nft("list ruleset", stateless=True)) == docker_before


@pytest.mark.skipif(shutil.which("iptables-nft") is None, reason="needs iptables-nft")
def test_docker_user_chain_made_by_iptables_nft(ns: Netns) -> None:
    """dockerd's own tool writes the table; it must still read it after berth's edits."""
    for args in (
        "-N DOCKER-USER",
        "-P FORWARD DROP",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A DOCKER-USER -m comment --comment user -j RETURN",
    ):
        ns.sh(f"iptables-nft {args}")
    before = ns_iptables(ns)
    fw = Firewall()
    ns.call(fw.setup)
    ns.call(fw.add_network, net("bt-i", "192.0.2.0/24"))
    rules = ns_iptables(ns)
    assert '-A DOCKER-USER -i bt-i -m comment --comment "berth bt-i" -j ACCEPT' in rules
    assert '-A DOCKER-USER -o bt-i -m comment --comment "berth bt-i" -j ACCEPT' in rules
    assert rules[-1] == "-A DOCKER-USER -m comment --comment user -j RETURN"
    ns.call(fw.remove_network, "bt-i")
    ns.call(fw.teardown)
    assert ns_iptables(ns) == before


def ns_iptables(ns: Netns) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, "iptables-nft", "-S"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()


def test_teardown_removes_only_berth_tables(ns: Netns) -> None:
    ns.call(run_nft, OTHER_TABLE)
    other = ruleset(ns)
    fw = Firewall()
    ns.call(fw.setup)
    ns.call(fw.add_network, net("bt-x", "192.0.2.0/24"))
    ns.call(fw.add_port, "tcp", "", 8080, "192.0.2.2", 80, "bt-x")
    assert ruleset(ns) != other
    ns.call(fw.teardown)
    assert ruleset(ns) == other
    assert ns.call(fw.berth_rules) == ""
    ns.call(fw.teardown)


ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode() + b" " + c.recv(64))
    c.close()
"""

CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"ping")
    print(c.recv(128).decode())
except OSError as e:
    print("ERR", type(e).__name__)
"""


def ask(ns: Netns, host: str, port: int, timeout: float = 3.0) -> str:
    """What the echo server answered ("<peer address it saw> ping"), or "ERR ..."."""
    proc = ns.python(CLIENT, host, str(port), str(timeout))
    out, _ = proc.communicate(timeout=timeout + 10)
    return out.strip()


@pytest.mark.parametrize("docker", [False, True], ids=["alone", "with-dockerd-table"])
def test_packets_reach_published_port(make_netns: Callable[[], Netns], docker: bool) -> None:
    """host: bridge bt-br 10.88.0.1/24, and veth to outside 10.77.0.1/24;
    container: 10.88.0.2 behind the bridge, echo server on :80;
    outside: 10.77.0.2, routes everything through the host, echo server on :9000."""
    host, container, outside = make_netns(), make_netns(), make_netns()
    host.sh("sysctl -qw net.ipv4.ip_forward=1")
    host.sh("ip link add bt-br type bridge")
    host.sh("ip addr add 10.88.0.1/24 dev bt-br")
    host.sh("ip link set bt-br up")
    host.sh(f"ip link add bt-c0 type veth peer name eth0 netns {container.name}")
    host.sh("ip link set bt-c0 master bt-br up")
    # With br_netfilter active (bridge-nf-call-iptables), a hairpinned DNAT is bridged
    # back out of the port it came in on: the endpoint needs hairpin mode, as in Docker.
    host.sh("ip link set bt-c0 type bridge_slave hairpin on")
    container.sh("ip addr add 10.88.0.2/24 dev eth0")
    container.sh("ip link set eth0 up")
    container.sh("ip route add default via 10.88.0.1")
    host.sh(f"ip link add bt-x0 type veth peer name eth0 netns {outside.name}")
    host.sh("ip addr add 10.77.0.1/24 dev bt-x0")
    host.sh("ip link set bt-x0 up")
    outside.sh("ip addr add 10.77.0.2/24 dev eth0")
    outside.sh("ip link set eth0 up")
    outside.sh("ip route add default via 10.77.0.1")
    for ns, port in ((container, "80"), (outside, "9000")):
        server = ns.python(ECHO_SERVER, port)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    if docker:
        host.call(run_nft, DOCKER_FILTER)
    fw = Firewall()
    host.call(fw.setup)
    host.call(fw.add_network, net("bt-br", "10.88.0.0/24"))
    host.call(fw.add_port, "tcp", "", 8080, "10.88.0.2", 80, "bt-br")
    assert host.call(_read_route_localnet, "bt-br") == "1"

    # The host's loopback: DNAT in output, route_localnet, masquerade from 127.0.0.0/8.
    assert ask(host, "127.0.0.1", 8080) == "10.88.0.1 ping"
    # The host's own address, from the host.
    assert ask(host, "10.77.0.1", 8080) == "10.77.0.1 ping"
    # From outside: DNAT in prerouting, forwarded, the container sees the real client.
    assert ask(outside, "10.77.0.1", 8080) == "10.77.0.2 ping"
    # Hairpin: the container through the host's address to its own published port.
    assert ask(container, "10.77.0.1", 8080) == "10.88.0.1 ping"
    # Outgoing traffic is masqueraded behind the host's address.
    assert ask(container, "10.77.0.2", 9000) == "10.77.0.1 ping"
    # Unpublished: the outside cannot reach the container's address directly.
    assert ask(outside, "10.88.0.2", 80, timeout=1.0).startswith("ERR")

    host.call(fw.remove_port, "tcp", "", 8080, "10.88.0.2", 80, "bt-br")
    assert ask(outside, "10.77.0.1", 8080, timeout=1.0).startswith("ERR")
    host.call(fw.remove_network, "bt-br")
    host.call(fw.teardown)
    assert "berth" not in ruleset(host)


def _read_route_localnet(bridge: str) -> str:
    with open(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet") as f:
        return f.read().strip()
