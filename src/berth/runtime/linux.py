"""Every Linux call the runtime makes that the standard library does not offer.

Typed wrappers over libc through ctypes: mount, umount2, pivot_root, unshare, setns,
prctl, and the ioctls for terminals and interfaces. Each raises OSError with errno
and names what it was doing, so the code above reads as a list of steps.
This module must not decide anything; it only calls the kernel.
"""

from __future__ import annotations

# `_socket` and `_signal`, not `socket` and `signal`: their enums (`enum` itself, and
# `functools` and `collections` behind it) cost each runtime command about 8 ms.
import _signal
import _socket
import ctypes
import fcntl
import os
import struct
import termios

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# mount flags (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# namespace flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

SIGKILL = _signal.SIGKILL

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NAME = 15

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long

_SYS_PIVOT_ROOT = 155  # x86_64
if os.uname().machine == "aarch64":
    _SYS_PIVOT_ROOT = 41


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), f"pivot_root {new_root}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> None:
    _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl {option}")


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_parent_death_signal(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_hostname(name: str) -> None:
    _socket.sethostname(name)


# --- memory --------------------------------------------------------------------------

MADV_MERGEABLE = 12


def mark_mergeable(maps: str = "/proc/self/maps") -> int:
    """Offer this process's writable private memory to the kernel's samepage merging
    (KSM), as madvise(MADV_MERGEABLE) on each such mapping; returns how many took it.

    The mark is per mapping: fork children keep it, execve drops it (a new program has
    new mappings), so nothing this process starts inherits it. It does nothing unless
    the host runs ksmd (/sys/kernel/mm/ksm/run = 1)."""
    marked = 0
    with open(maps) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2 or fields[1] != "rw-p" or (len(fields) > 5 and fields[5].startswith("[v")):
                continue  # not private and writable, or [vvar]/[vsyscall] (not ordinary memory)
            start, _, end = fields[0].partition("-")
            low, high = int(start, 16), int(end, 16)
            if _libc.madvise(low, high - low, MADV_MERGEABLE) == 0:
                marked += 1
    return marked


# --- sockets and signals ---------------------------------------------------------


def seqpacket_pair() -> tuple[_socket.socket, _socket.socket]:
    """A connected pair of AF_UNIX SOCK_SEQPACKET sockets (close-on-exec, as Python makes them)."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send_fds(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    """socket.send_fds: one message carrying `fds` (SCM_RIGHTS)."""
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """socket.recv_fds: one message and the fds it carried (`array`, which that uses,
    imports `collections` when it loads)."""
    fds: list[int] = []
    msg, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * 4))
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4]))
    return msg, fds


def reset_signals() -> None:
    """Every handler back to the default and no signal blocked, as a new program expects."""
    for sig in range(1, _signal.NSIG):
        try:
            if _signal.getsignal(sig) != _signal.SIG_DFL:
                _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, set())


# --- network interfaces ---------------------------------------------------------

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def interface_up(name: str) -> None:
    """Bring an interface up, as `ip link set NAME up` does (used for lo)."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14s", name.encode(), 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14s", name.encode(), flags | _IFF_UP, b""))
    finally:
        s.close()


# --- terminals --------------------------------------------------------------------

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def open_pty_pair(ptmx: str = "/dev/ptmx") -> tuple[int, int]:
    """Open a pty master on `ptmx` and its slave; returns (master, slave)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, struct.pack("I", 0)))[0]
    pts_dir = os.path.join(os.path.dirname(os.path.realpath(ptmx)), "")
    if not pts_dir.endswith("/pts/"):
        pts_dir = "/dev/pts/"
    slave = os.open(f"{pts_dir}{n}", os.O_RDWR | os.O_NOCTTY)
    return master, slave


def set_controlling_terminal(fd: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def syncfs(fd: int) -> None:
    """Flush one filesystem (the one holding fd) to disk."""
    _check(_libc.syncfs(fd), "syncfs")


def is_mount_point(path: str) -> bool:
    """Whether something is mounted at `path`, binds from the same filesystem included
    (os.path.ismount cannot see those: it compares device numbers)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path:
                return True
    return False


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
