"""The macvlan driver (on a veth pair made for the test as its parent: this kernel has no
dummy links) and IPv6 on bridge networks."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from helpers.cli import Cli, describe


@pytest.fixture
def parent_link() -> Iterator[str]:
    name = f"bp{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    try:
        for link in (name, name + "p"):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def _octet() -> int:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for n in range(150, 250):
        if f"10.{n}." not in routes:
            return n
    raise AssertionError("no free 10.N.0.0/16 on this host")


def test_macvlan_bridge_mode(docker: Cli, busybox: str, parent_link: str) -> None:
    net = f"mv-{uuid.uuid4().hex[:8]}"
    n = _octet()
    docker.ok("network", "create", "-d", "macvlan", "--subnet", f"10.{n}.0.0/24", "-o", f"parent={parent_link}", net)
    try:
        assert docker.ok("network", "inspect", "-f", "{{.Driver}} {{.Options.parent}}", net).split() == [
            "macvlan", parent_link]
        docker.ok("run", "-d", "--name", f"{net}-a", "--network", net, "--ip", f"10.{n}.0.10", busybox, "sleep", "60")
        out = docker.ok("run", "--rm", "--network", net, busybox, "sh", "-c",
                        f"ip -4 addr show eth0; ping -c1 -W2 10.{n}.0.10")
        assert f"inet 10.{n}.0." in out and "1 packets received" in out, out
        # a macvlan port is not a veth on the host: nothing of it shows there
        assert f"10.{n}.0.10" not in subprocess.run(["ip", "addr"], capture_output=True, text=True).stdout
    finally:
        docker("rm", "-f", f"{net}-a")
        docker("network", "rm", net)


def test_macvlan_needs_an_existing_parent(docker: Cli) -> None:
    res = docker("network", "create", "-d", "macvlan", "-o", "parent=nosuchlink0", f"mv-{uuid.uuid4().hex[:6]}")
    assert res.returncode != 0 and "parent interface was not found on the host: nosuchlink0" in res.stderr, describe(res)


def test_ipv6_bridge_network(docker: Cli, busybox: str) -> None:
    net = f"v6-{uuid.uuid4().hex[:8]}"
    prefix = f"fd00:{uuid.uuid4().hex[:4]}:1"
    docker.ok("network", "create", "--ipv6", "--subnet", f"{prefix}::/64", net)
    try:
        assert docker.ok("network", "inspect", "-f", "{{.EnableIPv6}}", net).strip() == "true"
        docker.ok("run", "-d", "--name", f"{net}-a", "--network", net, busybox, "sleep", "60")
        address = docker.ok("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").GlobalIPv6Address}}}}",
                            f"{net}-a").strip()
        import ipaddress

        assert ipaddress.ip_address(address) in ipaddress.ip_network(f"{prefix}::/64"), address
        out = docker.ok("run", "--rm", "--network", net, busybox, "sh", "-c",
                        f"ping6 -c1 -W2 {prefix}::1 && ping6 -c1 -W2 {address}")
        assert out.count("1 packets received") == 2, out
    finally:
        docker("rm", "-f", f"{net}-a")
        docker("network", "rm", net)


def test_published_port_answers_on_ipv6_loopback(docker: Cli, busybox: str) -> None:
    """All-address ports answer on [::1] too: the kernel cannot DNAT IPv6 to an IPv4-only
    container, so berthd relays it in userland (Docker's docker-proxy does the same)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"p6-{uuid.uuid4().hex[:8]}"
    docker.ok("run", "-d", "--name", name, "-p", f"{port}:80", busybox, "sh", "-c",
              "mkdir /www; echo six > /www/index.html; exec httpd -f -p 80 -h /www")
    try:
        for url in (f"http://[::1]:{port}/index.html", f"http://127.0.0.1:{port}/index.html"):
            res = subprocess.run(["curl", "-s", "-m", "5", "--retry", "5", "--retry-connrefused", url],
                                 capture_output=True, text=True)
            assert res.stdout == "six\n", (url, res.stdout, res.stderr)
    finally:
        docker("rm", "-f", name)
    res = subprocess.run(["curl", "-s", "-m", "2", f"http://[::1]:{port}/"], capture_output=True, text=True)
    assert res.returncode != 0, "the IPv6 side outlived its container"
