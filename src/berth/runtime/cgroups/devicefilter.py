"""Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, as runc makes one.

cgroup v2 has no devices controller; the kernel asks a BPF program attached to the
group whether an access (mknod, read, write of a block or char device) is allowed.
The rules are reduced to a default and its exceptions (resources.reduce_device_rules),
and each exception becomes a block of instructions that returns its verdict when the
access matches it; an access no exception matches gets the default.

The program reads struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
where access_type is the device type (low 16 bits) and the access (high 16 bits).
It is attached without BPF_F_ALLOW_MULTI, so attaching again replaces it (an update),
and it goes with the group when the group is removed.
"""

from __future__ import annotations

import ctypes
import errno as errno_
import os
import struct

from berth.runtime.cgroups.resources import DeviceRule, reduce_device_rules

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, -1)  # bpf(2)
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6  # attach type

_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _load_word(dst: int, offset: int) -> bytes:
    return _insn(0x61, dst, 1, offset)  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(r1 + offset)


def _jne_imm(reg: int, value: int, skip: int) -> bytes:
    return _insn(0x55, reg, 0, skip, value)  # BPF_JMP | BPF_JNE | BPF_K


def _rule_block(rule: DeviceRule) -> bytes:
    """Return the rule's verdict if the access matches it; else fall through to the next.
    Built from the end: each test jumps over what follows it in the block."""
    block = [_insn(0xB4, 0, 0, 0, 1 if rule.allow else 0), _insn(0x95)]  # r0 = verdict; exit
    if rule.minor is not None:
        block = [_jne_imm(5, rule.minor, len(block)), *block]
    if rule.major is not None:
        block = [_jne_imm(4, rule.major, len(block)), *block]
    access = sum(_ACCESS[a] for a in set(rule.access))
    if access != 7:  # the access asked for must be within the rule's: (r3 & access) == r3
        block = [_insn(0xBC, 1, 3), _insn(0x54, 1, 0, 0, access), _insn(0x5D, 1, 3, len(block)), *block]
    if rule.type in _DEV_TYPE:
        block = [_jne_imm(2, _DEV_TYPE[rule.type], len(block)), *block]
    return b"".join(block)


def compile_rules(rules: tuple[DeviceRule, ...]) -> bytes:
    """The program's instructions for these rules (in order, as on v1)."""
    allow_all, exceptions = reduce_device_rules(rules)
    prologue = [
        _load_word(2, 0), _insn(0x54, 2, 0, 0, 0xFFFF),  # r2 = access_type & 0xffff (type)
        _load_word(3, 0), _insn(0x74, 3, 0, 0, 16),  # r3 = access_type >> 16 (access)
        _load_word(4, 4), _load_word(5, 8),  # r4 = major, r5 = minor
    ]  # fmt: skip
    blocks = [_rule_block(rule) for rule in reversed(exceptions)]  # the last rule wins
    default = [_insn(0xB4, 0, 0, 0, 1 if allow_all else 0), _insn(0x95)]
    return b"".join(prologue + blocks + default)


def _bpf(command: int, attr: bytes) -> int:
    if _SYS_BPF < 0:
        raise OSError(errno_.ENOSYS, f"bpf(2) on {os.uname().machine} is not known to berth")
    buf = ctypes.create_string_buffer(attr, 128)
    result = _libc.syscall(_SYS_BPF, command, buf, 128)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return int(result)


def attach(cgroup_dir: str, rules: tuple[DeviceRule, ...]) -> None:
    """Load the program for the rules and attach it to the group (replacing its last)."""
    program = ctypes.create_string_buffer(compile_rules(rules))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(1 << 16)
    load = struct.pack("<IIQQIIQ", _BPF_PROG_TYPE_CGROUP_DEVICE, (len(program) - 1) // 8,
                       ctypes.addressof(program), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log))  # fmt: skip
    try:
        prog_fd = _bpf(_BPF_PROG_LOAD, load)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(e.errno, f"loading the device filter: {e.strerror}" + (f" ({detail[-1]})" if detail else "")) from None
    try:
        group_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(_BPF_PROG_ATTACH, struct.pack("<IIII", group_fd, prog_fd, _BPF_CGROUP_DEVICE, 0))
        finally:
            os.close(group_fd)
    finally:
        os.close(prog_fd)
