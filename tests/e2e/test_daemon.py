"""The daemon process itself: its pidfile, one daemon per data root, its shutdown, and\nclients that leave in the middle of an answer."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.cli import Cli
from helpers.daemon import BerthDaemon, private_daemon


def test_pidfile_holds_the_daemons_pid(berthd: BerthDaemon) -> None:
    assert berthd.pidfile.read_text().strip() == str(berthd.pid)


@pytest.mark.timeout(60)
def test_second_daemon_on_the_same_data_root_refuses(
    berthd: BerthDaemon, berth_root: Path
) -> None:
    # Everything of its own except the data root.
    second = BerthDaemon(berth_root, marker=berthd.marker, name=f"b2{uuid.uuid4().hex[:6]}")
    second.data_root = berthd.data_root
    proc = second.launch()
    try:
        status = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        second.stop(timeout=5)
    output = second.log_since(0)
    assert status is not None, "a second berthd on the same data root kept running:\n" + output
    assert status != 0
    assert str(berthd.data_root) in output or any(
        word in output.lower() for word in ("already running", "in use", "locked")
    ), output
    assert len(output) < 2000 and "Traceback" not in output, output
    # The first daemon is unharmed and still serves.
    assert berthd.ping()
    assert Path(berthd.socket_path).exists()
    assert berthd.pidfile.read_text().strip() == str(berthd.pid)


def _cut_off_after_output(env: dict[str, str], *args: str) -> None:
    """Run `docker ARGS`, and kill the client (SIGKILL: no goodbye) once the answer flows."""
    proc = subprocess.Popen(["docker", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, f"`docker {' '.join(args)}` ended without output"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("busybox")
def test_clients_that_leave_mid_stream_are_no_error_of_berthds(
    berthd: BerthDaemon, docker: Cli, docker_env: dict[str, str], new_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    name = new_name("chatty")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.05; done")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN for i in $(seq 1 100); do echo step $i; sleep 0.05; done\n")
    offset = berthd.log_size()
    _cut_off_after_output(docker_env, "logs", "-f", name)
    _cut_off_after_output(docker_env, "stats", name)
    _cut_off_after_output({**docker_env, "DOCKER_BUILDKIT": "0"}, "build", str(tmp_path))
    _cut_off_after_output(docker_env, "events", "--since", "10m")  # the run's events first, then live
    # berthd learns of each departure at its next write; the chatty container and the
    # build's RUN write on, and a last event comes with the removal
    time.sleep(2)
    docker.ok("rm", "-f", name)
    assert berthd.ping()
    log = berthd.log_since(offset, limit=200_000)
    assert "Traceback" not in log and "Error handling request" not in log, log


@pytest.mark.timeout(180)
def test_a_start_right_after_a_stop_finds_the_data_root_free(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="ss") as (daemon, docker):
        for i in range(3):  # sleep ignores SIGTERM: the shutdown waits out each stop timeout
            docker.ok("run", "-d", "--name", f"ss{i}", "--stop-timeout", "2", "busybox", "sleep", "300")
        assert daemon.proc is not None
        daemon.proc.terminate()
        # as an init script would: the pidfile's going means the daemon is done
        deadline = time.monotonic() + 60
        while daemon.pidfile.exists():
            assert time.monotonic() < deadline, "berthd's shutdown did not end"
            time.sleep(0.001)
        second = BerthDaemon(berth_root, marker=daemon.marker, name=daemon.name, bridge=daemon.bridge)
        second.start()  # DaemonStartError if the data root is still locked
        daemon.proc.wait(timeout=30)
        daemon.proc = second.proc
        states = docker.ok("ps", "-a", "--format", "{{.Names}} {{.State}}").split("\n")
        assert sorted(s for s in states if s) == ["ss0 exited", "ss1 exited", "ss2 exited"]
        docker.ok("rm", "ss0", "ss1", "ss2")
        daemon.stop()
        assert not _berth_processes(daemon.exec_root), "processes left after berthd stopped"


def _berth_processes(exec_root: Path) -> list[str]:
    """Processes naming the exec root: a zygote, and the shims forked from it."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(exec_root) in cmdline:
                found.append(f"pid {entry}: {cmdline}")
    return found
