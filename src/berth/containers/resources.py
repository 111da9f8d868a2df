"""Which resource limits this host's kernel can apply (dockerd's sysinfo), and what
dockerd does at create with those it cannot: it discards them and says so in the
create response's `Warnings`, which the docker CLI prints as "WARNING: …" lines.

The probe reads the cgroup files once, as dockerd reads them at its start. This module
changes a HostConfig and returns dockerd's warning texts; it refuses nothing (the
limits' ranges are checked elsewhere) and starts nothing.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from berth.containers.model import HostConfig

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Support:
    """What dockerd's sysinfo finds the kernel able to limit."""

    memory_limit: bool = True
    swap_limit: bool = True
    memory_swappiness: bool = True
    memory_reservation: bool = True
    oom_kill_disable: bool = True
    pids_limit: bool = True
    cpu_shares: bool = True
    cpu_cfs: bool = True
    cpuset: bool = True
    blkio_weight: bool = True
    blkio_weight_device: bool = True
    blkio_read_bps: bool = True
    blkio_write_bps: bool = True
    blkio_read_iops: bool = True
    blkio_write_iops: bool = True


@functools.cache
def host_support(root: str = CGROUP_ROOT) -> Support:
    """The host's, as dockerd probes it: on cgroup v2 by the root's controllers (where
    OOM-kill disabling and swappiness do not exist), on v1 by each controller's files."""
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            controllers = set(f.read().split())
    except OSError:
        controllers = None
    if controllers is not None:
        memory, io = "memory" in controllers, "io" in controllers
        return Support(memory_limit=memory, swap_limit=memory and _swap_v2(root), memory_swappiness=False,
                       memory_reservation=memory, oom_kill_disable=False, pids_limit="pids" in controllers,
                       cpu_shares="cpu" in controllers, cpu_cfs="cpu" in controllers,
                       cpuset="cpuset" in controllers, blkio_weight=io, blkio_weight_device=io,
                       blkio_read_bps=io, blkio_write_bps=io, blkio_read_iops=io, blkio_write_iops=io)

    def has(controller: str, name: str = "") -> bool:
        return os.path.exists(os.path.join(root, controller, name))

    return Support(
        memory_limit=has("memory"), swap_limit=has("memory", "memory.memsw.limit_in_bytes"),
        memory_swappiness=has("memory", "memory.swappiness"),
        memory_reservation=has("memory", "memory.soft_limit_in_bytes"),
        oom_kill_disable=has("memory", "memory.oom_control"), pids_limit=has("pids"),
        cpu_shares=has("cpu", "cpu.shares"), cpu_cfs=has("cpu", "cpu.cfs_quota_us"), cpuset=has("cpuset"),
        blkio_weight=has("blkio", "blkio.weight"), blkio_weight_device=has("blkio", "blkio.weight_device"),
        blkio_read_bps=has("blkio", "blkio.throttle.read_bps_device"),
        blkio_write_bps=has("blkio", "blkio.throttle.write_bps_device"),
        blkio_read_iops=has("blkio", "blkio.throttle.read_iops_device"),
        blkio_write_iops=has("blkio", "blkio.throttle.write_iops_device"))


def _swap_v2(root: str) -> bool:
    """Swap accounting on v2: a memory.swap.max somewhere below the root (not at it)."""
    try:
        return any(os.path.exists(os.path.join(root, entry.name, "memory.swap.max"))
                   for entry in os.scandir(root) if entry.is_dir())
    except OSError:
        return False


def discard_unsupported(h: HostConfig, support: Support) -> list[str]:
    """dockerd's verifyPlatformContainerResources at create: what the kernel cannot
    limit is dropped from `h`; its warnings, in dockerd's order and words."""
    warnings: list[str] = []
    if h.memory_swappiness == -1:
        h.memory_swappiness = None
    if h.memory > 0 and not support.memory_limit:
        warnings.append("Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        h.memory, h.memory_swap = 0, -1
    if h.memory > 0 and h.memory_swap != -1 and not support.swap_limit:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        h.memory_swap = -1
    if h.memory_swappiness is not None and not support.memory_swappiness:
        warnings.append("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
                        "Memory swappiness discarded.")
        h.memory_swappiness = None
    if h.memory_reservation > 0 and not support.memory_reservation:
        warnings.append("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        h.memory_reservation = 0
    if h.oom_kill_disable and not support.oom_kill_disable:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        h.oom_kill_disable = False
    if h.oom_kill_disable and h.memory == 0:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                        "this can result in the system running out of resources.")
    if h.pids_limit is not None and not support.pids_limit:
        if h.pids_limit > 0:
            warnings.append("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                            "PIDs limit discarded.")
        h.pids_limit = None
    if h.cpu_shares > 0 and not support.cpu_shares:
        warnings.append("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")
        h.cpu_shares = 0
    if (h.cpu_period or h.cpu_quota) and not support.cpu_cfs:
        warnings.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        h.cpu_period = h.cpu_quota = 0
    if h.cpu_percent > 0:
        warnings.append("linux does not support CPU percent. Percent discarded.")
    h.cpu_percent = 0
    if (h.cpuset_cpus or h.cpuset_mems) and not support.cpuset:
        warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
        h.cpuset_cpus = h.cpuset_mems = ""
    if h.blkio_weight > 0 and not support.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        h.blkio_weight = 0
    if h.blkio_weight_device and not support.blkio_weight_device:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
                        "Weight-device discarded.")
        h.blkio_weight_device = []
    if h.blkio_device_read_bps and not support.blkio_read_bps:
        warnings.append("Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. "
                        "Block I/O BPS read limit discarded.")
        h.blkio_device_read_bps = []
    if h.blkio_device_write_bps and not support.blkio_write_bps:
        warnings.append("Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. "
                        "Block I/O BPS write limit discarded.")
        h.blkio_device_write_bps = []
    if h.blkio_device_read_iops and not support.blkio_read_iops:
        warnings.append("Your kernel does not support IOPS Block read limit or the cgroup is not mounted. "
                        "Block I/O IOPS read limit discarded.")
        h.blkio_device_read_iops = []
    if h.blkio_device_write_iops and not support.blkio_write_iops:
        warnings.append("Your kernel does not support IOPS Block write limit or the cgroup is not mounted. "
                        "Block I/O IOPS write limit discarded.")
        h.blkio_device_write_iops = []
    return warnings
