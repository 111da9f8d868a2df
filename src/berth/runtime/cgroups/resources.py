"""The OCI `linux.resources` section, read into typed records.

`parse_resources(doc)` turns the JSON object into `Resources`; every error names the
field, as in "linux.resources.memory.limit: must be an integer". The records say what
the bundle asked for, in OCI's units and with OCI's meanings; turning them into cgroup
files is the business of the back ends (`v1`, `v2`), not of this module.

Conventions, as runc reads the same document:
- A field that is absent, null, or 0 where 0 means "not set" in runc (memory limits,
  cpu shares/quota/period, blkio weights) is `None`: leave the kernel's value alone.
- -1 means "unlimited" for memory.limit, memory.swap, memory.reservation, cpu.quota
  and pids.limit (pids.limit 0 is unlimited too, as in Docker's API).
- memory.swap is the memory+swap total (runc's and Docker's meaning), not swap alone.
- memory.kernel and memory.kernelTCP are ignored (the kernel dropped them);
  hugepageLimits are ignored. Both are listed in `Resources.ignored`, and logged.
"""

from __future__ import annotations

from berth.errors import InvalidParameter
from berth.runtime import lazylog
from berth.runtime.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = lazylog.getLogger(__name__)

UNLIMITED = -1

# A container given less than this cannot even start its init; Docker's daemon refuses
# it too ("Minimum memory limit allowed is 6MB"). The kernel itself accepts any value.
MIN_MEMORY_LIMIT = 6 * 1024 * 1024



def _is_cpu_list(text: str) -> bool:
    """'0-3,5': numbers or ranges, comma-separated (what cpuset.cpus/mems take)."""
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not (low.isascii() and low.isdigit()) or (dash and not (high.isascii() and high.isdigit())):
            return False
    return True


class ResourceError(InvalidParameter):
    """linux.resources asks for something invalid; the message starts with the field."""


@record(frozen=True)
class MemoryResources:
    limit: int | None = None  # bytes, or UNLIMITED
    reservation: int | None = None  # soft limit, bytes, or UNLIMITED
    swap: int | None = None  # memory+swap total in bytes, or UNLIMITED
    swappiness: int | None = None  # 0..100
    disable_oom_killer: bool | None = None


@record(frozen=True)
class CPUResources:
    shares: int | None = None  # 2..262144
    quota: int | None = None  # microseconds per period, or UNLIMITED
    period: int | None = None  # microseconds
    realtime_runtime: int | None = None  # microseconds
    realtime_period: int | None = None  # microseconds
    cpus: str | None = None  # "0-2,4"
    mems: str | None = None  # "0"
    idle: int | None = None  # 0 or 1


@record(frozen=True)
class PidsResources:
    limit: int  # maximum number of tasks; UNLIMITED (or 0) for no limit


@record(frozen=True)
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@record(frozen=True)
class ThrottleDevice:
    major: int
    minor: int
    rate: int  # bytes or operations per second; 0 removes the limit


@record(frozen=True)
class BlockIOResources:
    weight: int | None = None  # 10..1000
    leaf_weight: int | None = None  # 10..1000 (cgroup v1 only)
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()


@record(frozen=True)
class DeviceRule:
    """One entry of linux.resources.devices; None for major/minor is the wildcard."""

    allow: bool
    type: str = "a"  # "a" (all), "c" (char) or "b" (block)
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def line(self) -> str:
        """The rule as cgroup v1's devices.allow/devices.deny read it: "c 1:3 rwm"."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @property
    def matches_everything(self) -> bool:
        return self.type == "a" and self.major is None and self.minor is None


@record(frozen=True)
class HugepageLimit:
    page_size: str  # as the kernel names its files: "2MB", "1GB", "64KB"
    limit: int  # bytes


@record(frozen=True)
class NetworkResources:
    """net_cls and net_prio (cgroup v1 only; v2 has neither)."""

    class_id: int | None = None
    priorities: tuple[tuple[str, int], ...] = ()  # (interface, priority)


@record(frozen=True)
class Resources:
    memory: MemoryResources | None = None
    cpu: CPUResources | None = None
    pids: PidsResources | None = None
    block_io: BlockIOResources | None = None
    devices: tuple[DeviceRule, ...] | None = None  # None: leave the device rules alone
    ignored: tuple[str, ...] = ()  # fields present in the document that berth does not apply
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    network: NetworkResources | None = None
    unified: tuple[tuple[str, str], ...] = ()  # cgroup v2 files and values, as given
    rdma: tuple[tuple[str, int | None, int | None], ...] = ()  # (device, hca handles, hca objects)


# The device set Docker and runc grant every container (moby's oci.DefaultSpec,
# runc's specconv.AllowedDevices), used to recognise "the usual rules" on cgroup v2.
DEFAULT_ALLOWED_DEVICES = frozenset(
    {
        DeviceRule(True, "c", None, None, "m"),
        DeviceRule(True, "b", None, None, "m"),
        DeviceRule(True, "c", 1, 3, "rwm"),  # /dev/null
        DeviceRule(True, "c", 1, 5, "rwm"),  # /dev/zero
        DeviceRule(True, "c", 1, 7, "rwm"),  # /dev/full
        DeviceRule(True, "c", 1, 8, "rwm"),  # /dev/random
        DeviceRule(True, "c", 1, 9, "rwm"),  # /dev/urandom
        DeviceRule(True, "c", 5, 0, "rwm"),  # /dev/tty
        DeviceRule(True, "c", 5, 1, "rwm"),  # /dev/console
        DeviceRule(True, "c", 5, 2, "rwm"),  # /dev/ptmx
        DeviceRule(True, "c", 136, None, "rwm"),  # /dev/pts/*
        DeviceRule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
        DeviceRule(True, "c", 10, 229, "rwm"),  # /dev/fuse
    }
)


def reduce_device_rules(rules: tuple[DeviceRule, ...]) -> tuple[bool, list[DeviceRule]]:
    """The policy the rules leave, as the kernel reads them in order: whether the default
    allows, and the exceptions to it, in order (each with the opposite action). An allow
    or deny of everything resets the policy; a specific rule adds an exception, or, when
    it agrees with the default, takes back the exception it names."""
    allow_all = True
    exceptions: dict[DeviceRule, None] = {}
    for rule in rules:
        if rule.matches_everything:
            allow_all = rule.allow
            exceptions.clear()
        elif rule.allow == allow_all:
            exceptions.pop(DeviceRule(not rule.allow, rule.type, rule.major, rule.minor, rule.access), None)
        else:
            exceptions[rule] = None
    return allow_all, list(exceptions)


def check_kernel_limits(resources: Resources) -> None:
    """Refuse values the kernel would accept but no container can live with."""
    mem = resources.memory
    if mem is not None and mem.limit is not None and 0 < mem.limit < MIN_MEMORY_LIMIT:
        raise ResourceError(
            f"linux.resources.memory.limit: {mem.limit} bytes is below the minimum memory "
            f"limit of {MIN_MEMORY_LIMIT} bytes (6 MiB)"
        )


# Parsing.

_PREFIX = "linux.resources"


def parse_resources(doc: Any) -> Resources:
    """Read the `linux.resources` object of config.json (None: no resources)."""
    if doc is None:
        return Resources()
    section = _object(doc, _PREFIX)
    ignored: list[str] = []
    memory = cpu = pids = block_io = None
    devices: tuple[DeviceRule, ...] | None = None
    if section.get("memory") is not None:
        memory = _parse_memory(_object(section["memory"], f"{_PREFIX}.memory"), ignored)
    if section.get("cpu") is not None:
        cpu = _parse_cpu(_object(section["cpu"], f"{_PREFIX}.cpu"))
    if section.get("pids") is not None:
        pids = _parse_pids(_object(section["pids"], f"{_PREFIX}.pids"))
    if section.get("blockIO") is not None:
        block_io = _parse_block_io(_object(section["blockIO"], f"{_PREFIX}.blockIO"))
    if section.get("devices") is not None:
        devices = tuple(
            _parse_device_rule(_object(item, f"{_PREFIX}.devices[{i}]"), f"{_PREFIX}.devices[{i}]")
            for i, item in enumerate(_array(section["devices"], f"{_PREFIX}.devices"))
        )
    hugepage_limits = _parse_hugepage_limits(section.get("hugepageLimits") or [])
    network = None
    if section.get("network") is not None:
        network = _parse_network(_object(section["network"], f"{_PREFIX}.network"))
    unified = _parse_unified(section["unified"]) if section.get("unified") is not None else ()
    rdma = _parse_rdma(section["rdma"]) if section.get("rdma") is not None else ()
    for field_name in ignored:
        log.warning("%s is not supported by berth and is ignored", field_name)
    return Resources(memory, cpu, pids, block_io, devices, tuple(ignored), hugepage_limits, network, unified,
                     rdma)  # fmt: skip


def _parse_rdma(doc: Any) -> tuple[tuple[str, int | None, int | None], ...]:
    where = f"{_PREFIX}.rdma"
    limits = []
    for device, item in _object(doc, where).items():
        at = f"{where}.{device}"
        if not _is_plain_name(device):
            raise ResourceError(f"{where}: {device!r} is not an RDMA device name")
        entry = _object(item, at)
        limits.append((device, _uint32(entry, "hcaHandles", at), _uint32(entry, "hcaObjects", at)))
    return tuple(limits)


def rdma_max_lines(rdma: tuple[tuple[str, int | None, int | None], ...]) -> list[str]:
    """rdma.max's lines (the same file on v1 and v2): "mlx4_0 hca_handle=2 hca_object=max"."""
    def value(n: int | None) -> str:
        return "max" if n is None else str(n)

    return [f"{device} hca_handle={value(h)} hca_object={value(o)}" for device, h, o in rdma]


# The files through which the runtime itself places and arranges groups.
_UNIFIED_RESERVED = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.type")


def _parse_unified(doc: Any) -> tuple[tuple[str, str], ...]:
    """linux.resources.unified: cgroup v2 interface files of the group, and their values."""
    where = f"{_PREFIX}.unified"
    entries = []
    for key, value in _object(doc, where).items():
        controller, dot, name = key.partition(".")
        if not (dot and controller.isalpha() and controller.islower() and name) or "/" in key or key.startswith("."):
            raise ResourceError(f"{where}: {key!r} is not a cgroup v2 file name like 'memory.high'")
        if key in _UNIFIED_RESERVED:
            raise ResourceError(f"{where}: {key} is the runtime's to write")
        if not isinstance(value, str):
            raise ResourceError(f"{where}.{key}: must be a string")
        entries.append((key, value))
    return tuple(entries)


def _parse_hugepage_limits(doc: Any) -> tuple[HugepageLimit, ...]:
    where = f"{_PREFIX}.hugepageLimits"
    limits = []
    for i, item in enumerate(_array(doc, where)):
        at = f"{where}[{i}]"
        entry = _object(item, at)
        size = _string(entry, "pageSize", at)
        number, unit = (size or "")[:-2], (size or "")[-2:]
        if not (number.isascii() and number.isdigit() and unit in ("KB", "MB", "GB")):
            raise ResourceError(f"{at}.pageSize: {size!r} is not a page size like '2MB' or '1GB'")
        limit = _integer(entry, "limit", at)
        if limit is None or limit < 0:
            raise ResourceError(f"{at}.limit: must be a number of bytes")
        limits.append(HugepageLimit(size or "", limit))
    return tuple(limits)


def _parse_network(doc: dict[str, Any]) -> NetworkResources:
    where = f"{_PREFIX}.network"
    class_id = _uint32(doc, "classID", where)
    priorities = []
    for i, item in enumerate(_array(doc.get("priorities") or [], f"{where}.priorities")):
        at = f"{where}.priorities[{i}]"
        entry = _object(item, at)
        name = _string(entry, "name", at)
        if name is None or not _is_plain_name(name):
            raise ResourceError(f"{at}.name: must be an interface name")
        priority = _uint32(entry, "priority", at)
        if priority is None:
            raise ResourceError(f"{at}.priority: must be a 32-bit unsigned integer")
        priorities.append((name, priority))
    return NetworkResources(class_id, tuple(priorities))


def _parse_memory(doc: dict[str, Any], ignored: list[str]) -> MemoryResources:
    where = f"{_PREFIX}.memory"
    limit = _limit(doc, "limit", where)
    reservation = _limit(doc, "reservation", where)
    swap = _limit(doc, "swap", where)
    swappiness = _integer(doc, "swappiness", where)
    if swappiness is not None and swappiness < 0:
        swappiness = None  # Docker's "not set"
    if swappiness is not None and swappiness > 100:
        raise ResourceError(f"{where}.swappiness: must be between 0 and 100, not {swappiness}")
    if swap is not None and swap != UNLIMITED:
        if limit is None or limit == UNLIMITED:
            raise ResourceError(f"{where}.swap: a memory+swap limit needs a memory.limit too")
        if swap < limit:
            raise ResourceError(
                f"{where}.swap: the memory+swap total ({swap}) must not be below "
                f"memory.limit ({limit})"
            )
    for name in ("kernel", "kernelTCP"):
        if _integer(doc, name, where):
            ignored.append(f"{where}.{name}")
    return MemoryResources(
        limit=limit,
        reservation=reservation,
        swap=swap,
        swappiness=swappiness,
        disable_oom_killer=_boolean(doc, "disableOOMKiller", where),
    )


def _parse_cpu(doc: dict[str, Any]) -> CPUResources:
    where = f"{_PREFIX}.cpu"
    shares = _integer(doc, "shares", where) or None
    if shares is not None and not 2 <= shares <= 262144:
        raise ResourceError(f"{where}.shares: must be between 2 and 262144, not {shares}")
    quota = _integer(doc, "quota", where) or None
    if quota is not None and quota != UNLIMITED and quota < 1000:
        raise ResourceError(f"{where}.quota: must be -1 (unlimited) or at least 1000 microseconds, not {quota}")
    period = _integer(doc, "period", where) or None
    if period is not None and not 1000 <= period <= 1_000_000:
        raise ResourceError(f"{where}.period: must be between 1000 and 1000000 microseconds, not {period}")
    rt_runtime = _integer(doc, "realtimeRuntime", where) or None
    if rt_runtime is not None and rt_runtime < UNLIMITED:
        raise ResourceError(f"{where}.realtimeRuntime: must be -1 or a number of microseconds, not {rt_runtime}")
    rt_period = _integer(doc, "realtimePeriod", where) or None
    if rt_period is not None and rt_period < 1:
        raise ResourceError(f"{where}.realtimePeriod: must be a positive number of microseconds")
    idle = _integer(doc, "idle", where)
    if idle is not None and idle not in (0, 1):
        raise ResourceError(f"{where}.idle: must be 0 or 1, not {idle}")
    return CPUResources(
        shares=shares,
        quota=quota,
        period=period,
        realtime_runtime=rt_runtime,
        realtime_period=rt_period,
        cpus=_cpu_list(doc, "cpus", where),
        mems=_cpu_list(doc, "mems", where),
        idle=idle,
    )


def _parse_pids(doc: dict[str, Any]) -> PidsResources:
    where = f"{_PREFIX}.pids"
    limit = _integer(doc, "limit", where)
    if limit is None:
        raise ResourceError(f"{where}.limit: is required")
    return PidsResources(limit=UNLIMITED if limit <= 0 else limit)


def _parse_block_io(doc: dict[str, Any]) -> BlockIOResources:
    where = f"{_PREFIX}.blockIO"
    weight_devices = []
    for i, item in enumerate(_array(doc.get("weightDevice") or [], f"{where}.weightDevice")):
        at = f"{where}.weightDevice[{i}]"
        entry = _object(item, at)
        major, minor = _device_numbers(entry, at)
        weight_devices.append(
            WeightDevice(major, minor, _weight(entry, "weight", at), _weight(entry, "leafWeight", at))
        )
    throttles: dict[str, tuple[ThrottleDevice, ...]] = {}
    for name in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        entries = []
        for i, item in enumerate(_array(doc.get(name) or [], f"{where}.{name}")):
            at = f"{where}.{name}[{i}]"
            entry = _object(item, at)
            major, minor = _device_numbers(entry, at)
            rate = _integer(entry, "rate", at)
            if rate is None or rate < 0:
                raise ResourceError(f"{at}.rate: must be a non-negative integer")
            entries.append(ThrottleDevice(major, minor, rate))
        throttles[name] = tuple(entries)
    return BlockIOResources(
        weight=_weight(doc, "weight", where),
        leaf_weight=_weight(doc, "leafWeight", where),
        weight_device=tuple(weight_devices),
        throttle_read_bps_device=throttles["throttleReadBpsDevice"],
        throttle_write_bps_device=throttles["throttleWriteBpsDevice"],
        throttle_read_iops_device=throttles["throttleReadIOPSDevice"],
        throttle_write_iops_device=throttles["throttleWriteIOPSDevice"],
    )


def _parse_device_rule(doc: dict[str, Any], where: str) -> DeviceRule:
    allow = _boolean(doc, "allow", where)
    if allow is None:
        raise ResourceError(f"{where}.allow: is required")
    kind = _string(doc, "type", where) or "a"
    if kind not in ("a", "b", "c"):
        raise ResourceError(f"{where}.type: must be 'a', 'b' or 'c', not {kind!r}")
    access = _string(doc, "access", where) or "rwm"
    if not set(access) <= set("rwm"):
        raise ResourceError(f"{where}.access: must be letters from 'rwm', not {access!r}")
    numbers = []
    for name in ("major", "minor"):
        value = _integer(doc, name, where)
        if value is not None and value < UNLIMITED:
            raise ResourceError(f"{where}.{name}: must be -1 (any) or a device number, not {value}")
        numbers.append(None if value is None or value == UNLIMITED else value)
    return DeviceRule(allow, kind, numbers[0], numbers[1], "".join(c for c in "rwm" if c in access))


# Typed getters: each error names the full path of the field.


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResourceError(f"{where}: must be an object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ResourceError(f"{where}: must be an array")
    return value


def _is_plain_name(name: str) -> bool:
    """A device or interface name: no path, no blanks (it becomes a word of a cgroup file)."""
    return bool(name) and "/" not in name and not any(c.isspace() for c in name)


def _uint32(doc: dict[str, Any], name: str, where: str) -> int | None:
    value = _integer(doc, name, where)
    if value is not None and not 0 <= value < 1 << 32:
        raise ResourceError(f"{where}.{name}: must be a 32-bit unsigned integer, not {value}")
    return value


def _integer(doc: dict[str, Any], name: str, where: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResourceError(f"{where}.{name}: must be an integer")
    return value


def _boolean(doc: dict[str, Any], name: str, where: str) -> bool | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, bool):
        raise ResourceError(f"{where}.{name}: must be true or false")
    return value


def _string(doc: dict[str, Any], name: str, where: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise ResourceError(f"{where}.{name}: must be a string")
    return value


def _limit(doc: dict[str, Any], name: str, where: str) -> int | None:
    """A byte count where 0 means "not set" and -1 means "unlimited"."""
    value = _integer(doc, name, where)
    if value is not None and value < UNLIMITED:
        raise ResourceError(f"{where}.{name}: must be -1 (unlimited) or a number of bytes, not {value}")
    return value or None


def _weight(doc: dict[str, Any], name: str, where: str) -> int | None:
    value = _integer(doc, name, where) or None
    if value is not None and not 10 <= value <= 1000:
        raise ResourceError(f"{where}.{name}: must be between 10 and 1000, not {value}")
    return value


def _cpu_list(doc: dict[str, Any], name: str, where: str) -> str | None:
    value = _string(doc, name, where)
    if not value:
        return None
    if not _is_cpu_list(value):
        raise ResourceError(f"{where}.{name}: {value!r} is not a list like '0-3,5'")
    return value


def _device_numbers(doc: dict[str, Any], where: str) -> tuple[int, int]:
    major = _integer(doc, "major", where)
    minor = _integer(doc, "minor", where)
    if major is None or major < 0:
        raise ResourceError(f"{where}.major: must be a device number")
    if minor is None or minor < 0:
        raise ResourceError(f"{where}.minor: must be a device number")
    return major, minor
