"""Resource limits: memory (and the OOM killer), pids, cpu, cpuset, ulimits, /dev/shm, tmpfs.

What a user sees with Docker on a cgroup v1 host: the limits given to `docker run` are
written to the container's cgroups (`/berth/<id>` in every hierarchy here, as
`/docker/<id>` under dockerd), which the container sees read-only at /sys/fs/cgroup.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

CGROUP_ROOT = Path("/sys/fs/cgroup")
DONE = "probe-done"
MEMORY_HOG = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)'


def host_cgroup(controller: str, container_id: str) -> Path:
    """The container's cgroup directory on the host, in one v1 hierarchy."""
    return CGROUP_ROOT / controller / "berth" / container_id


def host_cgroup_value(controller: str, container_id: str, file: str) -> str:
    return (host_cgroup(controller, container_id) / file).read_text().strip()


def full_id(docker: Cli, name: str) -> str:
    return docker.ok("inspect", "-f", "{{.Id}}", name).strip()


def run_detached(docker: Cli, name: str, *args: str) -> str:
    """`docker run -d --name NAME ARGS…`; returns the full container id."""
    res = docker("run", "-d", "--name", name, *args)
    assert res.returncode == 0, describe(res)
    return res.stdout.strip()


def probe(docker: Cli, name: str, script: str, *options: str) -> tuple[str, str]:
    """Run SCRIPT in a detached container that stays up afterwards.

    Returns the full id and what the script printed (read from the logs, so that the
    host side of the running container can be checked against it).
    """
    cid = run_detached(
        docker, name, *options, "busybox", "sh", "-c", f"{script}; echo {DONE}; exec sleep 300"
    )
    output = ""

    def done() -> bool:
        nonlocal output
        output = docker("logs", name).stdout
        return DONE in output

    assert wait_until(done), describe(docker("logs", name))
    return cid, output.split(DONE)[0]


def wait_until(check: Callable[[], bool], timeout: float = 10, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


# Memory and the OOM killer.


@pytest.mark.timeout(60)
def test_memory_limit_oom_kills_with_137(docker: Cli, new_name: Names) -> None:
    name = new_name("oom")
    res = docker("run", "--name", name, "--memory", "32m", "busybox", "sh", "-c", MEMORY_HOG)
    assert res.returncode == 137, describe(res)
    state = docker.ok(
        "inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}}", name
    )
    assert state.split() == ["true", "137", str(32 * 1024 * 1024)]


def test_normal_exit_is_not_oom_killed(docker: Cli, new_name: Names) -> None:
    name = new_name("nooom")
    docker.ok("run", "--name", name, "--memory", "32m", "busybox", "true")
    assert docker.ok("inspect", "-f", "{{.State.OOMKilled}}", name).strip() == "false"


def test_memory_and_swap_limits_are_in_the_cgroup(docker: Cli, new_name: Names) -> None:
    name = new_name("mem")
    memsw_supported = (CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()
    files = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    if memsw_supported:
        files += " /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
    cid, inside = probe(docker, name, f"cat {files}", "--memory", "64m", "--memory-swap", "128m")
    expected = ["67108864", "134217728"] if memsw_supported else ["67108864"]
    assert inside.split() == expected
    memsw = host_cgroup("memory", cid) / "memory.memsw.limit_in_bytes"
    assert host_cgroup_value("memory", cid, "memory.limit_in_bytes") == "67108864"
    if memsw.exists():
        assert memsw.read_text().strip() == "134217728"
    hc = docker.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", name)
    assert hc.split() == ["67108864", "134217728"]


def test_memory_below_6mb_is_refused(docker: Cli) -> None:
    res = docker("run", "--rm", "--memory", "4m", "busybox", "true")
    assert res.returncode == 125, describe(res)
    assert "Minimum memory limit allowed is 6MB" in res.stderr


# Pids.


@pytest.mark.timeout(60)
def test_pids_limit_stops_a_fork_bomb(docker: Cli, new_name: Names) -> None:
    name = new_name("pids")
    # The subshell forks sleeps until the limit, and dies of "can't fork"; its sleeps stay.
    bomb = "(for i in $(seq 100); do sleep 300 & done; wait); exec sleep 300"
    cid = run_detached(docker, name, "--pids-limit", "20", "busybox", "sh", "-c", bomb)
    assert host_cgroup_value("pids", cid, "pids.max") == "20"

    def forked_out() -> bool:
        return "can't fork" in docker("logs", name).stderr

    assert wait_until(forked_out), describe(docker("logs", name))
    assert int(host_cgroup_value("pids", cid, "pids.current")) <= 20
    assert docker.ok("inspect", "-f", "{{.HostConfig.PidsLimit}}", name).strip() == "20"

    start = time.monotonic()
    res = docker("rm", "-f", name, timeout=30)
    assert res.returncode == 0, describe(res)
    assert time.monotonic() - start < 10
    # The host itself can still fork.
    assert subprocess.run(["true"], timeout=10).returncode == 0


# Cpu.


def test_cpus_sets_cfs_quota_and_period(docker: Cli, new_name: Names) -> None:
    name = new_name("cpus")
    cid, inside = probe(
        docker, name,
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "--cpus", "0.5",
    )
    assert inside.split() == ["50000", "100000"]
    assert host_cgroup_value("cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert host_cgroup_value("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert docker.ok("inspect", "-f", "{{.HostConfig.NanoCpus}}", name).strip() == "500000000"


def test_cpu_shares(docker: Cli, new_name: Names) -> None:
    name = new_name("shares")
    res = docker("run", "--rm", "--name", name, "--cpu-shares", "512", "busybox",
                 "cat", "/sys/fs/cgroup/cpu/cpu.shares")
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == "512"


def test_cpuset_cpus(docker: Cli, new_name: Names) -> None:
    name = new_name("cpuset")
    cid, inside = probe(
        docker, name,
        "cat /sys/fs/cgroup/cpuset/cpuset.cpus; grep Cpus_allowed_list /proc/self/status",
        "--cpuset-cpus", "0",
    )
    lines = inside.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["Cpus_allowed_list:", "0"]
    assert host_cgroup_value("cpuset", cid, "cpuset.cpus") == "0"


# Ulimits, /dev/shm, tmpfs.


def test_ulimit_nofile(docker: Cli) -> None:
    res = docker("run", "--rm", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c",
                 "ulimit -n; grep 'Max open files' /proc/self/limits")
    assert res.returncode == 0, describe(res)
    soft, limits = res.stdout.splitlines()
    assert soft == "1024"
    assert limits.split()[3:5] == ["1024", "2048"]


def test_shm_size(docker: Cli) -> None:
    res = docker("run", "--rm", "--shm-size", "128m", "busybox", "df", "-k", "/dev/shm")
    assert res.returncode == 0, describe(res)
    fields = res.stdout.splitlines()[-1].split()
    assert fields[1] == "131072", res.stdout
    assert fields[-1] == "/dev/shm"


def test_default_shm_is_64m(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "df", "-k", "/dev/shm")
    assert res.returncode == 0, describe(res)
    assert res.stdout.splitlines()[-1].split()[1] == "65536", res.stdout


def test_tmpfs_mount(docker: Cli) -> None:
    res = docker("run", "--rm", "--tmpfs", "/scratch:size=10m", "busybox", "sh", "-c",
                 "mount | grep ' /scratch '; df -k /scratch; echo hi > /scratch/f && cat /scratch/f")
    assert res.returncode == 0, describe(res)
    mount_line, _, df_line, content = res.stdout.splitlines()
    assert mount_line.startswith("tmpfs on /scratch type tmpfs (rw,"), mount_line
    assert "size=10240k" in mount_line
    assert df_line.split()[1] == "10240"
    assert content == "hi"


# Cleanup.


def test_cgroups_are_removed_with_the_container(docker: Cli, new_name: Names) -> None:
    name = new_name("cgrm")
    cid = run_detached(docker, name, "--memory", "64m", "busybox", "sleep", "300")
    controllers = ["memory", "cpu", "pids", "freezer"]
    for controller in controllers:
        assert host_cgroup(controller, cid).is_dir(), controller
    docker.ok("rm", "-f", name, timeout=30)
    left = [c for c in controllers if host_cgroup(c, cid).exists()]
    assert left == []


# docker-py.


@pytest.mark.timeout(60)
def test_dockerpy_mem_limit_oom(docker_client: Any, new_name: Names) -> None:
    name = new_name("pyoom")
    container = docker_client.containers.run(
        "busybox", ["sh", "-c", MEMORY_HOG], mem_limit="32m", detach=True, name=name
    )
    assert container.wait(timeout=50)["StatusCode"] == 137
    container.reload()
    assert container.attrs["State"]["OOMKilled"] is True
    assert container.attrs["HostConfig"]["Memory"] == 32 * 1024 * 1024
    container.remove()


def test_dockerpy_pids_limit(docker_client: Any, new_name: Names) -> None:
    name = new_name("pypids")
    script = f"cat /sys/fs/cgroup/pids/pids.max; echo {DONE}; exec sleep 300"
    container = docker_client.containers.run(
        "busybox", ["sh", "-c", script], pids_limit=20, detach=True, name=name
    )
    assert container.attrs["HostConfig"]["PidsLimit"] == 20
    assert host_cgroup_value("pids", container.id, "pids.max") == "20"
    assert wait_until(lambda: DONE.encode() in container.logs())
    assert container.logs() == f"20\n{DONE}\n".encode()
    container.remove(force=True)
