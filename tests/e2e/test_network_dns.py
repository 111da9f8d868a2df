"""Name resolution between containers, as Docker behaves: on a user-defined network the
embedded DNS server (127.0.0.11) answers for container names, network aliases (from
`--network-alias` and `network connect --alias`) and short container IDs, and for
nothing on other networks; the default bridge has no such server, only the legacy
`--link`, which writes /etc/hosts.

Every container that resolves names runs with `--dns 127.0.0.1`: a query the embedded
server cannot answer itself is then forwarded to the container's own loopback (where
nothing listens) instead of the host's resolvers, so no test query leaves the host.
Lookups use busybox `nslookup -type=a NAME`, which asks the server in resolv.conf.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helpers.cli import Cli, describe
from helpers.netinspect import answers as _answers
from helpers.netinspect import container as _inspect
from helpers.netinspect import endpoint as _endpoint
from helpers.netinspect import ip as _ip

pytestmark = pytest.mark.usefixtures("busybox", "network_hygiene")

Names = Callable[[str], str]

NO_UPSTREAM = ("--dns", "127.0.0.1")


# Fixtures and helpers.


def _sleeper(docker: Cli, name: str, *args: str) -> None:
    docker.ok("run", "-d", "--name", name, *args, "busybox", "sleep", "300")


def _lookup(docker: Cli, network: str, *names: str) -> dict[str, tuple[int, list[str], str]]:
    """nslookup each name from one new container on network: exit status, answers, text."""
    script = "; ".join(
        f"echo '>>> {n}'; nslookup -type=a {n}; echo \"<<< $?\"" for n in names)
    res = docker("run", "--rm", "--network", network, *NO_UPSTREAM, "busybox", "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    results = {}
    for block in res.stdout.split(">>> ")[1:]:
        name, _, rest = block.partition("\n")
        m = re.search(r"<<< (\d+)", rest)
        assert m, res.stdout
        results[name] = (int(m.group(1)), _answers(rest), rest)
    assert set(results) == set(names), res.stdout
    return results


def _resolves(result: tuple[int, list[str], str], ip: str) -> bool:
    status, answers, _ = result
    return status == 0 and ip in answers


# User-defined networks: the embedded DNS server.


def test_names_aliases_and_short_ids_resolve(docker: Cli, new_net: Names,
                                              new_name: Names) -> None:
    net = new_net("dns")
    docker.ok("network", "create", net)
    web, db = new_name("web"), new_name("db")
    _sleeper(docker, web, "--network", net, "--network-alias", "webalias")
    _sleeper(docker, db)  # on the default bridge, then connected with an alias
    docker.ok("network", "connect", "--alias", "database", net, db)
    web_ip, db_ip = _ip(docker, web, net), _ip(docker, db, net)
    web_short, db_short = _inspect(docker, web)["Id"][:12], _inspect(docker, db)["Id"][:12]

    ep = _endpoint(docker, web, net)
    assert "webalias" in (ep["Aliases"] or []), ep
    assert {web, web_short, "webalias"} <= set(ep.get("DNSNames") or []), ep
    assert "database" in (_endpoint(docker, db, net)["Aliases"] or [])

    found = _lookup(docker, net, web, "webalias", web_short, db, "database", db_short)
    for name, ip in ((web, web_ip), ("webalias", web_ip), (web_short, web_ip),
                     (db, db_ip), ("database", db_ip), (db_short, db_ip)):
        assert _resolves(found[name], ip), (name, ip, found[name][2])
    # What the server answers with, as busybox prints it.
    status, answers, text = found[web]
    assert answers == [web_ip], text
    assert re.search(r"^Server:\s+127\.0\.0\.11$", text, re.M), text
    docker.ok("rm", "-f", web, db)


def test_resolution_by_ping_and_nc(docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("dns")
    docker.ok("network", "create", net)
    web = new_name("web")
    docker.ok("run", "-d", "--name", web, "--network", net, "--network-alias", "site", "busybox",
              "sh", "-c", "mkdir /www && echo by-name > /www/index.html && "
                          "exec httpd -f -p 80 -h /www")
    web_ip = _ip(docker, web, net)
    script = (f"ping -c 1 -W 2 {web}; "
              "for i in $(seq 15); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 site 80 "
              "&& exit 0; sleep 0.3; done; exit 1")
    res = docker("run", "--rm", "--network", net, *NO_UPSTREAM, "busybox", "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    assert f"PING {web} ({web_ip})" in res.stdout, res.stdout
    assert "1 packets received" in res.stdout, res.stdout
    assert "by-name" in res.stdout.splitlines(), res.stdout
    docker.ok("rm", "-f", web)


def test_one_alias_for_several_containers_returns_them_all(docker: Cli, new_net: Names,
                                                          new_name: Names) -> None:
    net = new_net("rr")
    docker.ok("network", "create", net)
    a, b = new_name("rr-a"), new_name("rr-b")
    _sleeper(docker, a, "--network", net, "--network-alias", "pool")
    _sleeper(docker, b, "--network", net, "--network-alias", "pool")
    found = _lookup(docker, net, "pool")
    status, answers, text = found["pool"]
    assert status == 0 and sorted(answers) == sorted([_ip(docker, a, net), _ip(docker, b, net)]), (
        text)
    docker.ok("rm", "-f", a, b)


def test_names_of_other_networks_do_not_resolve(docker: Cli, new_net: Names,
                                               new_name: Names) -> None:
    net_a, net_b = new_net("dns-a"), new_net("dns-b")
    docker.ok("network", "create", net_a)
    docker.ok("network", "create", net_b)
    on_a, on_b = new_name("on-a"), new_name("on-b")
    _sleeper(docker, on_a, "--network", net_a, "--network-alias", "only-on-a")
    _sleeper(docker, on_b, "--network", net_b)
    ip_a = _ip(docker, on_a, net_a)
    short_a = _inspect(docker, on_a)["Id"][:12]
    found = _lookup(docker, net_b, on_a, "only-on-a", short_a, on_b)
    for name in (on_a, "only-on-a", short_a):
        status, answers, text = found[name]
        assert status != 0 and ip_a not in answers, (name, text)
        assert "can't find" in text, (name, text)
    assert _resolves(found[on_b], _ip(docker, on_b, net_b)), found[on_b][2]
    docker.ok("rm", "-f", on_a, on_b)


def test_records_follow_connect_disconnect_and_removal(docker: Cli, new_net: Names,
                                                      new_name: Names) -> None:
    net = new_net("dns")
    docker.ok("network", "create", net)
    mover = new_name("mover")
    _sleeper(docker, mover)
    # On the default bridge only: unknown on net.
    status, _, text = _lookup(docker, net, mover)[mover]
    assert status != 0, text
    docker.ok("network", "connect", "--alias", "moved", net, mover)
    ip = _ip(docker, mover, net)
    found = _lookup(docker, net, mover, "moved")
    assert _resolves(found[mover], ip) and _resolves(found["moved"], ip), found
    docker.ok("network", "disconnect", net, mover)
    found = _lookup(docker, net, mover, "moved")
    assert found[mover][0] != 0 and found["moved"][0] != 0, found
    docker.ok("network", "connect", net, mover)
    ip = _ip(docker, mover, net)
    assert _resolves(_lookup(docker, net, mover)[mover], ip)
    docker.ok("rm", "-f", mover)
    status, answers, text = _lookup(docker, net, mover)[mover]
    assert status != 0 and ip not in answers, text


def test_a_container_resolves_its_own_name(docker: Cli, new_net: Names, new_name: Names) -> None:
    net = new_net("self")
    docker.ok("network", "create", net)
    me = new_name("me")
    out = docker.ok("run", "--name", me, "--network", net, *NO_UPSTREAM, "busybox", "sh", "-c",
                    f"ip -4 -o addr show dev eth0; nslookup -type=a {me}")
    m = re.search(r"\sinet (\d+\.\d+\.\d+\.\d+)/", out)
    assert m and _answers(out) == [m.group(1)], out
    docker.ok("rm", me)


# The default bridge: no embedded DNS, only --link.


def test_default_bridge_has_no_name_resolution(docker: Cli, new_name: Names) -> None:
    web = new_name("web")
    _sleeper(docker, web)
    ip = _ip(docker, web, "bridge")
    res = docker("run", "--rm", *NO_UPSTREAM, "busybox", "sh", "-c",
                 f"cat /etc/resolv.conf; nslookup -type=a {web}; echo \"<<< $?\"; "
                 f"ping -c 1 -W 1 {web}")
    assert res.returncode != 0, describe(res)
    assert re.findall(r"^nameserver (\S+)", res.stdout, re.M) == ["127.0.0.1"], res.stdout
    assert ip not in _answers(res.stdout), res.stdout
    assert "<<< 0" not in res.stdout, res.stdout
    assert f"ping: bad address '{web}'" in res.stderr, describe(res)
    docker.ok("rm", "-f", web)


def test_link_on_the_default_bridge(docker: Cli, new_name: Names) -> None:
    web, client = new_name("web"), new_name("client")
    docker.ok("run", "-d", "--name", web, "busybox", "sh", "-c",
              "mkdir /www && echo linked > /www/index.html && exec httpd -f -p 80 -h /www")
    ip = _ip(docker, web, "bridge")
    web_short = _inspect(docker, web)["Id"][:12]
    script = ("cat /etc/hosts; ping -c 1 -W 1 webalias; "
              "for i in $(seq 15); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 webalias 80 "
              "&& exit 0; sleep 0.3; done; exit 1")
    res = docker("run", "--name", client, "--link", f"{web}:webalias", *NO_UPSTREAM, "busybox",
                 "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    line = [x for x in res.stdout.splitlines() if re.match(rf"^{re.escape(ip)}\s", x)]
    assert line, res.stdout
    assert set(line[0].split()[1:]) >= {"webalias", web_short, web}, line
    assert f"PING webalias ({ip})" in res.stdout, res.stdout
    assert "linked" in res.stdout.splitlines(), res.stdout
    links = _inspect(docker, client)["HostConfig"]["Links"]
    assert links == [f"/{web}:/{client}/webalias"], links
    docker.ok("rm", "-f", web, client)


def test_link_to_a_missing_container_is_refused(docker: Cli, new_name: Names) -> None:
    missing = f"nosuch-{uuid.uuid4().hex[:8]}"
    c = new_name("linker")
    res = docker("run", "--rm", "--name", c, "--link", f"{missing}:alias", "busybox", "true")
    assert res.returncode != 0, describe(res)
    assert f"could not get container for {missing}" in res.stderr, describe(res)


def test_link_on_a_user_network_is_a_private_alias(docker: Cli, new_net: Names,
                                                  new_name: Names) -> None:
    net = new_net("lnk")
    docker.ok("network", "create", net)
    web, client = new_name("web"), new_name("client")
    _sleeper(docker, web, "--network", net)
    ip = _ip(docker, web, net)
    # Docker: on a user network --link adds an alias that only the linking container sees.
    out = docker.ok("run", "--rm", "--name", client, "--network", net, "--link",
                    f"{web}:privname", *NO_UPSTREAM, "busybox", "nslookup", "-type=a", "privname")
    assert _answers(out) == [ip], out
    status, answers, text = _lookup(docker, net, "privname")["privname"]
    assert status != 0 and ip not in answers, text
    docker.ok("rm", "-f", web)


# docker-py


def test_docker_py_aliases_resolve(docker_client: Any, docker: Cli, new_net: Names,
                                   new_name: Names) -> None:
    net = new_net("dpy")
    network = docker_client.networks.create(net, driver="bridge")
    web = new_name("web")
    container = docker_client.containers.run("busybox", "sleep 300", name=web, detach=True)
    try:
        network.connect(container, aliases=["pyalias"])
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert ip
        out = docker_client.containers.run(
            "busybox", ["nslookup", "-type=a", "pyalias"], network=net, dns=["127.0.0.1"],
            remove=True).decode()
        assert _answers(out) == [ip], out
    finally:
        container.remove(force=True)
        network.remove()


def test_embedded_dns_listens_only_inside(docker: Cli, new_net: Names, new_name: Names) -> None:
    """127.0.0.11 is the container's own loopback: nothing on the host answers there for it
    (Docker redirects port 53 inside the container's network namespace)."""
    net = new_net("ns")
    docker.ok("network", "create", net)
    probe = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    assert "127.0.0.11/" not in probe.stdout, probe.stdout
    me = new_name("me")
    out = docker.ok("run", "--name", me, "--network", net, "busybox", "cat", "/etc/resolv.conf")
    assert re.findall(r"^nameserver (\S+)", out, re.M) == ["127.0.0.11"], out
    docker.ok("rm", me)
