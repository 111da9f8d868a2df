"""Compiles the OCI `linux.seccomp` section of config.json into a kernel filter.

This module owns the translation from the runtime spec's seccomp section to a
libseccomp filter (through ctypes), and loading that filter. It does not choose a
profile (`seccomp_default` writes berth's own) and does not decide when to load:
the container's init does, as late as it can before execve.

The work is split in two so that nothing can fail late:

    filt = compile_filter(spec["linux"]["seccomp"])  # checks every field, builds
    ...                                              # drop privileges, set up stdio
    filt.load()                                      # one libseccomp call
    os.execve(...)

`compile_filter` raises `SeccompError`, whose message names the field that was
wrong (`linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"`).

Behaviour follows runc where the spec is silent: a syscall name libseccomp does not
know is skipped; a rule whose action is the default action is skipped (libseccomp
refuses it); a rule comparing the same argument twice becomes one rule per
comparison, since libseccomp cannot AND two comparisons of one argument.

The filter is built without libseccomp's own no_new_privs: loading needs either
no_new_privs (set by the caller when `process.noNewPrivileges` asks for it) or
CAP_SYS_ADMIN, so a container without noNewPrivileges must load before it drops
its capabilities.
"""

from __future__ import annotations

import ctypes
import errno
import os

from berth.runtime.oci import SpecError
from berth.runtime.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)


class SeccompError(SpecError):
    """The seccomp section cannot be turned into a filter; the message names the field."""


# --- libseccomp's ABI (seccomp.h, libseccomp 2.5) -------------------------------

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000  # | errno
SCMP_ACT_TRACE = 0x7FF00000  # | message for the tracer
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000

_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_FLTATR_API_SYSRAWRC = 9

_NR_SCMP_ERROR = -1
_MAX_ARGS = 6


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib.seccomp_init.argtypes = [ctypes.c_uint32]
_lib.seccomp_init.restype = ctypes.c_void_p
_lib.seccomp_release.argtypes = [ctypes.c_void_p]
_lib.seccomp_release.restype = None
_lib.seccomp_load.argtypes = [ctypes.c_void_p]
_lib.seccomp_load.restype = ctypes.c_int
_lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
_lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
_lib.seccomp_arch_add.restype = ctypes.c_int
_lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
_lib.seccomp_attr_set.restype = ctypes.c_int
_lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
_lib.seccomp_rule_add_array.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
]
_lib.seccomp_rule_add_array.restype = ctypes.c_int
_lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.seccomp_export_bpf.restype = ctypes.c_int

# Bound once, so that Filter.load() does no attribute look-up on the library.
_seccomp_load = _lib.seccomp_load

# --- the spec's vocabulary ------------------------------------------------------

_ACTIONS = {
    "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
    "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": SCMP_ACT_LOG,
}
_ACTIONS_WITH_ERRNO = {
    "SCMP_ACT_ERRNO": SCMP_ACT_ERRNO,
    "SCMP_ACT_TRACE": SCMP_ACT_TRACE,
}

_OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _FLTATR_CTL_SSB,
}

_WHERE = "linux.seccomp"


# --- the section, checked -------------------------------------------------------


@record(frozen=True)
class _Comparison:
    index: int
    op: int
    value: int
    value_two: int


@record(frozen=True)
class _Rule:
    where: str
    names: tuple[str, ...]
    action: int
    comparisons: tuple[_Comparison, ...]


@record(frozen=True)
class _Arch:
    where: str
    token: int


@record(frozen=True)
class _Flag:
    where: str
    name: str
    attribute: int


@record(frozen=True)
class _Section:
    default_action: int
    architectures: tuple[_Arch, ...]
    flags: tuple[_Flag, ...]
    rules: tuple[_Rule, ...]


_KIND_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _field(obj: dict[str, Any], key: str, kind: type, where: str, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise SeccompError(f"{where}.{key} is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SeccompError(f"{where}.{key} must be {_KIND_NAMES[kind]}")
    return value


def _unsigned(value: int, bits: int, where: str) -> int:
    if not 0 <= value < 1 << bits:
        raise SeccompError(f"{where}: {value} is out of range for a {bits}-bit unsigned value")
    return value


def _action(obj: dict[str, Any], action_key: str, errno_key: str, where: str) -> int:
    name = _field(obj, action_key, str, where, required=True)
    errno_ret = _field(obj, errno_key, int, where)
    if errno_ret is not None:
        _unsigned(errno_ret, 16, f"{where}.{errno_key}")
    if name in _ACTIONS_WITH_ERRNO:
        return _ACTIONS_WITH_ERRNO[name] | (errno.EPERM if errno_ret is None else errno_ret)
    if name in _ACTIONS:
        if errno_ret is not None:
            raise SeccompError(f"{where}.{errno_key}: {name} does not return an errno")
        return _ACTIONS[name]
    if name == "SCMP_ACT_NOTIFY":
        raise SeccompError(f"{where}.{action_key}: SCMP_ACT_NOTIFY is not supported")
    raise SeccompError(f'{where}.{action_key}: unknown action "{name}"')


def _architecture(name: Any, where: str) -> _Arch:
    if not isinstance(name, str):
        raise SeccompError(f"{where} must be a string")
    token = 0
    if name.startswith("SCMP_ARCH_"):
        token = _lib.seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower().encode())
    if token == 0:
        raise SeccompError(f'{where}: unknown architecture "{name}"')
    return _Arch(where, token)


# The architectures libseccomp 2.5 names (as runc lists them in `features`).
_ARCHITECTURES = ("AARCH64", "ARM", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64", "MIPSEL64N32",
                  "PPC", "PPC64", "PPC64LE", "RISCV64", "S390", "S390X", "X32", "X86", "X86_64")  # fmt: skip


def features() -> dict[str, Any]:
    """What `berth-runtime features` says of seccomp: what a profile may use here."""
    archs = [f"SCMP_ARCH_{a}" for a in _ARCHITECTURES if _lib.seccomp_arch_resolve_name(a.lower().encode())]
    return {"enabled": True, "actions": sorted({*_ACTIONS, *_ACTIONS_WITH_ERRNO}), "operators": sorted(_OPERATORS),
            "archs": archs, "knownFlags": sorted(_FLAGS), "supportedFlags": sorted(_FLAGS)}


def _flag(name: Any, where: str) -> _Flag:
    if not isinstance(name, str):
        raise SeccompError(f"{where} must be a string")
    if name not in _FLAGS:
        raise SeccompError(f'{where}: unsupported flag "{name}"')
    return _Flag(where, name, _FLAGS[name])


def _comparison(arg: Any, where: str) -> _Comparison:
    if not isinstance(arg, dict):
        raise SeccompError(f"{where} must be an object")
    index = _field(arg, "index", int, where, required=True)
    if not 0 <= index < _MAX_ARGS:
        raise SeccompError(f"{where}.index: {index} is out of range (0-{_MAX_ARGS - 1})")
    value = _unsigned(_field(arg, "value", int, where, required=True), 64, f"{where}.value")
    value_two = _unsigned(_field(arg, "valueTwo", int, where) or 0, 64, f"{where}.valueTwo")
    op = _field(arg, "op", str, where, required=True)
    if op not in _OPERATORS:
        raise SeccompError(f'{where}.op: unknown operator "{op}"')
    return _Comparison(index, _OPERATORS[op], value, value_two)


def _rule(entry: Any, where: str) -> _Rule:
    if not isinstance(entry, dict):
        raise SeccompError(f"{where} must be an object")
    names = _field(entry, "names", list, where, required=True)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise SeccompError(f"{where}.names must be a non-empty list of syscall names")
    action = _action(entry, "action", "errnoRet", where)
    args = _field(entry, "args", list, where) or []
    comparisons = tuple(_comparison(a, f"{where}.args[{i}]") for i, a in enumerate(args))
    return _Rule(where, tuple(names), action, comparisons)


def _check_section(section: Any) -> _Section:
    if not isinstance(section, dict):
        raise SeccompError(f"{_WHERE} must be an object")
    if _field(section, "listenerPath", str, _WHERE):
        raise SeccompError(f"{_WHERE}.listenerPath: seccomp notification is not supported")
    default_action = _action(section, "defaultAction", "defaultErrnoRet", _WHERE)
    architectures = _field(section, "architectures", list, _WHERE) or []
    flags = _field(section, "flags", list, _WHERE) or []
    syscalls = _field(section, "syscalls", list, _WHERE) or []
    return _Section(
        default_action=default_action,
        architectures=tuple(
            _architecture(a, f"{_WHERE}.architectures[{i}]") for i, a in enumerate(architectures)
        ),
        flags=tuple(_flag(f, f"{_WHERE}.flags[{i}]") for i, f in enumerate(flags)),
        rules=tuple(_rule(s, f"{_WHERE}.syscalls[{i}]") for i, s in enumerate(syscalls)),
    )


# --- the filter -----------------------------------------------------------------


class Filter:
    """A compiled filter, owned by this process until `release()`."""

    def __init__(self, ctx: int) -> None:
        self._ctx: int | None = ctx
        self.skipped: list[str] = []
        """Syscall names in the section that libseccomp does not know, so not filtered."""

    def load(self) -> None:
        """Install the filter in the kernel for this process; it cannot be undone."""
        rc = _seccomp_load(self._context())
        if rc < 0:
            raise OSError(-rc, f"loading the seccomp filter: {os.strerror(-rc)}")

    def export_bpf(self) -> bytes:
        """The BPF program `load()` would install (struct sock_filter[], native endian)."""
        fd = os.memfd_create("berth-seccomp", os.MFD_CLOEXEC)
        try:
            rc = _lib.seccomp_export_bpf(self._context(), fd)
            if rc < 0:
                raise OSError(-rc, f"exporting the seccomp filter: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Free libseccomp's context; a filter already loaded stays in force."""
        if self._ctx is not None:
            _lib.seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _context(self) -> int:
        if self._ctx is None:
            raise ValueError("the seccomp filter was released")
        return self._ctx


def compile_filter(section: Any) -> Filter:
    """Check the `linux.seccomp` section and build its filter, ready to `load()`."""
    checked = _check_section(section)
    ctx = _lib.seccomp_init(checked.default_action)
    if not ctx:
        raise SeccompError(f"{_WHERE}.defaultAction: libseccomp refuses this action on this kernel")
    filt = Filter(ctx)
    try:
        _build(ctx, checked, filt.skipped)
    except BaseException:
        filt.release()
        raise
    return filt


def _build(ctx: int, section: _Section, skipped: list[str]) -> None:
    # The caller sets no_new_privs itself when the spec asks for it.
    _attr(ctx, _FLTATR_CTL_NNP, 0, f"{_WHERE}: clearing libseccomp's no_new_privs")
    # Errors from the kernel come back as themselves (libseccomp >= 2.5), not -ECANCELED.
    _lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)

    for arch in section.architectures:
        rc = _lib.seccomp_arch_add(ctx, arch.token)
        if rc < 0 and rc != -errno.EEXIST:  # the native architecture is always there
            raise SeccompError(f"{arch.where}: libseccomp cannot add it: {os.strerror(-rc)}")
    for flag in section.flags:
        _attr(ctx, flag.attribute, 1, f"{flag.where}: {flag.name} is not supported here")
    for rule in section.rules:
        if rule.action == section.default_action:
            continue
        for name in rule.names:
            nr = _lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                skipped.append(name)
                continue
            _add_rule(ctx, rule, name, nr)


def _attr(ctx: int, attribute: int, value: int, what: str) -> None:
    rc = _lib.seccomp_attr_set(ctx, attribute, value)
    if rc < 0:
        raise SeccompError(f"{what} ({os.strerror(-rc)})")


def _add_rule(ctx: int, rule: _Rule, name: str, nr: int) -> None:
    indexes = [c.index for c in rule.comparisons]
    if len(set(indexes)) == len(indexes):
        chains = [rule.comparisons]
    else:
        chains = [(c,) for c in rule.comparisons]
    for chain in chains:
        array = (_ArgCmp * _MAX_ARGS)(*(_ArgCmp(c.index, c.op, c.value, c.value_two) for c in chain))
        rc = _lib.seccomp_rule_add_array(ctx, rule.action, nr, len(chain), array)
        if rc < 0:
            raise SeccompError(f"{rule.where}: libseccomp refuses the rule for {name}: {os.strerror(-rc)}")
