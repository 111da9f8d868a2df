"""dockerd's hardening options as berthd reads them: flags, daemon.json, and the
conflicts and bad values dockerd refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, parse_args


def _file(tmp_path: Path, doc: dict[str, object]) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_defaults_are_dockerds(tmp_path: Path) -> None:
    c = parse_args(["--config-file", _file(tmp_path, {})])
    assert (c.icc, c.userland_proxy, c.no_new_privileges, c.default_ulimits) == (True, True, False, [])


def test_from_daemon_json(tmp_path: Path) -> None:
    c = parse_args(["--config-file", _file(tmp_path, {
        "icc": False, "userland-proxy": False, "no-new-privileges": True,
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}})])
    assert (c.icc, c.userland_proxy, c.no_new_privileges) == (False, False, True)
    assert c.default_ulimits == [("nofile", 1024, 2048)]


def test_from_flags(tmp_path: Path) -> None:
    c = parse_args(["--config-file", _file(tmp_path, {}), "--icc=false", "--userland-proxy=false",
                    "--no-new-privileges", "--default-ulimit", "nofile=100:200", "--default-ulimit", "nproc=-1"])
    assert (c.icc, c.userland_proxy, c.no_new_privileges) == (False, False, True)
    assert c.default_ulimits == [("nofile", 100, 200), ("nproc", -1, -1)]


@pytest.mark.parametrize(("flag", "value"), [("--live-restore", True), ("--live-restore=true", True),
                                             ("--live-restore=false", False)])
def test_live_restore_takes_a_value_as_dockerd(tmp_path: Path, flag: str, value: bool) -> None:
    assert parse_args(["--config-file", _file(tmp_path, {}), flag]).live_restore is value


@pytest.mark.parametrize(("doc", "flags", "message"), [
    ({"icc": "false"}, [], "icc must be true or false"),
    ({"no-new-privileges": True}, ["--no-new-privileges"], "no-new-privileges: (from flag: true, from file: true)"),
    ({"default-ulimits": {}}, ["--default-ulimit", "nofile=1"], "default-ulimits"),
    ({"default-ulimits": {"nofile": {"Soft": 3, "Hard": 2}}}, [], "3 > 2"),
    ({"default-ulimits": {"bogus": {"Soft": 1, "Hard": 2}}}, [], "invalid ulimit type: bogus"),
    ({}, ["--default-ulimit", "nofile"], "invalid ulimit argument: nofile"),
])
def test_refused(tmp_path: Path, doc: dict[str, object], flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_args(["--config-file", _file(tmp_path, doc), *flags])
