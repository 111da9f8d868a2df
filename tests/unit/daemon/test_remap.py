"""--userns-remap: the option resolved as dockerd's parseRemappedRoot resolves it, the
ranges read from /etc/subuid and /etc/subgid (here: files of the test's own), the next
free range found as dockerd finds it, and the config flag and daemon.json key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon import remap
from berth.daemon.config import ConfigError, parse_args
from berth.runtime.userns import IdMap


def _files(tmp_path: Path, subuid: str, subgid: str) -> tuple[str, str]:
    (tmp_path / "subuid").write_text(subuid)
    (tmp_path / "subgid").write_text(subgid)
    return str(tmp_path / "subuid"), str(tmp_path / "subgid")


def test_ranges_follow_on_from_container_id_zero(tmp_path: Path) -> None:
    uid_file, gid_file = _files(tmp_path, "other:1000:5\ndaemon:300000:65536\n1:400000:10\n",
                                "daemon:500000:65536\n")
    found = remap.setup("daemon", uid_file, gid_file)  # uid 1, group daemon
    assert found is not None
    assert (found.user, found.group) == ("daemon", "daemon")
    assert found.maps.uid == (IdMap(0, 300000, 65536), IdMap(65536, 400000, 10))
    assert found.maps.gid == (IdMap(0, 500000, 65536),)
    assert found.root_pair == (300000, 500000)
    assert remap.data_root("/var/lib/berth", found) == "/var/lib/berth/300000.500000"


def test_numbers_and_groups_resolve_to_names(tmp_path: Path) -> None:
    assert remap.parse_remapped_root("1") == ("daemon", "daemon")
    assert remap.parse_remapped_root("daemon:0") == ("daemon", "root")
    assert remap.parse_remapped_root("1:root") == ("daemon", "root")


@pytest.mark.parametrize(("option", "message"), [
    ("a:b:c", 'Invalid user/group specification in --userns-remap: "a:b:c"'),
    ("nosuchuser-berth", 'Error during uid lookup for "nosuchuser-berth": '
                         'getent unable to find entry "nosuchuser-berth" in passwd database'),
    ("daemon:nosuchgroup-berth", 'Error during groupname lookup for "nosuchgroup-berth"'),
    ("99999", "Uid 99999 has no entry in /etc/passwd"),
])
def test_bad_options(option: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        remap.parse_remapped_root(option)


def test_no_range_for_the_user_is_dockerds_error(tmp_path: Path) -> None:
    uid_file, gid_file = _files(tmp_path, "other:100000:65536\n", "daemon:100000:65536\n")
    with pytest.raises(ConfigError) as e:
        remap.setup("daemon", uid_file, gid_file)
    assert str(e.value) == 'error creating ID mappings: no subuid ranges found for user "daemon"'
    uid_file, gid_file = _files(tmp_path, "daemon:100000:65536\n", "")
    with pytest.raises(ConfigError, match='no subuid ranges found for user "daemon"'):
        remap.setup("daemon", uid_file, gid_file)


def test_root_is_not_remapped() -> None:
    assert remap.setup("root") is None
    assert remap.setup("") is None


def test_next_range_start_as_dockerd() -> None:
    r = remap.SubId
    assert remap.next_range_start([]) == 100000
    assert remap.next_range_start([r("a", 100000, 65536)]) == 165536
    assert remap.next_range_start([r("b", 165536, 65536), r("a", 100000, 65536)]) == 231072
    assert remap.next_range_start([r("a", 300000, 65536)]) == 100000
    assert remap.next_range_start([r("a", 150000, 10)]) == 150010


def test_malformed_subid_file(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("daemon:lots:1\n")
    with pytest.raises(ConfigError, match="invalid entry 'daemon:lots:1'"):
        remap.parse_subids(str(path))


def test_flag_and_daemon_json(tmp_path: Path) -> None:
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"userns-remap": "default"}))
    assert parse_args(["--config-file", str(conf)]).userns_remap == "default"
    conf.write_text("{}")
    assert parse_args(["--config-file", str(conf), "--userns-remap", "daemon:daemon"]).userns_remap == "daemon:daemon"
    conf.write_text(json.dumps({"userns-remap": "default"}))
    with pytest.raises(ConfigError, match="specified both as a flag and in the configuration file: userns-remap"):
        parse_args(["--config-file", str(conf), "--userns-remap", "daemon"])
