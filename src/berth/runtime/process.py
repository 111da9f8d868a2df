"""Creating a container's first process from a parsed spec, as runc's create/start do.

The steps, in the order they run:
  1. the caller (the shim) forks a child, "the setup process";
  2. the setup process joins or unshares the namespaces, then forks the init, which is
     pid 1 of the new pid namespace, reports the init's host pid and exits;
  3. the init builds the root filesystem, sets hostname and loopback, checks that the
     command exists, reports "ready" (with the pty master, for a terminal) and blocks;
  4. `start()` releases it: it drops to the spec's user and execs the command.
All messages travel on one SOCK_SEQPACKET pair, so each is one datagram of JSON.

The start gate is that channel when the caller stays (the shim), or, as with runc's
`create`/`start` split across two commands, a FIFO: the init opens it for writing and
blocks until `start_fifo()` opens it for reading.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import dataclass

from berth.runtime import linux
from berth.runtime.oci import NAMESPACE_FLAGS, Spec


class CreateError(Exception):
    """The container could not be created; the message is runc-like and user-facing."""


@dataclass
class Stdio:
    """The host ends the init's stdio is connected to (ignored for a terminal)."""

    stdin: int | None
    stdout: int
    stderr: int


@dataclass
class Created:
    pid: int
    pty_master: int | None
    channel: socket.socket


def create(spec: Spec, stdio: Stdio, fifo: str | None = None) -> Created:
    """Run steps 1 to 3; returns once the init is ready and waiting for start()."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        parent.close()
        _setup_process(spec, stdio, child, fifo)  # never returns
    child.close()
    init_pid = 0
    ready = False
    master = None
    try:
        while not ready:
            msg, fds, _flags, _addr = socket.recv_fds(parent, 65536, 2)
            if not msg:
                raise CreateError("container init exited before it was ready")
            doc = json.loads(msg)
            if "error" in doc:
                raise CreateError(doc["error"])
            if "pid" in doc:
                init_pid = doc["pid"]
            if doc.get("ready"):
                ready = True
                master = fds[0] if fds else None
    except BaseException:
        if init_pid:
            try:
                os.kill(init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.close()
        raise
    finally:
        os.waitpid(pid, 0)
    return Created(init_pid, master, parent)


def start(created: Created) -> None:
    """Step 4: let the init exec the user's command."""
    try:
        created.channel.send(b"start")
    finally:
        created.channel.close()


def _send(chan: socket.socket, doc: dict[str, object], fds: list[int] | None = None) -> None:
    data = json.dumps(doc).encode()
    if fds:
        socket.send_fds(chan, [data], fds)
    else:
        chan.send(data)


def start_fifo(path: str, timeout: float = 10.0) -> None:
    """Release an init that waits on its FIFO (runc's `start`)."""
    import errno
    import select
    import time

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            select.select([fd], [], [], 0.05)
            try:
                if os.read(fd, 1):
                    return
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    raise
        raise CreateError("the container's init did not answer the start")
    finally:
        os.close(fd)
        os.unlink(path)


def _setup_process(spec: Spec, stdio: Stdio, chan: socket.socket, fifo: str | None) -> None:
    try:
        try:
            flags = 0
            for ns in spec.namespaces:
                if ns.type == "user":
                    raise CreateError("user namespaces are not supported by berth's runtime yet")
                if ns.path:
                    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        linux.setns(fd, NAMESPACE_FLAGS[ns.type])
                    finally:
                        os.close(fd)
                else:
                    flags |= NAMESPACE_FLAGS[ns.type]
            linux.unshare(flags)
        except (OSError, CreateError) as e:
            _send(chan, {"error": f"unable to create namespaces: {e}"})
            os._exit(1)
        pid = os.fork()
        if pid == 0:
            _init(spec, stdio, chan, fifo)
        _send(chan, {"pid": pid})
        os._exit(0)
    except BaseException:
        os._exit(1)


def _lookup(cmd: str, env: list[str]) -> str:
    if "/" in cmd:
        if not os.path.exists(cmd):
            raise CreateError(f'exec: "{cmd}": stat {cmd}: no such file or directory')
        if os.path.isdir(cmd) or not os.access(cmd, os.X_OK):
            raise CreateError(f'exec: "{cmd}": permission denied')
        return cmd
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", cmd)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CreateError(f'exec: "{cmd}": executable file not found in $PATH')


def _init(spec: Spec, stdio: Stdio, chan: socket.socket, fifo: str | None) -> None:
    """The container's pid 1 until it execs; never returns."""
    try:
        proc = spec.process
        os.setsid()
        # held by path: after pivot_root the FIFO is reached through /proc/self/fd
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC) if fifo else -1
        if not proc.terminal:
            if stdio.stdin is not None:
                os.dup2(stdio.stdin, 0)
            else:
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
            os.dup2(stdio.stdout, 1)
            os.dup2(stdio.stderr, 2)
        from berth.runtime.rootfs import prepare_rootfs, secure_join

        if proc.cwd != "/":
            cwd = secure_join(spec.root_path, proc.cwd)
            os.makedirs(cwd, mode=0o755, exist_ok=True)
        prepare_rootfs(spec)
        if spec.hostname:
            linux.set_hostname(spec.hostname)
        if any(ns.type == "network" and not ns.path for ns in spec.namespaces):
            linux.interface_up("lo")
        for key, value in spec.sysctl.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        fds = []
        if proc.terminal:
            master, slave = linux.open_pty_pair("/dev/pts/ptmx")
            if proc.console_height and proc.console_width:
                linux.set_window_size(master, proc.console_height, proc.console_width)
            for n in (0, 1, 2):
                os.dup2(slave, n)
            linux.set_controlling_terminal(0)
            os.close(slave)
            fds = [master]
        try:
            os.chdir(proc.cwd)
        except OSError as e:
            raise CreateError(f"chdir to cwd (\"{proc.cwd}\") set in config.json failed: {e.strerror}") from None
        path = _lookup(proc.args[0], proc.env)
        _send(chan, {"ready": True}, fds)
        for fd in fds:
            os.close(fd)
        if fifo_fd >= 0:
            chan.close()
            gate = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(gate, b"0")
            os.close(gate)
            os.close(fifo_fd)
        else:
            if chan.recv(16) != b"start":
                os._exit(1)
            chan.close()
        user = proc.user
        os.setgroups(user.additional_gids)
        os.setgid(user.gid)
        os.setuid(user.uid)
        os.umask(user.umask if user.umask is not None else 0o022)
        if proc.no_new_privileges:
            linux.set_no_new_privs()
        for sig in range(1, signal.NSIG):
            try:
                if signal.getsignal(sig) is not signal.SIG_DFL:
                    signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.closerange(3, 65536)
        env = {}
        for entry in proc.env:
            key, _, value = entry.partition("=")
            env[key] = value
        os.execve(path, proc.args, env)
    except CreateError as e:
        _try_send(chan, f"unable to start container process: {e}")
    except OSError as e:
        _try_send(chan, f"unable to start container process: {e}")
    except BaseException as e:  # any bug here must reach the user, not vanish
        _try_send(chan, f"unable to start container process: {type(e).__name__}: {e}")
    os._exit(127)


def _try_send(chan: socket.socket, message: str) -> None:
    try:
        _send(chan, {"error": message})
    except OSError:
        sys.stderr.write(message + "\n")
