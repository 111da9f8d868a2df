"""The e2e leak checker must fail when something leaks, and only then."""

from helpers.leakcheck import (
    LeakReport,
    Snapshot,
    diff_snapshots,
    own_processes,
    unescape_mountinfo,
)
from helpers.leakcheck import ProcInfo as P

ROOT = "/tmp/berth-tabc123"

BEFORE = Snapshot(
    mounts=frozenset({"/ ext4 /dev/vda", "/proc proc proc"}),
    veths=frozenset({"vethhost1"}),
    netns=frozenset({"preexisting"}),
    cgroups=frozenset({"/sys/fs/cgroup/memory/system.slice/berth-old"}),
    processes={},
)


def test_identical_snapshots_are_clean() -> None:
    report = diff_snapshots(BEFORE, BEFORE, ROOT)
    assert not report
    assert report.leaks == [] and report.doubtful == []


def test_things_that_went_away_are_not_leaks() -> None:
    after = Snapshot(mounts=frozenset({"/ ext4 /dev/vda"}))
    assert not diff_snapshots(BEFORE, after, ROOT)


def test_every_kind_of_leftover_is_a_leak() -> None:
    overlay = f"{ROOT}/berthd-data/overlay/abc/merged overlay overlay"
    after = Snapshot(
        mounts=BEFORE.mounts | {overlay},
        veths=BEFORE.veths | {"veth1a2b3c4"},
        netns=BEFORE.netns | {"berth-0123456789ab"},
        cgroups=BEFORE.cgroups | {"/sys/fs/cgroup/memory/berth/0123456789abcdef"},
        processes={4242: f"/work/main/.venv/bin/berth-shim --root {ROOT}/berthd-exec"},
    )
    report = diff_snapshots(BEFORE, after, ROOT)
    assert report
    assert report.doubtful == []
    assert sorted(report.leaks) == sorted(
        [
            f"mount: {overlay}",
            "veth: veth1a2b3c4",
            "netns: berth-0123456789ab",
            "cgroup: /sys/fs/cgroup/memory/berth/0123456789abcdef",
            f"process: pid 4242: /work/main/.venv/bin/berth-shim --root {ROOT}/berthd-exec",
        ]
    )
    text = report.describe()
    assert "veth1a2b3c4" in text and "4242" in text


def test_an_empty_parent_cgroup_is_tolerated_like_dockers() -> None:
    after = Snapshot(
        mounts=BEFORE.mounts,
        veths=BEFORE.veths,
        netns=BEFORE.netns,
        cgroups=BEFORE.cgroups
        | {"/sys/fs/cgroup/memory/berth", "/sys/fs/cgroup/unified/berth", "/sys/fs/cgroup/berth"},
    )
    assert not diff_snapshots(BEFORE, after, ROOT)


def test_a_cgroup_below_or_named_for_a_container_is_a_leak() -> None:
    leftovers = {
        "/sys/fs/cgroup/pids/berth/web",
        "/sys/fs/cgroup/system.slice/berth-0123456789abcdef.scope",
    }
    after = Snapshot(
        mounts=BEFORE.mounts,
        veths=BEFORE.veths,
        netns=BEFORE.netns,
        cgroups=BEFORE.cgroups | {"/sys/fs/cgroup/pids/berth"} | leftovers,
    )
    report = diff_snapshots(BEFORE, after, ROOT)
    assert sorted(report.leaks) == sorted(f"cgroup: {c}" for c in leftovers)


def test_with_another_daemon_running_only_attributable_things_fail() -> None:
    overlay = f"{ROOT}/berthd-data/overlay/x/merged overlay overlay"
    after = Snapshot(
        mounts=BEFORE.mounts | {overlay, "/tmp/berth-tother/data/merged overlay overlay"},
        veths=BEFORE.veths | {"veth9"},
        netns=BEFORE.netns,
        cgroups=BEFORE.cgroups,
        processes={77: f"berth-shim {ROOT}/exec"},
        foreign_daemons={99: "/usr/bin/python3 .venv/bin/berthd --data-root /tmp/berth-tother"},
    )
    report = diff_snapshots(BEFORE, after, ROOT)
    assert report
    assert sorted(report.leaks) == sorted(
        [f"mount: {overlay}", f"process: pid 77: berth-shim {ROOT}/exec"]
    )
    assert sorted(report.doubtful) == sorted(
        ["mount: /tmp/berth-tother/data/merged overlay overlay", "veth: veth9"]
    )


def test_a_process_reusing_a_pid_is_new() -> None:
    before = Snapshot(processes={10: "sleep 100"})
    after = Snapshot(processes={10: f"berth-shim {ROOT}"})
    assert diff_snapshots(before, after, ROOT).leaks == [f"process: pid 10: berth-shim {ROOT}"]


def test_report_is_falsy_with_only_doubtful_items() -> None:
    report = LeakReport(doubtful=["veth: veth0"])
    assert not report
    assert "maybe not ours" in report.describe()


def test_own_processes_follow_root_marker_and_descendants() -> None:
    procs = {
        1: P(1, 0, "/sbin/init", b"", "pid:[1]"),
        100: P(100, 1, f"berthd --data-root {ROOT}/data", b"", "pid:[1]"),
        101: P(101, 1, "berth-shim abc", b"BERTH_TEST_SESSION=m1\0", "pid:[1]"),
        102: P(102, 101, "sleep 100", b"PATH=/bin\0", "pid:[2]"),
        103: P(103, 102, "sh", b"", "pid:[2]"),
        200: P(200, 1, "berth-shim other", b"BERTH_TEST_SESSION=m2\0", "pid:[1]"),
        201: P(201, 200, "sleep 100", b"", "pid:[3]"),
    }
    assert set(own_processes(procs, ROOT, "m1")) == {100, 101, 102, 103}


def test_unescape_mountinfo() -> None:
    assert unescape_mountinfo(r"/tmp/a\040b\011c") == "/tmp/a b\tc"
