"""Linux capabilities: the OCI `process.capabilities` sets, Docker's defaults, and applying them.

Owns the capability name table, Docker's `--cap-add`/`--cap-drop`/`--privileged`
arithmetic, parsing `process.capabilities` from config.json, and the steps that put the
sets on the container's init. It does not switch users: the init does that between
`drop_bounding` and `set_capabilities`, in the order runc uses:

    drop_bounding(sets)          # PR_CAPBSET_DROP every cap not in `bounding`
    set_keepcaps(True)           # keep the permitted set across the uid change
    setgroups / setresgid / setresuid          (the caller)
    set_keepcaps(False)
    set_capabilities(sets)       # capset(effective, permitted, inheritable), then ambient

`apply(sets, switch_user)` runs exactly that list. "All capabilities" always means all
the host has: its own bounding set, which may lack some caps the kernel knows
(this machine has no CAP_SYS_RESOURCE). Caps the host lacks are dropped from a spec
with a warning, as runc does, so a `--privileged` spec written elsewhere still runs here.
"""

from __future__ import annotations

import ctypes
import os

from berth.errors import InvalidParameter
from berth.runtime import linux
from berth.runtime.oci import SpecError
from berth.runtime.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

# linux/capability.h, in number order
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",  # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",  # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",  # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",  # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",  # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",  # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",  # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",  # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)
CAPABILITY_NUMBERS: Mapping[str, int] = {name: n for n, name in enumerate(CAPABILITY_NAMES)}

# moby's oci/caps.DefaultCapabilities(), in its order
DOCKER_DEFAULT: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

SET_NAMES = ("bounding", "effective", "inheritable", "permitted", "ambient")


def cap_number(name: str) -> int:
    """The number of a capability named as in config.json ("CAP_CHOWN"); KeyError if unknown."""
    return CAPABILITY_NUMBERS[name]


def cap_name(number: int) -> str:
    """"CAP_CHOWN" for 0; numbers the table does not know yet read "CAP_41" and so on."""
    return CAPABILITY_NAMES[number] if 0 <= number < len(CAPABILITY_NAMES) else f"CAP_{number}"


def to_mask(caps: Iterable[int]) -> int:
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    return mask


def from_mask(mask: int) -> frozenset[int]:
    return frozenset(n for n in range(mask.bit_length()) if mask >> n & 1)


_LAST_CAP: list[int] = []


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    if not _LAST_CAP:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _LAST_CAP.append(int(f.read()))
        except OSError:
            _LAST_CAP.append(len(CAPABILITY_NAMES) - 1)
    return _LAST_CAP[0]


def _status_masks(pid: int | str = "self") -> dict[str, int]:
    masks = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Cap"):
                masks[key] = int(value.strip(), 16)
    return masks


def host_bounding_set() -> frozenset[int]:
    """The caps this process may still hand on: its bounding set (CapBnd).

    Called in the runtime before anything is dropped, this is everything the host allows.
    """
    return from_mask(_status_masks()["CapBnd"])


@record(frozen=True)
class CapabilitySets:
    """The five capability sets of a process, as cap numbers.

    `warnings` holds one-line messages about caps that were left out (the host lacks
    them, or an ambient cap could never be raised); the runtime prints them, as runc does.
    """

    bounding: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()
    ambient: frozenset[int] = frozenset()
    warnings: tuple[str, ...] = ()

    def names(self, which: str) -> list[str]:
        """One set ("bounding", "effective" …) as sorted names, as config.json writes them."""
        return [cap_name(n) for n in sorted(getattr(self, which))]

    def to_oci(self) -> dict[str, list[str]]:
        return {which: self.names(which) for which in SET_NAMES}


def current(pid: int | str = "self") -> CapabilitySets:
    """The capability sets of a process as /proc/PID/status shows them."""
    masks = _status_masks(pid)
    return CapabilitySets(
        bounding=from_mask(masks["CapBnd"]),
        effective=from_mask(masks["CapEff"]),
        inheritable=from_mask(masks["CapInh"]),
        permitted=from_mask(masks["CapPrm"]),
        ambient=from_mask(masks.get("CapAmb", 0)),
    )


# --- Docker's --cap-add / --cap-drop / --privileged ------------------------------------


def _all_available(available: Iterable[int] | None) -> list[str]:
    caps = host_bounding_set() if available is None else available
    return [cap_name(n) for n in sorted(caps) if n < len(CAPABILITY_NAMES)]  # names config.json takes


def normalize_docker_caps(names: Iterable[str]) -> list[str]:
    """Upper-case, add the CAP_ prefix, keep "ALL"; InvalidParameter for a name we don't know."""
    normalized = []
    for raw in names:
        name = raw.upper()
        if name == "ALL":
            normalized.append(name)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in CAPABILITY_NUMBERS:
            raise InvalidParameter(f'unknown capability: "{name}"')
        normalized.append(name)
    return normalized


def docker_caps(
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    privileged: bool = False,
    available: Iterable[int] | None = None,
) -> list[str]:
    """The capability list Docker gives a container, as moby's caps.TweakCapabilities.

    Starts from DOCKER_DEFAULT; "ALL" in cap_add means every cap the host has minus
    cap_drop, "ALL" in cap_drop means only cap_add. `privileged` gives every cap the host
    has. `available` (cap numbers) stands in for the host's bounding set in tests.
    """
    if privileged:
        return _all_available(available)
    if not cap_add and not cap_drop:
        return list(DOCKER_DEFAULT)
    drops = normalize_docker_caps(cap_drop)
    adds = normalize_docker_caps(cap_add)
    if "ALL" in adds:
        caps = [c for c in _all_available(available) if c not in drops]
    elif "ALL" in drops:
        caps = adds
    else:
        caps = [c for c in DOCKER_DEFAULT if c not in drops] + adds
    return list(dict.fromkeys(caps))


# --- config.json -----------------------------------------------------------------------


def parse_capabilities(doc: Any, available: Iterable[int] | None = None) -> CapabilitySets:
    """Read `process.capabilities`; SpecError names the field that is wrong.

    A missing object means no capabilities at all, as in runc. Caps the host lacks
    (`available`, by default the host's bounding set) are left out of every set with a
    warning. An ambient cap that is not both permitted and inheritable could never be
    raised; runc warns and goes on, and so do we.
    """
    where = "config.json: process.capabilities"
    if doc is None:
        return CapabilitySets()
    if not isinstance(doc, dict):
        raise SpecError(f"{where} must be an object")
    host = frozenset(host_bounding_set() if available is None else available)
    sets: dict[str, frozenset[int]] = {}
    unavailable: dict[str, None] = {}
    for which in SET_NAMES:
        names = doc.get(which)
        if names is None:
            names = []
        if not isinstance(names, list):
            raise SpecError(f"{where}.{which} must be a list of capability names")
        caps = set()
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in CAPABILITY_NUMBERS:
                raise SpecError(f"{where}.{which}[{i}]: unknown capability {_quote(name)}")
            number = CAPABILITY_NUMBERS[name]
            if number in host:
                caps.add(number)
            else:
                unavailable[name] = None
        sets[which] = frozenset(caps)
    for which, within in (("effective", "permitted"), ("inheritable", "bounding")):
        outside = sorted(sets[which] - sets[within])
        if outside:  # capset would refuse it with a bare EPERM
            raise SpecError(f"{where}.{which}: {cap_name(outside[0])} is not in "
                            f"process.capabilities.{within}")
    warnings = []
    if unavailable:
        warnings.append(f"ignoring unknown or unavailable capabilities: [{' '.join(unavailable)}]")
    unraisable = sets["ambient"] - (sets["permitted"] & sets["inheritable"])
    if unraisable:
        names = " ".join(cap_name(n) for n in sorted(unraisable))
        warnings.append(f"ignoring ambient capabilities that are not both permitted and inheritable: [{names}]")
    return CapabilitySets(
        bounding=sets["bounding"],
        effective=sets["effective"],
        inheritable=sets["inheritable"],
        permitted=sets["permitted"],
        ambient=sets["ambient"] - unraisable,
        warnings=tuple(warnings),
    )


def _quote(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


# --- putting the sets on the process ---------------------------------------------------

_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4


def drop_bounding(sets: CapabilitySets) -> None:
    """Step 1: drop from the bounding set every cap not in `sets.bounding`.

    Needs CAP_SETPCAP in the effective set, so it runs while the init is still root.
    """
    for cap in sorted(host_bounding_set() - sets.bounding):
        try:
            linux.prctl(_PR_CAPBSET_DROP, cap)
        except OSError as e:
            raise OSError(e.errno, f"dropping {cap_name(cap)} from the bounding set: "
                                   f"{os.strerror(e.errno or 0)}") from None


def set_keepcaps(on: bool) -> None:
    """Steps 2 and 4: keep the permitted set across a change away from uid 0 (or stop)."""
    try:
        linux.prctl(_PR_SET_KEEPCAPS, 1 if on else 0)
    except OSError as e:
        raise OSError(e.errno, f"prctl(PR_SET_KEEPCAPS): {os.strerror(e.errno or 0)}") from None


def set_capabilities(sets: CapabilitySets) -> None:
    """Step 5: capset(effective, permitted, inheritable), then clear and raise ambient caps.

    Runs after the user switch, with keepcaps on during that switch, so the permitted
    set still holds every cap being asked for.
    """
    try:
        _capset(to_mask(sets.effective), to_mask(sets.permitted), to_mask(sets.inheritable))
    except OSError as e:
        raise OSError(e.errno, f"capset: {os.strerror(e.errno or 0)} (effective must lie within "
                               "permitted, inheritable within bounding)") from None
    try:
        linux.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        if sets.ambient:  # a kernel without ambient caps (< 4.3) only matters if we need them
            raise OSError(e.errno, f"clearing ambient capabilities: {os.strerror(e.errno or 0)}") from None
    for cap in sorted(sets.ambient):
        try:
            linux.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap)
        except OSError as e:
            raise OSError(e.errno, f"raising ambient capability {cap_name(cap)}: "
                                   f"{os.strerror(e.errno or 0)}") from None


def apply(sets: CapabilitySets, switch_user: Callable[[], None] | None = None) -> None:
    """All the steps in runc's order; `switch_user` does setgroups/setresgid/setresuid."""
    drop_bounding(sets)
    set_keepcaps(True)
    if switch_user is not None:
        switch_user()
    set_keepcaps(False)
    set_capabilities(sets)


# The capset syscall: glibc exports it, and it takes a v3 header and two 32-bit words
# per set (caps 0-31, then 32-63).
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capset.restype = ctypes.c_int


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for word in (0, 1):
        shift = 32 * word
        data[word].effective = (effective >> shift) & 0xFFFFFFFF
        data[word].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[word].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
