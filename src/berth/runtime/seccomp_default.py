"""berth's default seccomp profile, as an OCI `linux.seccomp` section.

`default_profile(arch, capabilities)` returns the section that berth puts in a
container's config.json when the user names no profile. It blocks what Docker's
default profile blocks for a container without extra capabilities, and lets a
capability the container holds re-open the calls that capability governs, as
Docker's does (`--cap-add SYS_TIME` allows clock_settime, and so on).

The profile is a deny-list: everything is allowed except the calls below, which
fail with EPERM (clone3 fails with ENOSYS, so that libc falls back to clone, whose
namespace flags the filter can see). This module only writes the section;
`seccomp.compile_filter` turns it into a filter.
"""

from __future__ import annotations

import errno
import platform
from typing import Any

# clone(2) flags that create namespaces (linux/sched.h).
_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

# Calls no container may make, whatever its capabilities: kernel keyrings are not
# namespaced, kexec and swap act on the whole machine, the rest are obsolete
# interfaces or ones with a long history of kernel exploits.
_ALWAYS_BLOCKED = (
    "add_key", "keyctl", "request_key",
    "kexec_load", "kexec_file_load",
    "create_module", "get_kernel_syms", "query_module",
    "swapon", "swapoff",
    "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "uselib", "nfsservctl", "vm86", "vm86old", "_sysctl", "sysfs", "ustat",
    "pciconfig_iobase", "pciconfig_read", "pciconfig_write",
)

# Calls blocked unless the container holds one of the capabilities named with them.
_BLOCKED_WITHOUT = (
    (("CAP_SYS_ADMIN",), (
        "mount", "umount", "umount2", "pivot_root",
        "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
        "unshare", "setns",
        "sethostname", "setdomainname",
        "quotactl", "quotactl_fd",
        "lookup_dcookie", "fanotify_init", "name_to_handle_at",
    )),
    (("CAP_SYS_ADMIN", "CAP_BPF"), ("bpf",)),
    (("CAP_SYS_ADMIN", "CAP_PERFMON"), ("perf_event_open",)),
    (("CAP_SYS_ADMIN", "CAP_SYSLOG"), ("syslog",)),
    (("CAP_DAC_READ_SEARCH",), ("open_by_handle_at",)),
    (("CAP_SYS_TIME",), ("settimeofday", "stime", "clock_settime", "clock_settime64")),
    (("CAP_SYS_MODULE",), ("init_module", "finit_module", "delete_module")),
    (("CAP_SYS_BOOT",), ("reboot",)),
    (("CAP_SYS_PACCT",), ("acct",)),
    (("CAP_SYS_RAWIO",), ("iopl", "ioperm")),
    (("CAP_SYS_PTRACE",), ("kcmp", "pidfd_getfd", "process_madvise")),
    (("CAP_SYS_NICE",), (
        "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
        "move_pages", "migrate_pages",
    )),
    (("CAP_SYS_TTY_CONFIG",), ("vhangup",)),
)

_ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def default_profile(arch: str = platform.machine(), capabilities: set[str] | None = None) -> dict[str, Any]:
    """The `linux.seccomp` section for a container on `arch` holding `capabilities`.

    `arch` is a machine name as `uname -m` prints it (Go's amd64/arm64 are accepted);
    an architecture berth has no list for gets a filter for the native one only.
    Capabilities may be written `CAP_SYS_ADMIN` or `SYS_ADMIN`, in any case.
    """
    caps = {_capability_name(c) for c in capabilities or ()}
    machine = _ARCH_ALIASES.get(arch, arch)
    syscalls: list[dict[str, Any]] = [_deny(_ALWAYS_BLOCKED)]
    for relaxing, names in _BLOCKED_WITHOUT:
        if caps.isdisjoint(relaxing):
            syscalls.append(_deny(names))
    if "CAP_SYS_ADMIN" not in caps:
        # The filter cannot see clone3's flags (they sit in a struct in memory), so
        # clone3 pretends not to exist and libc retries with clone.
        syscalls.append(_deny(("clone3",), errno.ENOSYS))
        # A deny-list cannot say "(flags & mask) != 0" in one comparison: one rule per flag.
        # s390 swaps clone's first two arguments.
        flags_arg = 1 if machine in ("s390", "s390x") else 0
        for flag in _NAMESPACE_FLAGS:
            syscalls.append(_deny(("clone",), args=[
                {"index": flags_arg, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"},
            ]))
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": list(_ARCHITECTURES.get(machine, [])),
        "syscalls": syscalls,
    }


def _deny(names: tuple[str, ...], err: int = errno.EPERM, args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": list(names), "action": "SCMP_ACT_ERRNO", "errnoRet": err}
    if args:
        rule["args"] = args
    return rule


def _capability_name(cap: str) -> str:
    cap = cap.upper()
    return cap if cap.startswith("CAP_") else "CAP_" + cap
