"""berthd's --seccomp-profile and daemon.json's seccomp-profile, as dockerd takes them:
"builtin" (the default), "unconfined", or a file read at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, parse_args


def _config(tmp_path: Path, doc: dict[str, object], *flags: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return parse_args(["--config-file", str(path), *flags])


def test_builtin_by_default(tmp_path: Path) -> None:
    config = _config(tmp_path, {})
    assert (config.seccomp_profile, config.seccomp_profile_text) == ("builtin", "")


@pytest.mark.parametrize("value", ["builtin", "unconfined"])
def test_named_profiles(tmp_path: Path, value: str) -> None:
    assert _config(tmp_path, {}, "--seccomp-profile", value).seccomp_profile == value
    assert _config(tmp_path, {"seccomp-profile": value}).seccomp_profile == value


def test_a_file_is_read_at_start(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    for config in (_config(tmp_path, {}, "--seccomp-profile", str(profile)),
                   _config(tmp_path, {"seccomp-profile": str(profile)})):
        assert config.seccomp_profile == str(profile)
        assert config.seccomp_profile_text == '{"defaultAction": "SCMP_ACT_ALLOW"}'


def test_a_missing_file_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, {}, "--seccomp-profile", str(missing))
    assert str(e.value) == f"opening seccomp profile ({missing}) failed: open {missing}: no such file or directory"


def test_flag_and_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="specified both as a flag and in the configuration file: seccomp-profile"):
        _config(tmp_path, {"seccomp-profile": "unconfined"}, "--seccomp-profile", "builtin")
