"""berth's default seccomp profile, and turning a Docker profile into an OCI section.

The default is an allow-list, as Docker's is: a call the profile does not name fails
with EPERM, so a syscall a future kernel adds stays closed until someone opens it.
`builtin_profile()` returns it in Docker's profile format (the format of
`--security-opt seccomp=FILE` and `dockerd --seccomp-profile`), with rules that apply
only on some architectures, from some kernel on, or to a container holding (or not
holding) a capability; `resolve` turns any such profile into the OCI `linux.seccomp`
section for one container, as dockerd does before handing the bundle to the runtime;
`default_profile(arch, capabilities)` is the two together.

The profile allows what Docker's default allows and nothing else. It is written here
as berth's own data, from what Docker's default lets a container do; the unit tests
compare it, rule by rule, with Docker's published default.json (kept outside the
repository as reference data) and name each difference.

This module only writes sections; `seccomp.compile_filter` turns one into a filter.
"""

from __future__ import annotations

import errno
import os
import platform
import re
from typing import Any


class ProfileError(ValueError):
    """A Docker seccomp profile cannot be resolved; the message is dockerd's."""


# Calls every container may make, whatever its capabilities and architecture. A name the
# running kernel or libseccomp does not know is skipped when the filter is compiled.
_ALLOWED = """
    _llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod
    chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat
    dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
    fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl
    fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
    fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
    futex_wake futimesat get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid
    getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
    getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage
    getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
    listxattr listxattrat llistxattr lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack
    membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
    mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
    name_to_handle_at nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe
    pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
    readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
    removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
    sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
    sendmmsg sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid setfsgid32 setfsuid
    setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32
    setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink
    symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64
    ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork
    vmsplice wait4 waitid waitpid write writev
"""

# Calls only some architectures have (Docker's architecture names, as Go spells them).
_BY_ARCH = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

# Calls a capability opens: the container must hold the capability in its bounding set.
# The keyring calls (add_key, keyctl, request_key), kexec, swapon/swapoff, userfaultfd,
# io_uring and the obsolete interfaces appear nowhere: no capability opens them.
_BY_CAPABILITY = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN",
     "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr "
     "lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl "
     "quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# clone(2) flags that make namespaces (linux/sched.h): CLONE_NEWNS, NEWCGROUP, NEWUTS,
# NEWIPC, NEWUSER, NEWPID, NEWNET. Without CAP_SYS_ADMIN clone is allowed only with none.
_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# socket(2) families a container may not open: AF_ALG (38, the kernel's crypto API) and
# AF_VSOCK (40, the hypervisor's sockets); every other family is allowed.
_AF_ALG, _AF_NFC, _AF_VSOCK = 38, 39, 40

# personality(2) values a container may set: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (alone
# and with UNAME26), and 0xffffffff, which only asks for the current one.
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Each architecture berth knows with the ones its processes may also run as.
_ARCH_MAP = (
    ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_MIPS64", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
    ("SCMP_ARCH_MIPS64N32", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
    ("SCMP_ARCH_MIPSEL64", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
    ("SCMP_ARCH_MIPSEL64N32", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
    ("SCMP_ARCH_S390X", ["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", None),
    ("SCMP_ARCH_LOONGARCH64", None),
)


def _allow(names: str, **extra: Any) -> dict[str, Any]:
    return {"names": names.split(), "action": "SCMP_ACT_ALLOW", **extra}


def _arg(index: int, value: int, op: str) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op}


def builtin_profile() -> dict[str, Any]:
    """berth's default profile in Docker's format (what `--security-opt seccomp=builtin` means)."""
    rules: list[dict[str, Any]] = [
        _allow(_ALLOWED),
        # Tracing one's own children needs no capability from 4.8 on, where seccomp is
        # checked again after a tracer changes a call (before, ptrace could skip the filter).
        _allow("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        _allow("socket", args=[_arg(0, _AF_ALG, "SCMP_CMP_LT")]),
        _allow("socket", args=[_arg(0, _AF_NFC, "SCMP_CMP_EQ")]),
        _allow("socket", args=[_arg(0, _AF_VSOCK, "SCMP_CMP_GT")]),
        *(_allow("personality", args=[_arg(0, value, "SCMP_CMP_EQ")]) for value in _PERSONALITIES),
        *(_allow(names, includes={"arches": list(arches)}) for arches, names in _BY_ARCH),
    ]
    for cap, names in _BY_CAPABILITY:
        rules.append(_allow(names, includes={"caps": [cap]}))
        if cap == "CAP_SYS_ADMIN":
            # Without it: clone without namespace flags (s390 passes the flags second), and
            # clone3, whose flags the filter cannot read, fails with ENOSYS so that libc
            # falls back to clone.
            rules += [
                _allow("clone", args=[_arg(0, _NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
                       excludes={"caps": [cap], "arches": ["s390", "s390x"]}),
                _allow("clone", args=[_arg(1, _NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
                       includes={"arches": ["s390", "s390x"]}, excludes={"caps": [cap]}),
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS,
                 "excludes": {"caps": [cap]}},
            ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "archMap": [{"architecture": a, "subArchitectures": subs} for a, subs in _ARCH_MAP],
        "syscalls": rules,
    }


# uname -m => Docker's (Go's) architecture name, as profiles' includes/excludes spell it.
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "x86", "i686": "x86", "armv7l": "arm",
            "armv6l": "arm", "mips64el": "mipsel64", "loongarch64": "loong64"}
# Docker's architecture name => the libseccomp architecture its archMap entry is for.
_NATIVE_SCMP = {"amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "arm": "SCMP_ARCH_ARM",
                "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64", "mipsel64": "SCMP_ARCH_MIPSEL64",
                "ppc64le": "SCMP_ARCH_PPC64LE", "ppc64": "SCMP_ARCH_PPC64", "riscv64": "SCMP_ARCH_RISCV64",
                "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X", "loong64": "SCMP_ARCH_LOONGARCH64"}


def resolve(doc: Any, arch: str, capabilities: set[str], kernel: str = "") -> dict[str, Any] | None:
    """The OCI `linux.seccomp` section a Docker profile gives a container on `arch`
    (as `uname -m` or Go spells it) holding `capabilities`, under kernel release `kernel`
    (default: this one's). None when the profile has neither a default action nor rules:
    dockerd then applies no filter. Syscall names and actions are left for the runtime
    to check, as dockerd leaves them."""
    if not isinstance(doc, dict):
        raise ProfileError("Decoding seccomp profile failed: json: cannot unmarshal into Go value of type seccomp.Seccomp")
    if not doc.get("defaultAction") and not doc.get("syscalls"):
        return None
    if doc.get("architectures") and doc.get("archMap"):
        raise ProfileError("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                           "use either 'architectures' or 'archMap'")
    go_arch = _GO_ARCH.get(arch, arch)
    caps = {_capability_name(c) for c in capabilities}
    release = kernel or os.uname().release
    section: dict[str, Any] = {"defaultAction": doc.get("defaultAction", "")}
    for key in ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags"):
        if doc.get(key) is not None:
            section[key] = doc[key]
    architectures = list(doc.get("architectures") or [])
    native = _NATIVE_SCMP.get(go_arch)
    for arch_entry in doc.get("archMap") or []:
        if isinstance(arch_entry, dict) and native and arch_entry.get("architecture") == native:
            architectures = [native, *(arch_entry.get("subArchitectures") or [])]
            break
    section["architectures"] = architectures
    syscalls = []
    for rule in doc.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise ProfileError("Decoding seccomp profile failed: json: cannot unmarshal into Go struct field "
                               "Seccomp.syscalls of type seccomp.Syscall")
        names = list(rule.get("names") or [])
        if rule.get("name"):
            if names:
                raise ProfileError("both 'name' and 'names' are specified in the seccomp profile, "
                                   "use either 'name' or 'names'")
            names = [rule["name"]]
        if not _applies(rule.get("includes") or {}, rule.get("excludes") or {}, go_arch, caps, release):
            continue
        entry: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                entry[key] = rule[key]
        syscalls.append(entry)
    section["syscalls"] = syscalls
    return section


def _applies(includes: dict[str, Any], excludes: dict[str, Any], arch: str, caps: set[str], kernel: str) -> bool:
    if arch in (excludes.get("arches") or []):
        return False
    if any(_capability_name(c) in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and _kernel_at_least(kernel, excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(_capability_name(c) in caps for c in includes.get("caps") or []):
        return False
    return not (includes.get("minKernel") and not _kernel_at_least(kernel, includes["minKernel"]))


_VERSION = re.compile(r"^(\d+)\.(\d+)")


def _kernel_at_least(release: str, wanted: Any) -> bool:
    want = _VERSION.match(str(wanted))
    if not want or str(wanted) != want.group(0):
        raise ProfileError(f"invalid kernel version: {wanted}")
    have = _VERSION.match(release)
    if not have:
        return False
    return (int(have[1]), int(have[2])) >= (int(want[1]), int(want[2]))


def default_profile(arch: str = platform.machine(), capabilities: set[str] | None = None,
                    kernel: str = "") -> dict[str, Any]:
    """The `linux.seccomp` section of berth's default profile for a container on `arch`
    holding `capabilities` (written `CAP_SYS_ADMIN` or `SYS_ADMIN`, in any case)."""
    section = resolve(builtin_profile(), arch, set(capabilities or ()), kernel)
    assert section is not None
    return section


def _capability_name(cap: str) -> str:
    cap = cap.upper()
    return cap if cap.startswith("CAP_") else "CAP_" + cap
