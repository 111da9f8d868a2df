"""berthd killed (kill -9) in the middle of container starts and removals: the next
berthd serves, knows every container, and holds nothing of a container that does not
run (an overlay mount, a veth, a network namespace, a cgroup); once every container is
removed and berthd stops, no process of berth's is left (its zygote and shims included).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon

ROUNDS = 6
PARALLEL_RUNS = 12
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _kill_9(daemon: BerthDaemon) -> None:
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)


def _veths_on(bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge, "type", "veth"],
                         capture_output=True, text=True, check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def _overlay_mounts(daemon: BerthDaemon) -> dict[str, str]:
    """Container id -> the mount point of its root, for the daemon's mounted roots."""
    below = f"{daemon.data_root}/overlay/containers/"
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(below):
                found[point[len(below):].split("/")[0]] = point
    return found


def _cgroups_of(cid: str) -> list[str]:
    return [str(p) for p in CGROUP_ROOT.glob(f"*/berth/{cid}") if p.is_dir()]


def _leftovers(daemon: BerthDaemon, docker: Cli, known: set[str]) -> list[str]:
    """What the daemon holds of containers that do not run (`known`: every container id
    ever seen, removed ones included)."""
    running = set(docker.ok("ps", "-q", "--no-trunc").split())
    found = []
    mounts = _overlay_mounts(daemon)
    for cid in sorted(set(mounts) - running):
        found.append(f"overlay mount {mounts[cid]}")
    netns_dir = daemon.exec_root / "netns"
    held_netns = {cid[:24] for cid in running}
    for name in sorted(os.listdir(netns_dir)) if netns_dir.is_dir() else []:
        if name not in held_netns:
            found.append(f"network namespace {netns_dir / name}")
    veths = _veths_on(daemon.bridge)
    if len(veths) != len(running):  # each running container has one endpoint, on the default bridge
        found.append(f"{len(veths)} veths on {daemon.bridge} for {len(running)} running containers")
    for cid in sorted(known - running):
        found += [f"cgroup {path}" for path in _cgroups_of(cid)]
    return found


def _settled_leftovers(daemon: BerthDaemon, docker: Cli, known: set[str]) -> list[str]:
    """_leftovers once the containers a restart stops (no live-restore) have been
    cleaned up after: their exit is handled in the background."""
    deadline = time.monotonic() + 20
    while True:
        found = _leftovers(daemon, docker, known)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _berth_processes(daemon: BerthDaemon) -> list[str]:
    """Processes whose command line names the daemon's exec root: its zygote, and the
    shims forked from it (which keep the zygote's command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(daemon.exec_root) in cmdline:
            found.append(f"pid {entry}: {cmdline}")
    return found


@pytest.mark.timeout(900)
@pytest.mark.parametrize("live_restore", [True, False], ids=["live-restore", "no-live-restore"])
def test_kill_9_during_parallel_runs_and_removals(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path, live_restore: bool
) -> None:
    flags = ["--live-restore"] if live_restore else []
    with private_daemon(berth_root, berthd, busybox_tar, *flags, prefix="cr") as (daemon, docker):
        # with live-restore, one container runs through every kill and restart
        keeper = docker.ok("run", "-d", "--name", "cr-keeper", "busybox", "sleep", "900").strip()
        known = {keeper}
        created: set[str] = set()  # what `docker run -d` answered with an id
        removed: set[str] = set()  # what `docker rm -f` said it removed
        repaired = 0
        for n in range(ROUNDS):
            victims = sorted(created - removed)[:3]
            with ThreadPoolExecutor(PARALLEL_RUNS + len(victims)) as pool:
                runs = [pool.submit(docker, "run", "-d", "busybox", "sleep", "900", timeout=120)
                        for _ in range(PARALLEL_RUNS)]
                rms = [pool.submit(docker, "rm", "-f", cid, timeout=120) for cid in victims]
                time.sleep(0.4 + 0.15 * n)  # the kill lands at a different stage each round
                _kill_9(daemon)
            for run in runs:
                res = run.result()
                if res.returncode == 0:
                    created.add(res.stdout.strip())
            removed |= {cid for cid, rm in zip(victims, rms, strict=True) if rm.result().returncode == 0}
            mounted_at_the_kill = set(_overlay_mounts(daemon))
            daemon.start()
            listed = set(docker.ok("ps", "-aq", "--no-trunc").split())
            # a start the kill cut short left the root mounted: the new berthd says it removed it
            cut_short = set(docker.ok("ps", "-aq", "--no-trunc", "--filter", "status=created").split())
            for cid in sorted(cut_short & mounted_at_the_kill):
                assert re.search(rf"container {cid[:12]} is created but berthd had not finished with it; "
                                 r"removed .*its root's mount", daemon.log_since(0)), \
                    f"round {n + 1}: berthd did not log what it repaired of {cid[:12]}"
            repaired += len(cut_short & mounted_at_the_kill)
            missing = (created | {keeper}) - removed - listed
            assert not missing, f"round {n + 1}: containers not listed after the restart: {missing}"
            known |= listed | created
            want = "running" if live_restore else "exited"  # without live-restore, killed at the start
            deadline = time.monotonic() + 20
            while (state := docker.ok("inspect", "-f", "{{.State.Status}}", keeper).strip()) != want:
                assert time.monotonic() < deadline, f"round {n + 1}: the keeper is {state}, not {want}"
                time.sleep(0.2)
            res = docker("run", "--rm", "busybox", "echo", "still serving")
            assert res.returncode == 0 and res.stdout == "still serving\n", describe(res)
            found = _settled_leftovers(daemon, docker, known)
            assert not found, f"round {n + 1}: held for containers that do not run:\n" + "\n".join(found) \
                + "\n" + daemon.log_tail()
        print(f"starts cut short with their root mounted, repaired and logged: {repaired}")
        ids = docker.ok("ps", "-aq").split()
        if ids:
            docker.ok("rm", "-f", *ids, timeout=300)
        assert not _leftovers(daemon, docker, known)
        daemon.stop()
        left = _berth_processes(daemon) + [f"cgroup {p}" for cid in known for p in _cgroups_of(cid)]
        assert not left, "left after every container was removed and berthd stopped:\n" + "\n".join(left)
