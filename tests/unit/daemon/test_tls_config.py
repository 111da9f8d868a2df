"""berthd's TLS settings (dockerd's flags and daemon.json keys), the rule about TCP
listeners without client verification, and the server's TLS context: a key that is
not its certificate's is refused before anything starts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, DaemonConfig, parse_args
from berth.daemon.listeners import check_tcp_host, server_tls_context, split_tcp_host

REPO = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, doc: dict[str, object], *flags: str) -> DaemonConfig:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return parse_args(["--config-file", str(path), *flags])


def test_tls_is_unset_unless_said(tmp_path: Path) -> None:
    config = _config(tmp_path, {})
    assert (config.tls, config.tlsverify) == (None, None)


@pytest.mark.parametrize(("flags", "expected"), [
    (["--tlsverify"], (True, True)),
    (["--tls"], (True, True)),  # dockerd: --tls verifies clients unless --tlsverify=false
    (["--tls", "--tlsverify=false"], (True, False)),
    (["--tlsverify=false"], (True, False)),  # any --tlsverify turns TLS on
    (["--tls=false"], (False, False)),
])
def test_flags_as_dockerd_reads_them(tmp_path: Path, flags: list[str], expected: tuple[bool, bool]) -> None:
    config = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:2376", *flags)
    assert (config.tls, config.tlsverify) == expected


def test_daemon_json_keys(tmp_path: Path) -> None:
    config = _config(tmp_path, {"hosts": ["tcp://127.0.0.1:2376"], "tlsverify": True, "tlscacert": "/c/ca.pem",
                                "tlscert": "/c/server.pem", "tlskey": "/c/server-key.pem"})
    assert (config.tls, config.tlsverify) == (True, True)
    assert (config.tlscacert, config.tlscert, config.tlskey) == ("/c/ca.pem", "/c/server.pem", "/c/server-key.pem")


def test_a_flag_and_the_file_both_setting_tls_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="specified both as a flag and in the configuration file: tlsverify"):
        _config(tmp_path, {"tlsverify": True}, "--tlsverify")


def test_default_files_are_in_docker_cert_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    config = _config(tmp_path, {}, "--tlsverify")
    assert (config.tlscacert, config.tlscert, config.tlskey) == ("/certs/ca.pem", "/certs/cert.pem", "/certs/key.pem")
    assert config.hosts == ["tcp://localhost:2376"]  # dockerd's host with --tls and no -H


@pytest.mark.parametrize("host", ["tcp://0.0.0.0:2375", "tcp://192.0.2.7:2375"])
def test_tcp_off_loopback_without_tls_is_refused_naming_tls_false(tmp_path: Path, host: str) -> None:
    config = _config(tmp_path, {}, "-H", host)
    with pytest.raises(ConfigError, match=r"--tls=false"):
        check_tcp_host(config, host)


@pytest.mark.parametrize("flags", [["--tls=false"], ["--tlsverify=false"], ["--tlsverify"]])
def test_tcp_off_loopback_is_allowed_when_said(tmp_path: Path, flags: list[str]) -> None:
    config = _config(tmp_path, {}, "-H", "tcp://0.0.0.0:2375", *flags)
    check_tcp_host(config, "tcp://0.0.0.0:2375")


def test_loopback_without_tls_is_allowed_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:2375")
    check_tcp_host(config, "tcp://127.0.0.1:2375")
    assert "without --tlsverify is insecure" in caplog.text


def test_split_tcp_host() -> None:
    assert split_tcp_host("tcp://0.0.0.0:2375") == ("0.0.0.0", 2375)
    assert split_tcp_host("tcp://[::1]:2376") == ("::1", 2376)
    assert split_tcp_host("tcp://localhost") == ("localhost", 2375)
    assert split_tcp_host("tcp://:2376") == ("127.0.0.1", 2376)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run([str(REPO / "scripts" / "make-certs"), "--out", str(out / "a"), "127.0.0.1"],
                   check=True, capture_output=True)
    subprocess.run([str(REPO / "scripts" / "make-certs"), "--out", str(out / "b"), "127.0.0.1"],
                   check=True, capture_output=True)
    return out


def test_server_context_loads_make_certs_output(tmp_path: Path, certs: Path) -> None:
    a = certs / "a"
    config = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", str(a / "ca.pem"),
                     "--tlscert", str(a / "server-cert.pem"), "--tlskey", str(a / "server-key.pem"))
    assert server_tls_context(config) is not None


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path, certs: Path) -> None:
    a, b = certs / "a", certs / "b"
    config = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", str(a / "ca.pem"),
                     "--tlscert", str(a / "server-cert.pem"), "--tlskey", str(b / "server-key.pem"))
    with pytest.raises(ConfigError) as info:
        server_tls_context(config)
    assert str(info.value) == (
        "invalid TLS configuration: error reading X509 key pair - make sure the key is not encrypted "
        f'(cert: "{a / "server-cert.pem"}", key: "{b / "server-key.pem"}"): '
        "tls: private key does not match public key")


def test_missing_files_are_named(tmp_path: Path, certs: Path) -> None:
    a = certs / "a"
    config = _config(tmp_path, {}, "--tlsverify", "--tlscacert", str(tmp_path / "nope.pem"),
                     "--tlscert", str(a / "server-cert.pem"), "--tlskey", str(a / "server-key.pem"))
    with pytest.raises(ConfigError, match=r'could not read CA certificate ".*nope.pem": open .*: no such file'):
        server_tls_context(config)
    config.tlscert = str(tmp_path / "missing-cert.pem")
    with pytest.raises(ConfigError, match="could not load X509 key pair"):
        server_tls_context(config)


def test_docker_info_warns_of_tcp_without_client_verification(tmp_path: Path) -> None:
    from berth.daemon.listeners import api_warnings

    plain = _config(tmp_path, {}, "-H", "unix:///x.sock", "-H", "tcp://127.0.0.1:2375")
    assert [w.splitlines()[0] for w in api_warnings(plain)] == [
        "[DEPRECATION NOTICE]: API is accessible on http://127.0.0.1:2375 without encryption."]
    any_client = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:2376", "--tlsverify=false")
    assert "without TLS client verification" in api_warnings(any_client)[0]
    verified = _config(tmp_path, {}, "-H", "tcp://127.0.0.1:2376", "--tlsverify")
    assert api_warnings(verified) == ()
