"""Resource limits: `process.rlimits`, docker's `--ulimit`, and setting them on a real kernel.

Limits are only ever changed in forked children; the pytest process keeps its own.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

import pytest

from berth.runtime import capabilities, rlimits
from berth.runtime.oci import SpecError
from berth.runtime.rlimits import RLIM_INFINITY, Rlimit, UlimitError
from helpers.forked import in_child, run_forked

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes capabilities; needs root")


# --- config.json -------------------------------------------------------------------------


def test_parse_rlimits() -> None:
    doc = [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
           {"type": "RLIMIT_CORE", "hard": RLIM_INFINITY, "soft": 0}]
    got = rlimits.parse_rlimits(doc)
    assert got == [Rlimit("RLIMIT_NOFILE", 1024, 2048), Rlimit("RLIMIT_CORE", 0, RLIM_INFINITY)]
    assert [r.to_oci() for r in got] == doc
    assert rlimits.parse_rlimits(None) == []


@pytest.mark.parametrize("doc, message", [
    ({"type": "RLIMIT_NOFILE"}, "process.rlimits must be a list"),
    ([{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}], 'process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"'),
    ([{"type": "nofile", "hard": 1, "soft": 1}], 'process.rlimits[0].type: unknown rlimit "nofile"'),
    ([{"hard": 1, "soft": 1}], "process.rlimits[0].type: unknown rlimit None"),
    ([{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 200}],
     "process.rlimits[0]: the soft limit 200 of RLIMIT_NOFILE is above its hard limit 100"),
    ([{"type": "RLIMIT_CPU", "hard": 1, "soft": 1}, {"type": "RLIMIT_CPU", "hard": 2, "soft": 2}],
     "process.rlimits[1].type: RLIMIT_CPU is set more than once"),
    ([{"type": "RLIMIT_CPU", "hard": -1, "soft": 1}],
     f"process.rlimits[0].hard must be an integer from 0 to {RLIM_INFINITY}"),
    ([{"type": "RLIMIT_CPU", "hard": 1, "soft": "1"}],
     f"process.rlimits[0].soft must be an integer from 0 to {RLIM_INFINITY}"),
    ([{"type": "RLIMIT_CPU", "hard": True, "soft": 1}],
     f"process.rlimits[0].hard must be an integer from 0 to {RLIM_INFINITY}"),
    (["RLIMIT_CPU"], "process.rlimits[0] must be an object"),
])
def test_bad_rlimits_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(SpecError) as e:
        rlimits.parse_rlimits(doc)
    assert str(e.value) == "config.json: " + message


# --- docker --ulimit ---------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("nofile=1024:2048", Rlimit("RLIMIT_NOFILE", 1024, 2048)),
    ("nofile=1024", Rlimit("RLIMIT_NOFILE", 1024, 1024)),
    ("nproc=-1", Rlimit("RLIMIT_NPROC", RLIM_INFINITY, RLIM_INFINITY)),
    ("core=0:-1", Rlimit("RLIMIT_CORE", 0, RLIM_INFINITY)),
    ("memlock=+5:10", Rlimit("RLIMIT_MEMLOCK", 5, 10)),
    ("rttime=1:1", Rlimit("RLIMIT_RTTIME", 1, 1)),
])
def test_parse_ulimit(text: str, expected: Rlimit) -> None:
    assert rlimits.parse_ulimit(text) == expected


@pytest.mark.parametrize("text, message", [
    ("nofile", "invalid ulimit argument: nofile"),
    ("foo=1", "invalid ulimit type: foo"),
    ("as=1", "invalid ulimit type: as"),
    ("NOFILE=1", "invalid ulimit type: NOFILE"),
    ("nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"),
    ("nofile=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("nofile=1:", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("nofile=99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ("nofile=-1:100", "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 100"),
    ("nofile=200:100", "ulimit soft limit must be less than or equal to hard limit: 200 > 100"),
])
def test_bad_ulimits_say_what_docker_says(text: str, message: str) -> None:
    with pytest.raises(UlimitError) as e:
        rlimits.parse_ulimit(text)
    assert str(e.value) == message


def test_docker_api_ulimit_entries_translate_like_moby() -> None:
    assert rlimits.from_docker("nofile", -1, -1) == Rlimit("RLIMIT_NOFILE", RLIM_INFINITY, RLIM_INFINITY)
    assert rlimits.from_docker("stack", 8192, 16384).to_oci() == {
        "type": "RLIMIT_STACK", "hard": 16384, "soft": 8192}
    assert rlimits.parse_ulimit("nofile=1024:-1").as_docker() == ("nofile", 1024, -1)
    with pytest.raises(UlimitError, match="invalid ulimit type: bogus"):
        rlimits.from_docker("bogus", 1, 1)


def test_every_docker_name_has_a_kernel_number() -> None:
    for name in rlimits.DOCKER_ULIMIT_NAMES:
        assert rlimits.parse_ulimit(f"{name}=1").resource == rlimits.RLIMIT_NUMBERS["RLIMIT_" + name.upper()]
    assert rlimits.RLIMIT_NUMBERS["RLIMIT_NOFILE"] == resource.RLIMIT_NOFILE
    assert rlimits.RLIMIT_NUMBERS["RLIMIT_RTTIME"] == resource.RLIMIT_RTTIME


# --- on the kernel -----------------------------------------------------------------------


def test_nofile_is_set_and_reads_back() -> None:
    def body() -> object:
        rlimits.apply([rlimits.parse_ulimit("nofile=100:200")])
        os.execv("/bin/sh", ["sh", "-c", "ulimit -n; ulimit -Hn"])

    assert run_forked(body).split() == ["100", "200"]


def test_unlimited_and_huge_values_reach_the_kernel() -> None:
    huge = 2**63 + 5  # above what a signed C long holds

    def body() -> object:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        rlimits.apply([Rlimit("RLIMIT_CPU", huge, RLIM_INFINITY)])
        with open("/proc/self/limits") as f:
            return next(line.split()[3:5] for line in f if line.startswith("Max cpu time"))

    if resource.getrlimit(resource.RLIMIT_CPU)[1] != resource.RLIM_INFINITY:
        pytest.skip("the cpu hard limit is not unlimited here")
    assert in_child(body) == [str(huge), "unlimited"]


def _apply_error(limit: Rlimit, hard_first: int | None = None) -> Callable[[], object]:
    def body() -> object:
        # be sure not to hold CAP_SYS_RESOURCE, whatever the host grants root
        now = capabilities.current()
        without = now.effective - {24}
        capabilities.set_capabilities(capabilities.CapabilitySets(
            effective=without, permitted=now.permitted, inheritable=now.inheritable))
        if hard_first is not None:
            resource.setrlimit(limit.resource, (min(hard_first, 100), hard_first))
        try:
            rlimits.apply([limit])
        except OSError as e:
            return [e.errno, str(e)]
        return None
    return body


@needs_root
def test_raising_the_hard_limit_without_cap_sys_resource_says_so() -> None:
    errno_, message = in_child(_apply_error(Rlimit("RLIMIT_NOFILE", 100, 5000), hard_first=1000))
    assert errno_ == 1
    assert message == (
        "[Errno 1] setrlimit RLIMIT_NOFILE (soft 100, hard 5000): Operation not permitted: "
        "the hard limit is above the current hard limit (1000) and the runtime lacks CAP_SYS_RESOURCE")


@needs_root
def test_nofile_above_nr_open_says_so() -> None:
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    errno_, message = in_child(_apply_error(Rlimit("RLIMIT_NOFILE", 100, nr_open + 1)))
    assert errno_ == 1
    assert message.endswith(f"the hard limit is above fs.nr_open ({nr_open})")
