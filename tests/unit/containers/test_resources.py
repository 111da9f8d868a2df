"""dockerd's create-time discards of the limits a kernel cannot apply, with its warnings."""

from __future__ import annotations

from pathlib import Path

from berth.containers.model import HostConfig
from berth.containers.resources import Support, discard_unsupported, host_support


def test_a_cgroup_v2_host_discards_swappiness_and_oom_kill_disable() -> None:
    h = HostConfig(memory=64 << 20, memory_swappiness=10, oom_kill_disable=True)
    warnings = discard_unsupported(h, Support(memory_swappiness=False, oom_kill_disable=False))
    assert warnings == [
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
        "Memory swappiness discarded.",
        "Your kernel does not support OomKillDisable. OomKillDisable discarded."]
    assert (h.memory_swappiness, h.oom_kill_disable, h.memory) == (None, False, 64 << 20)


def test_without_swap_accounting_memory_is_limited_without_swap() -> None:
    h = HostConfig(memory=64 << 20)
    assert discard_unsupported(h, Support(swap_limit=False)) == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
        "Memory limited without swap."]
    assert h.memory_swap == -1


def test_a_supported_config_is_left_alone() -> None:
    h = HostConfig(memory=64 << 20, memory_swappiness=-1, pids_limit=10, cpu_shares=512, blkio_weight=300)
    assert discard_unsupported(h, Support()) == []
    assert (h.memory_swappiness, h.pids_limit, h.cpu_shares, h.blkio_weight) == (None, 10, 512, 300)


def test_the_v1_probe_reads_each_controllers_files(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.oom_control").touch()
    (tmp_path / "blkio").mkdir()
    (tmp_path / "blkio" / "blkio.throttle.read_bps_device").touch()
    s = host_support.__wrapped__(str(tmp_path))
    assert (s.memory_limit, s.oom_kill_disable, s.swap_limit, s.memory_swappiness) == (True, True, False, False)
    assert (s.blkio_read_bps, s.blkio_weight, s.pids_limit, s.cpuset) == (True, False, False, False)
