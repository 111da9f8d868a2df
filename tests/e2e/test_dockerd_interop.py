"""Interop with real dockerd: an archive `docker save`d by dockerd 20.10 loads into berth
and runs; an image saved by berth loads into a private dockerd (when one is installed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dockerd-20.10-save.tar"
DOCKERD = "/usr/sbin/dockerd"


def test_archive_saved_by_dockerd_loads_and_runs(docker: Cli) -> None:
    out = docker.ok("load", "-i", str(FIXTURE), timeout=120)
    assert "Loaded image: berth-fixture/busybox:1" in out
    try:
        assert docker.ok("run", "--rm", "berth-fixture/busybox:1", "echo", "from dockerd").strip() == "from dockerd"
        history = docker.ok("history", "--no-trunc", "berth-fixture/busybox:1")
        assert "berth test fixture: static busybox" in history
    finally:
        docker("rmi", "berth-fixture/busybox:1")


class Dockerd:
    """A private dockerd in its own directory, stopped by PID and cleaned up after."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bdkd-", dir="/tmp"))  # short: AF_UNIX path
        self.sock = self.dir / "d.sock"
        (self.dir / "daemon.json").write_text("{}\n")
        (self.dir / "config").mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cli = Cli("docker", {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                  "DOCKER_HOST": f"unix://{self.sock}",
                                  "DOCKER_CONFIG": str(self.dir / "config")})

    def start(self) -> None:
        log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--config-file", str(self.dir / "daemon.json"),
             "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "-H", f"unix://{self.sock}", "--pidfile", str(self.dir / "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
             "--ip-masq=false"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.cli("version").returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError("dockerd did not start:\n" + self.log_tail())

    def log_tail(self) -> str:
        try:
            return (self.dir / "dockerd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID (dockerd stops the containerd it started), then clean the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in _pids_under(str(self.dir)):  # a containerd or shim that outlived dockerd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for target in sorted(_mounts_under(str(self.dir)), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _pids_under(prefix: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if prefix in cmdline:
            pids.append(int(name))
    return pids


@pytest.fixture
def dockerd() -> Iterator[Dockerd]:
    if not os.path.exists(DOCKERD):
        pytest.skip(f"{DOCKERD} is not installed")
    d = Dockerd()
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.mark.timeout(180)
def test_image_saved_by_berth_loads_into_dockerd(docker: Cli, busybox: str, dockerd: Dockerd,
                                                  tmp_path: Path) -> None:
    docker.ok("tag", busybox, "berth-export/busybox:1")
    archive = tmp_path / "busybox.tar"
    try:
        docker.ok("save", "-o", str(archive), "berth-export/busybox:1", timeout=120)
    finally:
        docker("rmi", "berth-export/busybox:1")
    res = dockerd.cli("load", "-i", str(archive), timeout=120)
    assert res.returncode == 0, describe(res) + "\n" + dockerd.log_tail()
    assert "Loaded image: berth-export/busybox:1" in res.stdout
    listed = dockerd.cli.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    berth_id = docker.ok("image", "inspect", "-f", "{{.Id}}", busybox).strip()
    assert f"berth-export/busybox:1 {berth_id[len('sha256:'):][:12]}" in listed.splitlines()
    res = dockerd.cli("run", "--rm", "berth-export/busybox:1", "true", timeout=120)
    assert res.returncode == 0, describe(res) + "\n" + dockerd.log_tail()
