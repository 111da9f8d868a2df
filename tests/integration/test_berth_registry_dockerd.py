"""berth-registry against the real docker CLI and a private dockerd 20.10: login with
htpasswd credentials, push, remove, pull (the course's 8.4 flow, from Docker's side)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[2]
DOCKERD = "/usr/sbin/dockerd"
DOCKER = shutil.which("docker")
ROOTFS = REPO / "build" / "busybox-rootfs.tar"
REGISTRY = str(Path(sys.executable).with_name("berth-registry"))

pytestmark = [
    pytest.mark.skipif(not os.path.exists(DOCKERD) or DOCKER is None,
                       reason="dockerd or the docker CLI is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.timeout(180),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dockerd:
    """A private dockerd in its own directory (copied, trimmed, from the e2e suite's),
    stopped by PID and cleaned up after."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="brdk-", dir="/tmp"))  # short: AF_UNIX path
        self.sock = self.dir / "d.sock"
        (self.dir / "daemon.json").write_text("{}\n")
        (self.dir / "config").mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(self.dir / "config")}

    def docker(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        return subprocess.run([DOCKER, *args], env=self.env, input=stdin, capture_output=True,
                              text=True, timeout=120)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.docker(*args, stdin=stdin)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self) -> None:
        log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--config-file", str(self.dir / "daemon.json"),
             "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "-H", f"unix://{self.sock}", "--pidfile", str(self.dir / "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
             "--ip-masq=false"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.docker("version").returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError("dockerd did not start:\n"
                           + (self.dir / "dockerd.log").read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in _pids_under(str(self.dir)):  # a containerd that outlived dockerd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for target in sorted((p for p in points if p.startswith(str(self.dir))), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pids_under(prefix: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if prefix in cmdline:
                pids.append(int(name))
    return pids


@pytest.fixture
def dockerd() -> Iterator[Dockerd]:
    d = Dockerd()
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture(params=["basic", "token"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"alice:{hashed.replace('$2b$', '$2y$', 1)}\n")
    flags = ["--htpasswd", str(tmp_path / "htpasswd")]
    if request.param == "token":
        key = ec.generate_private_key(ec.SECP256R1())
        (tmp_path / "token.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        flags += ["--token-key", str(tmp_path / "token.key")]
    port = _free_port()
    log = open(tmp_path / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY, "serve", "--addr", f"127.0.0.1:{port}",
                             "--root", str(tmp_path / "root"), *flags], stdout=log, stderr=log)
    log.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not ROOTFS.exists(), reason="no build/busybox-rootfs.tar (scripts/setup)")
def test_dockerd_login_push_pull(dockerd: Dockerd, registry: str) -> None:
    image = f"{registry}/course/busybox:1"
    dockerd.ok("import", "--change", 'CMD ["sh"]', str(ROOTFS), image)
    done = dockerd.docker("push", image)
    assert done.returncode != 0
    assert any(words in done.stderr for words in  # Basic; Bearer (an anonymous token)
               ("no basic auth credentials", "requested access to the resource is denied"))
    done = dockerd.docker("login", "-u", "alice", "--password-stdin", registry, stdin="wrong")
    assert done.returncode != 0
    dockerd.ok("login", "-u", "alice", "--password-stdin", registry, stdin="s3cret")
    out = dockerd.ok("push", image)
    pushed = [w for w in out.split() if w.startswith("sha256:")]
    assert pushed, out
    dockerd.ok("rmi", image)
    dockerd.ok("pull", image)
    digests = dockerd.ok("image", "inspect", "--format", "{{json .RepoDigests}}", image)
    assert pushed[0] in digests
    dockerd.ok("logout", registry)
    done = dockerd.docker("pull", image)
    assert done.returncode != 0
