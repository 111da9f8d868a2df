"""`docker pause` / `unpause` (the freezer), `docker update` (limits of a running
container), `docker top`, and stopping or removing a paused container."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

CGROUP_ROOT = Path("/sys/fs/cgroup")
COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"


def host_cgroup_value(controller: str, container_id: str, file: str) -> str:
    return (CGROUP_ROOT / controller / "berth" / container_id / file).read_text().strip()


def run_detached(docker: Cli, name: str, *args: str) -> str:
    res = docker("run", "-d", "--name", name, *args)
    assert res.returncode == 0, describe(res)
    return res.stdout.strip()


def log_lines(docker: Cli, name: str) -> int:
    res = docker("logs", name)
    assert res.returncode == 0, describe(res)
    return len(res.stdout.splitlines())


def wait_until(check: Callable[[], bool], timeout: float = 10, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def ps_status(docker: Cli, name: str) -> str:
    out = docker.ok("ps", "--all", "--format", "{{.Names}}\t{{.Status}}")
    for line in out.splitlines():
        row_name, _, status = line.partition("\t")
        if row_name == name:
            return status
    raise AssertionError(f"{name} is not in docker ps:\n{out}")


def start_counter(docker: Cli, name: str) -> str:
    """A container that prints a counter every 0.1 s; returns its id once it counts."""
    cid = run_detached(docker, name, "busybox", "sh", "-c", COUNTER)
    assert wait_until(lambda: log_lines(docker, name) >= 2), describe(docker("logs", name))
    return cid


# Pause and unpause.


@pytest.mark.timeout(60)
def test_pause_freezes_and_unpause_thaws(docker: Cli, new_name: Names) -> None:
    name = new_name("pause")
    cid = start_counter(docker, name)

    assert docker.ok("pause", name).strip() == name
    state = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
                      name)
    assert state.split() == ["paused", "true", "true"]
    status = ps_status(docker, name)
    assert status.startswith("Up ") and status.endswith(" (Paused)"), status
    assert host_cgroup_value("freezer", cid, "freezer.state") == "FROZEN"

    time.sleep(0.3)  # what was written before the freeze reaches the log
    frozen_count = log_lines(docker, name)
    time.sleep(0.8)
    assert log_lines(docker, name) == frozen_count

    assert docker.ok("unpause", name).strip() == name
    state = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name)
    assert state.split() == ["running", "false"]
    assert not ps_status(docker, name).endswith("(Paused)")
    assert host_cgroup_value("freezer", cid, "freezer.state") == "THAWED"
    assert wait_until(lambda: log_lines(docker, name) >= frozen_count + 3)


def test_pause_twice_and_unpause_of_running(docker: Cli, new_name: Names) -> None:
    name = new_name("pause2")
    run_detached(docker, name, "busybox", "sleep", "300")
    res = docker("unpause", name)
    assert res.returncode == 1, describe(res)
    assert "is not paused" in res.stderr
    docker.ok("pause", name)
    res = docker("pause", name)
    assert res.returncode == 1, describe(res)
    assert "is already paused" in res.stderr


def test_pause_of_a_stopped_container_fails(docker: Cli, new_name: Names) -> None:
    name = new_name("pausestopped")
    docker.ok("run", "--name", name, "busybox", "true")
    res = docker("pause", name)
    assert res.returncode == 1, describe(res)
    assert "is not running" in res.stderr
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "exited"


@pytest.mark.timeout(60)
def test_stop_of_a_paused_container(docker: Cli, new_name: Names) -> None:
    name = new_name("stoppaused")
    # A handler for SIGTERM: the signal only arrives once the container is thawed.
    run_detached(docker, name, "busybox", "sh", "-c",
                 "trap 'exit 3' TERM; while true; do sleep 0.1; done")
    docker.ok("pause", name)
    start = time.monotonic()
    res = docker("stop", name, timeout=40)
    assert res.returncode == 0, describe(res)
    assert time.monotonic() - start < 8
    state = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}",
                      name)
    assert state.split() == ["exited", "false", "3"]


@pytest.mark.timeout(60)
def test_kill_of_a_paused_container(docker: Cli, new_name: Names) -> None:
    name = new_name("killpaused")
    run_detached(docker, name, "busybox", "sleep", "300")
    docker.ok("pause", name)
    docker.ok("kill", name, timeout=30)
    assert wait_until(
        lambda: docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "exited"
    )
    state = docker.ok("inspect", "-f", "{{.State.Paused}} {{.State.ExitCode}}", name)
    assert state.split() == ["false", "137"]


@pytest.mark.timeout(60)
def test_rm_force_of_a_paused_container(docker: Cli, new_name: Names) -> None:
    name = new_name("rmpaused")
    cid = run_detached(docker, name, "busybox", "sleep", "300")
    docker.ok("pause", name)
    start = time.monotonic()
    res = docker("rm", "-f", name, timeout=30)
    assert res.returncode == 0, describe(res)
    assert time.monotonic() - start < 8
    assert docker("inspect", name).returncode == 1
    assert not (CGROUP_ROOT / "freezer" / "berth" / cid).exists()


# Update.


def test_update_memory_of_a_running_container(docker: Cli, new_name: Names) -> None:
    name = new_name("updmem")
    cid = run_detached(docker, name, "busybox", "sleep", "300")
    res = docker("update", "--memory", "64m", "--memory-swap", "128m", name)
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == name
    assert host_cgroup_value("memory", cid, "memory.limit_in_bytes") == "67108864"
    if (CGROUP_ROOT / "memory" / "berth" / cid / "memory.memsw.limit_in_bytes").exists():
        assert host_cgroup_value("memory", cid, "memory.memsw.limit_in_bytes") == "134217728"
    hc = docker.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", name)
    assert hc.split() == ["67108864", "134217728"]


def test_update_cpus_of_a_running_container(docker: Cli, new_name: Names) -> None:
    name = new_name("updcpu")
    cid = run_detached(docker, name, "busybox", "sleep", "300")
    docker.ok("update", "--cpus", "0.25", name)
    assert host_cgroup_value("cpu", cid, "cpu.cfs_quota_us") == "25000"
    assert host_cgroup_value("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert docker.ok("inspect", "-f", "{{.HostConfig.NanoCpus}}", name).strip() == "250000000"


def test_update_of_a_stopped_container_applies_at_next_start(
    docker: Cli, new_name: Names
) -> None:
    name = new_name("updstopped")
    docker.ok("create", "--name", name, "busybox", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    docker.ok("update", "--memory", "48m", "--memory-swap", "96m", name)
    assert docker.ok("inspect", "-f", "{{.HostConfig.Memory}}", name).strip() == "50331648"
    res = docker("start", "-a", name)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "50331648\n"


# Top.


def test_top_lists_the_processes(docker: Cli, new_name: Names) -> None:
    name = new_name("top")
    run_detached(docker, name, "busybox", "sh", "-c", "sleep 301 & exec sleep 300")
    pid = docker.ok("inspect", "-f", "{{.State.Pid}}", name).strip()

    def two_processes() -> bool:
        return len(docker.ok("top", name).splitlines()) == 3

    assert wait_until(two_processes), docker.ok("top", name)
    header, *rows = docker.ok("top", name).splitlines()
    assert header.split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    by_pid = {row.split()[1]: row for row in rows}
    assert pid in by_pid
    assert by_pid[pid].split()[0] == "root"
    assert by_pid[pid].endswith("sleep 300")
    assert any(row.endswith("sleep 301") for row in rows)
    for host_pid in by_pid:
        assert Path(f"/proc/{host_pid}").exists()


def test_top_of_a_stopped_container_fails(docker: Cli, new_name: Names) -> None:
    name = new_name("topstopped")
    docker.ok("run", "--name", name, "busybox", "true")
    res = docker("top", name)
    assert res.returncode == 1, describe(res)
    assert "is not running" in res.stderr


# docker-py.


@pytest.mark.timeout(60)
def test_dockerpy_pause_update_top(docker_client: Any, new_name: Names) -> None:
    name = new_name("pypause")
    container = docker_client.containers.run(
        "busybox", ["sleep", "300"], detach=True, name=name
    )
    container.pause()
    container.reload()
    assert container.status == "paused"
    assert container.attrs["State"]["Paused"] is True
    container.unpause()
    container.reload()
    assert container.status == "running"

    container.update(mem_limit="64m", memswap_limit="128m", cpu_quota=25000, cpu_period=100000)
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert container.attrs["HostConfig"]["MemorySwap"] == 128 * 1024 * 1024
    assert container.attrs["HostConfig"]["CpuQuota"] == 25000
    assert host_cgroup_value("memory", container.id, "memory.limit_in_bytes") == "67108864"
    assert host_cgroup_value("cpu", container.id, "cpu.cfs_quota_us") == "25000"

    top = container.top()
    assert top["Titles"][:3] == ["UID", "PID", "PPID"]
    assert top["Titles"][-1] == "CMD"
    assert [p[-1] for p in top["Processes"]] == ["sleep 300"]
    assert top["Processes"][0][1] == str(container.attrs["State"]["Pid"])
    container.remove(force=True)
