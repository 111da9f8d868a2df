"""berth's TLS options, resolved as the docker CLI resolves --tls, --tlsverify, the
--tls* files, DOCKER_TLS_VERIFY, DOCKER_TLS and DOCKER_CERT_PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.client.engine import TLSOptions, tls_options


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def test_no_tls_unless_asked() -> None:
    assert tls_options(False, None, "", "", "") is None


def test_docker_tls_verify_and_cert_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    assert tls_options(False, None, "", "", "") == TLSOptions(
        True, str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def test_missing_default_client_files_are_left_out(tmp_path: Path) -> None:
    opts = tls_options(False, True, "", "", "", config_dir=str(tmp_path))
    assert opts == TLSOptions(True, str(tmp_path / "ca.pem"), "", "")


def test_tlsverify_false_is_tls_without_checking_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")  # the flag wins over the environment
    opts = tls_options(False, False, "", "", "", config_dir=str(tmp_path))
    assert opts is not None and not opts.verify


def test_docker_tls_turns_tls_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_TLS", "1")
    opts = tls_options(False, None, "/ca", "/c", "/k")
    assert opts == TLSOptions(False, "/ca", "/c", "/k")
