"""cgroup v2 back end, file by file, on a temp directory posing as a cgroup2 mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.runtime.cgroups import CgroupError, ResourceError, parse_resources
from berth.runtime.cgroups.resources import UNLIMITED
from berth.runtime.cgroups.v2 import V2Cgroup, cpu_max, cpu_weight, io_weight, swap_max

MiB = 1024 * 1024

# The files a leaf group has with every controller enabled, and their kernel defaults.
_LEAF_FILES = {
    "cgroup.controllers": "cpu cpuset io memory pids",
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 0\nfrozen 0",
    "cpu.max": "max 100000",
    "cpu.weight": "100",
    "cpu.idle": "0",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.low": "0",
    "memory.current": "4096",
    "memory.peak": "8192",
    "memory.stat": "anon 4096\ninactive_file 0",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
    "pids.max": "max",
    "pids.current": "1",
    "io.weight": "default 100",
    "io.max": "",
}


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu cpuset io memory pids hugetlb rdma\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def _leaf(mount: Path, path: str, files: dict[str, str] | None = None) -> Path:
    """Pre-make the group's directory with its interface files (mkdir on tmpfs makes none)."""
    leaf = mount / path.strip("/")
    leaf.mkdir(parents=True, exist_ok=True)
    for name, text in (files if files is not None else _LEAF_FILES).items():
        (leaf / name).write_text(text)
    return leaf


def test_cpu_weight_from_shares() -> None:
    assert cpu_weight(2) == 1
    assert cpu_weight(1024) == 39  # Docker's default shares
    assert cpu_weight(262144) == 10000


def test_io_weight_from_blkio_weight() -> None:
    assert io_weight(10) == 1
    assert io_weight(500) == 4950
    assert io_weight(1000) == 10000


def test_swap_max_is_swap_minus_limit() -> None:
    assert swap_max(64 * MiB, 128 * MiB) == str(64 * MiB)
    assert swap_max(64 * MiB, 64 * MiB) == "0"
    assert swap_max(64 * MiB, UNLIMITED) == "max"
    with pytest.raises(ResourceError, match="memory.swap"):
        swap_max(64 * MiB, 32 * MiB)
    with pytest.raises(ResourceError, match="needs a memory.limit"):
        swap_max(None, 32 * MiB)


def test_cpu_max_keeps_the_half_not_given() -> None:
    assert cpu_max(50000, 100000) == "50000 100000"
    assert cpu_max(UNLIMITED, None, "50000 100000") == "max 100000"
    assert cpu_max(None, 200000, "50000 100000") == "50000 200000"
    assert cpu_max(25000, None, "max 50000") == "25000 50000"


def test_create_enables_the_managed_controllers_on_the_way_down(mount: Path) -> None:
    parent = mount / "berth"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpu cpuset hugetlb io memory pids")
    (parent / "cgroup.subtree_control").write_text("")
    V2Cgroup("/berth/abc", str(mount)).create()
    # rdma is offered but not one berth manages.
    assert (mount / "cgroup.subtree_control").read_text() == "+cpu +cpuset +hugetlb +io +memory +pids"
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +cpuset +hugetlb +io +memory +pids"
    assert (parent / "abc").is_dir()


def test_create_leaves_enabled_controllers_alone(mount: Path) -> None:
    (mount / "cgroup.controllers").write_text("rdma")
    V2Cgroup("/berth-x", str(mount)).create()
    assert (mount / "cgroup.subtree_control").read_text() == ""


def test_apply_converts_oci_values(mount: Path) -> None:
    leaf = _leaf(mount, "/c1")
    resources = parse_resources({
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB, "swappiness": 10},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {
            "weight": 500,
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        },
    })
    V2Cgroup("/c1", str(mount)).apply(resources)
    assert (leaf / "memory.max").read_text() == str(64 * MiB)
    assert (leaf / "memory.swap.max").read_text() == str(32 * MiB)
    assert (leaf / "memory.low").read_text() == str(32 * MiB)
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "cpuset.cpus").read_text() == "0"
    assert (leaf / "pids.max").read_text() == "20"
    assert (leaf / "io.weight").read_text() == "default 4950"
    assert (leaf / "io.max").read_text() == "8:0 rbps=1048576"


def test_bfq_takes_the_blkio_weight_as_is(mount: Path) -> None:
    leaf = _leaf(mount, "/c1", {**_LEAF_FILES, "io.bfq.weight": "default 100"})
    V2Cgroup("/c1", str(mount)).apply(parse_resources({"blockIO": {"weight": 500}}))
    assert (leaf / "io.bfq.weight").read_text() == "500"
    assert (leaf / "io.weight").read_text() == "default 100"


def test_unlimited_values_write_max(mount: Path) -> None:
    leaf = _leaf(mount, "/c1", {**_LEAF_FILES, "memory.max": "1", "pids.max": "1"})
    V2Cgroup("/c1", str(mount)).apply(parse_resources({"memory": {"limit": -1}, "pids": {"limit": -1}}))
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "pids.max").read_text() == "max"


def test_a_missing_controller_is_named_with_the_field(mount: Path) -> None:
    _leaf(mount, "/c1", {**_LEAF_FILES, "cgroup.controllers": "cpu"})
    cg = V2Cgroup("/c1", str(mount))
    with pytest.raises(CgroupError) as info:
        cg.apply(parse_resources({"cpu": {"shares": 512}, "memory": {"limit": 64 * MiB}}))
    assert str(info.value) == (
        "cgroup v2 controller 'memory' is not available on this host "
        "(needed for linux.resources.memory.limit)"
    )
    assert (mount / "c1" / "cpu.weight").read_text() == "100"  # nothing was written


def test_unlimited_values_need_no_controller(mount: Path) -> None:
    _leaf(mount, "/c1", {**_LEAF_FILES, "cgroup.controllers": ""})
    V2Cgroup("/c1", str(mount)).apply(parse_resources({"memory": {"limit": -1}, "pids": {"limit": 0}}))


def test_realtime_cpu_limits_are_refused(mount: Path) -> None:
    _leaf(mount, "/c1")
    with pytest.raises(CgroupError, match=r"linux\.resources\.cpu\.realtimeRuntime"):
        V2Cgroup("/c1", str(mount)).apply(parse_resources({"cpu": {"realtimeRuntime": 950000}}))


def test_write_errors_name_the_file_and_value(mount: Path) -> None:
    files = dict(_LEAF_FILES)
    del files["pids.max"]
    _leaf(mount, "/c1", files)
    with pytest.raises(CgroupError) as info:
        V2Cgroup("/c1", str(mount)).apply(parse_resources({"pids": {"limit": 20}}))
    assert str(info.value) == f"cannot write '20' to {mount}/c1/pids.max: No such file or directory"


def test_events_stats_and_oom_count(mount: Path) -> None:
    _leaf(mount, "/c1")
    cg = V2Cgroup("/c1", str(mount))
    assert cg.state() == "thawed"
    assert cg.oom_kill_count() == 1
    stats = cg.stats()
    assert stats.memory_usage == 4096 and stats.memory_max_usage == 8192
    assert stats.memory_limit is None and stats.pids_limit is None
    assert stats.cpu_usage_ns == 1_500_000 and stats.cpu_user_ns == 1_000_000
    assert stats.memory_stat == {"anon": 4096, "inactive_file": 0}
    assert stats.pids_current == 1 and stats.oom_kills == 1


def test_stats_without_controllers_are_none(mount: Path) -> None:
    _leaf(mount, "/c1", {"cgroup.controllers": "", "cgroup.events": "frozen 0", "cpu.stat": "usage_usec 7"})
    stats = V2Cgroup("/c1", str(mount)).stats()
    assert stats.memory_usage is None and stats.pids_current is None and stats.oom_kills == 0
    assert stats.cpu_usage_ns == 7000


def test_hugepage_limits_on_v2_and_network_ignored(mount: Path) -> None:
    leaf = _leaf(mount, "/c1", {**_LEAF_FILES, "cgroup.controllers": "cpu cpuset hugetlb io memory pids",
                                "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max"})
    cg = V2Cgroup("/c1", str(mount))
    cg.update(parse_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB}],
                               "network": {"classID": 1}}))  # no net_cls on v2: ignored, as runc
    assert (leaf / "hugetlb.2MB.max").read_text() == str(8 * MiB)
    assert (leaf / "hugetlb.2MB.rsvd.max").read_text() == "max"  # as runc 1.1
    with pytest.raises(CgroupError, match="no huge pages of size 1GB"):
        cg.update(parse_resources({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}))
    no_hugetlb = V2Cgroup("/c2", str(mount))
    _leaf(mount, "/c2")
    with pytest.raises(CgroupError, match="'hugetlb' is not available on this host .needed for linux.resources.hugepageLimits"):
        no_hugetlb.update(parse_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}))


def test_unified_files_are_written_as_given(mount: Path) -> None:
    leaf = _leaf(mount, "/c1", {**_LEAF_FILES, "memory.high": "max", "cgroup.max.descendants": "max"})
    cg = V2Cgroup("/c1", str(mount))
    cg.update(parse_resources({"unified": {"memory.high": "67108864", "cgroup.max.descendants": "10"}}))
    assert (leaf / "memory.high").read_text() == "67108864"
    assert (leaf / "cgroup.max.descendants").read_text() == "10"
    with pytest.raises(CgroupError, match="this kernel has no cgroup file memory.nope"):
        cg.update(parse_resources({"unified": {"memory.nope": "1"}}))
    with pytest.raises(CgroupError, match="'rdma' is not available on this host .needed for linux.resources.unified.rdma.max"):
        cg.update(parse_resources({"unified": {"rdma.max": "x"}}))
