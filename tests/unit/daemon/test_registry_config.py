"""berthd's registry settings, from flags or daemon.json (never both), checked as
dockerd checks them: mirrors need a scheme, concurrency limits are whole numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, parse_args


def _config(tmp_path: Path, doc: dict[str, object], *flags: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return parse_args(["--config-file", str(path), *flags])


def test_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path, {})
    assert (config.registry_mirrors, config.insecure_registries) == ([], [])
    assert (config.max_concurrent_downloads, config.max_concurrent_uploads) == (3, 5)


def test_from_daemon_json(tmp_path: Path) -> None:
    config = _config(tmp_path, {"registry-mirrors": ["https://mirror.example:5000"],
                                "insecure-registries": ["10.0.0.0/8", "reg.local:5000"],
                                "max-concurrent-downloads": 6, "max-concurrent-uploads": 2})
    assert config.registry_mirrors == ["https://mirror.example:5000"]
    assert config.insecure_registries == ["10.0.0.0/8", "reg.local:5000"]
    assert (config.max_concurrent_downloads, config.max_concurrent_uploads) == (6, 2)


def test_from_flags(tmp_path: Path) -> None:
    config = _config(tmp_path, {}, "--registry-mirror", "http://m1", "--registry-mirror", "https://m2",
                     "--insecure-registry", "reg.local:5000", "--max-concurrent-downloads", "1")
    assert config.registry_mirrors == ["http://m1", "https://m2"]
    assert config.insecure_registries == ["reg.local:5000"]
    assert config.max_concurrent_downloads == 1


@pytest.mark.parametrize("doc, flags, message", [
    ({"registry-mirrors": ["mirror.example"]}, [], "no scheme specified"),
    ({"registry-mirrors": ["ftp://mirror.example"]}, [], "unsupported scheme"),
    ({"registry-mirrors": "https://m"}, [], "must be a list of strings"),
    ({"max-concurrent-downloads": 0}, [], "invalid max-concurrent-downloads"),
    ({"max-concurrent-uploads": "5"}, [], "invalid max-concurrent-uploads"),
    ({"insecure-registries": ["a:1"]}, ["--insecure-registry", "b:2"], "both as a flag and in the configuration file"),
])
def test_refused(tmp_path: Path, doc: dict[str, object], flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, doc, *flags)
