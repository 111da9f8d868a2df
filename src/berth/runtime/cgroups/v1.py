"""The cgroup v1 back end: one directory per hierarchy, the v1 files.

A v1 host mounts each controller (or a few together, as "cpu,cpuacct") as its own
hierarchy. The group is made in every hierarchy mounted under the root, as runc does,
so that `update()` can later set anything and /proc/<pid>/cgroup reads the same in
each; named hierarchies such as name=systemd are joined too.

Details the kernel imposes:
- a new cpuset group starts with empty cpuset.cpus/mems, and a process cannot join it
  until they are set, so create() copies the parent's values into every new level;
- memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes, so the order of
  the two writes depends on whether the memory+swap total goes up or down;
- memory.memsw.* exists only with swap accounting on, and blkio.weight only with an
  I/O scheduler that has weights (blkio.bfq.weight with BFQ): their absence is an
  error only when the bundle asks for them.
"""

from __future__ import annotations

import errno
import os

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
    HugepageLimit,
    MemoryResources,
    NetworkResources,
    Resources,
    ThrottleDevice,
    rdma_max_lines,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from berth.runtime.cgroups import FreezerState

_KNOWN_CONTROLLERS = frozenset(
    {"cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
     "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"}
)


def find_hierarchies(root: str = CGROUP_ROOT, mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """Map each v1 controller (and "name=…" hierarchy) mounted under root to its mount point."""
    found: dict[str, str] = {}
    with open(mountinfo) as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
                continue
            mountpoint = _unescape(fields[4])
            if os.path.dirname(mountpoint) != root.rstrip("/"):
                continue
            for option in tail[2].split(","):
                if option in _KNOWN_CONTROLLERS or option.startswith("name="):
                    found.setdefault(option, mountpoint)
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


class V1Cgroup(Cgroup):
    backend = "v1"

    def __init__(self, path: str, hierarchies: Mapping[str, str]) -> None:
        super().__init__(path)
        self.hierarchies = dict(hierarchies)  # controller -> mount point

    def _mountpoints(self) -> list[str]:
        return list(dict.fromkeys(self.hierarchies.values()))

    def _directories(self) -> list[str]:
        return [mountpoint + self.path for mountpoint in self._mountpoints()]

    def _dir(self, controller: str) -> str:
        mountpoint = self.hierarchies.get(controller)
        if mountpoint is None:
            raise CgroupError(f"cgroup v1 controller {controller!r} is not mounted on this host")
        return mountpoint + self.path

    def _file(self, controller: str, name: str) -> str:
        return os.path.join(self._dir(controller), name)

    def _procs_dir(self) -> str:
        for controller in ("freezer", "pids", "memory"):
            if controller in self.hierarchies:
                return self._dir(controller)
        return self._directories()[0]

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._directories())

    def create(self) -> None:
        cpuset_mountpoint = self.hierarchies.get("cpuset")
        for mountpoint in self._mountpoints():
            directory = mountpoint
            for part in self.path.strip("/").split("/"):
                directory = os.path.join(directory, part)
                try:
                    os.mkdir(directory)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise CgroupError(f"cannot create cgroup {directory}: {e.strerror}", e.errno) from None
                if mountpoint == cpuset_mountpoint:
                    _inherit_cpuset(directory)

    def add(self, pid: int) -> None:
        for directory in self._directories():
            write_file(os.path.join(directory, "cgroup.procs"), str(pid))

    def join_files(self) -> list[str]:
        return [os.path.join(directory, "tasks") for directory in self._directories()]

    def _apply(self, resources: Resources) -> None:
        if resources.cpu is not None:
            self._apply_cpuset(resources.cpu)
        if resources.memory is not None:
            self._apply_memory(resources.memory)
        if resources.cpu is not None:
            self._apply_cpu(resources.cpu)
        if resources.pids is not None:
            limit = resources.pids.limit
            write_file(self._file("pids", "pids.max"), "max" if limit == UNLIMITED else str(limit))
        if resources.block_io is not None:
            self._apply_block_io(resources.block_io)
        for hugepage in resources.hugepage_limits:
            self._apply_hugepage_limit(hugepage)
        if resources.network is not None:
            self._apply_network(resources.network)
        for line in rdma_max_lines(resources.rdma):
            write_file(os.path.join(self._controller_dir("rdma", "linux.resources.rdma"), "rdma.max"), line)
        if resources.unified:
            raise CgroupError("linux.resources.unified: needs cgroup v2, and this host runs cgroup v1")
        if resources.devices is not None:
            # Start from nothing, then replay the rules in order. On a running group
            # this briefly denies everything; device rules are set at creation.
            write_file(self._file("devices", "devices.deny"), "a")
            for rule in resources.devices:
                name = "devices.allow" if rule.allow else "devices.deny"
                write_file(self._file("devices", name), rule.line())

    def _controller_dir(self, controller: str, field: str) -> str:
        if controller not in self.hierarchies:
            raise CgroupError(f"{field}: the {controller} cgroup controller is not mounted on this host")
        return self._dir(controller)

    def _apply_hugepage_limit(self, hugepage: HugepageLimit) -> None:
        """hugetlb.SIZE.limit_in_bytes (not the .rsvd limit beside it, as runc 1.1)."""
        field = "linux.resources.hugepageLimits"
        limit_file = os.path.join(self._controller_dir("hugetlb", field), f"hugetlb.{hugepage.page_size}.limit_in_bytes")
        if not os.path.exists(limit_file):
            raise CgroupError(f"{field}: this host has no huge pages of size {hugepage.page_size}")
        write_file(limit_file, str(hugepage.limit))

    def _apply_network(self, network: NetworkResources) -> None:
        field = "linux.resources.network"
        if network.class_id is not None:
            path = os.path.join(self._controller_dir("net_cls", f"{field}.classID"), "net_cls.classid")
            write_file(path, str(network.class_id))
        if network.priorities:
            path = os.path.join(self._controller_dir("net_prio", f"{field}.priorities"), "net_prio.ifpriomap")
            for name, priority in network.priorities:
                write_file(path, f"{name} {priority}")

    def _apply_cpuset(self, cpu: CPUResources) -> None:
        if cpu.cpus is not None:
            write_file(self._file("cpuset", "cpuset.cpus"), cpu.cpus)
        if cpu.mems is not None:
            write_file(self._file("cpuset", "cpuset.mems"), cpu.mems)

    def _apply_memory(self, memory: MemoryResources) -> None:
        limit_file = self._file("memory", "memory.limit_in_bytes")
        memsw_file = self._file("memory", "memory.memsw.limit_in_bytes")
        if memory.swap is not None and not os.path.exists(memsw_file):
            raise CgroupError(
                "linux.resources.memory.swap: swap accounting is off on this host "
                f"({memsw_file} is missing); boot with swapaccount=1 or leave swap unset"
            )
        writes: list[tuple[str, int]] = []
        if memory.limit is not None:
            writes.append((limit_file, memory.limit))
        if memory.swap is not None:
            # memory.limit may never exceed memsw: when memsw grows, write it first.
            current = read_int(memsw_file)  # None: unlimited
            growing = memory.swap == UNLIMITED or (current is not None and current < memory.swap)
            writes.insert(0 if growing else len(writes), (memsw_file, memory.swap))
        for path, value in writes:
            try:
                write_file(path, str(value))
            except CgroupError as e:
                if e.errno == errno.EBUSY:
                    raise CgroupError(
                        f"{e}: the group already uses more memory than {value} bytes", e.errno
                    ) from None
                raise
        if memory.reservation is not None:
            write_file(self._file("memory", "memory.soft_limit_in_bytes"), str(memory.reservation))
        if memory.swappiness is not None:
            write_file(self._file("memory", "memory.swappiness"), str(memory.swappiness))
        if memory.disable_oom_killer is not None:
            write_file(self._file("memory", "memory.oom_control"), "1" if memory.disable_oom_killer else "0")

    def _apply_cpu(self, cpu: CPUResources) -> None:
        if cpu.shares is not None:
            write_file(self._file("cpu", "cpu.shares"), str(cpu.shares))
        quota_written = False
        if cpu.period is not None:
            try:
                write_file(self._file("cpu", "cpu.cfs_period_us"), str(cpu.period))
            except CgroupError as e:
                # A shorter period can push quota/period above what the parent allows;
                # the new quota first makes room (runc does the same).
                if e.errno != errno.EINVAL or cpu.quota is None:
                    raise
                write_file(self._file("cpu", "cpu.cfs_quota_us"), str(cpu.quota))
                write_file(self._file("cpu", "cpu.cfs_period_us"), str(cpu.period))
                quota_written = True
        if cpu.quota is not None and not quota_written:
            write_file(self._file("cpu", "cpu.cfs_quota_us"), str(cpu.quota))
        if cpu.realtime_period is not None:
            write_file(self._file("cpu", "cpu.rt_period_us"), str(cpu.realtime_period))
        if cpu.realtime_runtime is not None:
            write_file(self._file("cpu", "cpu.rt_runtime_us"), str(cpu.realtime_runtime))
        if cpu.idle is not None:
            write_file(self._file("cpu", "cpu.idle"), str(cpu.idle))

    def _apply_block_io(self, block_io: BlockIOResources) -> None:
        where = "linux.resources.blockIO"
        if block_io.weight is not None:
            write_file(self._blkio_file(("blkio.weight", "blkio.bfq.weight"), f"{where}.weight"), str(block_io.weight))
        if block_io.leaf_weight is not None:
            write_file(self._blkio_file(("blkio.leaf_weight",), f"{where}.leafWeight"), str(block_io.leaf_weight))
        for device in block_io.weight_device:
            number = f"{device.major}:{device.minor}"
            if device.weight is not None:
                path = self._blkio_file(("blkio.weight_device", "blkio.bfq.weight_device"), f"{where}.weightDevice")
                write_file(path, f"{number} {device.weight}")
            if device.leaf_weight is not None:
                path = self._blkio_file(("blkio.leaf_weight_device",), f"{where}.weightDevice")
                write_file(path, f"{number} {device.leaf_weight}")
        throttles: list[tuple[str, tuple[ThrottleDevice, ...]]] = [
            ("blkio.throttle.read_bps_device", block_io.throttle_read_bps_device),
            ("blkio.throttle.write_bps_device", block_io.throttle_write_bps_device),
            ("blkio.throttle.read_iops_device", block_io.throttle_read_iops_device),
            ("blkio.throttle.write_iops_device", block_io.throttle_write_iops_device),
        ]
        for name, devices in throttles:
            for throttle in devices:
                write_file(self._file("blkio", name), f"{throttle.major}:{throttle.minor} {throttle.rate}")

    def _blkio_file(self, candidates: tuple[str, ...], field: str) -> str:
        for name in candidates:
            path = self._file("blkio", name)
            if os.path.exists(path):
                return path
        raise CgroupError(
            f"{field}: this kernel has no {candidates[0]} (its I/O scheduler has no weights)"
        )

    def freeze(self, timeout: float = 5.0) -> None:
        state_file = self._file("freezer", "freezer.state")
        write_file(state_file, "FROZEN")

        def frozen() -> bool:
            if read_file(state_file) == "FROZEN":
                return True
            # Freezing can stall on a task that was forking; asking again moves it on.
            write_file(state_file, "FROZEN")
            return False

        try:
            self._wait_for(frozen, "freezing", timeout)
        except CgroupError:
            write_file(state_file, "THAWED")
            raise

    def thaw(self, timeout: float = 5.0) -> None:
        state_file = self._file("freezer", "freezer.state")
        write_file(state_file, "THAWED")
        self._wait_for(lambda: read_file(state_file) == "THAWED", "thawing", timeout)

    def state(self) -> FreezerState:
        if "freezer" not in self.hierarchies:
            return "thawed"
        return "frozen" if read_file(self._file("freezer", "freezer.state")) == "FROZEN" else "thawed"

    def oom_kill_count(self) -> int:
        if "memory" not in self.hierarchies:
            return 0
        return read_keyed(self._file("memory", "memory.oom_control")).get("oom_kill", 0)

    def stats(self) -> CgroupStats:
        def number(controller: str, name: str) -> int | None:
            if controller not in self.hierarchies:
                return None
            return read_int(self._file(controller, name))

        memory_stat: dict[str, int] = {}
        cpu_user = cpu_system = None
        percpu: tuple[int, ...] = ()
        throttling: dict[str, int] = {}
        service_bytes: tuple[BlkioEntry, ...] = ()
        serviced: tuple[BlkioEntry, ...] = ()
        if "memory" in self.hierarchies:
            memory_stat = read_keyed(self._file("memory", "memory.stat"))
        if "cpuacct" in self.hierarchies:
            ticks = read_keyed(self._file("cpuacct", "cpuacct.stat"))
            ns_per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            if "user" in ticks:
                cpu_user = ticks["user"] * ns_per_tick
            if "system" in ticks:
                cpu_system = ticks["system"] * ns_per_tick
            percpu = tuple(int(v) for v in _read_optional(self._file("cpuacct", "cpuacct.usage_percpu")).split())
        if "cpu" in self.hierarchies:
            throttling = read_keyed(self._file("cpu", "cpu.stat"))
        if "blkio" in self.hierarchies:
            service_bytes, serviced = self._blkio_stats()
        return CgroupStats(
            memory_usage=number("memory", "memory.usage_in_bytes"),
            memory_max_usage=number("memory", "memory.max_usage_in_bytes"),
            memory_limit=number("memory", "memory.limit_in_bytes"),
            memory_failcnt=number("memory", "memory.failcnt"),
            memory_stat=memory_stat,
            cpu_usage_ns=number("cpuacct", "cpuacct.usage"),
            cpu_user_ns=cpu_user,
            cpu_system_ns=cpu_system,
            cpu_percpu_ns=percpu,
            cpu_periods=throttling.get("nr_periods"),
            cpu_throttled_periods=throttling.get("nr_throttled"),
            cpu_throttled_ns=throttling.get("throttled_time"),
            pids_current=number("pids", "pids.current"),
            pids_limit=number("pids", "pids.max"),
            io_service_bytes=service_bytes,
            io_serviced=serviced,
            oom_kills=self.oom_kill_count(),
        )

    def _blkio_stats(self) -> tuple[tuple[BlkioEntry, ...], tuple[BlkioEntry, ...]]:
        """Bytes and operations per device: the CFQ scheduler's counters when it keeps
        any for the group, else the throttle layer's (which sees every device), as
        containerd, and so Docker, reads them."""
        for prefix in ("blkio.", "blkio.throttle."):
            service_bytes = parse_blkio(_read_optional(self._file("blkio", prefix + "io_service_bytes_recursive")))
            serviced = parse_blkio(_read_optional(self._file("blkio", prefix + "io_serviced_recursive")))
            if service_bytes or serviced:
                return service_bytes, serviced
        return (), ()


def parse_blkio(text: str) -> tuple[BlkioEntry, ...]:
    """A v1 blkio counter file: "8:0 Read 4096" per line; the closing "Total N" is dropped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        try:
            entries.append(BlkioEntry(int(major), int(minor), fields[1], int(fields[2])))
        except ValueError:
            continue
    return tuple(entries)


def _read_optional(path: str) -> str:
    """A file's text, or "" when this kernel does not have it."""
    try:
        return read_file(path)
    except CgroupError as e:
        if e.errno == errno.ENOENT:
            return ""
        raise


def _inherit_cpuset(directory: str) -> None:
    """Give a new cpuset group its parent's cpus and mems (it starts with none)."""
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_file(os.path.join(directory, name)):
            write_file(os.path.join(directory, name), read_file(os.path.join(parent, name)))
