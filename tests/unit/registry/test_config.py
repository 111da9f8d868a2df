"""Settings from YAML (flat and distribution's sections), environment, flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.registry import config


def test_distribution_config_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("""
version: 0.1
storage:
  filesystem: {rootdirectory: /data}
  maintenance:
    uploadpurging: {enabled: true, age: 2h, interval: 30m}
    readonly: {enabled: true}
http:
  addr: :5000
  tls: {certificate: /c.pem, key: /k.pem}
auth:
  htpasswd: {realm: Registry Realm, path: /auth/htpasswd}
""")
    settings = config.Settings()
    config.load_file(settings, path)
    assert (settings.root, settings.addr, settings.read_only) == ("/data", ":5000", True)
    assert (settings.upload_max_age, settings.upload_purge_interval) == (7200.0, 1800.0)
    assert (settings.tls_cert, settings.htpasswd) == ("/c.pem", "/auth/htpasswd")
    config.load_environment(settings, {"REGISTRY_HTTP_ADDR": "0.0.0.0:6000"})
    config.apply(settings, {"root": "/other", "read_only": None})
    assert (settings.addr, settings.root, settings.read_only) == ("0.0.0.0:6000", "/other", True)


def test_flat_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("addr: 127.0.0.1:7000\nread-only: true\nmax_upload_size: 1m\n")
    settings = config.Settings()
    config.load_file(settings, path)
    assert settings.addr == "127.0.0.1:7000" and settings.read_only
    assert settings.max_upload_size == 1024 * 1024
    path.write_text("nonsense: 1\n")
    with pytest.raises(config.ConfigError, match="unknown setting 'nonsense'"):
        config.load_file(config.Settings(), path)


def test_durations_and_addresses() -> None:
    assert config.parse_duration("1h30m") == 5400.0
    assert config.parse_duration(5) == 5.0
    with pytest.raises(config.ConfigError):
        config.parse_duration("soon")
    assert config.split_addr(":5000") == ("0.0.0.0", 5000)
    assert config.split_addr("[::1]:80") == ("::1", 80)
    with pytest.raises(config.ConfigError):
        config.split_addr("localhost")
