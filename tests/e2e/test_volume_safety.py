"""A named volume's data survives the worst: its writer killed with SIGKILL, then berthd
killed with SIGKILL. A berthd restarted on the same data root serves the volume with every
file intact, and prune does not touch it while a stopped container still uses it.

Runs on a private berthd, so that killing it does not hurt the session's daemon."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe, import_image
from helpers.daemon import BerthDaemon, docker_environment

FILES = 10_000


@contextlib.contextmanager
def private_daemon(berth_root: Path, session: BerthDaemon,
                   busybox_tar: Path) -> Iterator[tuple[BerthDaemon, Cli]]:
    """A berthd of the test's own (it may kill it), with busybox imported; after the test
    its containers and volumes are removed and it is stopped."""
    daemon = BerthDaemon(berth_root, marker=session.marker, name=f"vs{uuid.uuid4().hex[:6]}")
    daemon.start()
    config = berth_root / f"{daemon.name}-docker-config"
    config.mkdir()
    docker = Cli("docker", docker_environment(daemon, config))
    try:
        res = import_image(docker, busybox_tar, "busybox:latest")
        assert res.returncode == 0, describe(res)
        yield daemon, docker
    finally:
        if daemon.proc is None or daemon.proc.poll() is not None:
            daemon.start()
        ids = docker("ps", "-aq").stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids)
        volumes = docker("volume", "ls", "-q").stdout.split()
        if volumes:
            docker("volume", "rm", "-f", *volumes)
        daemon.stop()


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
    with private_daemon(berth_root, berthd, busybox_tar) as (daemon, docker):
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
