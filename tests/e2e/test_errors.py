"""Bad input: Docker's status code and one-line message, and nothing half-created."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers.api import ApiClient, Response
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def daemon_error(stderr: str) -> str:
    """The line in which the docker CLI reports the daemon's error message."""
    lines = [line for line in stderr.splitlines() if "Error response from daemon:" in line]
    assert len(lines) == 1, stderr
    return lines[0].split("Error response from daemon:", 1)[1].strip()


def assert_json_error(resp: Response, status: int) -> str:
    assert resp.status == status, (resp.status, resp.body)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp.headers
    message = resp.json()["message"]
    assert isinstance(message, str) and message, resp.body
    assert "\n" not in message.strip()
    return message


@pytest.fixture
def unchanged_containers(api: ApiClient) -> Iterator[None]:
    """The test must not leave a container behind, not even briefly after it ends."""
    before = api.container_ids()
    yield
    deadline = time.monotonic() + 5
    while (after := api.container_ids()) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after == before, f"containers created: {sorted(c[:12] for c in after - before)}"


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("unchanged_containers")
def test_unknown_image(docker: Cli) -> None:
    res = docker("run", "--rm", "nosuchimage", timeout=60)
    assert res.returncode == 125, describe(res)
    assert "nosuchimage" in res.stderr, describe(res)


def test_create_with_an_unknown_image_is_404(api: ApiClient) -> None:
    before = api.container_ids()
    resp = api.post_json("/v1.51/containers/create", {"Image": "nosuchimage:v9"})
    message = assert_json_error(resp, 404)
    assert message == "No such image: nosuchimage:v9"
    assert api.container_ids() == before


@pytest.mark.usefixtures("unchanged_containers")
def test_invalid_container_name(docker: Cli, api: ApiClient) -> None:
    res = docker("run", "--name", "bad name!", "busybox", "true")
    assert res.returncode == 125, describe(res)
    assert daemon_error(res.stderr).startswith("Invalid container name (bad name!)"), res.stderr
    query = urllib.parse.urlencode({"name": "bad name!"})
    resp = api.post_json(f"/v1.51/containers/create?{query}", {"Image": "busybox"})
    message = assert_json_error(resp, 400)
    assert message == (
        "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


def test_name_in_use(docker: Cli, api: ApiClient, new_name: Names) -> None:
    name = new_name("taken")
    cid = docker.ok("create", "--name", name, "busybox", "true").strip()
    before = api.container_ids()
    res = docker("run", "--name", name, "busybox", "true")
    assert res.returncode == 125, describe(res)
    message = daemon_error(res.stderr)
    assert message.startswith(
        f'Conflict. The container name "/{name}" is already in use by container "{cid}".'
    ), message
    resp = api.post_json(
        f"/v1.51/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]}
    )
    assert "already in use" in assert_json_error(resp, 409)
    assert api.container_ids() == before


@pytest.mark.usefixtures("unchanged_containers")
def test_unknown_flag(docker: Cli) -> None:
    res = docker("run", "--bogus", "busybox")
    assert res.returncode == 125, describe(res)
    assert "unknown flag: --bogus" in res.stderr


@pytest.mark.usefixtures("unchanged_containers")
def test_malformed_json_body(api: ApiClient) -> None:
    resp = api.post(
        "/v1.51/containers/create", "{bad", headers={"Content-Type": "application/json"}
    )
    assert_json_error(resp, 400)


@pytest.mark.usefixtures("unchanged_containers")
def test_missing_command_with_rm(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "nosuchcmd")
    assert res.returncode == 127, describe(res)
    assert "executable file not found" in res.stderr, describe(res)
    assert "nosuchcmd" in res.stderr


def test_missing_command_leaves_a_created_container(docker: Cli, new_name: Names) -> None:
    name = new_name("nocmd")
    res = docker("run", "--name", name, "busybox", "nosuchcmd")
    assert res.returncode == 127, describe(res)
    assert "executable file not found" in res.stderr, describe(res)
    state = json.loads(docker.ok("inspect", "-f", "{{json .State}}", name))
    assert state["Status"] == "created", state
    assert state["ExitCode"] == 127, state
    assert state["Running"] is False
    assert "executable file not found" in state["Error"], state


@pytest.mark.usefixtures("unchanged_containers")
def test_command_that_cannot_be_executed(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "/dev/null")
    assert res.returncode == 126, describe(res)
    assert "permission denied" in res.stderr, describe(res)


@pytest.mark.parametrize(
    "args",
    [("logs", "nosuch"), ("rm", "nosuch"), ("stop", "nosuch"), ("kill", "nosuch"),
     ("wait", "nosuch"), ("start", "nosuch")],
    ids=lambda a: a[0],
)
def test_unknown_container(docker: Cli, args: tuple[str, ...]) -> None:
    res = docker(*args)
    assert res.returncode == 1, describe(res)
    assert "No such container: nosuch" in res.stderr, describe(res)


def test_unknown_container_over_the_api(api: ApiClient) -> None:
    resp = api.get("/v1.51/containers/nosuch/json")
    assert assert_json_error(resp, 404) == "No such container: nosuch"
    resp = api.request("DELETE", "/v1.51/containers/nosuch")
    assert assert_json_error(resp, 404) == "No such container: nosuch"


NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 "to connect this node to swarm and try again.")


@pytest.mark.parametrize("argv", [
    ["node", "ls"], ["node", "inspect", "self"], ["node", "ps"], ["node", "rm", "n1"],
    ["node", "update", "--availability", "drain", "n1"], ["node", "promote", "n1"],
    ["service", "ls"], ["service", "create", "busybox", "true"], ["service", "inspect", "s1"],
    ["service", "ps", "s1"], ["service", "logs", "s1"], ["service", "update", "--replicas", "2", "s1"],
    ["service", "rollback", "s1"], ["service", "rm", "s1"],
    ["secret", "ls"], ["secret", "create", "s1", "-"], ["secret", "inspect", "s1"], ["secret", "rm", "s1"],
    ["config", "ls"], ["config", "create", "c1", "-"], ["config", "inspect", "c1"], ["config", "rm", "c1"],
    ["stack", "ls"], ["stack", "ps", "st"], ["stack", "services", "st"], ["stack", "rm", "st"],
    ["swarm", "join-token", "worker"], ["swarm", "unlock-key"], ["swarm", "update", "--autolock=true"],
    ["swarm", "ca"],
], ids=" ".join)
def test_swarm_commands_outside_a_swarm_get_dockerds_answer(docker: Cli, argv: list[str]) -> None:
    """Before `swarm init`, dockerd answers its swarm endpoints with 503 and these words
    (berth's swarm mode is issue 20's); a 404 would read as "page not found"."""
    res = docker(*argv, input="data")
    assert res.returncode == 1, describe(res)
    assert daemon_error(res.stderr) == NOT_A_MANAGER


def test_swarm_calls_of_docker_py_outside_a_swarm(docker_client: Any) -> None:
    import docker as docker_py

    calls: list[tuple[Callable[[], Any], str]] = [
        (docker_client.swarm.reload, NOT_A_MANAGER),
        (lambda: docker_client.api.update_swarm(version=1, rotate_worker_token=True), NOT_A_MANAGER),
        (docker_client.swarm.leave, "This node is not part of a swarm"),
        (lambda: docker_client.swarm.unlock("SWMKEY-1-x"), "This node is not part of a swarm"),
        (docker_client.nodes.list, NOT_A_MANAGER),
        (lambda: docker_client.nodes.get("n1"), NOT_A_MANAGER),
        (docker_client.services.list, NOT_A_MANAGER),
        (lambda: docker_client.services.create("busybox", "true"), NOT_A_MANAGER),
        (lambda: docker_client.services.get("s1"), NOT_A_MANAGER),
        (docker_client.api.tasks, NOT_A_MANAGER),
        (docker_client.secrets.list, NOT_A_MANAGER),
        (lambda: docker_client.secrets.create(name="s1", data=b"x"), NOT_A_MANAGER),
        (docker_client.configs.list, NOT_A_MANAGER),
        (lambda: docker_client.configs.create(name="c1", data=b"x"), NOT_A_MANAGER),
    ]
    for call, message in calls:
        with pytest.raises(docker_py.errors.APIError) as e:
            call()
        assert (e.value.status_code, e.value.explanation) == (503, message)


def test_swarm_leave_outside_a_swarm(docker: Cli, api: ApiClient) -> None:
    res = docker("swarm", "leave")
    assert res.returncode == 1, describe(res)
    assert daemon_error(res.stderr) == "This node is not part of a swarm"
    assert assert_json_error(api.get("/v1.51/services"), 503) == NOT_A_MANAGER
    assert assert_json_error(api.post_json("/v1.51/services/create", {}), 503) == NOT_A_MANAGER
