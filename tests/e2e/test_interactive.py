"""`docker run -it`: a shell on a terminal, driven through tmux."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("busybox")


class Tmux:
    """A tmux server of our own (private socket), holding one session."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"berth-{uuid.uuid4().hex[:10]}"
        self.session = "it"
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
        )

    def start(self, command: str) -> None:
        res = self.run("new-session", "-d", "-s", self.session, "-x", "120", "-y", "40", command)
        assert res.returncode == 0, res.stderr

    def send(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session).returncode == 0

    def wait_for_line(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if any(line.strip() == text for line in screen.splitlines()):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on a line of its own; screen:\n{screen}")

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux(docker_env: dict[str, str]) -> Iterator[Tmux]:
    t = Tmux(docker_env)
    yield t
    t.kill()


@pytest.mark.timeout(90)
def test_interactive_shell_on_a_tty(tmux: Tmux, berth_root: Path) -> None:
    status_file = berth_root / f"it-status-{uuid.uuid4().hex[:8]}"
    host = tmux.env["DOCKER_HOST"]
    docker_cmd = f"env DOCKER_HOST={shlex.quote(host)} docker run -it --rm busybox sh"
    tmux.start(f"{docker_cmd}; echo $? > {shlex.quote(str(status_file))}")
    # The prompt of busybox sh as root, on a terminal.
    tmux.wait_for_line("/ #")
    tmux.send("tty; echo $((6*7))", "Enter")
    screen = tmux.wait_for_line("42")
    assert any(line.strip().startswith("/dev/pts/") for line in screen.splitlines()), screen
    tmux.send("exit", "Enter")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "docker run -it did not end after exit:\n" + tmux.screen()
    assert status_file.read_text().strip() == "0"


@pytest.mark.timeout(90)
def test_interactive_exit_status_and_window_size(tmux: Tmux, berth_root: Path) -> None:
    status_file = berth_root / f"it-status-{uuid.uuid4().hex[:8]}"
    host = tmux.env["DOCKER_HOST"]
    docker_cmd = f"env DOCKER_HOST={shlex.quote(host)} docker run -it --rm busybox sh"
    tmux.start(f"{docker_cmd}; echo $? > {shlex.quote(str(status_file))}")
    tmux.wait_for_line("/ #")
    # The terminal's size reaches the container (the CLI resizes the tty on attach).
    size = tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_height} #{pane_width}")
    tmux.send("stty size", "Enter")
    tmux.wait_for_line(size.stdout.strip())
    tmux.send("exit 3", "Enter")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), tmux.screen()
    assert status_file.read_text().strip() == "3"
