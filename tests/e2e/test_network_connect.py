"""`docker network connect` of a running container, as Docker behaves: a container on the
default bridge that joins a user-defined network gets the embedded DNS at once (its
resolv.conf switches to 127.0.0.11 and stays so until it restarts, disconnect or not),
resolves the network's containers and aliases and is resolved by its own `--alias`; its
/etc/hosts gains (and on disconnect loses) its address there. An endpoint's MAC address
(`EndpointConfig.MacAddress`, API 1.44) and link-local addresses
(`IPAMConfig.LinkLocalIPs`) are set on the interface and shown by inspect; bad ones get
dockerd's errors and leave nothing made.

Containers that resolve names run with `--dns 127.0.0.1` and only ask for names the
embedded server owns, so no query leaves the host.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from berth.network import dns
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox", "network_hygiene")

Names = Callable[[str], str]

NO_UPSTREAM = ("--dns", "127.0.0.1")


def _inspect(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("container", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    info: dict[str, Any] = data[0]
    return info


def _endpoint(docker: Cli, container: str, network: str) -> dict[str, Any]:
    networks = _inspect(docker, container)["NetworkSettings"]["Networks"]
    assert network in networks, f"{container} is not on {network}: {sorted(networks)}"
    ep: dict[str, Any] = networks[network]
    return ep


def _nameservers(docker: Cli, container: str) -> list[str]:
    return re.findall(r"^nameserver (\S+)$", docker.ok("exec", container, "cat", "/etc/resolv.conf"), re.M)


def _answers(out: str) -> list[str]:
    """The A records in busybox nslookup's output (the server's own line ends in :53)."""
    return re.findall(r"^Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$", out, re.M)


def _resolve_in(docker: Cli, container: str, name: str) -> list[str]:
    res = docker("exec", container, "nslookup", "-type=a", name)
    return _answers(res.stdout) if res.returncode == 0 else []


def _sleeper(docker: Cli, name: str, *args: str) -> None:
    docker.ok("run", "-d", "--name", name, *NO_UPSTREAM, *args, "busybox", "sleep", "300")


def _addresses_inside(docker: Cli, container: str, ifname: str) -> list[str]:
    out = docker.ok("exec", container, "ip", "-o", "addr", "show", "dev", ifname)
    return re.findall(r"\sinet6? (\S+)", out)


# The embedded DNS for a container connected from the default bridge.


def test_connect_gives_a_bridge_container_the_embedded_dns(docker: Cli, new_net: Names,
                                                          new_name: Names) -> None:
    net = new_net("cdns")
    docker.ok("network", "create", net)
    web, mover = new_name("web"), new_name("mover")
    _sleeper(docker, web, "--network", net, "--network-alias", "webalias")
    _sleeper(docker, mover)
    assert _nameservers(docker, mover) == ["127.0.0.1"]
    web_ip = _endpoint(docker, web, net)["IPAddress"]

    docker.ok("network", "connect", "--alias", "moved", net, mover)
    resolv = docker.ok("exec", mover, "cat", "/etc/resolv.conf")
    assert re.findall(r"^nameserver (\S+)$", resolv, re.M) == ["127.0.0.11"], resolv
    assert re.search(r"^options ndots:0$", resolv, re.M), resolv
    # It resolves the network's names, and the others resolve its alias.
    assert _resolve_in(docker, mover, web) == [web_ip]
    assert _resolve_in(docker, mover, "webalias") == [web_ip]
    mover_ip = _endpoint(docker, mover, net)["IPAddress"]
    assert _resolve_in(docker, web, "moved") == [mover_ip]
    assert _resolve_in(docker, web, mover) == [mover_ip]
    # /etc/hosts holds its address on the new network too, as Docker adds it.
    hostname = _inspect(docker, mover)["Config"]["Hostname"]
    hosts = docker.ok("exec", mover, "cat", "/etc/hosts")
    assert re.search(rf"^{re.escape(mover_ip)}\s+{hostname}$", hosts, re.M), hosts
    docker.ok("rm", "-f", web, mover)


def test_after_disconnect_the_embedded_dns_stays_until_restart(docker: Cli, new_net: Names,
                                                               new_name: Names) -> None:
    net = new_net("cdns")
    docker.ok("network", "create", net)
    web, mover = new_name("web"), new_name("mover")
    _sleeper(docker, web, "--network", net)
    _sleeper(docker, mover)
    docker.ok("network", "connect", net, mover)
    mover_ip = _endpoint(docker, mover, net)["IPAddress"]
    docker.ok("network", "disconnect", net, mover)
    # dockerd writes resolv.conf for its embedded server once, and does not take it back.
    assert _nameservers(docker, mover) == ["127.0.0.11"]
    hosts = docker.ok("exec", mover, "cat", "/etc/hosts")
    assert not re.search(rf"^{re.escape(mover_ip)}\s", hosts, re.M), hosts
    # Restarted on the default bridge only: the nameservers it was given.
    docker.ok("restart", "-t", "0", mover)
    assert _nameservers(docker, mover) == ["127.0.0.1"]
    docker.ok("rm", "-f", web, mover)


def test_a_connected_container_keeps_the_embedded_dns_across_restart(
        docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("cdns")
    docker.ok("network", "create", net)
    web, mover = new_name("web"), new_name("mover")
    _sleeper(docker, web, "--network", net)
    _sleeper(docker, mover)
    docker.ok("network", "connect", "--alias", "moved", net, mover)
    docker.ok("restart", "-t", "0", mover)
    assert _nameservers(docker, mover) == ["127.0.0.11"]
    web_ip = _endpoint(docker, web, net)["IPAddress"]
    mover_ip = _endpoint(docker, mover, net)["IPAddress"]
    assert _resolve_in(docker, mover, web) == [web_ip]
    assert _resolve_in(docker, web, "moved") == [mover_ip]
    # Connected again after a restart, a second network is served too.
    net2 = new_net("cdns2")
    docker.ok("network", "create", net2)
    other = new_name("other")
    _sleeper(docker, other, "--network", net2)
    docker.ok("network", "connect", net2, mover)
    assert _resolve_in(docker, mover, other) == [_endpoint(docker, other, net2)["IPAddress"]]
    docker.ok("rm", "-f", web, mover, other)


class _Upstream:
    """A nameserver on the host side of a berth network (its gateway), answering every A
    query with one address and noting the names asked."""

    def __init__(self, address: str, answer: str) -> None:
        self.address = address
        self.asked: list[str] = []
        self._answer = answer
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 53))
        self._sock.settimeout(0.1)  # a close from another thread does not wake recvfrom
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.parse_query(data)
            except dns.DnsFormatError:
                continue
            self.asked.append(query.question.name)
            self._sock.sendto(dns.answer_addresses(query, [self._answer]), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def upstream_on(docker: Cli) -> Iterator[Callable[[str], _Upstream]]:
    made: list[_Upstream] = []

    def make(net: str) -> _Upstream:
        gateway = json.loads(docker.ok("network", "inspect", net))[0]["IPAM"]["Config"][0]["Gateway"]
        made.append(_Upstream(gateway, "192.0.2.55"))
        return made[-1]

    yield make
    for u in made:
        u.close()


def test_the_embedded_dns_forwards_to_the_containers_own_nameservers(
        docker: Cli, new_net: Names, new_name: Names, upstream_on: Callable[[str], _Upstream]) -> None:
    """As Docker: names it does not own go to the container's --dns servers (dialled from
    the container's namespace), not to the host's."""
    net = new_net("cdns")
    docker.ok("network", "create", net)
    upstream = upstream_on(net)
    mover = new_name("mover")
    docker.ok("run", "-d", "--name", mover, "--dns", upstream.address, "busybox", "sleep", "300")
    docker.ok("network", "connect", net, mover)
    assert _nameservers(docker, mover) == ["127.0.0.11"]
    assert _resolve_in(docker, mover, "upstream.berth.test") == ["192.0.2.55"]
    assert "upstream.berth.test" in upstream.asked
    out = docker.ok("run", "--rm", "--network", net, "--dns", upstream.address, "busybox", "nslookup", "-type=a",
                    "other.berth.test")
    assert _answers(out) == ["192.0.2.55"], out
    assert "other.berth.test" in upstream.asked
    docker.ok("rm", "-f", mover)


def test_connect_leaves_a_resolv_conf_the_container_changed(docker: Cli, new_net: Names,
                                                             new_name: Names) -> None:
    net = new_net("cdns")
    docker.ok("network", "create", net)
    mover = new_name("mover")
    _sleeper(docker, mover)
    docker.ok("exec", mover, "sh", "-c", "echo 'nameserver 127.0.0.2' > /etc/resolv.conf")
    docker.ok("network", "connect", net, mover)
    # dockerd: "Docker Engine will not make further changes once it has been modified".
    assert _nameservers(docker, mover) == ["127.0.0.2"]
    docker.ok("rm", "-f", mover)


def test_connect_through_berth(berth: Cli, new_net: Names,
                                                     new_name: Names) -> None:
    net = new_net("cdns")
    berth.ok("network", "create", net)
    mover = new_name("mover")
    _sleeper(berth, mover)
    berth.ok("network", "connect", "--link-local-ip", "169.254.9.9", net, mover)
    assert _nameservers(berth, mover) == ["127.0.0.11"]
    assert "169.254.9.9/16" in _addresses_inside(berth, mover, "eth1")
    berth.ok("rm", "-f", mover)


# MAC addresses (EndpointConfig.MacAddress).


def test_connect_with_a_mac_address(docker_client: Any, docker: Cli, new_net: Names,
                                    new_name: Names) -> None:
    net = new_net("cmac")
    network = docker_client.networks.create(net)
    c = new_name("mac")
    container = docker_client.containers.run("busybox", "sleep 300", name=c, detach=True)
    try:
        # Any form Go's net.ParseMAC takes; shown (and set) as Linux writes it.
        network.connect(container, mac_address="02-42-AC-11-00-AB")
        mac = "02:42:ac:11:00:ab"
        container.reload()
        assert container.attrs["NetworkSettings"]["Networks"][net]["MacAddress"] == mac
        network.reload()
        assert network.attrs["Containers"][container.id]["MacAddress"] == mac
        link = docker.ok("exec", c, "ip", "-o", "link", "show", "dev", "eth1")
        assert f"link/ether {mac} " in link, link
    finally:
        container.remove(force=True)
        network.remove()


def test_connect_with_a_bad_mac_address_is_refused(docker_client: Any, docker: Cli,
                                                   new_net: Names, new_name: Names) -> None:
    import docker as docker_py

    net = new_net("cmac")
    network = docker_client.networks.create(net)
    c = new_name("mac")
    container = docker_client.containers.run("busybox", "sleep 300", name=c, detach=True)
    try:
        with pytest.raises(docker_py.errors.APIError) as caught:
            network.connect(container, mac_address="02:42:ac:11:00:zz")
        assert caught.value.status_code == 400
        assert caught.value.explanation == "invalid MAC address 02:42:ac:11:00:zz"
        container.reload()
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {"bridge"}
        network.reload()
        assert not network.attrs["Containers"]
        out = docker.ok("exec", c, "ls", "/sys/class/net")
        assert out.split() == ["eth0", "lo"], out
    finally:
        container.remove(force=True)
        network.remove()


# Link-local addresses (IPAMConfig.LinkLocalIPs).


def test_connect_with_link_local_addresses(docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("cll")
    docker.ok("network", "create", net)
    c = new_name("ll")
    _sleeper(docker, c)
    docker.ok("network", "connect", "--link-local-ip", "169.254.10.20", "--link-local-ip",
              "169.254.10.21", "--link-local-ip", "fe80::10:20", net, c)
    ep = _endpoint(docker, c, net)
    assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.10.20", "169.254.10.21", "fe80::10:20"]}, ep
    addresses = _addresses_inside(docker, c, "eth1")
    assert {"169.254.10.20/16", "169.254.10.21/16", "fe80::10:20/64", f"{ep['IPAddress']}/{ep['IPPrefixLen']}"} <= set(
        addresses), addresses
    docker.ok("network", "disconnect", net, c)
    docker.ok("rm", "-f", c)


def test_run_with_a_link_local_address_keeps_it_across_restart(docker: Cli, new_net: Names,
                                                               new_name: Names) -> None:
    net = new_net("cll")
    docker.ok("network", "create", net)
    c = new_name("ll")
    _sleeper(docker, c, "--network", net, "--link-local-ip", "169.254.7.8")
    assert _endpoint(docker, c, net)["IPAMConfig"] == {"LinkLocalIPs": ["169.254.7.8"]}
    assert "169.254.7.8/16" in _addresses_inside(docker, c, "eth0")
    docker.ok("restart", "-t", "0", c)
    assert "169.254.7.8/16" in _addresses_inside(docker, c, "eth0")
    docker.ok("rm", "-f", c)


def test_bad_link_local_addresses_are_refused(docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("cll")
    docker.ok("network", "create", net)
    c = new_name("ll")
    _sleeper(docker, c)
    # Not an address: refused with the endpoint's settings.
    res = docker("network", "connect", "--link-local-ip", "nonsense", net, c)
    assert res.returncode != 0, describe(res)
    assert "Error response from daemon: invalid endpoint settings:\ninvalid link-local IP address: nonsense" in (
        res.stderr), describe(res)
    # An address, but not a link-local one: refused when the endpoint is made.
    res = docker("network", "connect", "--link-local-ip", "10.1.2.3", net, c)
    assert res.returncode != 0, describe(res)
    assert "Error response from daemon: invalid link local IP address: 10.1.2.3" in res.stderr, describe(res)
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"bridge"}
    assert docker.ok("exec", c, "ls", "/sys/class/net").split() == ["eth0", "lo"]
    assert json.loads(docker.ok("network", "inspect", net))[0]["Containers"] == {}
    # At run: created, but it does not start (dockerd checks when it makes the endpoint).
    r = new_name("llrun")
    res = docker("run", "-d", "--name", r, "--network", net, "--link-local-ip", "10.1.2.3",
                 "busybox", "sleep", "300")
    assert res.returncode != 0, describe(res)
    assert "invalid link local IP address: 10.1.2.3" in res.stderr, describe(res)
    assert _inspect(docker, r)["State"]["Running"] is False
    docker.ok("rm", "-f", c, r)


def test_create_with_bad_endpoint_settings_names_the_network(docker: Cli, new_net: Names,
                                                             new_name: Names) -> None:
    net = new_net("cll")
    docker.ok("network", "create", net)
    c = new_name("llbad")
    res = docker("run", "-d", "--name", c, "--network", net, "--link-local-ip", "nonsense",
                 "busybox", "sleep", "300")
    assert res.returncode != 0, describe(res)
    assert (f"Error response from daemon: invalid config for network {net}: invalid endpoint settings:\n"
            "invalid link-local IP address: nonsense") in res.stderr, describe(res)
    assert docker("container", "inspect", c).returncode != 0, "the container was created"
