"""The task service's typed records: what the shim's JSON becomes, and back."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from berth.runtime.cgroups import BlkioEntry, CgroupStats
from berth.tasks import counters
from berth.tasks.model import ExitStatus, TaskState

maybe_int = st.none() | st.integers(min_value=0, max_value=1 << 62)
blkio = st.builds(BlkioEntry, st.integers(0, 255), st.integers(0, 255), st.sampled_from(["Read", "Write", "read"]),
                  st.integers(0, 1 << 40))
cgroup_stats = st.builds(
    CgroupStats, memory_usage=maybe_int, memory_max_usage=maybe_int, memory_limit=maybe_int,
    memory_failcnt=maybe_int, memory_stat=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, 1 << 40),
                                                          max_size=5),
    cpu_usage_ns=maybe_int, cpu_user_ns=maybe_int, cpu_system_ns=maybe_int,
    cpu_percpu_ns=st.lists(st.integers(0, 1 << 50), max_size=4).map(tuple), cpu_periods=maybe_int,
    cpu_throttled_periods=maybe_int, cpu_throttled_ns=maybe_int, pids_current=maybe_int, pids_limit=maybe_int,
    io_service_bytes=st.lists(blkio, max_size=3).map(tuple), io_serviced=st.lists(blkio, max_size=3).map(tuple),
    oom_kills=st.integers(0, 100))


@given(cgroup_stats)
def test_cgroup_counters_survive_the_wire(stats: CgroupStats) -> None:
    assert counters.decode(json.loads(json.dumps(counters.encode(stats)))) == stats


def test_counters_a_newer_shim_adds_are_ignored() -> None:
    doc = {**counters.encode(CgroupStats(pids_current=3)), "hugetlb": {"2MB": 0}}
    assert counters.decode(doc) == CgroupStats(pids_current=3)


@given(st.integers(0, 255), st.text(max_size=40), st.booleans())
def test_an_exit_round_trips(code: int, finished_at: str, oom: bool) -> None:
    status = ExitStatus(code, finished_at, oom)
    assert ExitStatus.of(json.loads(json.dumps(status.to_doc()))) == status


def test_an_exit_without_a_code_is_255_as_docker_records_it() -> None:
    assert ExitStatus.of({}) == ExitStatus(255, "", False)
    assert ExitStatus.of({"exit_code": None, "finished_at": None}) == ExitStatus(255)


def test_a_state_has_an_exit_only_once_exited() -> None:
    assert TaskState.of({"pid": 12, "status": "running"}) == TaskState(12, "running", None)
    assert TaskState.of({"pid": 12, "status": "stopped", "exit_code": 0, "finished_at": "t"}) == \
        TaskState(12, "stopped", ExitStatus(0, "t"))
