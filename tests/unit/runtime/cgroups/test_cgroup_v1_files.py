"""cgroup v1 back end, file by file, on temp directories posing as v1 hierarchies."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.runtime.cgroups import CgroupError, open_manager, parse_resources
from berth.runtime.cgroups import v1 as v1_module
from berth.runtime.cgroups.v1 import V1Cgroup, find_hierarchies

MiB = 1024 * 1024
UNLIMITED_V1 = "9223372036854771712"

_FILES = {
    "cpu": {"cgroup.procs": "", "cpu.shares": "1024", "cpu.cfs_period_us": "100000",
            "cpu.cfs_quota_us": "-1", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.idle": "0"},
    "cpuacct": {"cgroup.procs": "", "cpuacct.usage": "123456789", "cpuacct.stat": "user 10\nsystem 5"},
    "cpuset": {"cgroup.procs": "", "cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {"cgroup.procs": "", "memory.limit_in_bytes": UNLIMITED_V1,
               "memory.memsw.limit_in_bytes": UNLIMITED_V1, "memory.soft_limit_in_bytes": UNLIMITED_V1,
               "memory.swappiness": "60", "memory.usage_in_bytes": "1048576",
               "memory.max_usage_in_bytes": "2097152", "memory.stat": "cache 0\nrss 1048576",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2"},
    "devices": {"cgroup.procs": "", "devices.allow": "", "devices.deny": ""},
    "freezer": {"cgroup.procs": "", "freezer.state": "THAWED"},
    "blkio": {"cgroup.procs": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": ""},
    "pids": {"cgroup.procs": "", "pids.max": "max", "pids.current": "1"},
    "hugetlb": {"cgroup.procs": "", "hugetlb.2MB.limit_in_bytes": UNLIMITED_V1,
                "hugetlb.2MB.rsvd.limit_in_bytes": UNLIMITED_V1},
    "net_cls": {"cgroup.procs": "", "net_cls.classid": "0"},
    "net_prio": {"cgroup.procs": "", "net_prio.ifpriomap": ""},
    "rdma": {"cgroup.procs": "", "rdma.max": ""},
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Hierarchies with a pre-made group /berth/c1 (mkdir on tmpfs makes no interface files)."""
    for controller, files in _FILES.items():
        top = tmp_path / controller
        leaf = top / "berth" / "c1"
        leaf.mkdir(parents=True)
        for name, text in files.items():
            (leaf / name).write_text(text)
        (top / "cgroup.procs").write_text("")
    for level in (tmp_path / "cpuset", tmp_path / "cpuset" / "berth"):
        (level / "cpuset.cpus").write_text("0-3" if level.name == "cpuset" else "")
        (level / "cpuset.mems").write_text("0" if level.name == "cpuset" else "")
    return tmp_path


def _cgroup(root: Path, path: str = "/berth/c1") -> V1Cgroup:
    return V1Cgroup(path, {c: str(root / c) for c in _FILES})


def _read(root: Path, controller: str, name: str) -> str:
    return (root / controller / "berth" / "c1" / name).read_text()


def test_find_hierarchies_reads_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
        "50 23 0:32 / /mnt/other\\040memory rw,relatime - cgroup cgroup rw,memory\n"
    )
    assert find_hierarchies("/sys/fs/cgroup", str(mountinfo)) == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "name=systemd": "/sys/fs/cgroup/systemd",
    }
    assert find_hierarchies("/mnt", str(mountinfo)) == {"memory": "/mnt/other memory"}


def test_a_shared_hierarchy_gets_one_directory() -> None:
    cg = V1Cgroup("/berth/c1", {"cpu": "/h/cpu,cpuacct", "cpuacct": "/h/cpu,cpuacct", "pids": "/h/pids"})
    assert cg._directories() == ["/h/cpu,cpuacct/berth/c1", "/h/pids/berth/c1"]


def test_create_copies_cpus_and_mems_into_every_new_level(root: Path) -> None:
    _cgroup(root).create()
    assert (root / "cpuset" / "berth" / "cpuset.cpus").read_text() == "0-3"
    assert (root / "cpuset" / "berth" / "cpuset.mems").read_text() == "0"
    assert _read(root, "cpuset", "cpuset.cpus") == "0-3"


def test_apply_writes_the_v1_files(root: Path) -> None:
    resources = parse_resources({
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB, "swappiness": 0,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1", "mems": "0", "idle": 1},
        "pids": {"limit": 20},
        "blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3}],
    })
    _cgroup(root).apply(resources)
    assert _read(root, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert _read(root, "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert _read(root, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert _read(root, "memory", "memory.swappiness") == "0"
    assert _read(root, "memory", "memory.oom_control") == "1"
    assert _read(root, "cpu", "cpu.shares") == "512"
    assert _read(root, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _read(root, "cpu", "cpu.cfs_period_us") == "100000"
    assert _read(root, "cpu", "cpu.idle") == "1"
    assert _read(root, "cpuset", "cpuset.cpus") == "1"
    assert _read(root, "pids", "pids.max") == "20"
    assert _read(root, "blkio", "blkio.throttle.write_bps_device") == "8:0 1048576"
    # A file keeps only its last write here; the kernel keeps a list. See the next test.
    assert _read(root, "devices", "devices.allow") == "c 1:3 rwm"


def _recorded_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    writes: list[tuple[str, str]] = []
    real = v1_module.write_file

    def record(path: str, value: str) -> None:
        writes.append((Path(path).name, value))
        real(path, value)

    monkeypatch.setattr(v1_module, "write_file", record)
    return writes


def test_devices_start_from_deny_all_and_replay_the_rules_in_order(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _recorded_writes(monkeypatch)
    _cgroup(root).apply(parse_resources({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
        {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"},
    ]}))
    assert writes == [
        ("devices.deny", "a"),
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 136:* rw"),
        ("devices.deny", "b 8:0 w"),
    ]


def test_memsw_goes_first_when_it_grows(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "memory" / "berth" / "c1" / "memory.memsw.limit_in_bytes").write_text(str(128 * MiB))
    writes = _recorded_writes(monkeypatch)
    _cgroup(root).apply(parse_resources({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}}))
    assert writes == [("memory.memsw.limit_in_bytes", str(512 * MiB)), ("memory.limit_in_bytes", str(256 * MiB))]


def test_memory_goes_first_when_memsw_shrinks(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "memory" / "berth" / "c1" / "memory.memsw.limit_in_bytes").write_text(str(512 * MiB))
    writes = _recorded_writes(monkeypatch)
    _cgroup(root).apply(parse_resources({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}}))
    assert writes == [("memory.limit_in_bytes", str(64 * MiB)), ("memory.memsw.limit_in_bytes", str(128 * MiB))]


def test_missing_swap_accounting_matters_only_when_swap_is_asked_for(root: Path) -> None:
    (root / "memory" / "berth" / "c1" / "memory.memsw.limit_in_bytes").unlink()
    cg = _cgroup(root)
    cg.apply(parse_resources({"memory": {"limit": 64 * MiB}}))
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: swap accounting is off"):
        cg.apply(parse_resources({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}}))


def test_blkio_weight_needs_a_weight_file(root: Path) -> None:
    cg = _cgroup(root)
    cg.apply(parse_resources({"blockIO": {"weight": 0}}))  # 0 is "not set": no error
    with pytest.raises(CgroupError, match=r"^linux\.resources\.blockIO\.weight: this kernel has no blkio\.weight"):
        cg.apply(parse_resources({"blockIO": {"weight": 500}}))
    (root / "blkio" / "berth" / "c1" / "blkio.bfq.weight").write_text("100")
    cg.apply(parse_resources({"blockIO": {"weight": 500}}))
    assert _read(root, "blkio", "blkio.bfq.weight") == "500"


def test_pids_unlimited_writes_max(root: Path) -> None:
    (root / "pids" / "berth" / "c1" / "pids.max").write_text("20")
    _cgroup(root).apply(parse_resources({"pids": {"limit": -1}}))
    assert _read(root, "pids", "pids.max") == "max"


def test_add_writes_the_pid_in_every_hierarchy(root: Path) -> None:
    _cgroup(root).add(4242)
    assert all(_read(root, c, "cgroup.procs") == "4242" for c in _FILES)


def test_freezer_state_and_pids(root: Path) -> None:
    cg = _cgroup(root)
    (root / "freezer" / "berth" / "c1" / "cgroup.procs").write_text("12\n7\n")
    sub = root / "freezer" / "berth" / "c1" / "sub"
    sub.mkdir()
    (sub / "cgroup.procs").write_text("99\n7\n")
    assert cg.pids() == [7, 12, 99]
    cg.freeze()
    assert cg.state() == "frozen" and _read(root, "freezer", "freezer.state") == "FROZEN"
    cg.thaw()
    assert cg.state() == "thawed"


def test_freezing_that_never_completes_times_out_and_thaws(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cg = _cgroup(root)
    monkeypatch.setattr(v1_module, "read_file", lambda path: "FREEZING")
    with pytest.raises(CgroupError, match="freezing did not happen within 0.05s"):
        cg.freeze(timeout=0.05)
    assert _read(root, "freezer", "freezer.state") == "THAWED"


def test_stats_and_oom_count(root: Path) -> None:
    cg = _cgroup(root)
    assert cg.oom_kill_count() == 2
    stats = cg.stats()
    assert stats.memory_usage == MiB and stats.memory_max_usage == 2 * MiB
    assert stats.memory_limit is None  # the kernel's "unlimited"
    assert stats.memory_stat == {"cache": 0, "rss": MiB}
    assert stats.cpu_usage_ns == 123456789
    assert stats.cpu_user_ns is not None and stats.cpu_user_ns > 0
    assert stats.pids_current == 1 and stats.pids_limit is None and stats.oom_kills == 2


def test_an_unmounted_controller_is_named(root: Path) -> None:
    cg = V1Cgroup("/berth/c1", {"memory": str(root / "memory")})
    with pytest.raises(CgroupError, match="^cgroup v1 controller 'pids' is not mounted on this host$"):
        cg.apply(parse_resources({"pids": {"limit": 20}}))


@pytest.mark.parametrize("path", ["/", "", "/berth/../etc", "a/\0b"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(CgroupError):
        V1Cgroup(path, {})


def test_paths_are_normalized() -> None:
    assert V1Cgroup("berth//c1/", {}).path == "/berth/c1"


def test_open_manager_refuses_a_root_with_nothing_mounted(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup v1 hierarchy is mounted under"):
        open_manager("/berth/c1", "v1", root=str(tmp_path))
    with pytest.raises(CgroupError, match="is not a cgroup2 file system"):
        open_manager("/berth/c1", "v2", root=str(tmp_path))


def test_hugepage_limits_and_network_classes(root: Path) -> None:
    """As runc: hugetlb.SIZE.limit_in_bytes; net_cls.classid; one
    "IFACE PRIO" line per interface to net_prio.ifpriomap."""
    cg = _cgroup(root)
    cg.update(parse_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
                               "network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 7}]}}))
    assert _read(root, "hugetlb", "hugetlb.2MB.limit_in_bytes") == str(4 * MiB)
    assert _read(root, "hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes") == UNLIMITED_V1  # as runc 1.1
    assert _read(root, "net_cls", "net_cls.classid") == str(0x100001)
    assert _read(root, "net_prio", "net_prio.ifpriomap") == "lo 7"


@pytest.mark.parametrize(("doc", "hierarchies", "message"), [
    ({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}, None,
     "linux.resources.hugepageLimits: this host has no huge pages of size 1GB"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, ["memory"],
     "linux.resources.hugepageLimits: the hugetlb cgroup controller is not mounted on this host"),
    ({"network": {"classID": 1}}, ["memory"],
     "linux.resources.network.classID: the net_cls cgroup controller is not mounted on this host"),
])
def test_hugepage_and_network_errors_name_the_field(root: Path, doc: dict, hierarchies: list[str] | None,
                                                    message: str) -> None:
    cg = V1Cgroup("/berth/c1", {c: str(root / c) for c in (hierarchies or _FILES)})
    with pytest.raises(CgroupError, match=message):
        cg.update(parse_resources(doc))


def test_unified_is_refused_on_v1(root: Path) -> None:
    with pytest.raises(CgroupError, match="linux.resources.unified: needs cgroup v2"):
        _cgroup(root).update(parse_resources({"unified": {"memory.high": "1"}}))


def test_rdma_max(root: Path) -> None:
    _cgroup(root).update(parse_resources({"rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 9}}}))
    assert _read(root, "rdma", "rdma.max") == "mlx4_0 hca_handle=2 hca_object=9"
