"""Resource limits: OCI `process.rlimits`, Docker's `--ulimit`, and setting them on the init.

Owns the RLIMIT_* name table, parsing both spellings into `Rlimit` records, and
`apply()`, which the container init runs while it is still root (before its
capabilities are cut), because raising a hard limit needs CAP_SYS_RESOURCE.
It does not decide defaults: Docker's default ulimits come from the daemon's config.
"""

from __future__ import annotations

import errno
import os
import resource

from berth.runtime import capabilities
from berth.runtime.oci import SpecError
from berth.runtime.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_CAP_SYS_RESOURCE = capabilities.cap_number("CAP_SYS_RESOURCE")
RLIM_INFINITY = 2**64 - 1  # rlim_t's "unlimited"; Docker writes it as -1

# asm-generic/resource.h (x86_64 and aarch64 use the generic numbers)
RLIMIT_NUMBERS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

# the names `docker run --ulimit` accepts (go-units' ulimitNameMapping); no "as"
DOCKER_ULIMIT_NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)

class UlimitError(ValueError):
    """A `--ulimit` string (or HostConfig.Ulimits entry) is malformed; one line, as docker's."""


@record(frozen=True)
class Rlimit:
    """One limit; `soft` and `hard` are rlim_t values, RLIM_INFINITY for unlimited."""

    type: str  # "RLIMIT_NOFILE"
    soft: int
    hard: int

    @property
    def resource(self) -> int:
        return RLIMIT_NUMBERS[self.type]

    def to_oci(self) -> dict[str, Any]:
        return {"type": self.type, "hard": self.hard, "soft": self.soft}

    def as_docker(self) -> tuple[str, int, int]:
        """(name, soft, hard) as HostConfig.Ulimits writes them: "nofile", -1 for unlimited."""
        return self.type[len("RLIMIT_"):].lower(), _signed(self.soft), _signed(self.hard)

    def describe(self) -> str:
        return f"{self.type} (soft {_show(self.soft)}, hard {_show(self.hard)})"


def _signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


def _show(value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)


# --- config.json -----------------------------------------------------------------------


def parse_rlimits(doc: Any) -> list[Rlimit]:
    """Read `process.rlimits`; SpecError names the entry and field that are wrong."""
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise SpecError("config.json: process.rlimits must be a list")
    limits: list[Rlimit] = []
    seen: set[str] = set()
    for i, entry in enumerate(doc):
        where = f"config.json: process.rlimits[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(f"{where} must be an object")
        kind = entry.get("type")
        if not isinstance(kind, str) or kind not in RLIMIT_NUMBERS:
            shown = f'"{kind}"' if isinstance(kind, str) else repr(kind)
            raise SpecError(f"{where}.type: unknown rlimit {shown}")
        if kind in seen:
            raise SpecError(f"{where}.type: {kind} is set more than once")
        seen.add(kind)
        values = {}
        for key in ("soft", "hard"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RLIM_INFINITY:
                raise SpecError(f"{where}.{key} must be an integer from 0 to {RLIM_INFINITY}")
            values[key] = value
        if values["soft"] > values["hard"]:
            raise SpecError(f"{where}: the soft limit {values['soft']} of {kind} is above "
                            f"its hard limit {values['hard']}")
        limits.append(Rlimit(kind, values["soft"], values["hard"]))
    return limits


# --- docker --ulimit -------------------------------------------------------------------


def _parse_int64(text: str) -> int:
    # Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no spaces
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise UlimitError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise UlimitError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def from_docker(name: str, soft: int, hard: int) -> Rlimit:
    """A Docker ulimit (HostConfig.Ulimits entry; -1 is unlimited) as an OCI rlimit, as moby does."""
    if name not in DOCKER_ULIMIT_NAMES:
        raise UlimitError(f"invalid ulimit type: {name}")
    return Rlimit("RLIMIT_" + name.upper(), soft % 2**64, hard % 2**64)


def parse_ulimit(text: str) -> Rlimit:
    """`docker run --ulimit nofile=1024:2048` (or `nofile=1024`, hard = soft) as an OCI rlimit.

    Follows go-units' ParseUlimit, messages included; -1 means unlimited.
    """
    name, sep, values = text.partition("=")
    if not sep:
        raise UlimitError(f"invalid ulimit argument: {text}")
    if name not in DOCKER_ULIMIT_NAMES:
        raise UlimitError(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise UlimitError(f"too many limit value arguments - {values}, can only have up to two, "
                          "`soft[:hard]`")
    soft = _parse_int64(parts[0])
    hard = _parse_int64(parts[1]) if len(parts) == 2 else soft
    if hard != -1:
        if soft == -1:
            raise UlimitError("ulimit soft limit must be less than or equal to hard limit: "
                              f"soft: -1 (unlimited), hard: {hard}")
        if soft > hard:
            raise UlimitError("ulimit soft limit must be less than or equal to hard limit: "
                              f"{soft} > {hard}")
    return from_docker(name, soft, hard)


# --- setting them ----------------------------------------------------------------------


def _to_python(value: int) -> int:
    # CPython passes the limit through a signed long long: -1 is RLIM_INFINITY, and the
    # other values above 2**63 travel as their two's complement
    return _signed(value)


def _from_python(value: int) -> int:
    return value % 2**64


def apply(rlimits: Iterable[Rlimit]) -> None:
    """Set each limit on this process; OSError names the limit and why the kernel refused."""
    for limit in rlimits:
        try:
            resource.prlimit(0, limit.resource, (_to_python(limit.soft), _to_python(limit.hard)))
        except ValueError:  # CPython's EINVAL
            raise OSError(errno.EINVAL, f"setrlimit {limit.describe()}: invalid limits") from None
        except OSError as e:
            raise OSError(e.errno, f"setrlimit {limit.describe()}: {_why(limit, e)}") from None


def _why(limit: Rlimit, error: OSError) -> str:
    reason = os.strerror(error.errno or 0)
    if error.errno != errno.EPERM:
        return reason
    _soft, hard_now = (_from_python(v) for v in resource.getrlimit(limit.resource))
    if limit.type == "RLIMIT_NOFILE":
        nr_open = _nr_open()
        if nr_open is not None and limit.hard > nr_open:
            return f"{reason}: the hard limit is above fs.nr_open ({nr_open})"
    if limit.hard > hard_now and _CAP_SYS_RESOURCE not in capabilities.current().effective:
        return (f"{reason}: the hard limit is above the current hard limit ({_show(hard_now)}) "
                "and the runtime lacks CAP_SYS_RESOURCE")
    return reason


def _nr_open() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None

