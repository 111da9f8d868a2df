"""linux.resources.hugepageLimits and .network (net_cls, net_prio), set by berth-runtime
as runc sets them, on real cgroup v1 hierarchies.

A hybrid host often has none of the three as v1 hierarchies (Debian's systemd leaves
them unmounted, or hugetlb on the v2 side). The module mounts what is missing under
/sys/fs/cgroup, as a Docker host would have them, and unmounts what it mounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.runtime.cgroups.v1 import find_hierarchies
from helpers.bundles import Lab, Runtime, minimal_config, open_lab

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is the oracle (apt-get install runc)"),
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
MiB = 1024 * 1024
HUGE = "2MB"


def _v1_controllers() -> dict[str, Path]:
    return {c: Path(mp) for c, mp in find_hierarchies(str(CGROUP_ROOT)).items()}


@pytest.fixture(scope="module")
def hierarchies() -> Iterator[dict[str, Path]]:
    if not (Path("/sys/kernel/mm/hugepages") / "hugepages-2048kB").is_dir():
        pytest.skip("this kernel has no 2 MB huge pages")
    mounted: list[tuple[Path, bool, bool]] = []  # (mount point, made its directory, made the hierarchy)
    try:
        for name in ("hugetlb", "net_cls,net_prio"):
            if name.split(",")[0] in _v1_controllers():
                continue
            target = CGROUP_ROOT / name
            made = not target.exists()
            new_hierarchy = _hierarchy_id(name.split(",")[0]) == 0
            target.mkdir(exist_ok=True)
            r = subprocess.run(["mount", "-t", "cgroup", "-o", name, "cgroup", str(target)],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
            if r.returncode != 0:
                if made:
                    target.rmdir()
                pytest.skip(f"cannot mount the {name} cgroup v1 hierarchy here: {r.stderr.strip()}")
            mounted.append((target, made, new_hierarchy))
        controllers = _v1_controllers()
        yield {c: controllers[c] for c in ("hugetlb", "net_cls", "net_prio")}
    finally:
        for target, made, new_hierarchy in reversed(mounted):
            _unmount_hierarchy(target, new_hierarchy)
            if made:
                target.rmdir()


def _hierarchy_id(controller: str) -> int:
    with open("/proc/cgroups") as f:
        for line in f:
            fields = line.split()
            if fields[0] == controller:
                return int(fields[1])
    return 0


def _unmount_hierarchy(target: Path, made: bool) -> None:
    """Unmount a v1 hierarchy we mounted and, if the mount made it, see it gone from the
    kernel: one unmounted while a removed group of it was still going away lives on
    unmounted (every process then lists it in /proc/PID/cgroup); a mount and unmount of
    it once empty ends it. (A hierarchy that was there unmounted before, with groups of
    its own, stays as it was.)"""
    controller = target.name.split(",")[0]
    for _attempt in range(3):
        subprocess.run(["umount", str(target)], capture_output=True, timeout=10)
        if not made:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _hierarchy_id(controller) == 0:
                return
            time.sleep(0.1)
        subprocess.run(["mount", "-t", "cgroup", "-o", target.name, "cgroup", str(target)],
                       capture_output=True, timeout=10)  # fmt: skip
    raise AssertionError(f"the {target.name} cgroup hierarchy outlived its unmount")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab("berth-hugetlbtest-") as lab:
        yield lab


RESOURCES = {
    "hugepageLimits": [{"pageSize": HUGE, "limit": 4 * MiB}],
    "network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 5}]},
}


def _created_values(lab: Lab, rt: Runtime, hierarchies: dict[str, Path]) -> dict[str, str]:
    """What the runtime wrote to the container's group, read on the host while it is created."""
    config = minimal_config(["true"])
    cgroup = lab.cgroup_path(rt.name)
    config["linux"].update(cgroupsPath=cgroup, resources=RESOURCES)
    cid = lab.container_id(rt.name)
    r = rt.cmd("create", "--bundle", str(lab.bundle(rt.name, config)), cid)
    assert r.returncode == 0, f"{rt.name} create: {r.stderr.strip()}"
    try:
        group = cgroup.strip("/")
        files = [("hugetlb", f"hugetlb.{HUGE}.limit_in_bytes"), ("net_cls", "net_cls.classid"),
                 ("net_prio", "net_prio.ifpriomap")]  # fmt: skip
        values = {name: (hierarchies[c] / group / name).read_text() for c, name in files}
        reserved = hierarchies["hugetlb"] / group / f"hugetlb.{HUGE}.rsvd.limit_in_bytes"
        if reserved.exists():
            values[reserved.name] = reserved.read_text()
        return values
    finally:
        assert rt.cmd("delete", "--force", cid).returncode == 0


def test_hugetlb_and_network_files_as_runc_writes_them(lab: Lab, hierarchies: dict[str, Path]) -> None:
    want = _created_values(lab, lab.runtime("runc"), hierarchies)
    have = _created_values(lab, lab.runtime("berth"), hierarchies)
    assert have == want
    assert have[f"hugetlb.{HUGE}.limit_in_bytes"].strip() == str(4 * MiB)
    assert have["net_cls.classid"].strip() == str(0x100001)
    assert "lo 5" in have["net_prio.ifpriomap"].splitlines()


def test_a_page_size_the_host_lacks_is_refused_and_leaves_nothing(lab: Lab, hierarchies: dict[str, Path]) -> None:
    berth = lab.runtime("berth")
    config = minimal_config(["true"])
    cgroup = lab.cgroup_path("badsize")
    config["linux"].update(cgroupsPath=cgroup, resources={"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]})
    r = berth.cmd("create", "--bundle", str(lab.bundle("badsize", config)), lab.container_id("badsize"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "berth-runtime: linux.resources.hugepageLimits: this host has no huge pages of size 3MB"]
    assert not (hierarchies["hugetlb"] / cgroup.strip("/")).exists()
