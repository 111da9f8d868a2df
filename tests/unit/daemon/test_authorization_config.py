"""berthd's authorization plugins, from --authorization-plugin or daemon.json's
authorization-plugins (never both), as dockerd reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, parse_args


def _config(tmp_path: Path, doc: dict[str, object], *flags: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return parse_args(["--config-file", str(path), *flags])


def test_from_daemon_json(tmp_path: Path) -> None:
    assert _config(tmp_path, {"authorization-plugins": ["a", "b"]}).authorization_plugins == ["a", "b"]


def test_from_flags(tmp_path: Path) -> None:
    config = _config(tmp_path, {}, "--authorization-plugin", "a", "--authorization-plugin", "b")
    assert config.authorization_plugins == ["a", "b"]


def test_not_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="authorization-plugins"):
        _config(tmp_path, {"authorization-plugins": ["a"]}, "--authorization-plugin", "b")
