"""berth's compose as the docker CLI's `compose` plugin (`berth-compose-plugin`), driven by
the real `docker` CLI with a private DOCKER_CONFIG whose cli-plugins/docker-compose links
to it: the metadata call (`docker info` lists the plugin), `docker compose version` and
`config` (no daemon needed), and the daemon address `docker compose` uses — `-H`,
DOCKER_HOST, `--context` and the context `docker context use` made current, each checked
by a listening socket at that address seeing the client's HTTP request."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.cli.plugin import EndpointError, docker_endpoint

PLUGIN = Path(sys.executable).with_name("berth-compose-plugin")
DOCKER = shutil.which("docker")

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")

COMPOSE_FILE = """\
services:
  web:
    image: busybox
    command: ["sh", "-c", "sleep 1d"]
    environment:
      GREETING: ${GREETING:-hello}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A docker CLI config dir with berth's compose as its compose plugin."""
    config = tmp_path / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(PLUGIN)
    return config


def _docker(config: Path, cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
            "DOCKER_CONFIG": str(config), "DOCKER_CLI_HINTS": "false"}
    assert DOCKER is not None
    return subprocess.run([DOCKER, *args], cwd=cwd, env={**base, **(env or {})}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def test_docker_lists_the_plugin_and_runs_version(config_dir: Path, tmp_path: Path) -> None:
    res = _docker(config_dir, tmp_path, "info", "--format", "{{json .ClientInfo.Plugins}}",
                  env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    plugins = {p["Name"]: p for p in json.loads(res.stdout)}
    assert plugins["compose"]["Vendor"] == "berth", res.stdout
    assert plugins["compose"]["Path"] == str(config_dir / "cli-plugins" / "docker-compose")
    assert "Err" not in plugins["compose"]
    res = _docker(config_dir, tmp_path, "compose", "version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("berth compose version ")
    res = _docker(config_dir, tmp_path, "compose", "version", "--short")
    assert res.returncode == 0 and res.stdout.strip() == plugins["compose"]["Version"]
    for args in (["compose", "--help"], ["help", "compose"]):
        res = _docker(config_dir, tmp_path, *args)
        assert res.returncode == 0 and "compose [OPTIONS] COMMAND" in res.stdout, res.stderr


def test_docker_compose_config_with_global_flags(config_dir: Path, tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    res = _docker(config_dir, project, "compose", "config", "--format", "json", env={"GREETING": "hi"})
    assert res.returncode == 0, res.stderr
    config = json.loads(res.stdout)
    assert config["name"] == "shop"
    assert config["services"]["web"]["environment"] == {"GREETING": "hi"}
    # docker's global flags come through to the plugin, ahead of "compose"
    other = tmp_path / "other-config"
    shutil.copytree(config_dir, other, symlinks=True)
    res = _docker(config_dir, project, "--config", str(other), "-D", "--log-level", "warn",
                  "compose", "-p", "named", "config", "--services")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["web"]
    res = _docker(config_dir, project, "compose", "-p", "named", "config", "--format", "json")
    assert json.loads(res.stdout)["name"] == "named"


# -- where the daemon is --------------------------------------------------------------


class _Listener:
    """A UNIX socket that answers every HTTP request with a 500 naming itself (or, silent,
    never answers) and remembers the request lines it got."""

    def __init__(self, path: str, silent: bool = False) -> None:
        self.path = path
        self.silent = silent
        self.requests: list[str] = []
        self.held: list[socket.socket] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.silent:
                self.held.append(conn)
                continue
            with conn:
                conn.settimeout(10)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                    body = json.dumps({"message": f"answered by {self.path}"}).encode()
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        self.sock.close()
        self.thread.join(timeout=10)
        for conn in self.held:
            conn.close()


@pytest.fixture
def listeners() -> Iterator[dict[str, _Listener]]:
    """Daemon addresses "a", "b" and "silent" (it never answers), in a short directory
    (AF_UNIX's path limit)."""
    base = tempfile.mkdtemp(prefix="cplug.", dir="/tmp")
    made = {name: _Listener(os.path.join(base, f"{name}.sock"), silent=name == "silent")
            for name in ("a", "b", "silent")}
    try:
        yield made
    finally:
        for listener in made.values():
            listener.close()
        shutil.rmtree(base, ignore_errors=True)


def _daemon_command(config_dir: Path, project: Path) -> list[str]:
    """A `docker compose` command that talks to the daemon (the first berth compose has)."""
    for words in (["ps"], ["down"]):
        res = _docker(config_dir, project, "-H", "unix:///nonexistent.sock", "compose", *words)
        if "unknown docker command" not in res.stderr:
            return words
    pytest.skip("berth compose has no subcommand that talks to the daemon yet")


def test_the_daemon_is_the_one_docker_would_use(config_dir: Path, tmp_path: Path,
                                                listeners: dict[str, _Listener]) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    words = _daemon_command(config_dir, project)
    a, b = listeners["a"], listeners["b"]

    def reaches(listener: _Listener, *args: str, env: dict[str, str] | None = None) -> None:
        before = len(listener.requests)
        res = _docker(config_dir, project, *args, "compose", *words, env=env)
        assert res.returncode != 0, res.stdout
        assert len(listener.requests) > before, f"nothing reached {listener.path}: {res.stderr!r}"

    reaches(a, "-H", f"unix://{a.path}")
    reaches(b, "--host", f"unix://{b.path}", env={"DOCKER_HOST": f"unix://{a.path}"})
    reaches(a, env={"DOCKER_HOST": f"unix://{a.path}"})
    made = _docker(config_dir, project, "context", "create", "bee", "--docker", f"host=unix://{b.path}")
    assert made.returncode == 0, made.stderr
    reaches(b, "--context", "bee", env={"DOCKER_HOST": f"unix://{a.path}"})
    reaches(b, env={"DOCKER_CONTEXT": "bee"})
    assert _docker(config_dir, project, "context", "use", "bee").returncode == 0
    reaches(b)
    reaches(a, env={"DOCKER_HOST": f"unix://{a.path}"})  # DOCKER_HOST wins over the current context
    res = _docker(config_dir, project, "--context", "nosuch", "compose", *words)
    assert res.returncode == 1 and 'context "nosuch": context not found' in res.stderr


def test_endpoint_rules_on_a_config_the_docker_cli_wrote(tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_CONFIG": str(config)}
    assert DOCKER is not None
    subprocess.run([DOCKER, "context", "create", "remote", "--docker", "host=tcp://10.0.0.9:2375"],
                   env=env, check=True, capture_output=True)
    assert docker_endpoint([], "", str(config), {}) == "unix:///var/run/docker.sock"
    assert docker_endpoint([], "remote", str(config), {}) == "tcp://10.0.0.9:2375"
    assert docker_endpoint([], "", str(config), {"DOCKER_CONTEXT": "remote"}) == "tcp://10.0.0.9:2375"
    assert docker_endpoint(["unix:///h"], "", str(config), {"DOCKER_CONTEXT": "remote"}) == "unix:///h"
    subprocess.run([DOCKER, "context", "use", "remote"], env=env, check=True, capture_output=True)
    assert docker_endpoint([], "", str(config), {}) == "tcp://10.0.0.9:2375"
    assert docker_endpoint([], "default", str(config), {}) == "unix:///var/run/docker.sock"
    with pytest.raises(EndpointError, match="cannot specify both --host and --context"):
        docker_endpoint(["unix:///h"], "remote", str(config), {})


def test_the_plugin_stops_when_docker_is_told_to(config_dir: Path, tmp_path: Path,
                                                 listeners: dict[str, _Listener]) -> None:
    """A SIGTERM to `docker` while its output is not a terminal: the CLI closes its plugin
    socket, and the plugin stops as on Ctrl-C (130) instead of waiting on for the daemon."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    words = _daemon_command(config_dir, project)
    silent = listeners["silent"]
    assert DOCKER is not None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DOCKER_CONFIG": str(config_dir), "DOCKER_HOST": f"unix://{silent.path}"}
    # a session of its own, so that the plugin too can be killed if it does not stop
    proc = subprocess.Popen([DOCKER, "compose", *words], cwd=project, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while not silent.held:  # the plugin is waiting for the daemon's answer
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)  # the plugin holds the pipes until it ends
        assert proc.returncode == 130
    finally:
        if proc.returncode is None:  # docker or its plugin did not stop
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
