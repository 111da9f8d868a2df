"""`docker logs` of detached containers: whole, --tail, -t and -f."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

RFC3339_NANO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(?:Z|[+-]\d{2}:\d{2})"


def wait_for_logs(docker: Cli, name: str, expected: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = docker.ok("logs", name)
        if out == expected or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_detached_logs_then_force_remove(docker: Cli, new_name: Names) -> None:
    leftover = docker.ok("ps", "-aq")
    assert leftover == "", f"containers from earlier tests remain: {leftover!r}"
    name = new_name("logs1")
    out = docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo a; sleep 100")
    cid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), out
    assert wait_for_logs(docker, name, "a\n") == "a\n"
    assert docker.ok("rm", "-f", name) == f"{name}\n"
    assert docker.ok("ps", "-aq") == ""
    res = docker("inspect", name)
    assert res.returncode == 1, describe(res)


def test_logs_keep_stdout_and_stderr_apart(docker: Cli, new_name: Names) -> None:
    name = new_name("logs-streams")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    assert docker.ok("wait", name) == "0\n"
    res = docker("logs", name)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "out\n"
    assert res.stderr == "err\n"


def test_logs_tail(docker: Cli, new_name: Names) -> None:
    name = new_name("logs-tail")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo a; echo b; echo c")
    assert docker.ok("wait", name) == "0\n"
    assert docker.ok("logs", name) == "a\nb\nc\n"
    assert docker.ok("logs", "--tail", "1", name) == "c\n"
    assert docker.ok("logs", "--tail", "2", name) == "b\nc\n"
    assert docker.ok("logs", "--tail", "0", name) == ""
    assert docker.ok("logs", "--tail", "all", name) == "a\nb\nc\n"


def test_logs_timestamps(docker: Cli, new_name: Names) -> None:
    name = new_name("logs-ts")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo a; echo b")
    assert docker.ok("wait", name) == "0\n"
    lines = docker.ok("logs", "-t", name).splitlines()
    assert len(lines) == 2, lines
    for line, text in zip(lines, ["a", "b"], strict=True):
        assert re.fullmatch(RFC3339_NANO + " " + text, line), line
    assert lines[0] <= lines[1]  # same zone, fixed width: ordered as text


@pytest.mark.timeout(60)
def test_logs_follow_ends_when_the_container_exits(docker: Cli, new_name: Names) -> None:
    name = new_name("logs-follow")
    script = "echo line1; sleep 1; echo line2; sleep 1; echo line3"
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    started = time.monotonic()
    res = docker("logs", "-f", name, timeout=30)
    elapsed = time.monotonic() - started
    assert res.returncode == 0, describe(res)
    assert res.stdout == "line1\nline2\nline3\n"
    # Follow returned because the container exited, not because it stopped early.
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name) == "exited\n"
    assert elapsed < 15


@pytest.mark.timeout(60)
def test_logs_follow_with_tail_0_shows_only_new_lines(docker: Cli, new_name: Names) -> None:
    name = new_name("logs-follow-new")
    script = "echo old; sleep 3; echo new"
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    assert wait_for_logs(docker, name, "old\n") == "old\n"
    res = docker("logs", "-f", "--tail", "0", name, timeout=30)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "new\n"


def test_logs_are_whole_when_wait_and_run_return(docker: Cli, new_name: Names) -> None:
    """The exit is reported only once the container's output is all in its log: `docker
    logs` right after `docker wait` (or an attached `docker run`) has every line."""
    script = "for i in $(seq 1 2000); do echo line $i; done"
    expected = "".join(f"line {i}\n" for i in range(1, 2001))
    for n in range(4):
        name = new_name(f"logs-whole{n}")
        docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", script)
        assert docker.ok("wait", name) == "0\n"
        out = docker.ok("logs", name)
        assert out == expected, f"run {n}: {len(out.splitlines())} lines right after docker wait"
    name = new_name("logs-whole-attached")
    assert docker.ok("run", "--name", name, "busybox", "sh", "-c", script) == expected
    out = docker.ok("logs", name)
    assert out == expected, f"{len(out.splitlines())} lines right after an attached docker run"
