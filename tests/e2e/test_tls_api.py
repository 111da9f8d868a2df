"""The Engine API over TCP with TLS (issue 19): berthd with --tlsverify serves the docker
CLI (DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, and the --tls* flags), docker-py's TLSConfig and
berth with a client certificate from its CA; refuses a client certificate from another
CA and answers plain HTTP with Go's 400; refuses to start with a key that is not its
certificate's, or on a TCP address off loopback without TLS. Certificates come from
scripts/make-certs. Every listener is on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from helpers.cli import Cli, describe
from helpers.daemon import BERTH, REPO, BerthDaemon, docker_environment, private_daemon

MAKE_CERTS = REPO / "scripts" / "make-certs"


@dataclass
class TLSDaemon:
    daemon: BerthDaemon
    tcp: str  # tcp://127.0.0.1:PORT
    certs: Path  # ca.pem, cert.pem, key.pem (the client's), server-cert.pem, server-key.pem
    other: Path  # the same made by another CA
    base_env: dict[str, str]  # DOCKER_HOST etc. removed: each test says what it uses

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(extra)
        return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_certs(out: Path) -> Path:
    res = subprocess.run([str(MAKE_CERTS), "--out", str(out), "127.0.0.1", "localhost"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def tls_daemon(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> Iterator[TLSDaemon]:
    base = berth_root / f"tls{uuid.uuid4().hex[:6]}"
    certs = _make_certs(base / "certs")
    other = _make_certs(base / "other")
    port = _free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    with private_daemon(berth_root, berthd, busybox_tar, "-H", tcp, "--tlsverify",
                        "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server-cert.pem"),
                        "--tlskey", str(certs / "server-key.pem"), prefix="tls") as (daemon, docker):
        env = dict(docker.env)
        for var in ("DOCKER_HOST", "BERTH_HOST"):
            env.pop(var)
        yield TLSDaemon(daemon, tcp, certs, other, env)
    shutil.rmtree(base, ignore_errors=True)


def test_docker_cli_with_docker_tls_verify_and_cert_path(tls_daemon: TLSDaemon) -> None:
    docker = Cli("docker", tls_daemon.env(DOCKER_HOST=tls_daemon.tcp, DOCKER_TLS_VERIFY="1",
                                          DOCKER_CERT_PATH=str(tls_daemon.certs)))
    assert docker.ok("version", "-f", "{{.Server.APIVersion}}").strip()
    # attach is a hijacked connection: it too goes over TLS
    assert docker.ok("run", "--rm", "busybox", "echo", "over tls") == "over tls\n"
    assert docker.ok("run", "--rm", "-i", "busybox", "cat", input="stdin over tls\n") == "stdin over tls\n"


def test_docker_cli_with_tls_flags(tls_daemon: TLSDaemon) -> None:
    c = tls_daemon.certs
    docker = Cli("docker", tls_daemon.env())
    out = docker.ok("-H", tls_daemon.tcp, "--tlsverify", "--tlscacert", str(c / "ca.pem"),
                    "--tlscert", str(c / "cert.pem"), "--tlskey", str(c / "key.pem"), "info", "-f", "{{.ID}}")
    assert out.strip()


def test_a_client_certificate_from_another_ca_is_refused(tls_daemon: TLSDaemon, tmp_path: Path) -> None:
    # trusts the daemon's CA, but shows a certificate another CA signed
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(tls_daemon.certs / "ca.pem", mixed / "ca.pem")
    shutil.copy(tls_daemon.other / "cert.pem", mixed / "cert.pem")
    shutil.copy(tls_daemon.other / "key.pem", mixed / "key.pem")
    name = f"tlsno-{uuid.uuid4().hex[:6]}"
    docker = Cli("docker", tls_daemon.env(DOCKER_HOST=tls_daemon.tcp, DOCKER_TLS_VERIFY="1",
                                          DOCKER_CERT_PATH=str(mixed)))
    res = docker("create", "--name", name, "busybox")
    assert res.returncode != 0, describe(res)
    # the handshake's alert reaches the client, as from dockerd
    assert "remote error: tls: unknown certificate authority" in res.stderr, describe(res)
    # and with no client certificate at all
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tls_daemon.certs / "ca.pem", bare / "ca.pem")
    res = Cli("docker", tls_daemon.env(DOCKER_HOST=tls_daemon.tcp, DOCKER_TLS_VERIFY="1",
                                       DOCKER_CERT_PATH=str(bare)))("create", "--name", name, "busybox")
    assert res.returncode != 0, describe(res)
    assert "remote error: tls: certificate required" in res.stderr, describe(res)
    # nothing was made
    trusted = Cli("docker", tls_daemon.env(DOCKER_HOST=tls_daemon.tcp, DOCKER_TLS_VERIFY="1",
                                           DOCKER_CERT_PATH=str(tls_daemon.certs)))
    assert name not in trusted.ok("ps", "-a", "--format", "{{.Names}}").split()


def test_plain_http_to_the_tls_port_is_answered_as_go_does(tls_daemon: TLSDaemon) -> None:
    docker = Cli("docker", tls_daemon.env(DOCKER_HOST=tls_daemon.tcp))
    res = docker("ps")
    assert res.returncode != 0, describe(res)
    assert "Client sent an HTTP request to an HTTPS server." in res.stderr, describe(res)
    with socket.create_connection(("127.0.0.1", int(tls_daemon.tcp.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def test_docker_py_tls_config(tls_daemon: TLSDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    import docker

    # requests puts these bundles before the client's own CA
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    c = tls_daemon.certs
    tls = docker.tls.TLSConfig(client_cert=(str(c / "cert.pem"), str(c / "key.pem")),
                               ca_cert=str(c / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url="https://" + tls_daemon.tcp[len("tcp://"):], tls=tls)
    try:
        assert client.ping() is True
        assert client.containers.run("busybox", ["echo", "docker-py over tls"], remove=True) == b"docker-py over tls\n"
    finally:
        client.close()
    untrusted = docker.tls.TLSConfig(client_cert=(str(tls_daemon.other / "cert.pem"), str(tls_daemon.other / "key.pem")),
                                     ca_cert=str(c / "ca.pem"), verify=True)
    # (a fixed version: docker-py would ask the daemon for one in the constructor)
    refused = docker.DockerClient(base_url="https://" + tls_daemon.tcp[len("tcp://"):], tls=untrusted,
                                  version="1.45")
    try:
        with pytest.raises(requests.exceptions.ConnectionError):  # its SSLError is one
            refused.ping()
    finally:
        refused.close()


def test_berth_speaks_tls_as_the_docker_cli(tls_daemon: TLSDaemon) -> None:
    c = tls_daemon.certs
    berth = Cli(str(BERTH), tls_daemon.env(DOCKER_HOST=tls_daemon.tcp, DOCKER_TLS_VERIFY="1",
                                           DOCKER_CERT_PATH=str(c)))
    assert berth.ok("run", "--rm", "busybox", "echo", "berth over tls") == "berth over tls\n"
    assert berth.ok("run", "--rm", "-i", "busybox", "cat", input="berth stdin\n") == "berth stdin\n"
    flags = Cli(str(BERTH), tls_daemon.env())
    out = flags.ok("-H", tls_daemon.tcp, "--tlsverify", "--tlscacert", str(c / "ca.pem"),
                   "--tlscert", str(c / "cert.pem"), "--tlskey", str(c / "key.pem"), "version", "-f",
                   "{{.Server.APIVersion}}")
    assert out.strip()
    plain = Cli(str(BERTH), tls_daemon.env(DOCKER_HOST=tls_daemon.tcp))("ps")
    assert plain.returncode != 0
    assert "Client sent an HTTP request to an HTTPS server." in plain.stderr, describe(plain)
    other = Cli(str(BERTH), tls_daemon.env(DOCKER_HOST=tls_daemon.tcp))(
        "--tlsverify", "--tlscacert", str(c / "ca.pem"), "--tlscert", str(tls_daemon.other / "cert.pem"),
        "--tlskey", str(tls_daemon.other / "key.pem"), "ps")
    assert other.returncode != 0
    assert "check your TLS client certification settings: remote error: tls: unknown certificate authority" in other.stderr, \
        describe(other)
    # the daemon's certificate is checked too: against another CA it does not verify
    wrong_ca = Cli(str(BERTH), tls_daemon.env(DOCKER_HOST=tls_daemon.tcp))(
        "--tlsverify", "--tlscacert", str(tls_daemon.other / "ca.pem"), "ps")
    assert wrong_ca.returncode != 0
    assert "tls: failed to verify certificate" in wrong_ca.stderr, describe(wrong_ca)


def _start_refused(berth_root: Path, berthd: BerthDaemon, *args: str) -> str:
    daemon = BerthDaemon(berth_root, marker=berthd.marker, name=f"tlsbad{uuid.uuid4().hex[:6]}",
                         extra_args=list(args))
    proc = daemon.launch()
    try:
        status = proc.wait(timeout=30)
    finally:
        daemon.stop()
    assert status != 0, daemon.log_tail()
    assert not Path(daemon.socket_path).exists()
    return daemon.log_tail()


def test_tcp_off_loopback_without_tls_is_refused_at_start(berth_root: Path, berthd: BerthDaemon) -> None:
    # refused before it binds: nothing listens on 0.0.0.0 even for a moment
    log = _start_refused(berth_root, berthd, "-H", "tcp://0.0.0.0:2375")
    assert "berthd: refusing to listen on tcp://0.0.0.0:2375 without --tlsverify" in log
    assert "'--tls=false'" in log


def test_a_key_that_is_not_the_certificates_is_refused_at_start(berth_root: Path, berthd: BerthDaemon,
                                                                 tmp_path: Path) -> None:
    a, b = _make_certs(tmp_path / "a"), _make_certs(tmp_path / "b")
    log = _start_refused(berth_root, berthd, "-H", f"tcp://127.0.0.1:{_free_port()}", "--tlsverify",
                         "--tlscacert", str(a / "ca.pem"), "--tlscert", str(a / "server-cert.pem"),
                         "--tlskey", str(b / "server-key.pem"))
    assert "invalid TLS configuration: error reading X509 key pair" in log
    assert "tls: private key does not match public key" in log



def test_plain_tcp_said_on_purpose_starts_with_warnings(berth_root: Path, berthd: BerthDaemon,
                                                         busybox_tar: Path) -> None:
    tcp = f"tcp://127.0.0.1:{_free_port()}"
    with private_daemon(berth_root, berthd, busybox_tar, "-H", tcp, "--tls=false", prefix="tlsoff") as (daemon, _):
        docker = Cli("docker", {**docker_environment(daemon, berth_root / f"{daemon.name}-docker-config"),
                                "DOCKER_HOST": tcp})
        warnings = docker.ok("info", "-f", "{{json .Warnings}}")
        assert f"API is accessible on http://{tcp[len('tcp://'):]} without encryption." in warnings
        log = daemon.log_tail()
        assert "Binding to IP address without --tlsverify is insecure" in log
        assert "TLS client verification is off on purpose (--tls=false)" in log
