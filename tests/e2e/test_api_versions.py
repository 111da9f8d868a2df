"""Answers shaped by the client's API version, as dockerd shapes them (issue 18): fields a
later version removed are still there for older clients, fields or behaviour a later
version added are not. Each is checked at 1.24, 1.41, 1.44 and 1.51 through docker-py's
low-level client pinned to that version (`docker.APIClient(version=...)`) and with raw
HTTP on the versioned path; the table is src/berth/api/versions.py.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import docker as docker_py
import pytest

from helpers.api import ApiClient
from helpers.cli import Cli
from helpers.daemon import BerthDaemon

Names = Callable[[str], str]
VERSIONS = ["1.24", "1.41", "1.44", "1.51"]


def _v(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@pytest.fixture
def pinned(berthd: BerthDaemon) -> Iterator[Callable[[str], Any]]:
    """docker-py low-level clients, each pinned to one API version."""
    clients: list[Any] = []

    def make(version: str) -> Any:
        client = docker_py.APIClient(base_url=berthd.host, version=version, timeout=60)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_image_inspect_has_the_fields_of_the_clients_version(pinned: Callable[[str], Any], api: ApiClient,
                                                            busybox: str, version: str) -> None:
    doc = pinned(version).inspect_image(busybox)
    old = _v(version)
    # gone in 1.45: compose v1 (API 1.41) reads ContainerConfig.Volumes when it recreates
    assert ("ContainerConfig" in doc) == (old < (1, 45)), sorted(doc)
    if old < (1, 45):
        assert "Volumes" in doc["ContainerConfig"] and doc["ContainerConfig"]["Cmd"] == doc["Config"]["Cmd"]
    assert "Container" not in doc  # imported: made from no container (dockerd omits it empty)
    # gone in 1.44
    assert ("VirtualSize" in doc) == (old < (1, 44)), sorted(doc)
    if old < (1, 44):
        assert doc["VirtualSize"] == doc["Size"]
    # the container-only Config fields: empty before 1.50, gone since
    assert ("Hostname" in doc["Config"]) == (old < (1, 50)), sorted(doc["Config"])
    assert ("Tty" in doc["Config"]) == (old < (1, 50)), sorted(doc["Config"])
    for key in ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir"):
        assert key in doc["Config"], (key, sorted(doc["Config"]))
    # raw HTTP on the versioned path gives the same document
    assert api.get(f"/v{version}/images/{busybox}/json").json() == doc


@pytest.mark.parametrize("version", VERSIONS)
def test_image_list_has_the_fields_of_the_clients_version(pinned: Callable[[str], Any], docker: Cli,
                                                         busybox: str, new_name: Names, version: str) -> None:
    name = new_name("untagged")
    docker.ok("create", "--name", name, busybox, "true")
    untagged = docker.ok("commit", name).strip()  # no repository: an untagged image
    try:
        images = {i["Id"]: i for i in pinned(version).images()}
        old = _v(version)
        tagged = next(i for i in images.values() if f"{busybox}" in (i["RepoTags"] or []))
        assert tagged["Containers"] == (-1 if old < (1, 51) else 1), tagged  # the one created above
        assert ("VirtualSize" in tagged) == (old < (1, 44)), sorted(tagged)
        if old < (1, 43):
            assert images[untagged]["RepoTags"] == ["<none>:<none>"]
            assert images[untagged]["RepoDigests"] == ["<none>@<none>"]
        else:
            assert images[untagged]["RepoTags"] == [] and images[untagged]["RepoDigests"] == []
    finally:
        docker("rmi", untagged)


def test_system_df_shows_virtual_size_before_1_44(api: ApiClient, busybox: str) -> None:
    old = api.get("/v1.43/system/df").json()["Images"]
    new = api.get("/v1.44/system/df").json()["Images"]
    assert old and all(i["VirtualSize"] == i["Size"] for i in old)
    assert new and all("VirtualSize" not in i for i in new)


# -- containers -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_aliases_hold_the_short_id_and_hostname_before_1_45(pinned: Callable[[str], Any], docker: Cli,
                                                           busybox: str, new_name: Names,
                                                           new_net: Callable[[str], str], version: str) -> None:
    net, name = new_net("al"), new_name("al")
    docker.ok("network", "create", net)
    cid = docker.ok("run", "-d", "--name", name, "--network", net, "--network-alias", "web",
                    "--hostname", "hh", busybox, "sleep", "60").strip()
    doc = pinned(version).inspect_container(name)
    aliases = doc["NetworkSettings"]["Networks"][net]["Aliases"]
    if _v(version) < (1, 45):
        assert aliases == ["web", cid[:12], "hh"], aliases
    else:
        assert aliases == ["web"], aliases
    assert doc["NetworkSettings"]["Networks"][net]["DNSNames"] == [name, "web", cid[:12], "hh"]


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_stream_type_is_multiplexed_from_1_42(api: ApiClient, docker: Cli, busybox: str,
                                                  new_name: Names, version: str) -> None:
    name = new_name("mux")
    docker.ok("run", "--name", name, busybox, "echo", "hi")
    resp = api.get(f"/v{version}/containers/{name}/logs?stdout=1")
    assert resp.status == 200
    want = "multiplexed" if _v(version) >= (1, 42) else "raw"
    assert resp.header("Content-Type") == f"application/vnd.docker.{want}-stream"
    assert resp.body == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"  # framed either way, as dockerd


@pytest.mark.parametrize("version", VERSIONS)
def test_wait_condition_is_read_from_1_30(pinned: Callable[[str], Any], api: ApiClient, docker: Cli,
                                         busybox: str, new_name: Names, version: str) -> None:
    name = new_name("wc")
    assert docker("run", "--name", name, busybox, "sh", "-c", "exit 4").returncode == 4
    resp = api.post(f"/v{version}/containers/{name}/wait?condition=bogus")
    if _v(version) < (1, 30):  # ignored: the wait is for not-running
        assert resp.status == 200 and resp.json() == {"StatusCode": 4}
    else:
        assert resp.status == 400, resp
        assert resp.json() == {"message": 'invalid condition: "bogus"'}
    assert pinned(version).wait(name) == {"StatusCode": 4}


@pytest.mark.parametrize("version", VERSIONS)
def test_create_on_several_networks_needs_1_44(pinned: Callable[[str], Any], api: ApiClient, docker: Cli,
                                              busybox: str, new_name: Names, new_net: Callable[[str], str],
                                              version: str) -> None:
    a, b = new_net("ma"), new_net("mb")
    docker.ok("network", "create", a)
    docker.ok("network", "create", b)
    name = new_name("multi")
    client = pinned(version)
    config = client.create_networking_config({a: client.create_endpoint_config(),
                                              b: client.create_endpoint_config()})
    if _v(version) < (1, 44):
        with pytest.raises(docker_py.errors.APIError) as e:
            client.create_container(busybox, "true", name=name, networking_config=config,
                                    host_config=client.create_host_config(network_mode=a))
        assert e.value.status_code == 400
        assert e.value.explanation == f"Container cannot be created with multiple network endpoints: {a}, {b}"
        assert docker("inspect", name).returncode == 1  # nothing made
    else:
        client.create_container(busybox, "true", name=name, networking_config=config,
                                host_config=client.create_host_config(network_mode=a))
        assert sorted(client.inspect_container(name)["NetworkSettings"]["Networks"]) == sorted([a, b])


# -- networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_network_list_holds_containers_before_1_28(pinned: Callable[[str], Any], docker: Cli, busybox: str,
                                                  new_name: Names, new_net: Callable[[str], str],
                                                  version: str) -> None:
    net, name = new_net("nl"), new_name("nl")
    docker.ok("network", "create", net)
    cid = docker.ok("run", "-d", "--name", name, "--network", net, busybox, "sleep", "60").strip()
    listed = next(n for n in pinned(version).networks(names=[net]) if n["Name"] == net)
    if _v(version) < (1, 28):
        assert list(listed["Containers"]) == [cid]
        assert listed["Containers"][cid]["Name"] == name
    else:
        assert listed["Containers"] == {}


# -- system ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_info_has_the_fields_of_the_clients_version(pinned: Callable[[str], Any], api: ApiClient,
                                                   version: str) -> None:
    info = pinned(version).info()
    old = _v(version)
    assert ("BridgeNfIptables" in info and "BridgeNfIp6tables" in info) == (old < (1, 50)), sorted(info)
    if old < (1, 50):
        assert info["BridgeNfIptables"] is False and info["BridgeNfIp6tables"] is False
    registry = info["RegistryConfig"]
    assert ("AllowNondistributableArtifactsCIDRs" in registry) == (old < (1, 47)), sorted(registry)
    if old < (1, 47):
        assert registry["AllowNondistributableArtifactsCIDRs"] is None
        assert registry["AllowNondistributableArtifactsHostnames"] is None
    raw = api.get(f"/v{version}/info").json()
    assert sorted(raw) == sorted(info)


@pytest.mark.parametrize("version", VERSIONS)
def test_image_create_events_are_sent_from_1_46(api: ApiClient, docker: Cli, busybox: str, new_name: Names,
                                               version: str) -> None:
    name = new_name("ev")
    since = time.time()
    docker.ok("create", "--name", name, busybox, "true")
    image = docker.ok("commit", name).strip()
    try:
        until = time.time() + 1
        query = urllib.parse.urlencode({"since": f"{since:.3f}", "until": f"{until:.3f}",
                                        "filters": json.dumps({"type": ["image"]})})
        events = [json.loads(line) for line in api.get(f"/v{version}/events?{query}").body.splitlines()]
        creates = [e for e in events if e["Action"] == "create" and e["Actor"]["ID"] == image]
        assert len(creates) == (1 if _v(version) >= (1, 46) else 0), events
    finally:
        docker("rmi", image)


def test_the_docker_cli_and_docker_py_negotiate_and_get_the_newest_shape(docker: Cli, docker_client: Any,
                                                                       busybox: str) -> None:
    """The docker CLI and docker-py (version "auto") negotiate 1.51, and see its shape."""
    doc = json.loads(docker.ok("image", "inspect", busybox))[0]
    assert "ContainerConfig" not in doc and "VirtualSize" not in doc and "Hostname" not in doc["Config"]
    assert docker_client.api.api_version == "1.51"
    assert docker_client.images.get(busybox).attrs == doc


def test_compose_v1_gets_the_image_container_config_at_any_version(api: ApiClient, busybox: str) -> None:
    """Debian's docker-compose 1.29 negotiates the newest API but reads ContainerConfig
    when it recreates a container: it alone (by its User-Agent) still gets it."""
    compose_v1 = {"User-Agent": "docker-compose/1.29.2 docker-py/5.0.3 Linux/6.1.0"}
    doc = api.get(f"/v1.51/images/{busybox}/json", headers=compose_v1).json()
    assert doc["ContainerConfig"]["Volumes"] is None and "Cmd" in doc["ContainerConfig"]
    assert "VirtualSize" not in doc and "Hostname" not in doc["Config"]  # the rest is 1.51's
    other = {"User-Agent": "docker-py/7.1.0"}
    assert "ContainerConfig" not in api.get(f"/v1.51/images/{busybox}/json", headers=other).json()


@pytest.mark.parametrize("version", VERSIONS)
def test_create_defaults_and_fields_by_version(
        api: ApiClient, docker: Cli, busybox: str, new_name: Names, version: str) -> None:
    name = new_name("fields")
    body = {"Image": busybox, "Cmd": ["true"], "Tty": True,
            "Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 2_000_000_000},
            "HostConfig": {"ConsoleSize": [30, 100]}}
    resp = api.post_json(f"/v{version}/containers/create?name={name}", body)
    assert resp.status == 201, resp.body
    doc = json.loads(docker.ok("inspect", name))[0]
    old = _v(version)
    assert doc["HostConfig"]["IpcMode"] == ("shareable" if old < (1, 40) else "private")
    assert doc["HostConfig"]["ConsoleSize"] == ([0, 0] if old < (1, 42) else [30, 100])
    assert doc["Config"]["Healthcheck"].get("StartInterval") == (None if old < (1, 44) else 2_000_000_000)
    assert api.post(f"/v{version}/containers/{name}/start").status == 204  # runs as made
    assert docker.ok("wait", name).strip() == "0"


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_console_size_by_version(api: ApiClient, docker: Cli, busybox: str, new_name: Names,
                                      version: str) -> None:
    """dockerd sizes an exec's tty from ConsoleSize (at create, or at the start with a tty)
    from API 1.42; before, it is ignored."""
    name = new_name("execsize")
    docker.ok("run", "-d", "--name", name, busybox, "sleep", "60")

    def size(create: dict[str, Any], start: dict[str, Any]) -> str:
        resp = api.post_json(f"/v{version}/containers/{name}/exec",
                             {"Cmd": ["sh", "-c", "stty size > /tmp/size"], "Tty": True, **create})
        assert resp.status == 201, resp.body
        exec_id = resp.json()["Id"]
        assert api.post_json(f"/v{version}/exec/{exec_id}/start", {"Detach": True, **start}).status == 200
        deadline = time.monotonic() + 20
        while api.get(f"/exec/{exec_id}/json").json()["Running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        return docker.ok("exec", name, "cat", "/tmp/size").strip()

    unsized = size({}, {"Tty": True})
    assert unsized != "30 100"
    old = _v(version) < (1, 42)
    assert size({"ConsoleSize": [30, 100]}, {"Tty": True}) == (unsized if old else "30 100")
    assert size({}, {"Tty": True, "ConsoleSize": [40, 120]}) == (unsized if old else "40 120")
    assert size({}, {"ConsoleSize": [40, 120]}) == unsized  # none without a tty asked at the start
    docker.ok("rm", "-f", name)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("program", ["docker", "berth"])
def test_the_clis_pinned_by_docker_api_version(docker: Cli, berth: Cli, busybox: str, program: str,
                                               version: str) -> None:
    """DOCKER_API_VERSION pins the docker CLI and berth to a version: inspect shows its shape."""
    base = docker if program == "docker" else berth
    cli = Cli(base.program, {**base.env, "DOCKER_API_VERSION": version})
    doc = json.loads(cli.ok("image", "inspect", busybox))[0]
    old = _v(version)
    assert ("ContainerConfig" in doc) == (old < (1, 45)), sorted(doc)
    assert ("VirtualSize" in doc) == (old < (1, 44)), sorted(doc)
    assert ("Hostname" in doc["Config"]) == (old < (1, 50)), sorted(doc["Config"])


@pytest.mark.parametrize("version", VERSIONS)
def test_mount_options_by_version(api: ApiClient, docker: Cli, busybox: str, new_name: Names, tmp_path: Any,
                                  version: str) -> None:
    old = _v(version)
    name = new_name("mnt")
    bind = {"Type": "bind", "Source": str(tmp_path), "Target": "/x", "VolumeOptions": {"NoCopy": True}}
    resp = api.post_json(f"/v{version}/containers/create?name={name}",
                         {"Image": busybox, "Cmd": ["true"], "HostConfig": {"Mounts": [bind]}})
    if old < (1, 42):  # dropped
        assert resp.status == 201, resp.body
        mounts = json.loads(docker.ok("inspect", name))[0]["HostConfig"]["Mounts"]
        assert mounts == [{"Type": "bind", "Source": str(tmp_path), "Target": "/x"}]
    else:
        assert resp.status == 400
        assert resp.json()["message"] == 'VolumeOptions must not be specified on mount type "bind"'
    sub = {"Type": "volume", "Source": "", "Target": "/y", "VolumeOptions": {"Subpath": "a"}}
    resp = api.post_json(f"/v{version}/containers/create",
                         {"Image": busybox, "Cmd": ["true"], "HostConfig": {"Mounts": [sub]}})
    if old < (1, 45):
        assert (resp.status, resp.json()["message"]) == (400, "VolumeOptions.Subpath needs API v1.45 or newer")
    else:
        assert resp.json().get("message") != "VolumeOptions.Subpath needs API v1.45 or newer"
        if resp.status == 201:
            api.request("DELETE", f"/containers/{resp.json()['Id']}?v=1")
