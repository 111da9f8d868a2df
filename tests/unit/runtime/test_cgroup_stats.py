"""`Cgroup.stats()` on both back ends, read from temp directories posing as cgroup file
systems: what `docker stats` needs (cpu with per-cpu and throttling, memory with its
failure count, pids, block I/O per device), and the parsers of the v1 and v2 I/O files."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.runtime.cgroups import BlkioEntry, CgroupStats
from berth.runtime.cgroups.v1 import V1Cgroup, parse_blkio
from berth.runtime.cgroups.v2 import V2Cgroup, parse_io_stat

UNLIMITED_V1 = "9223372036854771712"

V1_FILES = {
    "cpu": {"cpu.stat": "nr_periods 40\nnr_throttled 7\nthrottled_time 123456789\nnr_bursts 0\nburst_time 0"},
    "cpuacct": {
        "cpuacct.usage": "3000000000",
        "cpuacct.usage_percpu": "1000000000 2000000000 ",
        "cpuacct.stat": "user 150\nsystem 50",
    },
    "memory": {
        "memory.usage_in_bytes": "8388608",
        "memory.max_usage_in_bytes": "16777216",
        "memory.limit_in_bytes": str(64 * 1024 * 1024),
        "memory.failcnt": "2",
        "memory.stat": "cache 4096\nrss 8192\ntotal_inactive_file 4096",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1",
    },
    "pids": {"pids.current": "3", "pids.max": "50"},
    "blkio": {
        "blkio.throttle.io_service_bytes_recursive": (
            "8:0 Read 4096\n8:0 Write 1048576\n8:0 Sync 0\n8:0 Async 1052672\n8:0 Discard 0\n"
            "8:0 Total 1052672\nTotal 1052672"),
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 16\nTotal 17",
    },
}

V2_FILES = {
    "cgroup.controllers": "cpu io memory pids",
    "cgroup.events": "populated 1\nfrozen 0",
    "cpu.stat": ("usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
                 "nr_periods 40\nnr_throttled 7\nthrottled_usec 123456"),
    "memory.current": "8388608",
    "memory.peak": "16777216",
    "memory.max": "max",
    "memory.stat": "anon 8192\nfile 4096\ninactive_file 4096",
    "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1",
    "pids.current": "3",
    "pids.max": "max",
    "io.stat": ("8:0 rbytes=4096 wbytes=1048576 rios=1 wios=16 dbytes=0 dios=0\n"
                "253:1 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0"),
}


def _v1_group(tmp_path: Path, files: dict[str, dict[str, str]]) -> V1Cgroup:
    for controller, entries in files.items():
        leaf = tmp_path / controller / "berth" / "c1"
        leaf.mkdir(parents=True)
        for name, text in entries.items():
            (leaf / name).write_text(text + "\n")
    return V1Cgroup("/berth/c1", {c: str(tmp_path / c) for c in files})


def _v2_group(tmp_path: Path, files: dict[str, str]) -> V2Cgroup:
    leaf = tmp_path / "berth" / "c1"
    leaf.mkdir(parents=True)
    for name, text in files.items():
        (leaf / name).write_text(text + "\n")
    return V2Cgroup("/berth/c1", str(tmp_path))


def test_v1_stats_read_every_counter(tmp_path: Path) -> None:
    stats = _v1_group(tmp_path, V1_FILES).stats()
    ns_per_tick = 1_000_000_000 // 100  # SC_CLK_TCK is 100 on Linux
    assert stats == CgroupStats(
        memory_usage=8 * 1024 * 1024,
        memory_max_usage=16 * 1024 * 1024,
        memory_limit=64 * 1024 * 1024,
        memory_failcnt=2,
        memory_stat={"cache": 4096, "rss": 8192, "total_inactive_file": 4096},
        cpu_usage_ns=3_000_000_000,
        cpu_user_ns=150 * ns_per_tick,
        cpu_system_ns=50 * ns_per_tick,
        cpu_percpu_ns=(1_000_000_000, 2_000_000_000),
        cpu_periods=40,
        cpu_throttled_periods=7,
        cpu_throttled_ns=123456789,
        pids_current=3,
        pids_limit=50,
        io_service_bytes=(BlkioEntry(8, 0, "Read", 4096), BlkioEntry(8, 0, "Write", 1048576),
                          BlkioEntry(8, 0, "Sync", 0), BlkioEntry(8, 0, "Async", 1052672),
                          BlkioEntry(8, 0, "Discard", 0), BlkioEntry(8, 0, "Total", 1052672)),
        io_serviced=(BlkioEntry(8, 0, "Read", 1), BlkioEntry(8, 0, "Write", 16)),
        oom_kills=1,
    )


def test_v1_unlimited_values_are_none(tmp_path: Path) -> None:
    files = {k: dict(v) for k, v in V1_FILES.items()}
    files["memory"]["memory.limit_in_bytes"] = UNLIMITED_V1
    files["pids"]["pids.max"] = "max"
    stats = _v1_group(tmp_path, files).stats()
    assert stats.memory_limit is None and stats.pids_limit is None


def test_v1_blkio_prefers_the_scheduler_counters_when_it_keeps_any(tmp_path: Path) -> None:
    files = {k: dict(v) for k, v in V1_FILES.items()}
    files["blkio"]["blkio.io_service_bytes_recursive"] = "8:16 Read 512\n8:16 Write 0\nTotal 512"
    files["blkio"]["blkio.io_serviced_recursive"] = "8:16 Read 1\nTotal 1"
    stats = _v1_group(tmp_path, files).stats()
    assert stats.io_service_bytes == (BlkioEntry(8, 16, "Read", 512), BlkioEntry(8, 16, "Write", 0))
    assert stats.io_serviced == (BlkioEntry(8, 16, "Read", 1),)

    # present but empty (no device under CFQ): the throttle layer's counters
    files["blkio"]["blkio.io_service_bytes_recursive"] = "Total 0"
    files["blkio"]["blkio.io_serviced_recursive"] = "Total 0"
    stats = _v1_group(tmp_path / "again", files).stats()
    assert stats.io_service_bytes[0] == BlkioEntry(8, 0, "Read", 4096)


def test_v1_missing_controllers_and_files_leave_fields_empty(tmp_path: Path) -> None:
    stats = _v1_group(tmp_path, {"cpuacct": {"cpuacct.usage": "5", "cpuacct.stat": "user 0\nsystem 0"},
                                 "blkio": {}}).stats()
    assert stats.cpu_usage_ns == 5 and stats.cpu_percpu_ns == ()
    assert stats.cpu_periods is None and stats.memory_usage is None and stats.memory_failcnt is None
    assert stats.pids_current is None and stats.io_service_bytes == () and stats.io_serviced == ()


def test_v2_stats_read_every_counter(tmp_path: Path) -> None:
    stats = _v2_group(tmp_path, V2_FILES).stats()
    assert stats == CgroupStats(
        memory_usage=8 * 1024 * 1024,
        memory_max_usage=16 * 1024 * 1024,
        memory_limit=None,
        memory_failcnt=2,  # memory.events "oom", as dockerd reports it
        memory_stat={"anon": 8192, "file": 4096, "inactive_file": 4096},
        cpu_usage_ns=3_000_000_000,
        cpu_user_ns=2_000_000_000,
        cpu_system_ns=1_000_000_000,
        cpu_percpu_ns=(),  # v2 has no per-cpu counter
        cpu_periods=40,
        cpu_throttled_periods=7,
        cpu_throttled_ns=123_456_000,
        pids_current=3,
        pids_limit=None,
        io_service_bytes=(BlkioEntry(8, 0, "read", 4096), BlkioEntry(8, 0, "write", 1048576),
                          BlkioEntry(253, 1, "read", 512), BlkioEntry(253, 1, "write", 0)),
        io_serviced=(BlkioEntry(8, 0, "read", 1), BlkioEntry(8, 0, "write", 16),
                     BlkioEntry(253, 1, "read", 1), BlkioEntry(253, 1, "write", 0)),
        oom_kills=1,
    )


def test_v2_without_io_and_memory_controllers(tmp_path: Path) -> None:
    stats = _v2_group(tmp_path, {"cgroup.controllers": "cpu", "cgroup.events": "frozen 0",
                                 "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4"}).stats()
    assert stats.cpu_usage_ns == 10_000 and stats.cpu_periods is None and stats.cpu_throttled_ns is None
    assert stats.memory_usage is None and stats.memory_failcnt is None and stats.oom_kills == 0
    assert stats.io_service_bytes == () and stats.io_serviced == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("", ()),
    ("Total 0", ()),
    ("8:0 Read 10\n8:0 Write 20\nTotal 30", (BlkioEntry(8, 0, "Read", 10), BlkioEntry(8, 0, "Write", 20))),
    ("259:0 Read 1\n259:0 Read x\ngarbage\n", (BlkioEntry(259, 0, "Read", 1),)),
])
def test_parse_blkio(text: str, expected: tuple[BlkioEntry, ...]) -> None:
    assert parse_blkio(text) == expected


def test_parse_io_stat_skips_what_is_not_a_device_line() -> None:
    assert parse_io_stat("") == ((), ())
    assert parse_io_stat("\nnonsense here\n7:0 rbytes=1\n") == (
        (BlkioEntry(7, 0, "read", 1), BlkioEntry(7, 0, "write", 0)),
        (BlkioEntry(7, 0, "read", 0), BlkioEntry(7, 0, "write", 0)),
    )
