"""Containers outlive berthd: with live-restore a killed daemon's containers keep
running, keep logging, and are adopted again by the next berthd."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers.cli import describe
from helpers.daemon import BerthDaemon, private_daemon


def _kill_9(daemon: BerthDaemon) -> None:
    assert daemon.proc is not None
    daemon.proc.kill()  # no chance to stop anything
    daemon.proc.wait(timeout=10)


def _counts(text: str) -> list[int]:
    return [int(line) for line in text.split()]


@pytest.mark.timeout(90)
def test_container_survives_kill_9_of_berthd_and_is_adopted(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, "--live-restore", prefix="lr") as (daemon, docker):
        cid = docker.ok("run", "-d", "--name", "lr1", "busybox", "sh", "-c",
                        "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done").strip()
        time.sleep(1)
        _kill_9(daemon)
        time.sleep(5)
        daemon.start()
        assert docker.ok("inspect", "-f", "{{.State.Status}} {{.State.Running}}", "lr1").strip() == "running true"
        counts = _counts(docker.ok("logs", "lr1"))
        # Printed every 0.2 s for ~6 s, all while berthd was away or back: no gap.
        assert len(counts) >= 20, counts
        assert counts == list(range(len(counts))), "the log has a gap"
        time.sleep(0.5)
        assert len(_counts(docker.ok("logs", "lr1"))) > len(counts), "the log stopped growing"
        res = docker("stop", "-t", "1", "lr1")
        assert res.returncode == 0, describe(res)
        state = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid).split()
        assert state == ["exited", "137"]


@pytest.mark.timeout(90)
def test_without_live_restore_a_clean_shutdown_stops_containers(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="lr") as (daemon, docker):
        docker.ok("run", "-d", "--name", "nl1", "--stop-timeout", "1", "busybox", "sleep", "300")
        assert daemon.stop() == 0
        daemon.start()
        assert docker.ok("inspect", "-f", "{{.State.Status}}", "nl1").strip() == "exited"


@pytest.mark.timeout(90)
def test_without_live_restore_survivors_of_a_crash_are_stopped_at_start(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="lr") as (daemon, docker):
        docker.ok("run", "-d", "--name", "nc1", "busybox", "sleep", "300")
        _kill_9(daemon)
        daemon.start()
        deadline = time.monotonic() + 10
        while docker.ok("inspect", "-f", "{{.State.Status}}", "nc1").strip() != "exited":
            assert time.monotonic() < deadline, "the crashed daemon's container kept running"
            time.sleep(0.1)
        assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", "nc1").strip() == "137"
