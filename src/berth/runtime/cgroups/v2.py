"""The cgroup v2 back end: one directory in a cgroup2 mount, OCI values converted.

A group sees a controller only if every ancestor enables it in cgroup.subtree_control.
create() enables the controllers berth uses (cpu, cpuset, io, memory, pids) that the
mount offers, from the root down to the group's parent; apply() then refuses, naming
the controller and the field, any limit that needs a controller the group lacks. The
freezer, cgroup.procs, cgroup.kill and cpu.stat are core v2 files and always work, so
a cgroup2 mount without controllers (the "unified" mount of a hybrid host) can still
hold, freeze, signal and count processes.

Conversions, as runc and crun make them:
- cpu.weight = 1 + (shares - 2) * 9999 / 262142, integer division (shares 2..262144);
- cpu.max = "<quota|max> <period>";
- memory.swap.max = swap - limit (OCI's swap is the memory+swap total);
- io.weight = 1 + (weight - 10) * 9999 / 990, or the weight itself in io.bfq.weight.

Not supported on v2: memory.swappiness, memory.disableOOMKiller and blockIO.leafWeight
(ignored with a warning, as the v2 kernel has no such knob), realtime cpu limits
(an error). Device rules need an eBPF program, which berth does not load yet: the
usual rules (allow all, or deny all but Docker's default device set) are accepted
without enforcement - the container's /dev holds only the nodes the runtime made -
and any other rule is an error.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import NamedTuple

from berth.runtime import lazylog
from berth.runtime.cgroups import (
    CGROUP_ROOT,
    BlkioEntry,
    Cgroup,
    CgroupError,
    CgroupStats,
    read_file,
    read_int,
    read_keyed,
    write_file,
)
from berth.runtime.cgroups.resources import (
    UNLIMITED,
    BlockIOResources,
    CPUResources,
    MemoryResources,
    ResourceError,
    Resources,
    rdma_max_lines,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.runtime.cgroups import FreezerState

log = lazylog.getLogger(__name__)

# The controllers create() enables on the way down, when the mount offers them.
MANAGED_CONTROLLERS = ("cpu", "cpuset", "hugetlb", "io", "memory", "pids")


def cpu_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) as v2 cpu.weight (1..10000)."""
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(weight: int) -> int:
    """blkio weight (10..1000) as v2 io.weight (1..10000)."""
    return 1 + ((weight - 10) * 9999) // 990


def swap_max(limit: int | None, swap: int) -> str:
    """memory.swap.max from OCI's memory.limit and memory+swap total."""
    if swap == UNLIMITED:
        return "max"
    if limit is None or limit == UNLIMITED:
        raise ResourceError("linux.resources.memory.swap: a memory+swap limit needs a memory.limit too")
    if swap < limit:
        raise ResourceError(
            f"linux.resources.memory.swap: the memory+swap total ({swap}) must not be below "
            f"memory.limit ({limit})"
        )
    return str(swap - limit)


def cpu_max(quota: int | None, period: int | None, current: str = "max 100000") -> str:
    """cpu.max from OCI's quota and period; a missing half keeps its current value."""
    current_quota, _, current_period = current.partition(" ")
    if quota is None:
        quota_text = current_quota
    else:
        quota_text = "max" if quota == UNLIMITED else str(quota)
    period_text = str(period) if period is not None else (current_period or "100000")
    return f"{quota_text} {period_text}"


def _limit(value: int) -> str:
    return "max" if value == UNLIMITED else str(value)


class _Setting(NamedTuple):
    file: str  # relative to the group, e.g. "memory.max"
    value: str
    field: str  # the OCI field it comes from, for errors
    restricts: bool  # False when the value is the kernel default ("max"): no controller needed

    @property
    def controller(self) -> str:
        return self.file.split(".", 1)[0]


class V2Cgroup(Cgroup):
    backend = "v2"

    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        super().__init__(path)
        self.root = root.rstrip("/") or "/"
        self.dir = self.root + self.path

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _directories(self) -> list[str]:
        return [self.dir]

    def _procs_dir(self) -> str:
        return self.dir

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def controllers(self) -> set[str]:
        """The controllers this group can use (its cgroup.controllers)."""
        return set(read_file(self._file("cgroup.controllers")).split())

    def create(self) -> None:
        offered = set(read_file(os.path.join(self.root, "cgroup.controllers")).split())
        wanted = [c for c in MANAGED_CONTROLLERS if c in offered]
        directory = self.root
        for part in self.path.strip("/").split("/"):
            _enable_controllers(directory, wanted)
            directory = os.path.join(directory, part)
            try:
                os.mkdir(directory)
            except FileExistsError:
                pass
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {directory}: {e.strerror}", e.errno) from None

    def add(self, pid: int) -> None:
        write_file(self._file("cgroup.procs"), str(pid))

    def join_files(self) -> list[str]:
        return [self._file("cgroup.procs")]

    def _apply(self, resources: Resources) -> None:
        settings: list[_Setting] = []
        if resources.cpu is not None:
            settings += self._cpu_settings(resources.cpu)
        if resources.memory is not None:
            settings += _memory_settings(resources.memory)
        if resources.pids is not None:
            limit = resources.pids.limit
            settings.append(_Setting("pids.max", _limit(limit), "linux.resources.pids.limit", limit != UNLIMITED))
        if resources.block_io is not None:
            settings += self._io_settings(resources.block_io)
        available = self.controllers() | {"cgroup"}  # the core files need no controller
        for hugepage in resources.hugepage_limits:
            if "hugetlb" in available and not os.path.exists(self._file(f"hugetlb.{hugepage.page_size}.max")):
                raise CgroupError(f"linux.resources.hugepageLimits: this host has no huge pages of size "
                                  f"{hugepage.page_size}")  # fmt: skip
            settings.append(_Setting(f"hugetlb.{hugepage.page_size}.max", str(hugepage.limit),
                                     "linux.resources.hugepageLimits", True))  # fmt: skip
        if resources.network is not None and (resources.network.class_id or resources.network.priorities):
            # as runc: cgroup v2 has no net_cls or net_prio; a v2 host classifies by cgroup path
            log.warning("linux.resources.network is ignored on cgroup v2 (no net_cls or net_prio)")
        settings += [_Setting("rdma.max", line, "linux.resources.rdma", True) for line in rdma_max_lines(resources.rdma)]
        for key, value in resources.unified:
            if key.partition(".")[0] in available and not os.path.exists(self._file(key)):
                raise CgroupError(f"linux.resources.unified: this kernel has no cgroup file {key}")
            settings.append(_Setting(key, value, f"linux.resources.unified.{key}", True))
        for setting in settings:
            if setting.controller not in available and setting.restricts:
                raise CgroupError(
                    f"cgroup v2 controller {setting.controller!r} is not available on this host "
                    f"(needed for {setting.field})"
                )
        for setting in settings:
            if setting.controller in available:
                write_file(self._file(setting.file), setting.value)
        if resources.devices is not None:
            from berth.runtime.cgroups import devicefilter

            try:
                devicefilter.attach(self.dir, resources.devices)
            except OSError as e:
                raise CgroupError(f"linux.resources.devices: {e.strerror}", e.errno) from None

    def _cpu_settings(self, cpu: CPUResources) -> list[_Setting]:
        where = "linux.resources.cpu"
        if cpu.realtime_runtime is not None or cpu.realtime_period is not None:
            raise CgroupError(f"{where}.realtimeRuntime: realtime cpu limits are not supported on cgroup v2")
        settings = []
        if cpu.cpus is not None:
            settings.append(_Setting("cpuset.cpus", cpu.cpus, f"{where}.cpus", True))
        if cpu.mems is not None:
            settings.append(_Setting("cpuset.mems", cpu.mems, f"{where}.mems", True))
        if cpu.shares is not None:
            settings.append(_Setting("cpu.weight", str(cpu_weight(cpu.shares)), f"{where}.shares", True))
        if cpu.quota is not None or cpu.period is not None:
            current = "max 100000"
            if os.path.exists(self._file("cpu.max")):
                current = read_file(self._file("cpu.max"))
            value = cpu_max(cpu.quota, cpu.period, current)
            field = f"{where}.quota" if cpu.quota is not None else f"{where}.period"
            settings.append(_Setting("cpu.max", value, field, not value.startswith("max ")))
        if cpu.idle is not None:
            settings.append(_Setting("cpu.idle", str(cpu.idle), f"{where}.idle", cpu.idle != 0))
        return settings

    def _io_settings(self, block_io: BlockIOResources) -> list[_Setting]:
        where = "linux.resources.blockIO"
        bfq = os.path.exists(self._file("io.bfq.weight"))
        settings = []
        if block_io.weight is not None:
            if bfq:
                settings.append(_Setting("io.bfq.weight", str(block_io.weight), f"{where}.weight", True))
            else:
                value = f"default {io_weight(block_io.weight)}"
                settings.append(_Setting("io.weight", value, f"{where}.weight", True))
        if block_io.leaf_weight is not None:
            log.warning("%s.leafWeight is not supported on cgroup v2 and is ignored", where)
        for device in block_io.weight_device:
            if device.weight is None:
                continue
            number = f"{device.major}:{device.minor}"
            if bfq:
                settings.append(_Setting("io.bfq.weight", f"{number} {device.weight}", f"{where}.weightDevice", True))
            else:
                value = f"{number} {io_weight(device.weight)}"
                settings.append(_Setting("io.weight", value, f"{where}.weightDevice", True))
        throttles = [
            ("rbps", "throttleReadBpsDevice", block_io.throttle_read_bps_device),
            ("wbps", "throttleWriteBpsDevice", block_io.throttle_write_bps_device),
            ("riops", "throttleReadIOPSDevice", block_io.throttle_read_iops_device),
            ("wiops", "throttleWriteIOPSDevice", block_io.throttle_write_iops_device),
        ]
        for key, name, devices in throttles:
            for throttle in devices:
                rate = str(throttle.rate) if throttle.rate else "max"
                value = f"{throttle.major}:{throttle.minor} {key}={rate}"
                settings.append(_Setting("io.max", value, f"{where}.{name}", throttle.rate != 0))
        return settings

    def freeze(self, timeout: float = 5.0) -> None:
        write_file(self._file("cgroup.freeze"), "1")
        try:
            self._wait_for(lambda: self._events().get("frozen") == 1, "freezing", timeout)
        except CgroupError:
            write_file(self._file("cgroup.freeze"), "0")
            raise

    def thaw(self, timeout: float = 5.0) -> None:
        write_file(self._file("cgroup.freeze"), "0")
        self._wait_for(lambda: self._events().get("frozen") == 0, "thawing", timeout)

    def state(self) -> FreezerState:
        return "frozen" if self._events().get("frozen") == 1 else "thawed"

    def _events(self) -> dict[str, int]:
        return read_keyed(self._file("cgroup.events"))

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        # cgroup.kill (Linux 5.14) kills the whole subtree at once, with no race to lose.
        if sig == signal.SIGKILL and os.path.exists(self._file("cgroup.kill")):
            write_file(self._file("cgroup.kill"), "1")
            return
        super().kill_all(sig)

    def oom_kill_count(self) -> int:
        return read_keyed(self._file("memory.events")).get("oom_kill", 0)

    def stats(self) -> CgroupStats:
        cpu = read_keyed(self._file("cpu.stat"))

        def usec(key: str) -> int | None:
            return cpu[key] * 1000 if key in cpu else None

        memory_events = read_keyed(self._file("memory.events"))
        io_stat = ""
        if os.path.exists(self._file("io.stat")):
            io_stat = read_file(self._file("io.stat"))
        service_bytes, serviced = parse_io_stat(io_stat)
        return CgroupStats(
            memory_usage=read_int(self._file("memory.current")),
            memory_max_usage=read_int(self._file("memory.peak")),
            memory_limit=read_int(self._file("memory.max")),
            memory_failcnt=memory_events.get("oom"),
            memory_stat=read_keyed(self._file("memory.stat")),
            cpu_usage_ns=usec("usage_usec"),
            cpu_user_ns=usec("user_usec"),
            cpu_system_ns=usec("system_usec"),
            cpu_periods=cpu.get("nr_periods"),
            cpu_throttled_periods=cpu.get("nr_throttled"),
            cpu_throttled_ns=usec("throttled_usec"),
            pids_current=read_int(self._file("pids.current")),
            pids_limit=read_int(self._file("pids.max")),
            io_service_bytes=service_bytes,
            io_serviced=serviced,
            oom_kills=memory_events.get("oom_kill", 0),
        )


def parse_io_stat(text: str) -> tuple[tuple[BlkioEntry, ...], tuple[BlkioEntry, ...]]:
    """io.stat ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0" per device) as
    v1-style entries: bytes, then operations, each as a "read" and a "write" entry."""
    service_bytes: list[BlkioEntry] = []
    serviced: list[BlkioEntry] = []
    for line in text.splitlines():
        device, *pairs = line.split() or [""]
        major, _, minor = device.partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        counters = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if value.isdigit():
                counters[key] = int(value)
        number = (int(major), int(minor))
        service_bytes += [BlkioEntry(*number, "read", counters.get("rbytes", 0)),
                          BlkioEntry(*number, "write", counters.get("wbytes", 0))]
        serviced += [BlkioEntry(*number, "read", counters.get("rios", 0)),
                     BlkioEntry(*number, "write", counters.get("wios", 0))]
    return tuple(service_bytes), tuple(serviced)


def _memory_settings(memory: MemoryResources) -> list[_Setting]:
    where = "linux.resources.memory"
    settings = []
    if memory.limit is not None:
        settings.append(_Setting("memory.max", _limit(memory.limit), f"{where}.limit", memory.limit != UNLIMITED))
    if memory.swap is not None:
        value = swap_max(memory.limit, memory.swap)
        settings.append(_Setting("memory.swap.max", value, f"{where}.swap", value != "max"))
    if memory.reservation is not None:
        value = _limit(memory.reservation)
        settings.append(_Setting("memory.low", value, f"{where}.reservation", True))
    if memory.swappiness is not None:
        log.warning("%s.swappiness is not supported on cgroup v2 and is ignored", where)
    if memory.disable_oom_killer:
        log.warning("%s.disableOOMKiller is not supported on cgroup v2 and is ignored", where)
    return settings


def _enable_controllers(directory: str, wanted: list[str]) -> None:
    """Enable in directory/cgroup.subtree_control those of `wanted` it has but does not pass on."""
    have = set(read_file(os.path.join(directory, "cgroup.controllers")).split())
    enabled = set(read_file(os.path.join(directory, "cgroup.subtree_control")).split())
    missing = [c for c in wanted if c in have and c not in enabled]
    if not missing:
        return
    try:
        write_file(os.path.join(directory, "cgroup.subtree_control"), " ".join("+" + c for c in missing))
    except CgroupError as e:
        if e.errno == errno.EBUSY:
            raise CgroupError(
                f"{e}: {directory} holds processes, so it cannot pass controllers to its children",
                e.errno,
            ) from None
        raise
