"""Networks through the real docker CLI, berth and the raw API, as Docker behaves (course
chapter 5): the predefined networks, user bridges with their subnets, gateways and IP
ranges, `network inspect`, connect/disconnect of running containers, rm and prune, the
list filters, internal networks, isolation between bridges, the none/host/container
network modes, hostname, /etc/hosts and /etc/resolv.conf, and Docker's errors.

Traffic stays on loopback and on the test's own berth networks: connection attempts
that must fail target addresses of berth networks or of the host itself and time out
within a second (`nc -w 1`). Containers that resolve names use `--dns 127.0.0.1`, so
that a query the embedded server does not answer itself goes nowhere off the host.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe
from helpers.netinspect import container as _inspect
from helpers.netinspect import endpoint as _endpoint
from helpers.netinspect import ip as _ip

pytestmark = pytest.mark.usefixtures("busybox", "network_hygiene")

Names = Callable[[str], str]

HEX12 = re.compile(r"^[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
PREDEFINED = {"bridge", "host", "none"}
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
HTTP_GET = r"printf 'GET / HTTP/1.0\r\n\r\n'"


# Fixtures and helpers.


@pytest.fixture
def course_names(docker: Cli, api: ApiClient) -> Iterator[Callable[..., None]]:
    """Registers the course's fixed names (networks and containers) for removal."""
    networks: list[str] = []
    containers: list[str] = []

    def register(*, nets: tuple[str, ...] = (), ctrs: tuple[str, ...] = ()) -> None:
        networks.extend(nets)
        containers.extend(ctrs)

    yield register
    for c in containers:
        docker("rm", "-f", c, timeout=30)
    for n in networks:
        api.remove_network(n)


def _host_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the host has an address in or a route to."""
    found = []
    addrs = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    for m in re.finditer(r"\sinet (\S+)", addrs.stdout):
        found.append(ipaddress.ip_interface(m.group(1)).network)
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True)
    for line in routes.stdout.splitlines():
        words = line.split()
        for word in words[:2]:
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
                found.append(net)
            break
    return found


def free_octets(count: int, prefer: tuple[int, ...] = ()) -> list[int]:
    """Second octets N such that 10.N.0.0/16 meets nothing on the host: the preferred ones
    (the course's 10.1) when free, else random ones, so that concurrent test sessions on
    one machine rarely pick the same."""
    used = _host_ipv4_networks()

    def free(n: int) -> bool:
        candidate = ipaddress.ip_network(f"10.{n}.0.0/16")
        return not any(candidate.overlaps(u) for u in used)

    chosen = [n for n in prefer if free(n)][:count]
    pool = [n for n in range(100, 250) if n not in chosen]
    random.shuffle(pool)
    for n in pool:
        if len(chosen) == count:
            break
        if free(n):
            chosen.append(n)
    assert len(chosen) == count, "no free 10.N.0.0/16 on this host"
    return chosen


def _net(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("network", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    info: dict[str, Any] = data[0]
    return info


def _bridge(info: dict[str, Any]) -> str:
    """The host link of a bridge network, named as Docker names it."""
    options = info.get("Options") or {}
    return str(options.get(BRIDGE_NAME_OPTION) or f"br-{info['Id'][:12]}")


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _link_addresses(name: str) -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", name], capture_output=True,
                         text=True).stdout
    return re.findall(r"\sinet (\S+)", out)


def _bridge_ports(bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                         text=True).stdout
    return {m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", out, re.M)}


def _host_addresses_in(subnet: str) -> set[str]:
    """Host links holding an IPv4 address inside subnet, as "link addr/len"."""
    net = ipaddress.ip_network(subnet)
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                         text=True).stdout
    found = set()
    for m in re.finditer(r"^\d+:\s+(\S+)\s+inet (\S+)", out, re.M):
        if ipaddress.ip_interface(m.group(2)).ip in net:
            found.add(f"{m.group(1)} {m.group(2)}")
    return found


def _ls(docker: Cli, *args: str) -> list[str]:
    return docker.ok("network", "ls", *args).split()


def _names(docker: Cli, *filters: str) -> set[str]:
    args = ["--format", "{{.Name}}"]
    for f in filters:
        args += ["--filter", f]
    return set(_ls(docker, *args))


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _serve(text: str) -> list[str]:
    """A busybox command serving text over HTTP on port 80."""
    return ["sh", "-c", f"mkdir -p /www && echo {text} > /www/index.html && "
                        "exec httpd -f -p 80 -h /www"]


def _fetch(ip: str, tries: int = 15) -> str:
    """A shell snippet that GETs http://ip/ with busybox nc, retrying while the server
    comes up; exits 1 if it never answers."""
    return (f"(for i in $(seq {tries}); do {HTTP_GET} | nc -w 1 {ip} 80 && exit 0; "
            "sleep 0.3; done; exit 1)")


def _cannot_fetch(ip: str) -> str:
    return f"{HTTP_GET} | nc -w 1 {ip} 80"


def _run_rm(docker: Cli, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", *args, timeout=timeout)


def _parse_created(value: str) -> datetime:
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    assert m, value
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz)


class HostListener:
    """A TCP listener on one host address that greets each client with a line."""

    def __init__(self, address: str, greeting: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting.encode() + b"\n"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with conn:
                try:
                    conn.sendall(self.greeting)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# The predefined networks (course 5.2).


def test_network_ls_shows_bridge_host_and_none(docker: Cli) -> None:
    lines = docker.ok("network", "ls").splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"], lines[0]
    rows = {row.split()[1]: row.split() for row in lines[1:]}
    assert PREDEFINED <= set(rows), lines
    for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
        nid, _, drv, scope = rows[name]
        assert HEX12.match(nid), rows[name]
        assert (drv, scope) == (driver, "local"), rows[name]
    full = {row.split()[1]: row.split()[0] for row in docker.ok("network", "ls", "--no-trunc")
            .splitlines()[1:]}
    for name in PREDEFINED:
        assert HEX64.match(full[name]), full
        assert full[name].startswith(rows[name][0])
    quiet = _ls(docker, "-q")
    assert all(HEX12.match(q) for q in quiet), quiet
    assert {rows[n][0] for n in PREDEFINED} <= set(quiet)
    formatted = docker.ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert {"bridge bridge local", "host host local", "none null local"} <= set(
        formatted.splitlines()), formatted


def test_predefined_networks_cannot_be_removed_or_created(docker: Cli, api: ApiClient) -> None:
    for name in PREDEFINED:
        res = docker("network", "rm", name)
        assert res.returncode != 0, describe(res)
        assert f"{name} is a pre-defined network and cannot be removed" in res.stderr, describe(res)
        resp = api.request("DELETE", f"/networks/{name}")
        assert resp.status == 403, (resp.status, resp.body)
    res = docker("network", "create", "host")
    assert res.returncode != 0, describe(res)
    assert "operation is not permitted on predefined host network" in res.stderr, describe(res)
    assert PREDEFINED <= _names(docker)


def test_default_bridge_inspect(docker: Cli, new_name: Names) -> None:
    info = _net(docker, "bridge")
    assert info["Name"] == "bridge" and info["Driver"] == "bridge" and info["Scope"] == "local"
    assert HEX64.match(info["Id"]), info["Id"]
    assert info["Options"].get("com.docker.network.bridge.default_bridge") == "true", info
    config = info["IPAM"]["Config"]
    assert len(config) == 1 and config[0]["Subnet"] and config[0]["Gateway"], info["IPAM"]
    subnet = ipaddress.ip_network(config[0]["Subnet"])
    bridge = _bridge(info)
    assert f"{config[0]['Gateway']}/{subnet.prefixlen}" in _link_addresses(bridge), bridge
    name = new_name("dflt")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    ep = _endpoint(docker, name, "bridge")
    assert ipaddress.ip_address(ep["IPAddress"]) in subnet, ep
    assert ep["Gateway"] == config[0]["Gateway"] and ep["IPPrefixLen"] == subnet.prefixlen, ep
    assert ep["NetworkID"] == info["Id"], ep
    cid = _inspect(docker, name)["Id"]
    entry = _net(docker, "bridge")["Containers"][cid]
    assert entry["Name"] == name
    assert entry["IPv4Address"] == f"{ep['IPAddress']}/{subnet.prefixlen}", entry
    assert entry["EndpointID"] == ep["EndpointID"] and HEX64.match(entry["EndpointID"]), entry
    assert entry["MacAddress"] == ep["MacAddress"] and MAC.match(entry["MacAddress"]), entry
    docker.ok("rm", "-f", name)
    assert cid not in (_net(docker, "bridge")["Containers"] or {})


# Creating, inspecting and removing user networks (course 5.2, 5.3).


def test_network_create_br00_inspect_and_rm(docker: Cli, course_names: Callable[..., None]) -> None:
    course_names(nets=("br00",))
    out = docker.ok("network", "create", "br00")
    nid = out.strip()
    assert HEX64.match(nid), out
    info = _net(docker, "br00")
    assert set(info) >= {"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM",
                         "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly",
                         "Containers", "Options", "Labels"}, sorted(info)
    assert info["Name"] == "br00" and info["Id"] == nid
    assert info["Scope"] == "local" and info["Driver"] == "bridge"
    assert info["EnableIPv6"] is False
    assert (info["Internal"], info["Attachable"], info["Ingress"], info["ConfigOnly"]) == (
        False, False, False, False), info
    assert info["ConfigFrom"] == {"Network": ""}, info["ConfigFrom"]
    assert info["Containers"] == {}, info["Containers"]
    assert info["Labels"] in ({}, None), info["Labels"]
    assert TIMESTAMP.match(info["Created"]), info["Created"]
    age = (datetime.now(UTC) - _parse_created(info["Created"])).total_seconds()
    assert -60 < age < 300, info["Created"]
    assert info["IPAM"]["Driver"] == "default", info["IPAM"]
    config = info["IPAM"]["Config"]
    assert len(config) == 1, config
    subnet = ipaddress.ip_network(config[0]["Subnet"])
    assert subnet.is_private, config
    assert ipaddress.ip_address(config[0]["Gateway"]) in subnet, config
    # An automatic subnet is one the host does not use yet (Docker's pools avoid routes).
    bridge = _bridge(info)
    assert bridge == f"br-{nid[:12]}"
    assert _link_exists(bridge), f"no bridge {bridge} on the host"
    assert _link_addresses(bridge) == [f"{config[0]['Gateway']}/{subnet.prefixlen}"]
    # By id prefix as well as by name.
    assert docker.ok("network", "inspect", "-f", "{{.Name}}", nid[:12]) == "br00\n"
    assert docker.ok("network", "rm", "br00") == "br00\n"
    assert "br00" not in _names(docker)
    assert not _link_exists(bridge), f"network rm left {bridge}"
    res = docker("network", "inspect", "br00")
    assert res.returncode != 0 and "br00" in res.stderr, describe(res)


def test_network_with_subnet_and_gateway_br02_then_prune(
        docker: Cli, course_names: Callable[..., None]) -> None:
    course_names(nets=("br02",))
    (n,) = free_octets(1, prefer=(1,))
    subnet, gateway = f"10.{n}.0.0/16", f"10.{n}.0.1"
    nid = docker.ok("network", "create", "--subnet", subnet, "--gateway", gateway, "br02").strip()
    info = _net(docker, "br02")
    assert info["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gateway}], info["IPAM"]
    bridge = _bridge(info)
    assert bridge == f"br-{nid[:12]}"
    addr = subprocess.run(["ip", "addr", "show", "dev", bridge], capture_output=True, text=True)
    assert f"inet {gateway}/16" in addr.stdout, addr.stdout
    link = subprocess.run(["ip", "-d", "link", "show", "dev", bridge], capture_output=True,
                          text=True)
    assert "bridge" in link.stdout, link.stdout
    out = docker.ok("network", "prune", "-f")
    assert out.splitlines()[0] == "Deleted Networks:", out
    assert "br02" in out.splitlines()[1:], out
    assert not PREDEFINED & set(out.split()), out
    assert PREDEFINED <= _names(docker)
    assert "br02" not in _names(docker)
    assert not _link_exists(bridge)
    # Nothing left to prune: no output at all.
    assert docker.ok("network", "prune", "-f") == ""


def test_bridge_name_option_names_the_host_link(docker: Cli, new_net: Names) -> None:
    name = new_net("named")
    link = f"bt{uuid.uuid4().hex[:10]}"
    docker.ok("network", "create", "-o", f"{BRIDGE_NAME_OPTION}={link}", name)
    info = _net(docker, name)
    assert info["Options"] == {BRIDGE_NAME_OPTION: link}, info["Options"]
    assert _link_exists(link), f"no {link} on the host"
    assert not _link_exists(f"br-{info['Id'][:12]}")
    config = info["IPAM"]["Config"][0]
    prefix = ipaddress.ip_network(config["Subnet"]).prefixlen
    assert _link_addresses(link) == [f"{config['Gateway']}/{prefix}"]
    docker.ok("network", "rm", name)
    assert not _link_exists(link)


def test_network_with_ip_range_br04(docker: Cli, course_names: Callable[..., None]) -> None:
    course_names(nets=("br04",), ctrs=("network-test01", "network-test02", "network-test-ping"))
    (n,) = free_octets(1, prefer=(1,))
    subnet, gateway, ip_range = f"10.{n}.0.0/16", f"10.{n}.0.1", f"10.{n}.4.0/24"
    fixed = f"10.{n}.4.102"
    docker.ok("network", "create", "--subnet", subnet, "--gateway", gateway,
              f"--ip-range={ip_range}", "--driver=bridge", "--label=host4network", "br04")
    info = _net(docker, "br04")
    assert info["Driver"] == "bridge"
    assert info["Labels"] == {"host4network": ""}, info["Labels"]
    assert info["IPAM"]["Config"] == [
        {"Subnet": subnet, "IPRange": ip_range, "Gateway": gateway}], info["IPAM"]

    # `docker container run --name network-test01 -it --network br04 centos /bin/bash`
    docker.ok("run", "-d", "--name", "network-test01", "--network", "br04", "busybox",
              "sleep", "300")
    ep = _endpoint(docker, "network-test01", "br04")
    assert ipaddress.ip_address(ep["IPAddress"]) in ipaddress.ip_network(ip_range), ep
    assert (ep["Gateway"], ep["IPPrefixLen"]) == (gateway, 16), ep
    assert ep["NetworkID"] == info["Id"], ep
    # What the course reads with ifconfig, netstat -rn and cat /etc/resolv.conf.
    out = docker.ok("run", "--rm", "--network", "br04", "busybox", "sh", "-c",
                    "ip -o -4 addr show dev eth0; ip route; cat /etc/resolv.conf")
    m = re.search(r"inet (10\.\d+\.\d+\.\d+)/16", out)
    assert m and ipaddress.ip_address(m.group(1)) in ipaddress.ip_network(ip_range), out
    assert m.group(1) != ep["IPAddress"], out
    assert re.search(rf"^default via {re.escape(gateway)} dev eth0", out, re.M), out
    assert re.search(rf"^{re.escape(subnet)} dev eth0", out, re.M), out
    assert re.findall(r"^nameserver (\S+)", out, re.M) == ["127.0.0.11"], out

    # `docker container run -d --name network-test02 --ip 10.1.4.102 --network br04 nginx`
    docker.ok("run", "-d", "--name", "network-test02", "--ip", fixed, "--network", "br04",
              "busybox", "sleep", "300")
    assert docker.ok("container", "inspect", "-f",
                     "{{.NetworkSettings.Networks.br04.IPAddress}}",
                     "network-test02") == f"{fixed}\n"
    ep2 = _endpoint(docker, "network-test02", "br04")
    assert ep2["IPAMConfig"] == {"IPv4Address": fixed}, ep2["IPAMConfig"]
    assert HEX64.match(ep2["EndpointID"]) and MAC.match(ep2["MacAddress"]), ep2
    # A third container on br04 reaches it.
    res = docker("run", "--rm", "--name", "network-test-ping", "--network", "br04", "busybox",
                 "ping", "-c", "1", "-W", "2", fixed)
    assert res.returncode == 0, describe(res)
    assert "1 packets received" in res.stdout, res.stdout

    # The network's view of its containers.
    containers = _net(docker, "br04")["Containers"]
    by_name = {c["Name"]: (cid, c) for cid, c in containers.items()}
    assert set(by_name) == {"network-test01", "network-test02"}, containers
    cid, entry = by_name["network-test02"]
    assert cid == _inspect(docker, "network-test02")["Id"]
    assert set(entry) == {"Name", "EndpointID", "MacAddress", "IPv4Address", "IPv6Address"}, entry
    assert entry["IPv4Address"] == f"{fixed}/16", entry
    assert entry["IPv6Address"] == "", entry
    assert entry["EndpointID"] == ep2["EndpointID"] and entry["MacAddress"] == ep2["MacAddress"]

    # Removal is refused while containers are attached, in Docker's words.
    res = docker("network", "rm", "br04")
    assert res.returncode != 0, describe(res)
    assert "error while removing network: network br04" in res.stderr, describe(res)
    assert "has active endpoints" in res.stderr, describe(res)
    assert 'name:"network-test02"' in res.stderr, describe(res)
    assert "br04" in _names(docker) and _link_exists(_bridge(info))
    docker.ok("rm", "-f", "network-test01", "network-test02")
    assert _net(docker, "br04")["Containers"] == {}
    assert docker.ok("network", "rm", "br04") == "br04\n"
    assert not _link_exists(_bridge(info))


def test_network_rm_with_attached_container_is_403(docker: Cli, api: ApiClient, new_net: Names,
                                                  new_name: Names) -> None:
    net, c = new_net("busy"), new_name("busy")
    docker.ok("network", "create", net)
    docker.ok("run", "-d", "--name", c, "--network", net, "busybox", "sleep", "300")
    resp = api.request("DELETE", f"/networks/{net}")
    assert resp.status == 403, (resp.status, resp.body)
    message = resp.json()["message"]
    assert message.startswith(f"error while removing network: network {net}"), message
    assert "has active endpoints" in message, message
    docker.ok("rm", "-f", c)
    resp = api.request("DELETE", f"/networks/{net}")
    assert resp.status == 204, (resp.status, resp.body)
    resp = api.get(f"/networks/{net}")
    assert resp.status == 404 and resp.json()["message"] == f"network {net} not found", resp.body


# Connecting and disconnecting running containers (course 5.2).


def _interfaces_logger() -> list[str]:
    """A command that logs its IPv4 interfaces (other than lo) every 0.2 s, one line each."""
    return ["sh", "-c", "while true; do echo \"IFS $(ip -o -4 addr show | grep -v ' lo ' | "
            "awk '{print $2\"=\"$4}' | sort | tr '\\n' ' ')\"; sleep 0.2; done"]


def _last_interfaces(docker: Cli, container: str) -> dict[str, str]:
    lines = [line for line in docker.ok("logs", container).splitlines() if line.startswith("IFS")]
    if not lines:
        return {}
    return dict(item.split("=", 1) for item in lines[-1].split()[1:])


def test_connect_and_disconnect_a_running_container(
        docker: Cli, course_names: Callable[..., None]) -> None:
    course_names(nets=("br01",), ctrs=("network-test03",))
    docker.ok("run", "-d", "--name", "network-test03", "busybox", *_interfaces_logger())
    bridge_ip = _ip(docker, "network-test03", "bridge")
    _wait_for("eth0 in the logs",
              lambda: _last_interfaces(docker, "network-test03").get("eth0", "").startswith(
                  bridge_ip + "/"))
    docker.ok("network", "create", "br01")
    assert docker.ok("network", "connect", "br01", "network-test03") == ""
    networks = _inspect(docker, "network-test03")["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", "br01"}, sorted(networks)
    br01_ip = networks["br01"]["IPAddress"]
    subnet = _net(docker, "br01")["IPAM"]["Config"][0]["Subnet"]
    assert ipaddress.ip_address(br01_ip) in ipaddress.ip_network(subnet)
    _wait_for("eth1 on br01 inside the container",
              lambda: _last_interfaces(docker, "network-test03").get("eth1", "").startswith(
                  br01_ip + "/"))
    cid = _inspect(docker, "network-test03")["Id"]
    assert cid in _net(docker, "br01")["Containers"]

    assert docker.ok("network", "disconnect", "br01", "network-test03") == ""
    networks = _inspect(docker, "network-test03")["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge"}, sorted(networks)
    _wait_for("eth1 gone inside the container",
              lambda: set(_last_interfaces(docker, "network-test03")) == {"eth0"})
    assert _net(docker, "br01")["Containers"] == {}
    # The container is still fine on the default bridge.
    assert _last_interfaces(docker, "network-test03")["eth0"].startswith(bridge_ip + "/")
    docker.ok("rm", "-f", "network-test03")
    docker.ok("network", "rm", "br01")


def test_connect_with_ip_and_alias(docker: Cli, new_net: Names, new_name: Names) -> None:
    net, c = new_net("cip"), new_name("cip")
    (n,) = free_octets(1)
    docker.ok("network", "create", "--subnet", f"10.{n}.0.0/16", net)
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    docker.ok("network", "connect", "--ip", f"10.{n}.0.50", "--alias", "db", "--alias", "store",
              net, c)
    ep = _endpoint(docker, c, net)
    assert ep["IPAddress"] == f"10.{n}.0.50", ep
    assert ep["IPAMConfig"] == {"IPv4Address": f"10.{n}.0.50"}, ep["IPAMConfig"]
    assert {"db", "store"} <= set(ep["Aliases"] or []), ep["Aliases"]
    assert ep["Gateway"] == f"10.{n}.0.1", ep
    res = _run_rm(docker, "--network", net, "busybox", "ping", "-c", "1", "-W", "2",
                  f"10.{n}.0.50")
    assert res.returncode == 0, describe(res)
    docker.ok("network", "disconnect", net, c)
    # The address is free again.
    other = new_name("cip2")
    docker.ok("run", "-d", "--name", other, "--network", net, "--ip", f"10.{n}.0.50", "busybox",
              "sleep", "300")
    assert _ip(docker, other, net) == f"10.{n}.0.50"
    docker.ok("rm", "-f", c, other)


def test_connect_a_stopped_container_takes_effect_at_start(
        docker: Cli, new_net: Names, new_name: Names) -> None:
    net, c = new_net("stopped"), new_name("stopped")
    docker.ok("network", "create", net)
    docker.ok("create", "--name", c, "busybox", "sh", "-c", "ip -o -4 addr show | grep -v ' lo '")
    docker.ok("network", "connect", net, c)
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"bridge", net}
    out = docker.ok("start", "-a", c)
    assert len(out.splitlines()) == 2, out
    assert re.search(r"eth0\s+inet ", out) and re.search(r"eth1\s+inet ", out), out
    docker.ok("rm", c)


def test_connect_and_disconnect_errors(docker: Cli, api: ApiClient, new_net: Names,
                                       new_name: Names) -> None:
    net, c = new_net("errs"), new_name("errs")
    docker.ok("network", "create", net)
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    cid = _inspect(docker, c)["Id"]
    res = docker("network", "disconnect", net, c)
    assert res.returncode != 0, describe(res)
    assert re.search(rf"container {cid} is not connected to (the )?network {net}", res.stderr), (
        describe(res))
    docker.ok("network", "connect", net, c)
    res = docker("network", "connect", net, c)
    assert res.returncode != 0, describe(res)
    assert f"endpoint with name {c} already exists in network {net}" in res.stderr, describe(res)
    missing = f"nosuch-{uuid.uuid4().hex[:8]}"
    res = docker("network", "connect", missing, c)
    assert res.returncode != 0 and f"network {missing} not found" in res.stderr, describe(res)
    resp = api.post_json(f"/networks/{missing}/connect", {"Container": cid})
    assert resp.status == 404, (resp.status, resp.body)
    res = docker("network", "connect", net, f"nosuch-{uuid.uuid4().hex[:8]}")
    assert res.returncode != 0 and "No such container" in res.stderr, describe(res)
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"bridge", net}
    docker.ok("rm", "-f", c)


# rm, prune and the list filters (course 5.2).


def test_network_rm_several_and_missing(docker: Cli, new_net: Names) -> None:
    a, b = new_net("rm"), new_net("rm")
    docker.ok("network", "create", a)
    docker.ok("network", "create", b)
    assert docker.ok("network", "rm", a, b) == f"{a}\n{b}\n"
    missing = f"nosuch-{uuid.uuid4().hex[:8]}"
    res = docker("network", "rm", missing)
    assert res.returncode != 0 and f"network {missing} not found" in res.stderr, describe(res)
    assert docker("network", "rm", "-f", missing).returncode == 0


def test_network_prune_removes_only_unused_user_networks(docker: Cli, new_net: Names,
                                                         new_name: Names) -> None:
    unused1, unused2, used = new_net("prune"), new_net("prune"), new_net("prune-used")
    for net in (unused1, unused2, used):
        docker.ok("network", "create", net)
    holder = new_name("holder")
    docker.ok("run", "-d", "--name", holder, "--network", used, "busybox", "sleep", "300")
    out = docker.ok("network", "prune", "-f")
    deleted = out.splitlines()
    assert deleted[0] == "Deleted Networks:", out
    assert {unused1, unused2} <= set(deleted[1:]), out
    assert used not in deleted and not PREDEFINED & set(deleted), out
    names = _names(docker)
    assert PREDEFINED <= names and used in names and not {unused1, unused2} & names
    docker.ok("rm", "-f", holder)
    assert used in docker.ok("network", "prune", "-f").split()


def test_network_prune_with_label_filter(docker: Cli, new_net: Names) -> None:
    group = uuid.uuid4().hex[:8]
    doomed, kept = new_net("doomed"), new_net("kept")
    docker.ok("network", "create", "--label", f"group={group}", doomed)
    docker.ok("network", "create", "--label", "group=other", kept)
    out = docker.ok("network", "prune", "-f", "--filter", f"label=group={group}")
    assert doomed in out.split() and kept not in out.split(), out
    names = _names(docker)
    assert doomed not in names and kept in names


def test_network_ls_filters(docker: Cli, new_net: Names, new_name: Names) -> None:
    prefix = f"flt{uuid.uuid4().hex[:8]}"
    a, b, c = new_net(prefix), new_net(prefix), new_net(prefix)
    ids = {}
    ids[a] = docker.ok("network", "create", "--label", "env=prod", "--label", "tier", a).strip()
    ids[b] = docker.ok("network", "create", "--label", "env=dev", b).strip()
    ids[c] = docker.ok("network", "create", c).strip()
    holder = new_name("holder")
    try:
        docker.ok("run", "-d", "--name", holder, "--network", c, "busybox", "sleep", "300")
        name = f"name={prefix}"
        assert _names(docker, name) == {a, b, c}
        assert _names(docker, f"name={b}") == {b}
        assert _names(docker, f"id={ids[a][:10]}") == {a}
        assert _names(docker, f"id={ids[a]}") == {a}
        assert _names(docker, name, "label=env") == {a, b}
        assert _names(docker, name, "label=env=prod") == {a}
        assert _names(docker, name, "label=tier") == {a}
        assert _names(docker, name, "label=env", "label=tier") == {a}
        assert _names(docker, name, "driver=bridge") == {a, b, c}
        assert "bridge" in _names(docker, "driver=bridge")
        assert _names(docker, "driver=null") == {"none"}
        assert _names(docker, "driver=host") == {"host"}
        assert _names(docker, "type=builtin") == PREDEFINED
        custom = _names(docker, "type=custom")
        assert {a, b, c} <= custom and not PREDEFINED & custom
        assert _names(docker, name, "scope=local") == {a, b, c}
        dangling = _names(docker, "dangling=true")
        assert {a, b} <= dangling and c not in dangling and not PREDEFINED & dangling
        in_use = _names(docker, "dangling=false")
        assert c in in_use and PREDEFINED <= in_use and not {a, b} & in_use
        quiet = _ls(docker, "-q", "--filter", f"name={a}")
        assert quiet == [ids[a][:12]], quiet
        quiet = _ls(docker, "-q", "--no-trunc", "--filter", f"name={a}")
        assert quiet == [ids[a]], quiet
        res = docker("network", "ls", "--filter", "dangling=maybe")
        assert res.returncode != 0, describe(res)
        assert "invalid value for filter 'dangling'" in res.stderr, describe(res)
        res = docker("network", "ls", "--filter", "type=other")
        assert res.returncode != 0, describe(res)
    finally:
        docker("rm", "-f", holder)
        for n in (a, b, c):
            docker("network", "rm", "-f", n)


# Internal networks (course 5.3).


def test_internal_network_course(docker: Cli, course_names: Callable[..., None],
                                 new_net: Names) -> None:
    course_names(nets=("localhost",),
                 ctrs=("test_mysql", "ping-mysql", "cant-ping-mysql", "private-nginx"))
    docker.ok("network", "create", "-d", "bridge", "--internal", "localhost")
    info = _net(docker, "localhost")
    assert info["Internal"] is True, info
    # The "MySQL" server: an HTTP server standing in for it, only on the internal network.
    docker.ok("run", "-d", "--name", "test_mysql", "--network", "localhost", "busybox",
              *_serve("mysql"))
    mysql_ip = _ip(docker, "test_mysql", "localhost")
    # ping-mysql: created on the default bridge, then connected to localhost, then started.
    docker.ok("create", "--name", "ping-mysql", "--network", "bridge", "--dns", "127.0.0.1",
              "busybox", "sh", "-c", _fetch("test_mysql"))
    docker.ok("network", "connect", "localhost", "ping-mysql")
    res = docker("start", "-a", "ping-mysql")
    assert res.returncode == 0, describe(res)
    assert "mysql" in res.stdout.splitlines(), res.stdout
    # cant-ping-mysql: only on the default bridge; neither the name nor the address works.
    res = docker("run", "--name", "cant-ping-mysql", "--dns", "127.0.0.1", "busybox", "sh",
                 "-c", f"nc -w 1 test_mysql 80 </dev/null; echo rc=$?; {_cannot_fetch(mysql_ip)}")
    assert res.returncode != 0, describe(res)
    assert "rc=0" not in res.stdout and "mysql" not in res.stdout.splitlines(), describe(res)
    assert "bad address" in res.stderr, describe(res)
    # private-nginx: published, but an internal network is not reachable from the host.
    port = _free_port()
    res = docker("run", "-d", "--name", "private-nginx", "-p", f"127.0.0.1:{port}:80",
                 "--network", "localhost", "busybox", *_serve("private"))
    assert res.returncode == 0, describe(res)
    private_ip = _ip(docker, "private-nginx", "localhost")
    # It serves on the internal network...
    res = _run_rm(docker, "--network", "localhost", "busybox", "sh", "-c", _fetch(private_ip))
    assert res.returncode == 0 and "private" in res.stdout.splitlines(), describe(res)
    # ...but not to the host.
    curl = subprocess.run(["curl", "-s", "-m", "2", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True)
    assert "private" not in curl.stdout, curl.stdout
    docker.ok("rm", "-f", "test_mysql", "ping-mysql", "cant-ping-mysql", "private-nginx")
    docker.ok("network", "rm", "localhost")


def test_internal_network_has_no_way_out(docker: Cli, new_net: Names, new_name: Names) -> None:
    internal, outside = new_net("internal"), new_net("outside")
    n_in, n_out = free_octets(2)
    docker.ok("network", "create", "--internal", "--subnet", f"10.{n_in}.0.0/16", internal)
    docker.ok("network", "create", "--subnet", f"10.{n_out}.0.0/16", outside)
    outside_gw = f"10.{n_out}.0.1"
    listener = HostListener(outside_gw, "host-says-hi")
    try:
        # Control: from a normal network the host's listener answers.
        res = _run_rm(docker, "--network", outside, "busybox", "nc", "-w", "2", outside_gw,
                      str(listener.port))
        assert res.returncode == 0 and "host-says-hi" in res.stdout, describe(res)
        # From the internal network: no route out, to the host or anywhere else.
        script = (f"ip route; nc -w 1 {outside_gw} {listener.port} </dev/null; echo rc=$?; "
                  "nc -w 1 192.0.2.2 22 </dev/null; echo rc=$?")
        res = _run_rm(docker, "--network", internal, "busybox", "sh", "-c", script)
        assert res.returncode == 0, describe(res)
        assert "host-says-hi" not in res.stdout, describe(res)
        assert "rc=0" not in res.stdout, describe(res)
        assert not re.search(r"^default ", res.stdout, re.M), describe(res)
        # Two containers on the internal network still reach each other.
        server = new_name("isrv")
        docker.ok("run", "-d", "--name", server, "--network", internal, "busybox",
                  *_serve("inside"))
        res = _run_rm(docker, "--network", internal, "--dns", "127.0.0.1", "busybox", "sh", "-c",
                      _fetch(server))
        assert res.returncode == 0 and "inside" in res.stdout.splitlines(), describe(res)
        docker.ok("rm", "-f", server)
    finally:
        listener.close()


# Isolation between bridges.


def test_user_networks_are_isolated_from_each_other(docker: Cli, new_net: Names,
                                                    new_name: Names) -> None:
    net_a, net_b = new_net("iso-a"), new_net("iso-b")
    docker.ok("network", "create", net_a)
    docker.ok("network", "create", net_b)
    srv_a, srv_b = new_name("srv-a"), new_name("srv-b")
    docker.ok("run", "-d", "--name", srv_a, "--network", net_a, "busybox", *_serve("from-a"))
    docker.ok("run", "-d", "--name", srv_b, "--network", net_b, "busybox", *_serve("from-b"))
    ip_a, ip_b = _ip(docker, srv_a, net_a), _ip(docker, srv_b, net_b)
    # Same network: reachable.
    res = _run_rm(docker, "--network", net_a, "busybox", "sh", "-c", _fetch(ip_a))
    assert res.returncode == 0 and "from-a" in res.stdout.splitlines(), describe(res)
    res = _run_rm(docker, "--network", net_b, "busybox", "sh", "-c", _fetch(ip_b))
    assert res.returncode == 0 and "from-b" in res.stdout.splitlines(), describe(res)
    # Across networks: not.
    res = _run_rm(docker, "--network", net_a, "busybox", "sh", "-c", _cannot_fetch(ip_b))
    assert res.returncode != 0 and "from-b" not in res.stdout, describe(res)
    res = _run_rm(docker, "--network", net_b, "busybox", "sh", "-c", _cannot_fetch(ip_a))
    assert res.returncode != 0 and "from-a" not in res.stdout, describe(res)
    # Nor from the default bridge.
    res = _run_rm(docker, "busybox", "sh", "-c", _cannot_fetch(ip_a))
    assert res.returncode != 0 and "from-a" not in res.stdout, describe(res)
    # A container on both reaches both.
    both = new_name("both")
    docker.ok("create", "--name", both, "--network", net_a, "busybox", "sh", "-c",
              f"{_fetch(ip_a)} && {_fetch(ip_b)}")
    docker.ok("network", "connect", net_b, both)
    res = docker("start", "-a", both)
    assert res.returncode == 0, describe(res)
    assert {"from-a", "from-b"} <= set(res.stdout.splitlines()), res.stdout
    docker.ok("rm", "-f", srv_a, srv_b, both)


def test_containers_on_the_default_bridge_reach_each_other(docker: Cli, new_name: Names) -> None:
    srv = new_name("dsrv")
    docker.ok("run", "-d", "--name", srv, "busybox", *_serve("default-bridge"))
    ip = _ip(docker, srv, "bridge")
    res = _run_rm(docker, "busybox", "sh", "-c", _fetch(ip))
    assert res.returncode == 0 and "default-bridge" in res.stdout.splitlines(), describe(res)
    docker.ok("rm", "-f", srv)


# The none, host and container: network modes.


def test_network_none_has_only_loopback(docker: Cli, new_name: Names) -> None:
    c = new_name("none")
    out = docker.ok("run", "--name", c, "--network", "none", "busybox", "ip", "-o", "link")
    links = [re.match(r"\d+:\s+([^:@]+)", line).group(1)  # type: ignore[union-attr]
             for line in out.splitlines()]
    assert links == ["lo"], out
    networks = _inspect(docker, c)["NetworkSettings"]["Networks"]
    assert set(networks) == {"none"}, networks
    assert networks["none"]["IPAddress"] == "", networks
    assert _inspect(docker, c)["HostConfig"]["NetworkMode"] == "none"
    docker.ok("rm", c)


def test_network_host_sees_the_hosts_interfaces(docker: Cli, new_name: Names) -> None:
    host_out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
                              capture_output=True, text=True).stdout
    host_addrs = re.findall(r"\sinet (\S+)", host_out)
    assert host_addrs, host_out
    c = new_name("host")
    out = docker.ok("run", "--name", c, "--network", "host", "busybox", "sh", "-c",
                    "ip -4 -o addr show dev eth0; hostname")
    assert re.findall(r"\sinet (\S+)", out) == host_addrs, out
    assert out.splitlines()[-1] == socket.gethostname(), out
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"host"}
    docker.ok("rm", c)


def test_network_container_shares_the_other_containers_netns(docker: Cli, new_net: Names,
                                                            new_name: Names) -> None:
    net, first = new_net("shared"), new_name("first")
    docker.ok("network", "create", net)
    docker.ok("run", "-d", "--name", first, "--network", net, "busybox", *_serve("shared"))
    ip = _ip(docker, first, net)
    hostname = _inspect(docker, first)["Config"]["Hostname"]
    out = docker.ok("run", "--rm", "--network", f"container:{first}", "busybox", "sh", "-c",
                    f"hostname; ip -4 -o addr show dev eth0; {_fetch('127.0.0.1')}")
    assert re.search(rf"\sinet {re.escape(ip)}/", out), out
    assert "shared" in out.splitlines(), out  # first's server, on the shared loopback
    assert out.splitlines()[0] == hostname, out
    res = docker("run", "--rm", "--network", f"container:{first}", "--hostname", "x", "busybox",
                 "true")
    assert res.returncode != 0, describe(res)
    assert "conflicting options: hostname and the network mode" in res.stderr, describe(res)
    docker.ok("rm", "-f", first)


def test_network_container_uses_the_other_containers_etc_files(docker: Cli, new_name: Names) -> None:
    # dockerd points such a container at the other's hostname, hosts and resolv.conf
    # files: the same paths in inspect, the same content, and what the other adds later
    first, second = new_name("lender"), new_name("borrower")
    docker.ok("run", "-d", "--name", first, "--hostname", "lender", "--add-host", "extra.example:10.9.8.7",
              "--dns", "10.1.1.1", "--dns-search", "lend.example", "busybox", "sleep", "60")
    docker.ok("run", "-d", "--name", second, "--network", f"container:{first}", "busybox", "sleep", "60")
    files = "cat /etc/hostname /etc/hosts /etc/resolv.conf"
    theirs = docker.ok("exec", first, "sh", "-c", files)
    assert "extra.example" in theirs and "10.1.1.1" in theirs, theirs
    assert docker.ok("exec", second, "sh", "-c", files) == theirs
    paths = "{{.HostnamePath}} {{.HostsPath}} {{.ResolvConfPath}}"
    assert docker.ok("inspect", "-f", paths, second) == docker.ok("inspect", "-f", paths, first)
    docker.ok("exec", first, "sh", "-c", "echo 10.5.5.5 later.example >> /etc/hosts")
    assert "later.example" in docker.ok("exec", second, "cat", "/etc/hosts")
    docker.ok("rm", "-f", second, first)


# Hostname, /etc/hosts and /etc/resolv.conf.


def _host_nameservers() -> list[str]:
    """What Docker gives a container on the default bridge: the host's nameservers without
    the loopback ones, or Google's if none remain."""
    servers = []
    with open("/etc/resolv.conf") as f:
        for line in f:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                addr = ipaddress.ip_address(words[1].split("%")[0])
                if not addr.is_loopback and addr.version == 4:
                    servers.append(words[1])
    return servers or ["8.8.8.8", "8.8.4.4"]


FILES = ("hostname; echo ---; ip -4 -o addr show dev eth0; echo ---; cat /etc/hosts; "
         "echo ---; cat /etc/resolv.conf")


def _files(out: str) -> tuple[str, str, str, str]:
    """hostname, eth0's address, /etc/hosts and /etc/resolv.conf from a FILES run."""
    hostname, addr, hosts, resolv = out.split("---\n")
    m = re.search(r"\sinet (\d+\.\d+\.\d+\.\d+)/", addr)
    assert m, addr
    return hostname.strip(), m.group(1), hosts, resolv


def test_default_bridge_hosts_and_resolv_conf(docker: Cli, new_name: Names) -> None:
    c = new_name("files")
    out = docker.ok("run", "--name", c, "busybox", "sh", "-c", FILES)
    hostname, ip, hosts, resolv = _files(out)
    assert re.search(r"^127\.0\.0\.1\s+localhost", hosts, re.M), hosts
    assert re.search(rf"^{re.escape(ip)}\s+{hostname}$", hosts, re.M), hosts
    assert re.findall(r"^nameserver (\S+)", resolv, re.M) == _host_nameservers(), resolv
    docker.ok("rm", c)


def test_hostname_add_host_dns_and_dns_search(docker: Cli, new_name: Names) -> None:
    c = new_name("opts")
    gateway = _net(docker, "bridge")["IPAM"]["Config"][0]["Gateway"]
    out = docker.ok("run", "--name", c, "--hostname", "myhost", "--add-host", "db.example:1.2.3.4",
                    "--add-host", "gw.example:host-gateway", "--dns", "1.1.1.1",
                    "--dns-search", "example.com", "--dns-option", "ndots:2", "busybox", "sh",
                    "-c", FILES)
    hostname, ip, hosts, resolv = _files(out)
    assert hostname == "myhost"
    assert re.search(r"^1\.2\.3\.4\s+db\.example$", hosts, re.M), hosts
    assert re.search(rf"^{re.escape(ip)}\s+myhost$", hosts, re.M), hosts
    assert re.findall(r"^nameserver (\S+)", resolv, re.M) == ["1.1.1.1"], resolv
    assert re.search(r"^search example\.com$", resolv, re.M), resolv
    assert re.search(r"^options ndots:2$", resolv, re.M), resolv
    info = _inspect(docker, c)
    assert info["Config"]["Hostname"] == "myhost"
    assert info["HostConfig"]["Dns"] == ["1.1.1.1"]
    assert info["HostConfig"]["DnsSearch"] == ["example.com"]
    assert info["HostConfig"]["ExtraHosts"] == ["db.example:1.2.3.4", "gw.example:host-gateway"]
    # host-gateway stands for the host's address on the default bridge.
    assert re.search(rf"^{re.escape(gateway)}\s+gw\.example$", hosts, re.M), hosts
    docker.ok("rm", c)


def test_user_network_hosts_and_resolv_conf(docker: Cli, new_net: Names, new_name: Names) -> None:
    net, c = new_net("files"), new_name("files")
    docker.ok("network", "create", net)
    out = docker.ok("run", "--name", c, "--network", net, "--dns", "1.1.1.1", "--dns-search",
                    "example.com", "busybox", "sh", "-c", FILES)
    hostname, ip, hosts, resolv = _files(out)
    assert hostname == _inspect(docker, c)["Id"][:12]
    subnet = _net(docker, net)["IPAM"]["Config"][0]["Subnet"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet), (ip, subnet)
    assert re.search(rf"^{re.escape(ip)}\s+{hostname}$", hosts, re.M), hosts
    # The embedded DNS server; the --dns server is its upstream, not the container's.
    assert re.findall(r"^nameserver (\S+)", resolv, re.M) == ["127.0.0.11"], resolv
    assert re.search(r"^search example\.com$", resolv, re.M), resolv
    docker.ok("rm", c)


def test_mac_address(docker: Cli, new_name: Names, new_net: Names) -> None:
    mac = "02:42:ac:11:00:99"
    c = new_name("mac")
    docker.ok("run", "-d", "--name", c, "--mac-address", mac, "busybox", "sh", "-c",
              "ip -o link show dev eth0; exec sleep 300")
    _wait_for("eth0 in the logs", lambda: "link/ether" in docker.ok("logs", c))
    assert f"link/ether {mac} " in docker.ok("logs", c)
    assert _endpoint(docker, c, "bridge")["MacAddress"] == mac
    net, c2 = new_net("mac"), new_name("mac")
    docker.ok("network", "create", net)
    mac2 = "02:42:0a:01:00:77"
    docker.ok("run", "-d", "--name", c2, "--network", net, "--mac-address", mac2, "busybox",
              "sleep", "300")
    assert _endpoint(docker, c2, net)["MacAddress"] == mac2
    cid = _inspect(docker, c2)["Id"]
    assert _net(docker, net)["Containers"][cid]["MacAddress"] == mac2
    docker.ok("rm", "-f", c, c2)


# Bad input: Docker's errors, and nothing left behind.


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_overlapping_subnets_are_refused(docker: Cli, new_net: Names) -> None:
    first, second = new_net("pool"), new_net("overlap")
    (n,) = free_octets(1)
    docker.ok("network", "create", "--subnet", f"10.{n}.0.0/16", first)
    before = _names(docker)
    held = _host_addresses_in(f"10.{n}.0.0/16")
    for subnet in (f"10.{n}.0.0/16", f"10.{n}.128.0/17", f"10.{n}.4.0/24"):
        res = docker("network", "create", "--subnet", subnet, second)
        assert res.returncode != 0, describe(res)
        assert "Pool overlaps with other one on this address space" in res.stderr, describe(res)
        assert _names(docker) == before
        assert _host_addresses_in(f"10.{n}.0.0/16") == held
    # A subnet that contains the first one overlaps too.
    supernet = ipaddress.ip_network(f"10.{n}.0.0/16").supernet()
    res = docker("network", "create", "--subnet", str(supernet), second)
    assert res.returncode != 0, describe(res)
    assert "Pool overlaps with other one on this address space" in res.stderr, describe(res)
    assert _names(docker) == before


def test_gateway_outside_its_subnet_is_refused(docker: Cli, api: ApiClient, new_net: Names) -> None:
    net = new_net("gw")
    n, m = free_octets(2)
    # the docker CLI checks this one itself, before asking the daemon ...
    res = docker("network", "create", "--subnet", f"10.{n}.0.0/16", "--gateway", f"10.{m}.0.1",
                 net)
    assert res.returncode != 0, describe(res)
    assert f"no matching subnet for gateway 10.{m}.0.1" in res.stderr, describe(res)
    # ... and the daemon refuses it from any other client, with its own words
    resp = api.post_json("/networks/create", {"Name": net, "IPAM": {"Config": [
        {"Subnet": f"10.{n}.0.0/16", "Gateway": f"10.{m}.0.1"}]}})
    assert resp.status == 400, resp.body
    message = resp.json()["message"]
    assert f"invalid gateway 10.{m}.0.1" in message, message
    assert f"parent subnet 10.{n}.0.0/16 doesn't contain this address" in message, message
    assert net not in _names(docker)
    assert not _host_addresses_in(f"10.{n}.0.0/16") and not _host_addresses_in(f"10.{m}.0.0/16")
    resp = api.post_json("/networks/create", {"Name": net, "IPAM": {"Config": [
        {"Subnet": f"10.{n}.0.0/16", "IPRange": f"10.{m}.0.0/24"}]}})
    assert resp.status == 400, resp.body
    assert f"invalid ip-range 10.{m}.0.0/24" in resp.json()["message"], resp.body
    res = docker("network", "create", "--subnet", f"10.{n}.0.1/16", net)
    assert res.returncode != 0, describe(res)
    assert f"invalid subnet 10.{n}.0.1/16: it should be 10.{n}.0.0/16" in res.stderr, describe(res)
    assert net not in _names(docker)


def test_duplicate_network_name_is_refused(docker: Cli, api: ApiClient, new_net: Names) -> None:
    net = new_net("dup")
    nid = docker.ok("network", "create", net).strip()
    res = docker("network", "create", net)
    assert res.returncode != 0, describe(res)
    assert f"network with name {net} already exists" in res.stderr, describe(res)
    resp = api.post_json("/networks/create", {"Name": net})
    assert resp.status == 409, (resp.status, resp.body)
    assert [i for i, name in (api.networks() or {}).items() if name == net] == [nid]


def test_static_ip_errors(docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("ipnet")
    n, m = free_octets(2)
    docker.ok("network", "create", "--subnet", f"10.{n}.0.0/16", net)
    bridge = _bridge(_net(docker, net))
    # Outside the subnet: refused at create, no container.
    c = new_name("outside")
    res = docker("run", "-d", "--name", c, "--network", net, "--ip", f"10.{m}.0.5", "busybox",
                 "sleep", "300")
    assert res.returncode != 0, describe(res)
    assert f"no configured subnet or ip-range contain the IP address 10.{m}.0.5" in res.stderr, (
        describe(res))
    assert docker("container", "inspect", c).returncode != 0, "the container was created"
    # Taken: the second container cannot start, and leaves no endpoint behind.
    holder = new_name("holder")
    docker.ok("run", "-d", "--name", holder, "--network", net, "--ip", f"10.{n}.0.9", "busybox",
              "sleep", "300")
    ports = _bridge_ports(bridge)
    assert len(ports) == 1, ports
    taken = new_name("taken")
    res = docker("run", "-d", "--name", taken, "--network", net, "--ip", f"10.{n}.0.9", "busybox",
                 "sleep", "300")
    assert res.returncode != 0, describe(res)
    assert "Address already in use" in res.stderr, describe(res)
    assert _inspect(docker, taken)["State"]["Running"] is False
    assert _bridge_ports(bridge) == ports
    assert len(_net(docker, net)["Containers"]) == 1
    docker.ok("rm", "-f", taken, holder)
    assert _bridge_ports(bridge) == set()
    # On the default bridge: only user-defined networks take --ip.
    subnet = ipaddress.ip_network(_net(docker, "bridge")["IPAM"]["Config"][0]["Subnet"])
    wanted = str(subnet.network_address + 200)
    c2 = new_name("dflt")
    res = docker("run", "-d", "--name", c2, "--network", "bridge", "--ip", wanted, "busybox",
                 "sleep", "300")
    assert res.returncode != 0, describe(res)
    assert "user specified IP address is supported on user defined networks only" in res.stderr, (
        describe(res))
    assert docker("container", "inspect", c2).returncode != 0, "the container was created"


def test_run_on_an_unknown_network(docker: Cli, api: ApiClient, new_name: Names) -> None:
    missing = f"nosuch-{uuid.uuid4().hex[:8]}"
    c = new_name("lost")
    res = docker("run", "-d", "--name", c, "--network", missing, "busybox", "sleep", "300")
    assert res.returncode == 125, describe(res)
    assert f"network {missing} not found" in res.stderr, describe(res)
    # Whether or not the container was created, it is not running.
    check = docker("container", "inspect", "-f", "{{.State.Running}}", c)
    assert check.returncode != 0 or check.stdout == "false\n", describe(check)
    resp = api.get(f"/networks/{missing}")
    assert resp.status == 404, (resp.status, resp.body)
    assert resp.json()["message"] == f"network {missing} not found"


# The raw API and berth's own CLI.


def test_network_api_create_inspect_list_delete(api: ApiClient, new_net: Names) -> None:
    net = new_net("api")
    (n,) = free_octets(1)
    resp = api.post_json("/networks/create", {
        "Name": net, "Driver": "bridge", "Labels": {"k": "v"},
        "IPAM": {"Driver": "default", "Config": [{"Subnet": f"10.{n}.0.0/16",
                                                  "Gateway": f"10.{n}.0.1"}]},
    })
    assert resp.status == 201, (resp.status, resp.body)
    body = resp.json()
    assert HEX64.match(body["Id"]) and body.get("Warning", "") == "", body
    resp = api.get(f"/networks/{body['Id']}")
    assert resp.status == 200, resp.body
    info = resp.json()
    assert info["Name"] == net and info["Labels"] == {"k": "v"}, info
    assert info["IPAM"]["Config"] == [{"Subnet": f"10.{n}.0.0/16", "Gateway": f"10.{n}.0.1"}]
    listed = api.get("/networks?filters=" + urllib.parse.quote(json.dumps({"name": [net]})))
    assert listed.status == 200 and [x["Id"] for x in listed.json()] == [body["Id"]], listed.body
    resp = api.request("DELETE", f"/networks/{net}")
    assert resp.status == 204, (resp.status, resp.body)
    assert api.request("DELETE", f"/networks/{net}").status == 404


@pytest.mark.parametrize("client", ["docker", "berth"])
def test_cli_network_lifecycle(client: str, docker: Cli, berth: Cli, new_net: Names,
                               new_name: Names) -> None:
    cli = docker if client == "docker" else berth
    net, c = new_net(f"{client}-cli"), new_name(f"{client}-cli")
    nid = cli.ok("network", "create", "--label", "made-by=" + client, net).strip()
    assert HEX64.match(nid)
    row = cli.ok("network", "ls", "--filter", f"name={net}").splitlines()
    assert row[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert row[1].split() == [nid[:12], net, "bridge", "local"], row
    assert cli.ok("network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", net) == (
        f"{net} bridge map[made-by:{client}]\n")
    cli.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    assert cli.ok("network", "connect", net, c) == ""
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"bridge", net}
    assert cli.ok("network", "disconnect", net, c) == ""
    assert set(_inspect(docker, c)["NetworkSettings"]["Networks"]) == {"bridge"}
    cli.ok("rm", "-f", c)
    assert cli.ok("network", "rm", net) == f"{net}\n"
