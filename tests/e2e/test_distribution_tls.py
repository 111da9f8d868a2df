"""TLS to a registry that is not on loopback, trusted through certs.d (issue 16).

Docker (and berth) treat loopback registries as insecure: they would never check a
certificate there. So this registry runs in a network namespace of the test's own,
at 10.213.N.2 over a veth pair, serving TLS with a certificate from the test's CA:
- with no CA in certs.d, the pull is refused naming the certificate problem;
- with `/etc/berth/certs.d/10.213.N.2:PORT/ca.crt`, login, push and pull work;
- a registry that asks for a client certificate gets `client.cert`/`client.key` from
  the same directory (Docker's layout, also read from /etc/docker/certs.d).
Everything the test made (namespace, veth, certs.d directory, registry) is removed."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.processes import terminate
from helpers.registries import BERTH_REGISTRY, Credentials, Tls, make_tls, write_htpasswd

CERTS_D = Path("/etc/berth/certs.d")
PORT = 5443


@dataclass
class NetnsRegistry:
    addr: str  # "10.213.N.2:5443"
    tls: Tls
    credentials: Credentials


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def _netns_registry(tmp_path: Path, client_certs: bool) -> Iterator[NetnsRegistry]:
    tag = uuid.uuid4().hex[:6]
    netns, host_if, peer_if = f"bdreg-{tag}", f"bdr{tag}", f"bdp{tag}"
    subnet = random.randrange(1, 250)
    host_ip, reg_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls", ips=(reg_ip,))
    creds = Credentials("alice", "s3cret-" + tag)
    write_htpasswd(tmp_path / "htpasswd", [creds])
    proc: subprocess.Popen[bytes] | None = None
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", netns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", netns, "addr", "add", f"{reg_ip}/30", "dev", peer_if)
        _ip("-n", netns, "link", "set", peer_if, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        cmd = ["ip", "netns", "exec", netns, str(BERTH_REGISTRY), "serve", "-q",
               "--addr", f"{reg_ip}:{PORT}", "--root", str(tmp_path / "root"),
               "--htpasswd", str(tmp_path / "htpasswd"),
               "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        if client_certs:
            cmd += ["--tls-client-ca", str(tls.ca_cert)]
        log = open(tmp_path / "registry.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(["ip", "netns", "exec", netns, "bash", "-c",
                                    f"exec 3<>/dev/tcp/{reg_ip}/{PORT}"], capture_output=True)
            if probe.returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "berth-registry did not listen in its namespace"
            time.sleep(0.1)
        yield NetnsRegistry(f"{reg_ip}:{PORT}", tls, creds)
    finally:
        if proc is not None:
            terminate(proc)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


@contextlib.contextmanager
def _certs_d(reg: NetnsRegistry, client: bool) -> Iterator[Path]:
    """The registry's directory in berth's certs.d: its CA, and the client pair if asked."""
    directory = CERTS_D / reg.addr
    made = [d for d in (CERTS_D.parent, CERTS_D) if not d.exists()]
    directory.mkdir(parents=True)
    try:
        shutil.copy(reg.tls.ca_cert, directory / "ca.crt")
        if client:
            shutil.copy(reg.tls.client_cert, directory / "client.cert")
            shutil.copy(reg.tls.client_key, directory / "client.key")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        for made_dir in reversed(made):  # the directories this test made, when left empty
            with contextlib.suppress(OSError):
                made_dir.rmdir()


def _cli(docker: Cli, config: Path) -> Cli:
    config.mkdir(exist_ok=True)
    return Cli("docker", dict(docker.env, DOCKER_CONFIG=str(config)))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client_certs", [False, True], ids=["server-tls", "client-certs"])
def test_a_registry_off_loopback_is_trusted_through_certs_d(docker: Cli, busybox: str, tmp_path: Path,
                                                            client_certs: bool) -> None:
    if CERTS_D.exists() and any(CERTS_D.iterdir()):
        pytest.skip(f"{CERTS_D} holds the host's own settings; this test will not touch it")
    with _netns_registry(tmp_path, client_certs) as reg:
        cli = _cli(docker, tmp_path / "config")
        name = f"{reg.addr}/secure/t{uuid.uuid4().hex[:8]}:1"
        res = cli("login", reg.addr, "-u", reg.credentials.username, "--password-stdin",
                  input=reg.credentials.password, timeout=60)
        assert res.returncode != 0, describe(res)
        assert "certificate" in res.stderr, describe(res)
        with _certs_d(reg, client_certs):
            out = cli.ok("login", reg.addr, "-u", reg.credentials.username, "--password-stdin",
                         input=reg.credentials.password, timeout=60)
            assert "Login Succeeded" in out
            cli.ok("tag", busybox, name)
            try:
                out = cli.ok("push", name, timeout=120)
                assert "1: digest: sha256:" in out
                cli.ok("rmi", name)
                out = cli.ok("pull", name, timeout=120)
                assert f"Status: Downloaded newer image for {name}" in out
                assert cli.ok("run", "--rm", name, "echo", "over verified tls").strip() == "over verified tls"
            finally:
                cli("rmi", "-f", name)
