"""A private berthd for tests: its own data root, exec root, pidfile, socket and log.

`BerthDaemon.start()` launches `.venv/bin/berthd` as dockerd would be launched and
waits for GET /_ping to answer; `stop()` sends SIGTERM to that one PID and, if it does
not exit in time, SIGKILL. Nothing here kills processes by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .api import request
from .cli import Cli, describe, import_image
from .leakcheck import MARKER_VAR

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
BERTHD = VENV_BIN / "berthd"
BERTH = VENV_BIN / "berth"

# Environment variables that would point a docker CLI somewhere else than our daemon.
_FOREIGN_DOCKER_ENV = (
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_API_VERSION",
    "DOCKER_DEFAULT_PLATFORM",
)


class DaemonStartError(RuntimeError):
    pass


@dataclass
class BerthDaemon:
    """One berthd process and the directories it owns, all under `root`."""

    root: Path
    marker: str  # a value put in berthd's environment to recognise its processes
    name: str = "berthd"
    data_root: Path = field(init=False)
    exec_root: Path = field(init=False)
    pidfile: Path = field(init=False)
    socket_path: str = field(init=False)
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    extra_args: list[str] = field(default_factory=list)
    # each daemon gets a default bridge of its own, removed when it stops
    bridge: str = field(default_factory=lambda: f"bt{uuid.uuid4().hex[:8]}")
    # the berthd to run and what to add to its environment: this worktree's by default,
    # an older commit's source in the upgrade test
    program: list[str] = field(default_factory=lambda: [str(BERTHD)])
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_root = self.root / f"{self.name}-data"
        self.exec_root = self.root / f"{self.name}-exec"
        self.pidfile = self.root / f"{self.name}.pid"
        self.socket_path = str(self.root / f"{self.name}.sock")
        self.log_path = self.root / f"{self.name}.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        return [
            *self.program,
            "-H",
            self.host,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            *([] if any(a.startswith(("--bridge", "-b")) for a in self.extra_args) else [f"--bridge={self.bridge}"]),
            *self.extra_args,
        ]

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to serve."""
        if len(self.socket_path.encode()) > 100:
            raise DaemonStartError(f"socket path too long for AF_UNIX: {self.socket_path}")
        env = dict(os.environ)
        env.update(self.extra_env)
        env[MARKER_VAR] = self.marker
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a ^C in the terminal goes to pytest, not berthd
            )
        return self.proc

    def start(self, timeout: float = 15.0) -> None:
        if not BERTHD.exists():
            raise DaemonStartError(f"{BERTHD} does not exist (is the venv installed?)")
        proc = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonStartError(
                    f"berthd exited with status {proc.returncode} before serving\n"
                    + self.log_tail()
                )
            if self.ping():
                return
            time.sleep(0.1)
        raise DaemonStartError(
            f"berthd did not answer GET /_ping on {self.socket_path} within {timeout} s\n"
            + self.log_tail()
        )

    def ping(self) -> bool:
        try:
            return request(self.socket_path, "GET", "/_ping", timeout=2).status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit status (None if never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"berthd (pid {proc.pid}) ignored SIGTERM for {timeout} s; sending SIGKILL",
                    file=sys.stderr,
                )
                proc.kill()
                proc.wait(timeout=10)
        self.remove_bridge()
        return proc.returncode

    def remove_bridge(self) -> None:
        """What dockerd would leave standing (its default bridge and that bridge's
        firewall rules) goes too: a test leaves nothing behind."""
        from berth.network.firewall import Firewall

        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        try:
            Firewall().remove_network(self.bridge)
        except Exception as e:  # noqa: BLE001 - cleanup is best effort, and said
            print(f"removing {self.bridge}'s firewall rules: {e}", file=sys.stderr)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 20_000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        if len(data) > limit:
            data = b"[...]\n" + data[-limit:]
        return data.decode(errors="replace")

    def log_tail(self, limit: int = 8_000) -> str:
        text = self.log_since(0, limit)
        return f"--- {self.log_path} ---\n{text}--- end of log ---"


def docker_environment(daemon: BerthDaemon, config_dir: Path) -> dict[str, str]:
    """os.environ pointed at the daemon, for the docker CLI and berth."""
    env = dict(os.environ)
    for var in _FOREIGN_DOCKER_ENV:
        env.pop(var, None)
    env["DOCKER_HOST"] = daemon.host
    env["BERTH_HOST"] = daemon.host
    env["DOCKER_CONFIG"] = str(config_dir)  # no contexts or credentials from ~/.docker
    env["DOCKER_CLI_HINTS"] = "false"
    env["XDG_CACHE_HOME"] = str(config_dir / "cache")  # berth compose's cache, not the user's
    return env


@contextlib.contextmanager
def private_daemon(root: Path, session: BerthDaemon, busybox_tar: Path, *extra_args: str,
                   prefix: str = "pd") -> Iterator[tuple[BerthDaemon, Cli]]:
    """A berthd of the test's own (the test may stop or kill it), with busybox imported
    and a docker CLI pointed at it. Afterwards it is started again if need be, its
    containers (with their anonymous volumes) and volumes are removed, and it is stopped."""
    daemon = BerthDaemon(root, marker=session.marker, name=f"{prefix}{uuid.uuid4().hex[:6]}",
                         extra_args=list(extra_args))
    daemon.start()
    config = root / f"{daemon.name}-docker-config"
    config.mkdir()
    docker = Cli("docker", docker_environment(daemon, config))
    try:
        res = import_image(docker, busybox_tar, "busybox:latest")
        assert res.returncode == 0, describe(res)
        yield daemon, docker
    finally:
        if not daemon.ping():
            daemon.start()
        ids = docker("ps", "-aq").stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids)
        volumes = docker("volume", "ls", "-q").stdout.split()
        if volumes:
            docker("volume", "rm", "-f", *volumes)
        daemon.stop()
