"""The task service under each runtime: stats, pause and top of a runc container come
from the container's own cgroup, and a container whose shim dies is cleaned up from
its bundle (its processes, its cgroup, and runc's record of it)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.cli import Cli
from helpers.daemon import BerthDaemon

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

PIDS_CGROUP = Path("/sys/fs/cgroup/pids/berth")


def _runtimes() -> list[str]:
    return ["berth", "runc"] if shutil.which("runc") else ["berth"]


def _wait_for(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_stats_pause_and_top_of_a_runc_container(docker: Cli, new_name: Names) -> None:
    name = new_name("runcstats")
    docker.ok("run", "-d", "--name", name, "--runtime", "runc", "--pids-limit", "50", "busybox", "sleep", "300")
    out = docker.ok("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", name, timeout=30).split()
    assert out[0] == "1", out
    assert not out[1].startswith("0B"), out
    docker.ok("pause", name)
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "paused"
    docker.ok("unpause", name)
    assert "sleep 300" in docker.ok("top", name)
    docker.ok("rm", "-f", name)


@pytest.mark.parametrize("runtime", _runtimes())
def test_a_container_whose_shim_dies_is_cleaned_up(docker: Cli, berthd: BerthDaemon, new_name: Names,
                                                    runtime: str) -> None:
    name = new_name("lostshim")
    cid = docker.ok("run", "-d", "--name", name, "--runtime", runtime, "busybox", "sleep", "300").strip()
    pid = int(docker.ok("inspect", "-f", "{{.State.Pid}}", name))
    shim = _parent(pid)
    runc_state = berthd.exec_root / "runtime-runc" / cid
    if runtime == "runc":
        assert runc_state.is_dir()
    os.kill(shim, signal.SIGKILL)  # the shim berthd started for this container, by its PID
    assert _wait_for(lambda: docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "exited")
    assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "255"
    assert _wait_for(lambda: not os.path.exists(f"/proc/{pid}")), "the container's init outlived its shim"
    assert not (PIDS_CGROUP / cid).exists(), "its cgroup was left behind"
    assert not runc_state.exists(), "runc's record of it was left behind"
    docker.ok("rm", name)
