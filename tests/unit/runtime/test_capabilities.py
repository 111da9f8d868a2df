"""Capabilities: the name table, Docker's cap arithmetic, parsing, and applying on a real kernel.

Everything that changes capabilities runs in a forked child; the pytest process keeps its own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from berth.errors import InvalidParameter
from berth.runtime import capabilities as caps
from berth.runtime.capabilities import CapabilitySets
from berth.runtime.oci import SpecError
from helpers.forked import in_child, run_forked

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes capabilities; needs root")

ALL_KNOWN = frozenset(range(41))
WITHOUT_SYS_RESOURCE = ALL_KNOWN - {24}  # this host's bounding set


def status_line(key: str) -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith(key + ":"))


def sets_of(names: list[str], **overrides: list[str]) -> CapabilitySets:
    doc = {which: overrides.get(which, names) for which in caps.SET_NAMES}
    return caps.parse_capabilities(doc)


# --- the table ---------------------------------------------------------------------------


def test_name_table_covers_0_to_40() -> None:
    assert caps.cap_number("CAP_CHOWN") == 0
    assert caps.cap_number("CAP_SYS_RESOURCE") == 24
    assert caps.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    assert len(caps.CAPABILITY_NAMES) == 41
    assert all(caps.cap_name(caps.cap_number(n)) == n for n in caps.CAPABILITY_NAMES)
    assert caps.cap_name(41) == "CAP_41"


def test_last_cap_and_host_bounding_set_read_the_kernel() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())
    assert caps.to_mask(caps.host_bounding_set()) == int(status_line("CapBnd"), 16)
    assert caps.current().bounding == caps.host_bounding_set()


def test_masks_round_trip() -> None:
    assert caps.to_mask({0, 1, 40}) == (1 << 40) | 3
    assert caps.from_mask((1 << 40) | 3) == {0, 1, 40}


def test_docker_default_set_is_docker_s_capeff() -> None:
    assert len(caps.DOCKER_DEFAULT) == 14
    assert caps.to_mask(caps.cap_number(n) for n in caps.DOCKER_DEFAULT) == 0xA80425FB


# --- docker --cap-add / --cap-drop / --privileged --------------------------------------


def test_no_flags_is_the_default_set() -> None:
    assert caps.docker_caps() == list(caps.DOCKER_DEFAULT)


def test_add_all_minus_some() -> None:
    got = caps.docker_caps(["ALL"], ["net_raw", "CAP_MKNOD"], available=WITHOUT_SYS_RESOURCE)
    expected = [caps.cap_name(n) for n in sorted(WITHOUT_SYS_RESOURCE - {13, 27})]
    assert got == expected


def test_drop_all_then_add_one() -> None:
    assert caps.docker_caps(["chown"], ["ALL"]) == ["CAP_CHOWN"]
    assert caps.docker_caps([], ["all"]) == []


def test_drop_some_add_some_keeps_docker_s_order() -> None:
    got = caps.docker_caps(["sys_admin", "Cap_Chown"], ["MKNOD"])
    assert got == [c for c in caps.DOCKER_DEFAULT if c != "CAP_MKNOD"] + ["CAP_SYS_ADMIN"]


def test_privileged_gets_what_the_host_has_and_ignores_the_flags() -> None:
    assert caps.docker_caps(["foo"], ["ALL"], privileged=True, available=WITHOUT_SYS_RESOURCE) == [
        caps.cap_name(n) for n in sorted(WITHOUT_SYS_RESOURCE)
    ]
    on_this_host = caps.docker_caps(privileged=True)
    assert on_this_host == [caps.cap_name(n) for n in sorted(caps.host_bounding_set())]
    if 24 not in caps.host_bounding_set():
        assert "CAP_SYS_RESOURCE" not in on_this_host
        assert "CAP_SYS_RESOURCE" not in caps.docker_caps(["ALL"])


@pytest.mark.parametrize("add, drop", [(["foo"], []), ([], ["CAP_FOO"]), (["chown", "Foo"], [])])
def test_unknown_docker_cap_is_named(add: list[str], drop: list[str]) -> None:
    with pytest.raises(InvalidParameter) as e:
        caps.docker_caps(add, drop)
    assert str(e.value) == 'unknown capability: "CAP_FOO"'


# --- config.json -------------------------------------------------------------------------


def test_missing_capabilities_means_none() -> None:
    assert caps.parse_capabilities(None) == CapabilitySets()


def test_parse_and_back() -> None:
    doc = {
        "bounding": ["CAP_CHOWN", "CAP_KILL"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }
    sets = caps.parse_capabilities(doc, available=ALL_KNOWN)
    assert sets.bounding == {0, 5} and sets.effective == {5} and sets.ambient == {5}
    assert sets.warnings == ()
    assert sets.to_oci()["permitted"] == ["CAP_CHOWN", "CAP_KILL"]


@pytest.mark.parametrize("doc, message", [
    ({"effective": ["CAP_CHOWN", "CAP_KILL", "CAP_FOO"]},
     'process.capabilities.effective[2]: unknown capability "CAP_FOO"'),
    ({"bounding": ["chown"]}, 'process.capabilities.bounding[0]: unknown capability "chown"'),
    ({"ambient": [7]}, "process.capabilities.ambient[0]: unknown capability 7"),
    ({"permitted": "CAP_CHOWN"}, "process.capabilities.permitted must be a list of capability names"),
    (["CAP_CHOWN"], "process.capabilities must be an object"),
    ({"effective": ["CAP_KILL"], "permitted": []},
     "process.capabilities.effective: CAP_KILL is not in process.capabilities.permitted"),
    ({"inheritable": ["CAP_KILL"]},
     "process.capabilities.inheritable: CAP_KILL is not in process.capabilities.bounding"),
])
def test_bad_capabilities_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(SpecError) as e:
        caps.parse_capabilities(doc, available=ALL_KNOWN)
    assert str(e.value) == "config.json: " + message


def test_caps_the_host_lacks_are_dropped_with_one_warning() -> None:
    everything = list(caps.CAPABILITY_NAMES)
    sets = caps.parse_capabilities({w: everything for w in caps.SET_NAMES}, available=WITHOUT_SYS_RESOURCE)
    for which in caps.SET_NAMES:
        assert getattr(sets, which) == WITHOUT_SYS_RESOURCE
    assert sets.warnings == ("ignoring unknown or unavailable capabilities: [CAP_SYS_RESOURCE]",)


def test_ambient_caps_that_could_not_be_raised_are_dropped_with_a_warning() -> None:
    doc = {"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
           "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    sets = caps.parse_capabilities(doc, available=ALL_KNOWN)
    assert sets.ambient == {5}
    assert sets.warnings == (
        "ignoring ambient capabilities that are not both permitted and inheritable: [CAP_CHOWN]",
    )


def test_privileged_spec_parses_on_this_host() -> None:
    everything = list(caps.CAPABILITY_NAMES)
    sets = caps.parse_capabilities({w: everything for w in ("bounding", "effective", "permitted")})
    assert sets.bounding == caps.host_bounding_set() & ALL_KNOWN
    assert bool(sets.warnings) == (caps.host_bounding_set() & ALL_KNOWN != ALL_KNOWN)


# --- on the kernel -----------------------------------------------------------------------


def _mknod_errno(sets: CapabilitySets, path: Path) -> Callable[[], object]:
    def body() -> object:
        caps.apply(sets)
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except OSError as e:
            return e.errno
        return 0
    return body


@needs_root
def test_without_cap_mknod_mknod_fails_with_eperm(tmp_path: Path) -> None:
    host = [caps.cap_name(n) for n in sorted(caps.host_bounding_set())]
    without = caps.parse_capabilities({w: [c for c in host if c != "CAP_MKNOD"] for w in caps.SET_NAMES})
    assert in_child(_mknod_errno(without, tmp_path / "denied")) == 1  # EPERM
    assert not (tmp_path / "denied").exists()
    with_it = caps.parse_capabilities({w: host for w in caps.SET_NAMES})
    assert in_child(_mknod_errno(with_it, tmp_path / "allowed")) == 0
    assert stat.S_ISCHR((tmp_path / "allowed").stat().st_mode)


@needs_root
def test_docker_default_set_shows_docker_s_capeff() -> None:
    sets = sets_of(list(caps.DOCKER_DEFAULT), inheritable=[], ambient=[])

    def body() -> object:
        caps.apply(sets)
        return {key: status_line(key) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}

    assert in_child(body) == {
        "CapInh": "0000000000000000",
        "CapPrm": "00000000a80425fb",
        "CapEff": "00000000a80425fb",
        "CapBnd": "00000000a80425fb",
        "CapAmb": "0000000000000000",
    }

    def exec_grep() -> object:
        caps.apply(sets)
        os.execv("/bin/grep", ["grep", "CapEff", "/proc/self/status"])

    assert run_forked(exec_grep).split() == ["CapEff:", "00000000a80425fb"]  # root's exec keeps them


def _switch_to(uid: int) -> Callable[[], None]:
    def switch() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    return switch


@needs_root
def test_ambient_caps_survive_execve_for_a_non_root_user() -> None:
    net_bind = ["CAP_NET_BIND_SERVICE"]
    sets = caps.parse_capabilities({"bounding": list(caps.DOCKER_DEFAULT), "effective": net_bind,
                                    "permitted": net_bind, "inheritable": net_bind, "ambient": net_bind})

    def body() -> object:
        caps.apply(sets, _switch_to(1000))
        os.execv("/bin/grep", ["grep", "-E", "^(Uid|CapAmb|CapEff)", "/proc/self/status"])

    lines = dict(line.split(":", 1) for line in run_forked(body).splitlines())
    assert lines["CapAmb"].strip() == "0000000000000400"
    assert lines["CapEff"].strip() == "0000000000000400"
    assert lines["Uid"].split() == ["1000"] * 4


@needs_root
def test_without_ambient_a_non_root_user_execs_with_no_caps() -> None:
    net_bind = ["CAP_NET_BIND_SERVICE"]
    sets = caps.parse_capabilities({"bounding": list(caps.DOCKER_DEFAULT), "effective": net_bind,
                                    "permitted": net_bind, "inheritable": net_bind})

    def body() -> object:
        caps.apply(sets, _switch_to(1000))
        before_exec = status_line("CapEff")
        os.execv("/bin/sh", ["sh", "-c", f"echo {before_exec}; grep CapEff /proc/self/status"])

    assert run_forked(body).split() == ["0000000000000400", "CapEff:", "0000000000000000"]


@needs_root
def test_the_steps_can_be_interleaved_by_hand() -> None:
    sets = sets_of(["CAP_CHOWN", "CAP_KILL"], inheritable=[], ambient=[])

    def body() -> object:
        caps.drop_bounding(sets)
        caps.set_keepcaps(True)
        _switch_to(1000)()
        caps.set_keepcaps(False)
        after_switch = caps.current()
        caps.set_capabilities(sets)
        now = caps.current()
        return [caps.to_mask(after_switch.effective), caps.to_mask(after_switch.permitted),
                caps.to_mask(now.effective), caps.to_mask(now.permitted), caps.to_mask(now.bounding)]

    everything_we_had = caps.to_mask(caps.current().permitted)
    # keepcaps kept the permitted set across the switch; capset then cut it to the spec
    assert in_child(body) == [0, everything_we_had, 0b100001, 0b100001, 0b100001]


@needs_root
def test_capset_refusal_says_why() -> None:
    def body() -> object:
        try:
            caps.set_capabilities(CapabilitySets(effective=frozenset({0})))
        except OSError as e:
            return str(e)
        return "no error"

    message = in_child(body)
    assert "capset: Operation not permitted" in message
    assert "effective must lie within permitted" in message
