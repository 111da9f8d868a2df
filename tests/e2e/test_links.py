"""Legacy links (`--link other:alias` on the default bridge), as dockerd makes them: the
environment variables naming the linked container and its ports, its /etc/hosts line,
and `docker rm --link` (DELETE /containers/{name}?link=1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker as docker_py
import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_link_sets_dockers_environment_and_hosts_line(docker: Cli, new_name: Names) -> None:
    server, client = new_name("srv"), new_name("cli")
    docker.ok("run", "-d", "--name", server, "-e", "SECRET=s3cr=t", "-e", "HOME=/srv",
              "--expose", "6379", "--expose", "7000-7001", "--expose", "53/udp", "busybox", "sleep", "300")
    ip = docker.ok("inspect", "-f", "{{.NetworkSettings.IPAddress}}", server).strip()
    hostname = docker.ok("inspect", "-f", "{{.Config.Hostname}}", server).strip()
    out = docker.ok("run", "--name", client, "--link", f"{server}:db-1", "busybox", "sh", "-c",
                    "env; echo ---; cat /etc/hosts")
    env_text, _, hosts = out.partition("---")
    env = _env(env_text)
    linked = {k: v for k, v in env.items() if k.startswith("DB_1_")}
    assert linked == {
        "DB_1_NAME": f"/{client}/db-1",
        "DB_1_PORT": f"tcp://{ip}:6379",
        "DB_1_PORT_6379_TCP": f"tcp://{ip}:6379", "DB_1_PORT_6379_TCP_ADDR": ip,
        "DB_1_PORT_6379_TCP_PORT": "6379", "DB_1_PORT_6379_TCP_PROTO": "tcp",
        "DB_1_PORT_7000_TCP": f"tcp://{ip}:7000", "DB_1_PORT_7000_TCP_ADDR": ip,
        "DB_1_PORT_7000_TCP_PORT": "7000", "DB_1_PORT_7000_TCP_PROTO": "tcp",
        "DB_1_PORT_7001_TCP": f"tcp://{ip}:7001", "DB_1_PORT_7001_TCP_ADDR": ip,
        "DB_1_PORT_7001_TCP_PORT": "7001", "DB_1_PORT_7001_TCP_PROTO": "tcp",
        "DB_1_PORT_7000_TCP_START": f"tcp://{ip}:7000", "DB_1_PORT_7000_TCP_PORT_START": "7000",
        "DB_1_PORT_7000_TCP_END": f"tcp://{ip}:7001", "DB_1_PORT_7000_TCP_PORT_END": "7001",
        "DB_1_PORT_53_UDP": f"udp://{ip}:53", "DB_1_PORT_53_UDP_ADDR": ip,
        "DB_1_PORT_53_UDP_PORT": "53", "DB_1_PORT_53_UDP_PROTO": "udp",
        "DB_1_ENV_SECRET": "s3cr=t",  # HOME and PATH of the linked container are left out
    }, describe(out)
    assert f"{ip}\tdb-1 {hostname} {server}" in hosts.splitlines(), hosts


def test_link_env_with_the_containers_own_name(docker: Cli, new_name: Names) -> None:
    server = new_name("srv")
    docker.ok("run", "-d", "--name", server, "busybox", "sleep", "300")
    out = docker.ok("run", "--rm", "--link", server, "busybox", "env")
    alias = server.upper().replace("-", "_")
    assert _env(out).get(f"{alias}_NAME", "").endswith(f"/{server}"), out


def test_link_to_a_stopped_container_fails_the_start(docker: Cli, new_name: Names) -> None:
    server, client = new_name("srv"), new_name("cli")
    docker.ok("create", "--name", server, "busybox", "true")
    res = docker("run", "--name", client, "--link", f"{server}:db", "busybox", "true")
    assert res.returncode != 0, describe(res)
    assert f"Cannot link to a non running container: /{server} AS /{client}/db" in res.stderr, describe(res)


def test_rm_link_removes_the_link(docker: Cli, docker_client: Any, new_name: Names) -> None:
    server, client = new_name("srv"), new_name("cli")
    docker.ok("run", "-d", "--name", server, "busybox", "sleep", "300")
    docker.ok("create", "--name", client, "--link", f"{server}:db", "--link", f"{server}:cache", "busybox",
              "env")
    links = docker.ok("inspect", "-f", "{{json .HostConfig.Links}}", client).strip()
    assert links == f'["/{server}:/{client}/db","/{server}:/{client}/cache"]'
    docker.ok("rm", "--link", f"/{client}/db")
    links = docker.ok("inspect", "-f", "{{json .HostConfig.Links}}", client).strip()
    assert links == f'["/{server}:/{client}/cache"]'
    assert docker.ok("inspect", "-f", "{{.State.Running}}", server).strip() == "true"  # only the link went
    docker_client.api.remove_container(f"{client}/cache", link=True)  # docker-py: the API's ?link=1
    assert docker.ok("inspect", "-f", "{{json .HostConfig.Links}}", client).strip() == "null"
    out = docker.ok("start", "-a", client)
    assert "CACHE_NAME" not in out and "DB_NAME" not in out


def test_rm_link_bad_names(docker: Cli, docker_client: Any, new_name: Names) -> None:
    server, client = new_name("srv"), new_name("cli")
    docker.ok("run", "-d", "--name", server, "busybox", "sleep", "300")
    docker.ok("create", "--name", client, "--link", f"{server}:db", "busybox")
    res = docker("rm", "--link", f"/{client}/nosuch")
    assert res.returncode != 0 and f"No such container: {client}/nosuch" in res.stderr, describe(res)
    res = docker("rm", "--link", server)
    assert res.returncode != 0, describe(res)
    assert "Conflict, cannot remove the default link name of the container" in res.stderr, describe(res)
    with pytest.raises(docker_py.errors.NotFound):
        docker_client.api.remove_container("nosuch-parent/db", link=True)
    assert docker.ok("inspect", "-f", "{{.State.Running}}", server).strip() == "true"


def test_berth_rm_link(berth: Cli, new_name: Names) -> None:
    server, client = new_name("srv"), new_name("cli")
    berth.ok("run", "-d", "--name", server, "busybox", "sleep", "300")
    berth.ok("create", "--name", client, "--link", f"{server}:db", "busybox")
    berth.ok("rm", "--link", f"/{client}/db")
    assert berth.ok("inspect", "-f", "{{json .HostConfig.Links}}", client).strip() == "null"
