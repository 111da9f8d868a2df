"""berth-registry against the real docker CLI and a private dockerd 20.10: login with
htpasswd credentials, push, remove, pull (the course's 8.4 flow, from Docker's side)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers.dockerd import DOCKERD, Dockerd, running_dockerd
from helpers.processes import terminate

REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture
def dockerd() -> Iterator[Dockerd]:
    with running_dockerd() as d:
        yield d


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
        terminate(proc)


@pytest.mark.skipif(not ROOTFS.exists(), reason="no build/busybox-rootfs.tar (scripts/setup)")
def test_dockerd_login_push_pull(dockerd: Dockerd, registry: str) -> None:
    image = f"{registry}/course/busybox:1"
    docker = dockerd.cli
    docker.ok("import", "--change", 'CMD ["sh"]', str(ROOTFS), image)
    done = docker("push", image, timeout=120)
    assert done.returncode != 0
    assert any(words in done.stderr for words in  # Basic; Bearer (an anonymous token)
               ("no basic auth credentials", "requested access to the resource is denied"))
    done = docker("login", "-u", "alice", "--password-stdin", registry, input="wrong")
    assert done.returncode != 0
    docker.ok("login", "-u", "alice", "--password-stdin", registry, input="s3cret")
    out = docker.ok("push", image, timeout=120)
    pushed = [w for w in out.split() if w.startswith("sha256:")]
    assert pushed, out
    docker.ok("rmi", image)
    docker.ok("pull", image, timeout=120)
    digests = docker.ok("image", "inspect", "--format", "{{json .RepoDigests}}", image)
    assert pushed[0] in digests
    docker.ok("logout", registry)
    done = docker("pull", image, timeout=120)
    assert done.returncode != 0
