"""`docker exec`: run, options, exit codes, interactive terminals, refusals, inspect; the
same through docker-py and `berth`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon

from .test_interactive import Tmux

pytestmark = pytest.mark.usefixtures("busybox")


@pytest.fixture
def running(docker: Cli) -> Iterator[str]:
    name = f"ex-{uuid.uuid4().hex[:8]}"
    docker.ok("run", "-d", "--name", name, "-e", "FROM_RUN=1", "-w", "/etc", "busybox", "sleep", "300")
    yield name
    docker("rm", "-f", name)


def test_exec_runs_in_the_container(docker: Cli, running: str) -> None:
    out = docker.ok("exec", running, "sh", "-c", "echo $FROM_RUN; pwd; cat /proc/1/cmdline | tr '\\0' ' '")
    assert out.splitlines() == ["1", "/etc", "sleep 300 "], out


def test_exec_options(docker: Cli, running: str) -> None:
    out = docker.ok("exec", "-u", "1000:1000", "-w", "/tmp", "-e", "FOO=bar", running, "sh", "-c", "id -u; id -g; pwd; echo $FOO")
    assert out.split() == ["1000", "1000", "/tmp", "bar"], out
    assert docker.ok("exec", "-u", "nobody", running, "id", "-un").strip() == "nobody"


def test_exec_exit_codes(docker: Cli, running: str) -> None:
    assert docker("exec", running, "sh", "-c", "exit 3").returncode == 3
    res = docker("exec", running, "nosuchcommand")
    assert res.returncode == 127, describe(res)
    assert "executable file not found" in res.stdout + res.stderr, describe(res)
    res = docker("exec", running, "/etc/passwd")
    assert res.returncode == 126, describe(res)


def test_exec_stdin_and_detach(docker: Cli, running: str) -> None:
    assert docker.ok("exec", "-i", running, "cat", input="through stdin\n") == "through stdin\n"
    docker.ok("exec", "-d", running, "sh", "-c", "echo detached > /tmp/d")
    deadline = time.monotonic() + 10
    while docker("exec", running, "cat", "/tmp/d").stdout != "detached\n":
        assert time.monotonic() < deadline, "the detached exec did not run"
        time.sleep(0.1)


def test_exec_refused_when_not_running(docker: Cli, running: str) -> None:
    docker.ok("pause", running)
    try:
        res = docker("exec", running, "true")
        assert res.returncode != 0 and "is paused, unpause the container before exec" in res.stderr, describe(res)
    finally:
        docker.ok("unpause", running)
    docker.ok("stop", "-t", "0", running)
    res = docker("exec", running, "true")
    assert res.returncode != 0 and "is not running" in res.stderr, describe(res)
    res = docker("exec", "nosuch-container-x", "true")
    assert res.returncode != 0 and "No such container: nosuch-container-x" in res.stderr, describe(res)


def test_exec_inspect_through_the_api(api: ApiClient, docker: Cli, running: str) -> None:
    resp = api.post_json(f"/containers/{running}/exec", {"Cmd": ["sh", "-c", "exit 5"], "AttachStdout": True})
    assert resp.status == 201, resp.body
    exec_id = resp.json()["Id"]
    doc: dict[str, Any] = api.get(f"/exec/{exec_id}/json").json()
    assert (doc["Running"], doc["ExitCode"], doc["ProcessConfig"]["entrypoint"]) == (False, None, "sh")
    assert api.post_json(f"/exec/{exec_id}/start", {"Detach": True}).status == 200
    deadline = time.monotonic() + 10
    while api.get(f"/exec/{exec_id}/json").json()["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 5
    assert api.post_json(f"/containers/{running}/exec", {"Cmd": []}).status == 400
    assert api.get("/exec/nosuchexec/json").status == 404


def test_exec_ids_in_inspect(docker: Cli, running: str) -> None:
    docker.ok("exec", "-d", running, "sleep", "30")
    ids = json.loads(docker.ok("inspect", "-f", "{{json .ExecIDs}}", running))
    assert ids and len(ids[0]) == 64, ids


def test_docker_py_exec_run(docker_client: Any, running: str) -> None:
    c = docker_client.containers.get(running)
    code, out = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert code == 4 and b"out" in out and b"err" in out, (code, out)
    code, (stdout, stderr) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, stdout, stderr) == (0, b"o\n", b"e\n")
    assert c.exec_run("whoami", user="nobody").output.strip() == b"nobody"


def test_berth_cli_exec(berth: Cli, running: str) -> None:
    assert berth.ok("exec", running, "echo", "via berth").strip() == "via berth"
    assert berth("exec", running, "sh", "-c", "exit 7").returncode == 7


@pytest.fixture
def tmux(docker_env: dict[str, str]) -> Iterator[Tmux]:
    t = Tmux(docker_env)
    yield t
    t.kill()


@pytest.mark.timeout(90)
def test_exec_interactive_terminal(tmux: Tmux, running: str, berth_root: Path) -> None:
    status_file = berth_root / f"exec-status-{uuid.uuid4().hex[:8]}"
    host = tmux.env["DOCKER_HOST"]
    tmux.start(f"env DOCKER_HOST={shlex.quote(host)} docker exec -it {running} sh; echo $? > {shlex.quote(str(status_file))}")
    tmux.wait_for_line("/etc #")
    tmux.send("tty; echo $((6*7))", "Enter")
    screen = tmux.wait_for_line("42")
    assert any(line.strip().startswith("/dev/pts/") for line in screen.splitlines()), screen
    tmux.send("exit 9", "Enter")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), tmux.screen()
    assert status_file.read_text().strip() == "9"


def _forker_pid(berthd: BerthDaemon, docker: Cli, name: str) -> int:
    cid = docker.ok("inspect", "-f", "{{.Id}}", name).strip()
    note = berthd.exec_root / "containers" / cid / "forker"
    return int(json.loads(note.read_text())["pid"]) if note.exists() else 0


def test_exec_is_born_in_the_container_cgroups_and_stays_out_of_sight(
        berthd: BerthDaemon, docker: Cli) -> None:
    """Execs are forked by a helper inside the container's cgroups (no cgroup write per
    exec); users must not see that helper: not in top, not in stats, not in the pids
    limit they set."""
    name = f"ex-{uuid.uuid4().hex[:8]}"
    docker.ok("run", "-d", "--name", name, "--pids-limit", "5", "busybox", "sleep", "300")
    try:
        init = docker.ok("inspect", "-f", "{{.State.Pid}}", name).strip()
        with open(f"/proc/{init}/cgroup") as f:
            want = sorted(line.split(":", 1)[1] for line in f.read().splitlines() if not line.startswith("0::"))
        got = docker.ok("exec", name, "cat", "/proc/self/cgroup").splitlines()
        assert sorted(line.split(":", 1)[1] for line in got if not line.startswith("0::")) == want
        forker = _forker_pid(berthd, docker, name)
        assert forker > 0
        top = docker.ok("top", name)
        assert str(forker) not in top.split() and "sleep 300" in top, top
        stats = docker.ok("stats", "--no-stream", "--format", "{{.PIDs}}", name).strip()
        assert stats == "1", stats
        limit = json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.PidsLimit}}", name))
        assert limit == 5
        # the user's 5 processes fit: init and four sleeps; a sixth does not
        docker.ok("exec", "-d", name, "sh", "-c", "sleep 300 & sleep 300 & sleep 300 & wait")
        deadline = time.monotonic() + 10
        while docker.ok("stats", "--no-stream", "--format", "{{.PIDs}}", name).strip() != "5":
            assert time.monotonic() < deadline, docker.ok("top", name)
            time.sleep(0.1)
        res = docker("exec", name, "true")
        assert res.returncode != 0, describe(res)
        docker.ok("update", "--pids-limit", "10", name)
        assert docker.ok("exec", name, "echo", "room again").strip() == "room again"
    finally:
        docker("rm", "-f", name)


def test_exec_survives_a_killed_forker(berthd: BerthDaemon, docker: Cli, running: str) -> None:
    assert docker.ok("exec", running, "echo", "one").strip() == "one"
    forker = _forker_pid(berthd, docker, running)
    assert forker > 0, "no exec forker noted"
    os.kill(forker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _forker_pid(berthd, docker, running) == forker:
        assert time.monotonic() < deadline, "the shim did not notice its forker's death"
        time.sleep(0.05)
    assert docker.ok("exec", running, "echo", "two").strip() == "two"
    assert _forker_pid(berthd, docker, running) not in (0, forker)


def test_exec_privileged_and_user_capabilities(docker: Cli, running: str) -> None:
    """Docker's default set for a plain exec, every capability the host has with
    --privileged, none for a non-root user; the container's seccomp filter either way."""
    def status(*args: str) -> dict[str, str]:
        out = docker.ok("exec", *args, running, "cat", "/proc/self/status")
        return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)

    plain = status()
    assert plain["CapEff"].strip() == "00000000a80425fb", plain["CapEff"]
    with open("/proc/self/status") as f:
        host = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    privileged = status("--privileged")
    assert privileged["CapEff"].strip() == host["CapBnd"].strip()
    assert privileged["Seccomp"].strip() == plain["Seccomp"].strip() == "2"
    assert status("-u", "nobody")["CapEff"].strip() == "0000000000000000"
