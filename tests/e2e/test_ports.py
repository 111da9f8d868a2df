"""Publishing container ports (course chapter 4.3) through the real docker CLI, berth,
docker-py and the raw API, as Docker behaves: -p in its forms (IP:HOST:CONTAINER,
HOST:CONTAINER, ranges, /udp), -P with the image's EXPOSE, `docker port`, the PORTS of
`docker ps`, the Ports and PortBindings of `docker inspect`, ports freed when a container
stops, a host port already taken, and the hairpin through the bridge's gateway.

Host ports are chosen free at run time (a socket bound to port 0), so tests do not
collide with each other or with other sessions. All traffic goes to loopback or to the
test's own berth networks.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe, import_image
from helpers.daemon import BerthDaemon, private_daemon

pytestmark = pytest.mark.usefixtures("busybox", "network_hygiene")

Names = Callable[[str], str]

EXPOSE_IMAGE = "berth-test-expose:latest"
HTTP_GET = r"printf 'GET / HTTP/1.0\r\n\r\n'"


# Fixtures and helpers.


@pytest.fixture(scope="module")
def expose_image(docker: Cli, busybox: str, busybox_tar: Path) -> Iterator[str]:
    """busybox with EXPOSE 80 81 (ExposedPorts 80/tcp and 81/tcp)."""
    res = import_image(docker, busybox_tar, EXPOSE_IMAGE, "EXPOSE 80 81")
    assert res.returncode == 0, describe(res)
    yield EXPOSE_IMAGE
    docker("rmi", "-f", EXPOSE_IMAGE)


def free_port(count: int = 1, host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """The first of `count` consecutive ports free on host right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            first: int = s.getsockname()[1]
        if first + count > 65535:
            continue
        if all(_port_free(host, p, kind) for p in range(first, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports on {host}")


def _port_free(host: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(*sites: tuple[int, str]) -> list[str]:
    """A busybox command serving each (port, text) over HTTP; the last in the foreground."""
    steps = []
    for i, (port, text) in enumerate(sites):
        steps.append(f"mkdir -p /www{port} && echo {text} > /www{port}/index.html")
        flag = "-f " if i == len(sites) - 1 else ""
        steps.append(f"{'exec ' if flag else ''}httpd {flag}-p {port} -h /www{port}")
    return ["sh", "-c", " && ".join(steps)]


def _curl(url: str, timeout: float = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-s", "-m", str(timeout), url], capture_output=True, text=True)


def _wait_for_http(url: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        res = _curl(url, timeout=1)
        if res.returncode == 0 and res.stdout == f"{text}\n":
            return
        assert time.monotonic() < deadline, (
            f"{url} never answered {text!r}: curl exited {res.returncode}, said {res.stdout!r}")
        time.sleep(0.2)


def _inspect(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("container", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    info: dict[str, Any] = data[0]
    return info


def _all_addresses_lines(port_out: str, private: str, host_port: int) -> None:
    """`docker port` for a bind on all addresses: the 0.0.0.0 line, and the [::] line
    Docker adds where the host has IPv6."""
    lines = port_out.splitlines()
    assert f"{private} -> 0.0.0.0:{host_port}" in lines, port_out
    assert set(lines) <= {f"{private} -> 0.0.0.0:{host_port}", f"{private} -> [::]:{host_port}"}, (
        port_out)


def _listening(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(1)
    return s


# -p IP:HOST:CONTAINER


def test_publish_on_loopback(docker: Cli, api: ApiClient, new_name: Names) -> None:
    port = free_port()
    c = new_name("web")
    docker.ok("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:80", "busybox",
              *_serve((80, "hello")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "hello")
    assert docker.ok("port", c) == f"80/tcp -> 127.0.0.1:{port}\n"
    assert docker.ok("port", c, "80/tcp") == f"127.0.0.1:{port}\n"
    assert docker.ok("port", c, "80") == f"127.0.0.1:{port}\n"
    assert docker.ok("container", "port", c) == f"80/tcp -> 127.0.0.1:{port}\n"
    res = docker("port", c, "81/tcp")
    assert res.returncode != 0, describe(res)
    assert f"No public port '81/tcp' published for {c}" in res.stderr, describe(res)
    info = _inspect(docker, c)
    binding = [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": binding}, info["HostConfig"]
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": binding}, info["NetworkSettings"]
    assert "80/tcp" in (info["Config"].get("ExposedPorts") or {}), info["Config"]
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}")
    assert ps == f"127.0.0.1:{port}->80/tcp\n", ps
    listed = [x for x in api.get("/containers/json").json() if x["Id"] == info["Id"]]
    assert listed and listed[0]["Ports"] == [
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}], listed
    docker.ok("rm", "-f", c)
    assert _curl(f"http://127.0.0.1:{port}/").stdout == ""


def test_publish_on_loopback_with_a_random_host_port(docker: Cli, new_name: Names) -> None:
    c = new_name("rnd")
    docker.ok("run", "-d", "--name", c, "-p", "127.0.0.1::80", "busybox", *_serve((80, "random")))
    out = docker.ok("port", c, "80/tcp")
    m = re.fullmatch(r"127\.0\.0\.1:(\d+)\n", out)
    assert m, out
    port = int(m.group(1))
    assert 1024 <= port <= 65535, port
    assert _inspect(docker, c)["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    _wait_for_http(f"http://127.0.0.1:{port}/", "random")
    docker.ok("rm", "-f", c)


# -p HOST:CONTAINER, and the hairpin.


def test_publish_on_all_addresses_and_hairpin(docker: Cli, new_name: Names) -> None:
    port = free_port(host="0.0.0.0")
    c = new_name("all")
    docker.ok("run", "-d", "--name", c, "-p", f"{port}:80", "busybox", *_serve((80, "everyone")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "everyone")
    _all_addresses_lines(docker.ok("port", c), "80/tcp", port)
    info = _inspect(docker, c)
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    bindings = info["NetworkSettings"]["Ports"]["80/tcp"]
    assert {"HostIp": "0.0.0.0", "HostPort": str(port)} in bindings, bindings
    assert all(b["HostPort"] == str(port) and b["HostIp"] in ("0.0.0.0", "::") for b in bindings)
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}").strip()
    assert ps in (f"0.0.0.0:{port}->80/tcp", f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"), ps
    # Another container on the same bridge reaches the published port through the host's
    # address on that bridge (the gateway).
    gateway = info["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
    res = docker("run", "--rm", "busybox", "sh", "-c", f"{HTTP_GET} | nc -w 2 {gateway} {port}")
    assert res.returncode == 0 and "everyone" in res.stdout.splitlines(), describe(res)
    docker.ok("rm", "-f", c)


def test_publish_on_a_user_network(docker: Cli, new_net: Names, new_name: Names) -> None:
    net, c = new_net("pub"), new_name("pub")
    docker.ok("network", "create", net)
    port = free_port()
    docker.ok("run", "-d", "--name", c, "--network", net, "-p", f"127.0.0.1:{port}:8000",
              "busybox", *_serve((8000, "user-net")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "user-net")
    assert docker.ok("port", c) == f"8000/tcp -> 127.0.0.1:{port}\n"
    # A restart publishes it again.
    docker.ok("restart", "-t", "1", c)
    _wait_for_http(f"http://127.0.0.1:{port}/", "user-net")
    docker.ok("rm", "-f", c)


# /udp


def test_publish_udp(docker: Cli, new_name: Names) -> None:
    """busybox has no UDP server, so the container counts what reaches it: each datagram
    to a port nothing listens on raises Udp NoPorts in its /proc/net/snmp."""
    port = free_port(kind=socket.SOCK_DGRAM)
    c = new_name("udp")
    docker.ok("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:5353/udp", "busybox", "sh", "-c",
              "while true; do echo \"UDP $(grep '^Udp: [0-9]' /proc/net/snmp)\"; sleep 0.2; done")
    assert docker.ok("port", c) == f"5353/udp -> 127.0.0.1:{port}\n"
    assert docker.ok("port", c, "5353/udp") == f"127.0.0.1:{port}\n"
    res = docker("port", c, "5353")
    assert res.returncode != 0, describe(res)  # without a protocol, `docker port` means tcp
    info = _inspect(docker, c)
    binding = [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert info["NetworkSettings"]["Ports"] == {"5353/udp": binding}, info["NetworkSettings"]
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}")
    assert ps == f"127.0.0.1:{port}->5353/udp\n", ps

    def no_ports() -> int | None:
        lines = [x for x in docker.ok("logs", c).splitlines() if x.startswith("UDP Udp:")]
        if not lines:
            return None
        # Udp: InDatagrams NoPorts InErrors OutDatagrams ...
        return int(lines[-1].split()[3])

    deadline = time.monotonic() + 10
    while (baseline := no_ports()) is None:
        assert time.monotonic() < deadline, "the container never logged its counters"
        time.sleep(0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                s.sendto(b"ping", ("127.0.0.1", port))
            time.sleep(0.3)
            count = no_ports()
            if count is not None and count > baseline:
                break
            assert time.monotonic() < deadline, "no datagram reached the container"
    docker.ok("rm", "-f", c)


# Ranges


def test_publish_a_range(docker: Cli, new_name: Names) -> None:
    first = free_port(count=2)
    c = new_name("range")
    docker.ok("run", "-d", "--name", c, "-p", f"127.0.0.1:{first}-{first + 1}:80-81", "busybox",
              *_serve((80, "eighty"), (81, "eighty-one")))
    _wait_for_http(f"http://127.0.0.1:{first}/", "eighty")
    _wait_for_http(f"http://127.0.0.1:{first + 1}/", "eighty-one")
    assert docker.ok("port", c).splitlines() == [f"80/tcp -> 127.0.0.1:{first}",
                                                 f"81/tcp -> 127.0.0.1:{first + 1}"]
    info = _inspect(docker, c)
    assert info["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(first)}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(first + 1)}],
    }, info["NetworkSettings"]["Ports"]
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}").strip()
    assert ps == f"127.0.0.1:{first}->80/tcp, 127.0.0.1:{first + 1}->81/tcp", ps
    docker.ok("rm", "-f", c)


def test_publish_a_range_with_the_same_numbers_inside_and_out(docker: Cli,
                                                              new_name: Names) -> None:
    first = free_port(count=2)
    c = new_name("same")
    docker.ok("run", "-d", "--name", c, "-p", f"127.0.0.1:{first}-{first + 1}:{first}-{first + 1}",
              "busybox", *_serve((first, "a"), (first + 1, "b")))
    _wait_for_http(f"http://127.0.0.1:{first}/", "a")
    _wait_for_http(f"http://127.0.0.1:{first + 1}/", "b")
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}").strip()
    # Equal numbers inside and out are grouped, as the docker CLI prints them.
    assert ps == f"127.0.0.1:{first}-{first + 1}->{first}-{first + 1}/tcp", ps
    docker.ok("rm", "-f", c)


# -P


def test_publish_all_exposed_ports(docker: Cli, expose_image: str, new_name: Names) -> None:
    c = new_name("pall")
    docker.ok("run", "-d", "--name", c, "-P", "--expose", "82", expose_image,
              *_serve((80, "p80"), (81, "p81"), (82, "p82")))
    info = _inspect(docker, c)
    assert info["HostConfig"]["PublishAllPorts"] is True
    assert set(info["Config"]["ExposedPorts"]) == {"80/tcp", "81/tcp", "82/tcp"}, info["Config"]
    ports = info["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/tcp", "82/tcp"}, ports
    out = docker.ok("port", c)
    for private, text in (("80/tcp", "p80"), ("81/tcp", "p81"), ("82/tcp", "p82")):
        bindings = ports[private]
        host_ports = {b["HostPort"] for b in bindings}
        assert len(host_ports) == 1, bindings
        host_port = int(host_ports.pop())
        assert 1024 <= host_port <= 65535, bindings
        assert {"HostIp": "0.0.0.0", "HostPort": str(host_port)} in bindings, bindings
        assert f"{private} -> 0.0.0.0:{host_port}" in out.splitlines(), out
        _wait_for_http(f"http://127.0.0.1:{host_port}/", text)
    assert len({b["HostPort"] for bs in ports.values() for b in bs}) == 3, ports
    docker.ok("rm", "-f", c)


def test_exposed_but_not_published(docker: Cli, expose_image: str, new_name: Names) -> None:
    c = new_name("expose")
    docker.ok("run", "-d", "--name", c, expose_image, "sleep", "300")
    info = _inspect(docker, c)
    assert set(info["Config"]["ExposedPorts"]) == {"80/tcp", "81/tcp"}
    ports = info["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": None, "81/tcp": None}, ports
    assert docker.ok("port", c) == ""
    ps = docker.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}").strip()
    assert ps == "80-81/tcp", ps
    docker.ok("rm", "-f", c)


# Freed on stop; taken ports.


def test_stopping_the_container_frees_the_port(docker: Cli, new_name: Names) -> None:
    port = free_port()
    first, second = new_name("first"), new_name("second")
    docker.ok("run", "-d", "--name", first, "-p", f"127.0.0.1:{port}:80", "busybox",
              *_serve((80, "first")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "first")
    docker.ok("stop", "-t", "1", first)
    assert _curl(f"http://127.0.0.1:{port}/").stdout == ""
    assert _inspect(docker, first)["NetworkSettings"]["Ports"] in ({}, None)
    # A host socket can have it now...
    with _listening("127.0.0.1", port):
        pass
    # ...and so can another container.
    docker.ok("run", "-d", "--name", second, "-p", f"127.0.0.1:{port}:80", "busybox",
              *_serve((80, "second")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "second")
    # The stopped one cannot start while the other holds it.
    res = docker("start", first)
    assert res.returncode != 0, describe(res)
    assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in res.stderr, (
        describe(res))
    docker.ok("rm", "-f", second)
    # Once it is free, the first starts again with its old binding.
    docker.ok("start", first)
    _wait_for_http(f"http://127.0.0.1:{port}/", "first")
    docker.ok("rm", "-f", first)
    with _listening("127.0.0.1", port):
        pass


def _delete_berth_tables() -> None:
    """What a firewall reload (`nft flush ruleset`) does to berth, without touching the
    host's other rules."""
    for family in ("ip", "ip6"):
        res = subprocess.run(["nft", "delete", "table", family, "berth"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_rules_come_back_after_a_firewall_reload(docker: Cli, new_name: Names) -> None:
    """berth's tables hold the NAT of every published port. Deleted, a container start
    puts them back before it publishes its own ports; with nothing starting, berthd
    finds them gone within seconds and puts back the running containers' ports."""
    port1, first = free_port(), new_name("reload")
    docker.ok("run", "-d", "--name", first, "-p", f"127.0.0.1:{port1}:80", "busybox",
              *_serve((80, "first")))
    _wait_for_http(f"http://127.0.0.1:{port1}/", "first")
    _delete_berth_tables()
    port2, second = free_port(), new_name("reload")
    docker.ok("run", "-d", "--name", second, "-p", f"127.0.0.1:{port2}:80", "busybox",
              *_serve((80, "second")))
    _wait_for_http(f"http://127.0.0.1:{port2}/", "second")
    _wait_for_http(f"http://127.0.0.1:{port1}/", "first", timeout=2)
    _delete_berth_tables()
    _wait_for_http(f"http://127.0.0.1:{port1}/", "first", timeout=20)
    _wait_for_http(f"http://127.0.0.1:{port2}/", "second", timeout=2)
    docker.ok("rm", "-f", first, second)


@pytest.mark.timeout(90)
def test_a_reload_while_berthd_was_away_loses_no_port(berth_root: Path, berthd: BerthDaemon,
                                                      busybox_tar: Path) -> None:
    """With live-restore, a container outlives berthd (here, its crash); if the firewall
    was reloaded meanwhile, the restarted berthd puts the port back when it adopts it."""
    with private_daemon(berth_root, berthd, busybox_tar, "--live-restore", prefix="fw") as (daemon, docker):
        port = free_port()
        docker.ok("run", "-d", "--name", "adopted", "-p", f"127.0.0.1:{port}:80", "busybox",
                  *_serve((80, "adopted")))
        _wait_for_http(f"http://127.0.0.1:{port}/", "adopted")
        assert daemon.proc is not None
        daemon.proc.kill()  # a crash: a clean stop of a test's daemon also removes its bridge
        daemon.proc.wait(timeout=10)
        _delete_berth_tables()
        daemon.start()
        _wait_for_http(f"http://127.0.0.1:{port}/", "adopted", timeout=3)  # not the 5 s check's doing
        docker.ok("rm", "-f", "adopted")


def test_rm_f_of_many_publishing_containers_at_once(docker: Cli, new_net: Names, new_name: Names) -> None:
    """`docker rm -f a b c …` removes them concurrently: each unpublishes its port and
    gives back its address under the network's lock, and none waits forever."""
    net = new_net("many")
    docker.ok("network", "create", net)
    names, ports = [], []
    for _ in range(8):
        names.append(new_name("many"))
        ports.append(free_port())
        docker.ok("run", "-d", "--name", names[-1], "--network", net, "-p", f"127.0.0.1:{ports[-1]}:80",
                  "busybox", *_serve((80, "many")))
    _wait_for_http(f"http://127.0.0.1:{ports[-1]}/", "many")
    res = docker("rm", "-f", *names, timeout=60)
    assert res.returncode == 0 and res.stdout.split() == names, describe(res)
    assert docker.ok("ps", "-aq", "--filter", f"network={net}") == ""
    for port in ports:
        with _listening("127.0.0.1", port):  # each host port is free again
            pass
    docker.ok("network", "rm", net)


def test_port_held_by_a_host_socket(docker: Cli, new_name: Names) -> None:
    port = free_port()
    c = new_name("busy")
    bridge_ports_before = None
    with _listening("127.0.0.1", port):
        res = docker("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:80", "busybox",
                     *_serve((80, "never")))
        assert res.returncode != 0, describe(res)
        assert "address already in use" in res.stderr, describe(res)
        assert _inspect(docker, c)["State"]["Running"] is False
        bridge_ports_before = _default_bridge_ports(docker)
    # The failed start left nothing that holds the port: now it can be published.
    docker.ok("start", c)
    _wait_for_http(f"http://127.0.0.1:{port}/", "never")
    docker.ok("rm", "-f", c)
    assert bridge_ports_before is None or _default_bridge_ports(docker) == bridge_ports_before


def _default_bridge_ports(docker: Cli) -> set[str] | None:
    info = json.loads(docker.ok("network", "inspect", "bridge"))[0]
    name = (info.get("Options") or {}).get("com.docker.network.bridge.name")
    if not name:
        return None
    out = subprocess.run(["ip", "-o", "link", "show", "master", name], capture_output=True,
                         text=True).stdout
    return {m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", out, re.M)}


def test_port_held_by_another_container(docker: Cli, new_name: Names) -> None:
    port = free_port()
    first, second = new_name("holder"), new_name("late")
    docker.ok("run", "-d", "--name", first, "-p", f"127.0.0.1:{port}:80", "busybox",
              *_serve((80, "holder")))
    res = docker("run", "-d", "--name", second, "-p", f"127.0.0.1:{port}:80", "busybox",
                 *_serve((80, "late")))
    assert res.returncode != 0, describe(res)
    assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in res.stderr, (
        describe(res))
    _wait_for_http(f"http://127.0.0.1:{port}/", "holder")
    docker.ok("rm", "-f", first, second)


# berth's CLI and docker-py.


def test_berth_port_and_ps(berth: Cli, docker: Cli, new_name: Names) -> None:
    port = free_port()
    c = new_name("berth")
    berth.ok("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:80", "busybox",
             *_serve((80, "via-berth")))
    _wait_for_http(f"http://127.0.0.1:{port}/", "via-berth")
    assert berth.ok("port", c) == f"80/tcp -> 127.0.0.1:{port}\n"
    assert berth.ok("port", c, "80/tcp") == f"127.0.0.1:{port}\n"
    ps = berth.ok("ps", "--filter", f"name={c}", "--format", "{{.Ports}}")
    assert ps == f"127.0.0.1:{port}->80/tcp\n", ps
    berth.ok("rm", "-f", c)


def test_docker_py_ports(docker_client: Any, new_name: Names) -> None:
    port = free_port()
    c = new_name("dpy")
    container = docker_client.containers.run(
        "busybox", _serve((80, "docker-py")), name=c, detach=True,
        ports={"80/tcp": ("127.0.0.1", port)})
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/", "docker-py")
        container.reload()
        assert container.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert docker_client.api.port(container.id, 80) == [
            {"HostIp": "127.0.0.1", "HostPort": str(port)}]
    finally:
        container.remove(force=True)
