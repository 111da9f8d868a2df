"""Seccomp: the section is checked field by field, and a loaded filter really filters.

Every filter is loaded in a forked child, never in the pytest process. The child
reports what it saw as JSON through a pipe; the parent asserts.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from berth.runtime.oci import SpecError
from berth.runtime.seccomp import Filter, SeccompError, compile_filter
from berth.runtime.seccomp_default import default_profile

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.unshare.argtypes = [ctypes.c_int]

_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_SYS_CLONE3 = 435
_CLONE_NEWUTS = 0x04000000
_PR_SET_NO_NEW_PRIVS = 38

needs_known_arch = pytest.mark.skipif(
    platform.machine() not in _SYS_CLONE, reason="syscall numbers known for x86_64 and aarch64 only"
)


# --- running a filter in a child ------------------------------------------------


@dataclass
class Child:
    status: int
    report: dict[str, Any]

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def in_child(body: Callable[[], dict[str, Any]]) -> Child:
    """Run `body` in a forked child and return its exit status and its report."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            report = body()
            os.write(w, json.dumps(report).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    return Child(status, json.loads(data) if data else {})


def load(section: dict[str, Any], no_new_privs: bool = True) -> None:
    """In the child: compile and load `section`."""
    filt = compile_filter(section)
    if no_new_privs:
        assert libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    filt.load()
    filt.release()


def errno_of(ret: int) -> int:
    """0 when a libc call succeeded, else its errno."""
    return ctypes.get_errno() if ret < 0 else 0


def oserror(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as e:
        return e.errno or -1
    return 0


def mount_errno() -> int:
    # Without a filter this fails with ENOENT: the target does not exist.
    return errno_of(libc.mount(None, b"/nonexistent/berth-seccomp-test", None, 0, None))


def clone_errno(flags: int) -> int:
    """A fork-like raw clone(flags | SIGCHLD); a child it creates exits at once."""
    pid = libc.syscall(_SYS_CLONE[platform.machine()], flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return ctypes.get_errno()
    os.waitpid(pid, 0)
    return 0


def clone3_errno() -> int:
    # With no arguments the kernel answers EINVAL; the default profile answers ENOSYS.
    return errno_of(libc.syscall(_SYS_CLONE3, None, 0))


def deny(*names: str, **fields: Any) -> dict[str, Any]:
    return {"names": list(names), "action": "SCMP_ACT_ERRNO", **fields}


# --- compiling --------------------------------------------------------------------


def test_minimal_section_compiles_to_bpf() -> None:
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}) as filt:
        bpf = filt.export_bpf()
    assert bpf and len(bpf) % 8 == 0  # struct sock_filter is 8 bytes


def test_every_action_operator_flag_and_architecture_compiles() -> None:
    section = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOSYS,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
            {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["kexec_file_load"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
            {"names": ["acct"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
            *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 8, "op": op}]}
              for op in ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                         "SCMP_CMP_GE", "SCMP_CMP_GT")),
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    }
    with compile_filter(section) as filt, compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}) as empty:
        assert len(filt.export_bpf()) > len(empty.export_bpf())


def test_unknown_syscall_names_are_skipped() -> None:
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [deny("chmod", "no_such_syscall")]}) as filt:
        assert filt.skipped == ["no_such_syscall"]


def test_a_rule_with_the_default_action_is_skipped() -> None:
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}) as empty:
        expected = empty.export_bpf()
    section = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    with compile_filter(section) as filt:
        assert filt.export_bpf() == expected


def test_errno_is_part_of_the_action() -> None:
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [deny("chmod")]}) as eperm, \
         compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [deny("chmod", errnoRet=errno.EACCES)]}) as eacces:
        assert eperm.export_bpf() != eacces.export_bpf()


def test_a_released_filter_cannot_be_used() -> None:
    filt = compile_filter({"defaultAction": "SCMP_ACT_ALLOW"})
    filt.release()
    filt.release()
    with pytest.raises(ValueError, match="released"):
        filt.export_bpf()
    with pytest.raises(ValueError, match="released"):
        filt.load()


def _with(**fields: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", **fields}


def _arg(**fields: Any) -> dict[str, Any]:
    return _with(syscalls=[deny("kill", args=[{"index": 1, "value": 1, "op": "SCMP_CMP_EQ", **fields}])])


@pytest.mark.parametrize("section, message", [
    ([], "linux.seccomp must be an object"),
    ({}, "linux.seccomp.defaultAction is required"),
    ({"defaultAction": 3}, "linux.seccomp.defaultAction must be a string"),
    ({"defaultAction": "SCMP_ACT_FOO"}, 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW does not return an errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "EPERM"},
     "linux.seccomp.defaultErrnoRet must be an integer"),
    (_with(listenerPath="/run/seccomp.sock"), "linux.seccomp.listenerPath: seccomp notification is not supported"),
    (_with(architectures="SCMP_ARCH_X86_64"), "linux.seccomp.architectures must be a list"),
    (_with(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_FOO"]),
     'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_FOO"'),
    (_with(architectures=["x86_64"]), 'linux.seccomp.architectures[0]: unknown architecture "x86_64"'),
    (_with(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]),
     'linux.seccomp.flags[0]: unsupported flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"'),
    (_with(syscalls={"names": ["read"]}), "linux.seccomp.syscalls must be a list"),
    (_with(syscalls=[deny("read"), "chmod"]), "linux.seccomp.syscalls[1] must be an object"),
    (_with(syscalls=[{"action": "SCMP_ACT_ERRNO"}]), "linux.seccomp.syscalls[0].names is required"),
    (_with(syscalls=[deny()]), "linux.seccomp.syscalls[0].names must be a non-empty list"),
    (_with(syscalls=[{"names": ["read", 3], "action": "SCMP_ACT_ERRNO"}]), "linux.seccomp.syscalls[0].names must be a non-empty list"),
    (_with(syscalls=[deny("read"), deny("write"), deny("open"), {"names": ["x"], "action": "SCMP_ACT_FOO"}]),
     'linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"'),
    (_with(syscalls=[{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]),
     "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported"),
    (_with(syscalls=[{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]),
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL does not return an errno"),
    (_with(syscalls=[deny("read", errnoRet=1 << 16)]),
     "linux.seccomp.syscalls[0].errnoRet: 65536 is out of range"),
    (_with(syscalls=[deny("read", args={"index": 0})]), "linux.seccomp.syscalls[0].args must be a list"),
    (_with(syscalls=[deny("read", args=[7])]), "linux.seccomp.syscalls[0].args[0] must be an object"),
    (_arg(op="SCMP_CMP_FOO"), 'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_FOO"'),
    (_arg(op=None), "linux.seccomp.syscalls[0].args[0].op is required"),
    (_arg(index=6), "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0-5)"),
    (_arg(index=-1), "linux.seccomp.syscalls[0].args[0].index: -1 is out of range (0-5)"),
    (_arg(index=True), "linux.seccomp.syscalls[0].args[0].index must be an integer"),
    (_arg(value=-1), "linux.seccomp.syscalls[0].args[0].value: -1 is out of range"),
    (_arg(value=1 << 64), "linux.seccomp.syscalls[0].args[0].value: 18446744073709551616 is out of range"),
    (_arg(valueTwo="1"), "linux.seccomp.syscalls[0].args[0].valueTwo must be an integer"),
])
def test_bad_sections_are_refused_naming_the_field(section: Any, message: str) -> None:
    with pytest.raises(SeccompError) as caught:
        compile_filter(section)
    assert message in str(caught.value)
    assert isinstance(caught.value, SpecError)


# --- loading: the filter does what it says ------------------------------------------


def test_denied_chmod_fails_with_eperm_and_other_calls_work(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")
    target.chmod(0o644)

    def body() -> dict[str, Any]:
        load(_with(syscalls=[deny("chmod", "fchmodat", "fchmodat2", errnoRet=errno.EPERM)]))
        with open(target, "r+b") as f:
            f.write(b"written after load")
            f.seek(0)
            content = f.read().decode()
        return {
            "chmod": oserror(lambda: os.chmod(target, 0o600)),
            "stat": oserror(lambda: os.stat(target)),
            "content": content,
            "pid": os.getpid(),
        }

    child = in_child(body)
    assert child.status == 0, child
    assert child.report["chmod"] == errno.EPERM
    assert child.report["stat"] == 0
    assert child.report["content"] == "written after load"
    assert child.report["pid"] != os.getpid()
    assert target.stat().st_mode & 0o777 == 0o644


def test_errno_ret_is_returned_and_args_select_the_calls(tmp_path: Path) -> None:
    def body() -> dict[str, Any]:
        # kill(pid, SIGUSR1) and kill(pid, SIGUSR2) are denied; kill(pid, 0) is not.
        # Two comparisons of one argument become two rules, as in runc.
        load(_with(syscalls=[deny("kill", errnoRet=errno.EACCES, args=[
            {"index": 1, "value": signal.SIGUSR1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": signal.SIGUSR2, "op": "SCMP_CMP_EQ"},
        ])]))
        me = os.getpid()
        return {
            "usr1": oserror(lambda: os.kill(me, signal.SIGUSR1)),
            "usr2": oserror(lambda: os.kill(me, signal.SIGUSR2)),
            "probe": oserror(lambda: os.kill(me, 0)),
        }

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"usr1": errno.EACCES, "usr2": errno.EACCES, "probe": 0}


def test_masked_eq_compares_under_the_mask(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")

    def body() -> dict[str, Any]:
        # Opening with O_APPEND is denied, whatever the other flags are.
        def append_denied(index: int) -> dict[str, Any]:
            return {"index": index, "value": os.O_APPEND, "valueTwo": os.O_APPEND,
                    "op": "SCMP_CMP_MASKED_EQ"}
        load(_with(syscalls=[deny("open", args=[append_denied(1)]),
                             deny("openat", args=[append_denied(2)])]))

        def try_open(flags: int) -> int:
            return oserror(lambda: os.close(os.open(target, flags)))
        return {
            "append": try_open(os.O_WRONLY | os.O_APPEND),
            "append_cloexec": try_open(os.O_RDONLY | os.O_APPEND | os.O_CLOEXEC),
            "plain": try_open(os.O_WRONLY | os.O_CLOEXEC),
        }

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"append": errno.EPERM, "append_cloexec": errno.EPERM, "plain": 0}


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(action: str) -> None:
    def body() -> dict[str, Any]:
        load(_with(syscalls=[{"names": ["getppid"], "action": action}]))
        os.getppid()
        return {"survived": True}

    child = in_child(body)
    assert child.signal == signal.SIGSYS, child


def test_log_allows_the_call() -> None:
    parent = os.getpid()

    def body() -> dict[str, Any]:
        load(_with(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_LOG"}]))
        return {"ppid": os.getppid()}

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"ppid": parent}


def test_default_errno_action_denies_everything_not_allowed() -> None:
    def body() -> dict[str, Any]:
        # An allow-list: the calls this child makes after loading, and nothing else.
        allowed = ["write", "exit", "exit_group", "getpid", "rt_sigreturn", "rt_sigprocmask",
                   "munmap", "mmap", "brk", "madvise", "close", "futex"]
        load({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOTSUP,
              "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]})
        return {"uname": oserror(os.uname), "getpid": errno_of(libc.getpid())}

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"uname": errno.ENOTSUP, "getpid": 0}


def test_tsync_loads_into_every_thread_and_privileged_load_needs_no_nnp(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")
    target.chmod(0o644)

    def body() -> dict[str, Any]:
        results: dict[str, Any] = {}
        release = threading.Event()
        seen: list[int] = []

        def other_thread() -> None:
            release.wait()
            seen.append(oserror(lambda: os.chmod(target, 0o600)))

        thread = threading.Thread(target=other_thread)
        thread.start()
        load(_with(flags=["SECCOMP_FILTER_FLAG_TSYNC"], syscalls=[deny("chmod", "fchmodat", "fchmodat2")]),
             no_new_privs=False)
        release.set()
        thread.join()
        results["other_thread_chmod"] = seen[0]
        with open("/proc/self/status") as f:
            status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        results["seccomp_mode"] = status["Seccomp"].strip()
        results["no_new_privs"] = status["NoNewPrivs"].strip()
        return results

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"other_thread_chmod": errno.EPERM, "seccomp_mode": "2", "no_new_privs": "0"}


# --- berth's default profile --------------------------------------------------------

# Docker's default capability set, as the bounding set a default container holds.
DOCKER_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
_SYS_SOCKET = {"x86_64": 41, "aarch64": 198}
_SYS_PERSONALITY = {"x86_64": 135, "aarch64": 92}
_SYS_USERFAULTFD = {"x86_64": 323, "aarch64": 282}


def raw(table: dict[str, int], *args: Any) -> int:
    """errno of a raw syscall (0 when it succeeded); a returned fd is closed."""
    ret = libc.syscall(table[platform.machine()], *args)
    if ret < 0:
        return ctypes.get_errno()
    if table is _SYS_SOCKET or table is _SYS_USERFAULTFD:
        os.close(ret)
    return 0


@needs_known_arch
def test_default_profile_allows_a_container_its_work_and_nothing_else(tmp_path: Path) -> None:
    def body() -> dict[str, Any]:
        before = {"unshare": errno_of(libc.unshare(0)), "mount": mount_errno(), "clone3": clone3_errno()}
        load(default_profile(capabilities=DOCKER_CAPS))
        path = tmp_path / "f"
        path.write_text("hello")
        thread_ran: list[bool] = []
        thread = threading.Thread(target=lambda: thread_ran.append(True))
        thread.start()
        thread.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        return {
            "before": before,
            "unshare": errno_of(libc.unshare(0)),
            "mount": mount_errno(),
            "umount2": errno_of(libc.umount2(b"/nonexistent/berth-seccomp-test", 0)),
            "clone3": clone3_errno(),
            "clone_newuts": clone_errno(_CLONE_NEWUTS),
            "keyctl": raw(_SYS_KEYCTL, 0),
            "userfaultfd": raw(_SYS_USERFAULTFD, 0),  # named nowhere: the default action
            "socket_inet": raw(_SYS_SOCKET, 2, 1, 0),  # AF_INET, SOCK_STREAM
            "socket_vsock": raw(_SYS_SOCKET, 40, 1, 0),
            "socket_alg": raw(_SYS_SOCKET, 38, 5, 0),
            "personality_query": raw(_SYS_PERSONALITY, ctypes.c_ulong(0xFFFFFFFF)),
            "personality_bsd": raw(_SYS_PERSONALITY, ctypes.c_ulong(0x0006)),  # PER_BSD: not on the list
            "read_back": path.read_text(),
            "thread": thread_ran,
            "fork_exit": os.waitstatus_to_exitcode(status),
            "chroot": oserror(lambda: os.chroot("/")),  # CAP_SYS_CHROOT is a default capability
        }

    child = in_child(body)
    assert child.status == 0, child
    r = child.report
    assert r.pop("before") == {"unshare": 0, "mount": errno.ENOENT, "clone3": errno.EINVAL}
    assert r == {
        "unshare": errno.EPERM, "mount": errno.EPERM, "umount2": errno.EPERM, "clone3": errno.ENOSYS,
        "clone_newuts": errno.EPERM, "keyctl": errno.EPERM, "userfaultfd": errno.EPERM,
        "socket_inet": 0, "socket_vsock": errno.EPERM, "socket_alg": errno.EPERM,
        "personality_query": 0, "personality_bsd": errno.EPERM,
        "read_back": "hello", "thread": [True], "fork_exit": 7, "chroot": 0,
    }


@needs_known_arch
def test_cap_sys_admin_reopens_namespaces_and_mounts() -> None:
    def body() -> dict[str, Any]:
        load(default_profile(capabilities=DOCKER_CAPS | {"CAP_SYS_ADMIN"}))
        return {"unshare": errno_of(libc.unshare(0)), "mount": mount_errno(), "clone3": clone3_errno(),
                "keyctl": raw(_SYS_KEYCTL, 0)}

    child = in_child(body)
    assert child.status == 0, child
    assert child.report == {"unshare": 0, "mount": errno.ENOENT, "clone3": errno.EINVAL, "keyctl": errno.EPERM}


def _allowed(profile: dict[str, Any]) -> set[str]:
    """The calls a section allows whatever their arguments."""
    return {name for rule in profile["syscalls"]
            if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule for name in rule["names"]}


def test_default_profile_shape() -> None:
    profile = default_profile("x86_64", DOCKER_CAPS, kernel="6.1.0")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile("arm64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert default_profile("riscv64")["architectures"] == ["SCMP_ARCH_RISCV64"]
    assert default_profile("sparc64")["architectures"] == []
    allowed = _allowed(profile)
    for name in ("read", "openat", "execve", "chroot", "ptrace", "arch_prctl", "modify_ldt", "io_setup"):
        assert name in allowed, name
    for name in ("mount", "umount2", "unshare", "setns", "pivot_root", "keyctl", "add_key", "bpf",
                 "kexec_load", "init_module", "clock_settime", "reboot", "perf_event_open", "clone",
                 "open_by_handle_at", "userfaultfd", "io_uring_setup", "fsopen", "kcmp", "mbind",
                 "syslog", "acct", "iopl", "clone3", "personality", "socket", "cacheflush", "vhangup"):
        assert name not in allowed, name
    clone_rules = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert clone_rules == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                            "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS} in profile["syscalls"]
    # Before 4.8 a tracer could change a call after seccomp had checked it: ptrace needs SYS_PTRACE.
    assert "ptrace" not in _allowed(default_profile("x86_64", DOCKER_CAPS, kernel="4.4.0"))
    assert "cacheflush" in _allowed(default_profile("aarch64", DOCKER_CAPS))
    s390_clone = [r for r in default_profile("s390x", DOCKER_CAPS)["syscalls"] if r["names"] == ["clone"]]
    assert [r["args"][0]["index"] for r in s390_clone] == [1]


@pytest.mark.parametrize("caps, opened", [
    ({"CAP_SYS_ADMIN"}, {"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "syslog",
                         "perf_event_open", "sethostname", "fsopen", "quotactl"}),
    ({"sys_time"}, {"clock_settime", "settimeofday"}),
    ({"SYS_MODULE"}, {"init_module", "finit_module", "delete_module"}),
    ({"CAP_SYS_BOOT"}, {"reboot"}),
    ({"CAP_SYS_PTRACE"}, {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "ptrace"}),
    ({"CAP_SYS_NICE"}, {"mbind", "set_mempolicy", "get_mempolicy"}),
    ({"CAP_SYSLOG"}, {"syslog"}),
    ({"CAP_SYS_PACCT"}, {"acct"}),
    ({"CAP_SYS_RAWIO"}, {"iopl", "ioperm"}),
    ({"CAP_BPF"}, {"bpf"}),
    ({"CAP_PERFMON"}, {"perf_event_open"}),
    ({"CAP_DAC_READ_SEARCH"}, {"open_by_handle_at"}),
    ({"CAP_SYS_TTY_CONFIG"}, {"vhangup"}),
])
def test_capabilities_open_what_they_govern(caps: set[str], opened: set[str]) -> None:
    plain = _allowed(default_profile("x86_64", DOCKER_CAPS - {"CAP_SYS_CHROOT"}, kernel="4.4.0"))
    with_caps = _allowed(default_profile("x86_64", DOCKER_CAPS - {"CAP_SYS_CHROOT"} | caps, kernel="4.4.0"))
    assert opened <= with_caps - plain
    for never in ("keyctl", "add_key", "kexec_load", "userfaultfd", "swapon"):
        assert never not in with_caps
    has_clone3_enosys = any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"
                            for r in default_profile("x86_64", caps)["syscalls"])
    assert has_clone3_enosys == ("CAP_SYS_ADMIN" not in caps)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_default_profile_compiles_for_each_architecture(arch: str) -> None:
    with compile_filter(default_profile(arch, DOCKER_CAPS)) as filt:
        assert isinstance(filt, Filter)
        # Calls newer than this libseccomp are skipped (they keep the default action);
        # everything else on the list must be known to it.
        assert set(filt.skipped) <= NEWER_THAN_LIBSECCOMP_2_5, filt.skipped
        assert filt.export_bpf()


# Calls on Docker's list that libseccomp 2.5.4 (Debian 12's) cannot name.
NEWER_THAN_LIBSECCOMP_2_5 = {"getxattrat", "listmount", "listxattrat", "mseal", "removexattrat", "riscv_hwprobe",
                             "setxattrat", "statmount", "uretprobe", "cachestat", "fchmodat2", "futex_requeue",
                             "futex_wait", "futex_wake", "map_shadow_stack", "lsm_get_self_attr",
                             "lsm_list_modules", "lsm_set_self_attr", "set_mempolicy_home_node",
                             "process_mrelease", "memfd_secret", "epoll_pwait2", "mount_setattr",
                             "quotactl_fd", "landlock_add_rule", "landlock_create_ruleset",
                             "landlock_restrict_self", "futex_waitv", "cacheflush", "set_tls", "breakpoint",
                             "arm_sync_file_range", "arm_fadvise64_64", "sync_file_range2"}
