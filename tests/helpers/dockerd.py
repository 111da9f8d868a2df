"""A private real dockerd (20.10, /usr/sbin/dockerd) for interop tests: its own data
root, exec root, socket, daemon.json and docker CLI config, started and stopped by PID.

dockerd is the oracle: a test that passes against it says what Docker users expect.
Nothing here kills processes by name; `stop()` ends the PID it started and then only
the exact PIDs whose command line names this daemon's private directory (the
containerd and shims it spawned), and unmounts what is left below that directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers.processes import terminate

from .cli import Cli

DOCKERD = "/usr/sbin/dockerd"


class Dockerd:
    """A private dockerd in its own directory, stopped by PID and cleaned up after.

    `daemon_json` is written to its config file as is (e.g. {"insecure-registries": [...]}).
    """

    def __init__(self, daemon_json: dict[str, Any] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bdkd-", dir="/tmp"))  # short: AF_UNIX path
        self.sock = self.dir / "d.sock"
        (self.dir / "daemon.json").write_text(json.dumps(daemon_json or {}) + "\n")
        self.config_dir = self.dir / "config"
        self.config_dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(self.config_dir),
                    "DOCKER_CLI_HINTS": "false"}
        self.cli = Cli("docker", self.env)
        self.bridge = f"bdk{os.urandom(4).hex()}"
        self.bridge_made = False

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> None:
        if not self.bridge_made:
            make_bridge(self.bridge)
            self.bridge_made = True
        log = open(self.dir / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            [DOCKERD, "--config-file", str(self.dir / "daemon.json"),
             "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "-H", f"unix://{self.sock}", "--pidfile", str(self.dir / "dockerd.pid"),
             # a bridge of its own: --bridge=none would delete the host dockerd's docker0
             f"--bridge={self.bridge}", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
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

    def kill9(self) -> None:
        """SIGKILL dockerd, then the containerd it started (by the PIDs naming our
        directory): a restarted dockerd 20.10 cannot take over an orphaned containerd."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in pids_under(str(self.dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while pids_under(str(self.dir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        # The killed containerd may stay a zombie (its new parent need not reap it), and
        # dockerd would wait for that "still running" pid forever.
        (self.dir / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)

    def log_tail(self) -> str:
        try:
            return (self.dir / "dockerd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID (dockerd stops the containerd it started), then clean the directory."""
        if self.proc is not None:
            terminate(self.proc, grace=30)
        for pid in pids_under(str(self.dir)):  # a containerd or shim that outlived dockerd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for target in sorted(mounts_under(str(self.dir)), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
            self.bridge_made = False


def make_bridge(name: str) -> None:
    """A bridge for dockerd's default network (dockerd wants a bridge it is given made, with
    its gateway address): on the first 10.198.N.0/24 that no route or address of the host's
    overlaps."""
    shown = "".join(subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
                    for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"]))
    taken = []
    for word in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", shown):
        with contextlib.suppress(ValueError):
            if (net := ipaddress.IPv4Network(word, strict=False)).prefixlen > 0:
                taken.append(net)
    for n in range(256):
        subnet = ipaddress.IPv4Network(f"10.198.{n}.0/24")
        if not any(subnet.overlaps(t) for t in taken):
            break
    else:
        raise RuntimeError("no free /24 in 10.198.0.0/16 for dockerd's bridge")
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{subnet.network_address + 1}/24", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)


def mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def pids_under(prefix: str) -> list[int]:
    """PIDs whose command line names `prefix` (our private directory), never our own."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if prefix in cmdline:
            pids.append(int(name))
    return pids


@contextmanager
def running_dockerd(daemon_json: dict[str, Any] | None = None) -> Iterator[Dockerd]:
    """A started private dockerd, stopped and removed afterwards; skips if none is installed."""
    if not os.path.exists(DOCKERD):
        pytest.skip(f"{DOCKERD} is not installed")
    d = Dockerd(daemon_json)
    try:
        d.start()
        yield d
    finally:
        d.stop()


# Which engine a distribution test drives.

ENGINE_VAR = "BERTH_TEST_ENGINE"


def oracle_mode() -> bool:
    """True when BERTH_TEST_ENGINE=dockerd: tests that accept an `Engine` run against a
    private dockerd instead of berthd, to show that what they expect is Docker's way."""
    return os.environ.get(ENGINE_VAR, "berthd") == "dockerd"


@dataclass
class Engine:
    """A daemon under test and the docker CLI pointed at it.

    `kind` is "berthd" or "dockerd"; `host` is its DOCKER_HOST (for docker-py);
    `data_root` is berthd's data root (None for dockerd, whose store we do not read).
    """

    kind: str
    cli: Cli
    host: str
    data_root: Path | None = None
    berth: Cli | None = None  # the berth CLI, for berthd

    def cli_with_config(self, config_dir: Path) -> Cli:
        """The docker CLI with a DOCKER_CONFIG of its own: logins stay in that directory."""
        config_dir.mkdir(parents=True, exist_ok=True)
        return Cli(self.cli.program, {**self.cli.env, "DOCKER_CONFIG": str(config_dir)})

    def berth_with_config(self, config_dir: Path) -> Cli | None:
        if self.berth is None:
            return None
        config_dir.mkdir(parents=True, exist_ok=True)
        return Cli(self.berth.program, {**self.berth.env, "DOCKER_CONFIG": str(config_dir)})
