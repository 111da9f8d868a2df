"""Container lifecycle through the docker CLI: create, start, stop, kill, wait, rm, ps."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]


def state(docker: Cli, name: str) -> str:
    return docker.ok("inspect", "-f", "{{.State.Status}}", name).strip()


def exit_code(docker: Cli, name: str) -> int:
    return int(docker.ok("inspect", "-f", "{{.State.ExitCode}}", name))


def ps_rows(docker: Cli, *args: str) -> dict[str, dict[str, str]]:
    """`docker ps` as {name: {column: value}}, after checking docker's header."""
    lines = docker.ok("ps", *args).splitlines()
    header = lines[0]
    assert re.split(r"\s{2,}", header.strip()) == PS_COLUMNS, header
    starts = [header.index(col) for col in PS_COLUMNS]
    rows = {}
    for line in lines[1:]:
        cells = [
            line[start:end].strip()
            for start, end in zip(starts, starts[1:] + [len(line)], strict=True)
        ]
        row = dict(zip(PS_COLUMNS, cells, strict=True))
        rows[row["NAMES"]] = row
    return rows


def wait_for_state(docker: Cli, name: str, wanted: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while (current := state(docker, name)) != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return current


@pytest.mark.timeout(90)
def test_create_start_stop_rm(docker: Cli, new_name: Names) -> None:
    name = new_name("life")
    cid = docker.ok("create", "--name", name, "busybox", "sleep", "100").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    assert state(docker, name) == "created"
    row = ps_rows(docker, "-a")[name]
    assert row["STATUS"] == "Created"
    assert cid.startswith(row["CONTAINER ID"]) and len(row["CONTAINER ID"]) == 12
    assert name not in ps_rows(docker)  # not running: only in ps -a

    assert docker.ok("start", name) == f"{name}\n"
    assert state(docker, name) == "running"
    row = ps_rows(docker)[name]
    assert row["IMAGE"] == "busybox"
    assert row["COMMAND"] == '"sleep 100"'
    assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", row["STATUS"]), row
    assert docker.ok("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name).split()[0] == "true"

    # sleep is pid 1 and has no SIGTERM handler: the kernel ignores the signal, so
    # stop waits out its timeout and kills.
    started = time.monotonic()
    assert docker.ok("stop", "-t", "1", name, timeout=30) == f"{name}\n"
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 6, f"docker stop -t 1 took {elapsed:.1f} s"
    assert state(docker, name) == "exited"
    assert exit_code(docker, name) == 137
    row = ps_rows(docker, "-a")[name]
    assert re.fullmatch(r"Exited \(137\) (Less than a second|\d+ seconds?) ago", row["STATUS"]), row
    assert name not in ps_rows(docker)
    assert docker.ok("wait", name) == "137\n"

    assert docker.ok("rm", name) == f"{name}\n"
    res = docker("inspect", name)
    assert res.returncode == 1, describe(res)
    assert f"no such object: {name}" in res.stderr.lower(), describe(res)
    assert name not in ps_rows(docker, "-a")


def test_stop_delivers_sigterm_first(docker: Cli, new_name: Names) -> None:
    name = new_name("graceful")
    script = "trap 'exit 42' TERM; while :; do sleep 1 & wait $!; done"
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    assert wait_for_state(docker, name, "running") == "running"
    time.sleep(0.3)  # let sh install its trap
    started = time.monotonic()
    docker.ok("stop", "-t", "10", name, timeout=30)
    assert time.monotonic() - started < 5
    assert exit_code(docker, name) == 42


def test_kill_and_restart(docker: Cli, new_name: Names) -> None:
    name = new_name("kill")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
    assert docker.ok("kill", name) == f"{name}\n"
    assert docker.ok("wait", name, timeout=20) == "137\n"
    assert state(docker, name) == "exited"
    assert exit_code(docker, name) == 137

    docker.ok("start", name)
    assert state(docker, name) == "running"
    assert exit_code(docker, name) == 0
    docker.ok("kill", "-s", "KILL", name)
    assert docker.ok("wait", name, timeout=20) == "137\n"


def test_kill_of_a_stopped_container_is_an_error(docker: Cli, new_name: Names) -> None:
    name = new_name("killdead")
    docker.ok("create", "--name", name, "busybox", "true")
    res = docker("kill", name)
    assert res.returncode == 1, describe(res)
    assert "is not running" in res.stderr.lower(), describe(res)


def test_wait_blocks_until_exit_and_prints_the_code(docker: Cli, new_name: Names) -> None:
    name = new_name("wait")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; exit 3")
    started = time.monotonic()
    assert docker.ok("wait", name, timeout=30) == "3\n"
    assert time.monotonic() - started >= 0.5
    assert state(docker, name) == "exited"
    assert exit_code(docker, name) == 3
    row = ps_rows(docker, "-a")[name]
    assert row["STATUS"].startswith("Exited (3) "), row


def test_rm_of_a_running_container_needs_force(docker: Cli, new_name: Names) -> None:
    name = new_name("rmrun")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
    res = docker("rm", name)
    assert res.returncode == 1, describe(res)
    assert "container is running" in res.stderr.lower(), describe(res)
    assert state(docker, name) == "running"
    assert docker.ok("rm", "-f", name) == f"{name}\n"
    assert name not in ps_rows(docker, "-a")


def test_start_of_a_running_container_is_a_no_op(docker: Cli, new_name: Names) -> None:
    name = new_name("startrun")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
    pid = docker.ok("inspect", "-f", "{{.State.Pid}}", name)
    assert docker.ok("start", name) == f"{name}\n"
    assert docker.ok("inspect", "-f", "{{.State.Pid}}", name) == pid


def test_ps_quiet_and_all(docker: Cli, new_name: Names) -> None:
    running, stopped = new_name("psrun"), new_name("psstop")
    run_id = docker.ok("run", "-d", "--name", running, "busybox", "sleep", "100").strip()
    stop_id = docker.ok("create", "--name", stopped, "busybox", "true").strip()
    quiet = docker.ok("ps", "-q").split()
    assert run_id[:12] in quiet and stop_id[:12] not in quiet
    quiet_all = docker.ok("ps", "-aq").split()
    assert {run_id[:12], stop_id[:12]} <= set(quiet_all)
    assert all(re.fullmatch(r"[0-9a-f]{12}", c) for c in quiet_all), quiet_all
    full = docker.ok("ps", "-aq", "--no-trunc").split()
    assert run_id in full and stop_id in full


def test_inspect_shows_the_configuration(docker: Cli, new_name: Names) -> None:
    name = new_name("insp")
    cid = docker.ok("create", "--name", name, "-e", "A=1", "busybox", "echo", "x").strip()
    fmt = "{{.Name}}|{{.Id}}|{{.Config.Image}}|{{json .Config.Cmd}}|{{json .Args}}|{{.Path}}"
    out = docker.ok("inspect", "-f", fmt, name).strip()
    assert out == f'/{name}|{cid}|busybox|["echo","x"]|["x"]|echo'
    assert "A=1" in docker.ok("inspect", "-f", "{{json .Config.Env}}", name)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", docker.ok("inspect", "-f", "{{.Image}}", name))
    # A prefix of the id works as well as the name.
    assert docker.ok("inspect", "-f", "{{.Name}}", cid[:8]) == f"/{name}\n"


# -- signals and waiting (issue 18) ------------------------------------------------------------


def _wait_until(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_kill_returns_once_the_container_has_exited(docker: Cli, new_name: Names) -> None:
    """dockerd's kill with SIGKILL waits for the exit: an inspect right after sees it."""
    for _ in range(3):
        name = new_name("killnow")
        docker.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
        docker.ok("kill", name)
        assert docker.ok("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}} {{.State.Status}}",
                         name).split() == ["false", "137", "exited"]


def test_wait_conditions_through_docker_py(docker_client: Any, docker: Cli, new_name: Names) -> None:
    import docker as docker_py

    name = new_name("waitc")
    container = docker_client.containers.run("busybox", ["sh", "-c", "exit 5"], name=name, detach=True)
    assert container.wait(timeout=20) == {"StatusCode": 5}
    # next-exit waits for the exit after the next start, even of a stopped container
    waiter: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: waiter.update(container.wait(condition="next-exit", timeout=20)))
    thread.start()
    time.sleep(0.5)
    assert not waiter  # no exit yet: the container is not running
    container.start()
    thread.join(25)
    assert waiter == {"StatusCode": 5}
    # removed: returns when the container is gone
    removed: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: removed.update(container.wait(condition="removed", timeout=20)))
    thread.start()
    time.sleep(0.5)
    assert not removed
    container.remove()
    thread.join(25)
    assert removed == {"StatusCode": 5}
    # an unknown condition: dockerd's 400, before anything is waited for
    other = docker_client.containers.create("busybox", "true", name=new_name("waitbad"))
    with pytest.raises(docker_py.errors.APIError) as e:
        other.wait(condition="bogus", timeout=5)
    assert e.value.status_code == 400 and e.value.explanation == 'invalid condition: "bogus"'
    res = docker("container", "inspect", "-f", "{{.State.Status}}", other.id)
    assert res.stdout.strip() == "created", describe(res)


def test_rm_of_a_restarting_container_needs_force(docker: Cli, new_name: Names) -> None:
    name = new_name("rmrestart")
    docker.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    _wait_until("the restarting state",
                lambda: docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "restarting")
    res = docker("rm", name)
    assert res.returncode == 1, describe(res)
    assert res.stderr.strip() == (f'Error response from daemon: cannot remove container "{name}": container is '
                                  "restarting: stop the container before removing or force remove"), describe(res)
    assert docker.ok("rm", "-f", name) == f"{name}\n"


@pytest.mark.parametrize("program", ["docker", "berth"])
def test_rm_of_a_paused_container_needs_unpause_or_force(docker: Cli, berth: Cli, new_name: Names,
                                                         program: str) -> None:
    name = new_name("rmpaused")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
    docker.ok("pause", name)
    res = (docker if program == "docker" else berth)("rm", name)
    assert res.returncode == 1, describe(res)
    assert res.stderr.strip() == (f'Error response from daemon: cannot remove container "{name}": container is '
                                  "paused and must be unpaused first"), describe(res)
    assert docker.ok("rm", "-f", name) == f"{name}\n"
