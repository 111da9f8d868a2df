"""A named volume's data survives the worst: its writer killed with SIGKILL, then berthd
killed with SIGKILL. A berthd restarted on the same data root serves the volume with every
file intact, and prune does not touch it while a stopped container still uses it.

Runs on a private berthd, so that killing it does not hurt the session's daemon."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from helpers.cli import describe
from helpers.daemon import BerthDaemon, private_daemon

FILES = 10_000


def _kill_9(daemon: BerthDaemon) -> None:
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)


def _expected_digest() -> str:
    """md5 of the files' contents concatenated in the order `cat /data/f*` reads them."""
    names = sorted(f"f{i}" for i in range(FILES))
    return hashlib.md5("".join(f"file {n[1:]}\n" for n in names).encode()).hexdigest()


@pytest.mark.timeout(240)
def test_volume_data_survives_kill_9_of_writer_and_berthd(
        berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="vs") as (daemon, docker):
        vol = "safe-volume"
        docker.ok("volume", "create", vol)
        mountpoint = Path(docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
        assert mountpoint == daemon.data_root / "volumes" / vol / "_data"
        writer = "writer"
        docker.ok("run", "-d", "--name", writer, "-v", f"{vol}:/data", "busybox", "sh", "-c",
                  f'i=0; while [ $i -lt {FILES} ]; do echo "file $i" > /data/f$i; i=$((i+1)); done;'
                  " sync; touch /data/DONE; sleep 3600")
        deadline = time.monotonic() + 120
        while not (mountpoint / "DONE").exists():
            assert time.monotonic() < deadline, "the writer did not finish within 120 s"
            assert docker.ok("inspect", "-f", "{{.State.Running}}", writer).strip() == "true", \
                docker.ok("logs", writer)
            time.sleep(0.2)

        pid = int(docker.ok("inspect", "-f", "{{.State.Pid}}", writer).strip())
        assert pid > 0
        os.kill(pid, signal.SIGKILL)
        _kill_9(daemon)
        daemon.start()

        deadline = time.monotonic() + 20
        while docker.ok("inspect", "-f", "{{.State.Running}}", writer).strip() != "false":
            assert time.monotonic() < deadline, "the killed writer is still reported running"
            time.sleep(0.2)
        assert vol in docker.ok("volume", "ls", "-q").split()
        assert docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip() == str(mountpoint)

        out = docker.ok("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                        "ls /data | grep -c '^f'; cat /data/f* | md5sum", timeout=120)
        count, digest = out.split()[0], out.split()[1]
        assert int(count) == FILES
        assert digest == _expected_digest()
        # The same, seen from the host.
        names = {n for n in os.listdir(mountpoint) if n.startswith("f")}
        assert len(names) == FILES
        assert (mountpoint / "f9999").read_text() == "file 9999\n"

        # The stopped writer still uses the volume: neither prune may remove it.
        for args in (["volume", "prune", "-f"], ["volume", "prune", "-a", "-f"]):
            res = docker(*args)
            assert res.returncode == 0, describe(res)
            assert vol not in res.stdout.split(), res.stdout
            assert vol in docker.ok("volume", "ls", "-q").split()
        assert len([n for n in os.listdir(mountpoint) if n.startswith("f")]) == FILES

        res = docker("volume", "rm", vol)
        assert res.returncode != 0 and "volume is in use" in res.stderr, describe(res)
        docker.ok("rm", writer)
        docker.ok("volume", "rm", vol)
        assert not mountpoint.exists()
