"""Which `cgroup` mounts may wait until the others are made (the init's cgroup placement
runs meanwhile): only one that no other mount lies on, above or below."""

import pytest

from berth.runtime.rootfs import _overlaps


@pytest.mark.parametrize(("destination", "later", "overlaps"), [
    ("/sys/fs/cgroup", ["/dev/mqueue", "/dev/shm", "/etc/hosts"], False),  # Docker's layout
    ("/sys/fs/cgroup", ["/sys/fs/cgroup/memory"], True),  # below it
    ("/sys/fs/cgroup", ["/sys"], True),  # above it: it would hide the cgroup mount
    ("/sys/fs/cgroup", ["/"], True),
    ("/sys/fs/cgroup", ["/sys/fs/cgroup/"], True),  # the same, spelled differently
    ("/sys/fs/cgroup", ["/sys/fs/cgroupx"], False),  # a sibling that shares a prefix
    ("sys/fs/cgroup", ["/sys/fs/cgroup"], True),
    ("/sys/fs/cgroup", [], False),
])
def test_overlaps(destination: str, later: list[str], overlaps: bool) -> None:
    assert _overlaps(destination, later) is overlaps
