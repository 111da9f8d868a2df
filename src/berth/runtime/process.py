"""Creating a container's first process from a parsed spec, as runc's create/start do.

The steps, in the order they run:
  1. the caller (the shim, or `berth-runtime create`) forks "the setup process";
  2. the setup process enters a new user namespace first if asked (the caller writes
     its id maps), joins or unshares the other namespaces, and forks the init, pid 1 of
     the new pid namespace; it reports the init's host pid and exits;
  3. the caller puts the init in its cgroup (limits applied before anything runs in
     it) and runs the prestart/createRuntime hooks, then lets the init go on;
  4. the init builds the root filesystem (createContainer hooks run before pivot_root),
     sets hostname, loopback, sysctls, rlimits and oom_score_adj, checks the command
     exists and compiles its seccomp filter, reports "ready" (with the pty master, for
     a terminal) and blocks on the start gate;
  5. released, it runs the startContainer hooks, then, as runc does: seccomp now unless
     no_new_privs is asked for; bounding set, user switch, capabilities; no_new_privs;
     seccomp last if it was deferred; exec.
All messages travel on one SOCK_SEQPACKET pair, so each is one datagram of JSON.

The start gate is that channel when the caller stays (the shim), or, as with runc's
`create`/`start` split across two commands, a FIFO: the init opens it for writing and
blocks until `start_fifo()` opens it for reading.
"""

from __future__ import annotations

import _socket
import os
import sys

from berth.runtime import leanjson, linux
from berth.runtime.oci import NAMESPACE_FLAGS, Process, Spec
from berth.runtime.record import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class CreateError(Exception):
    """The container could not be created; the message is runc-like and user-facing."""


@record
class Stdio:
    """The host ends the init's stdio is connected to (ignored for a terminal)."""

    stdin: int | None
    stdout: int
    stderr: int


@record
class Created:
    pid: int
    pty_master: int | None
    channel: _socket.socket
    cgroup: Any = None  # cgroups.Cgroup, when the spec names a cgroups path
    warnings: tuple[str, ...] = ()


@record
class Identity:
    """Who asked: the container id and bundle, for the hooks' state document."""

    container_id: str = ""
    bundle: str = ""


def create(spec: Spec, stdio: Stdio, fifo: str | None = None, identity: Identity | None = None) -> Created:
    """Run steps 1 to 4; returns once the init is ready and waiting for start()."""
    identity = identity or Identity()
    if spec.process.apparmor_profile:
        from berth.runtime import apparmor

        try:
            apparmor.check(spec.process.apparmor_profile)
        except apparmor.AppArmorError as e:
            raise CreateError(str(e)) from None
    if spec.cgroups_path:
        from berth.runtime import cgroups  # noqa: F401  (before the fork: the init uses it too)
    parent, child = linux.seqpacket_pair()
    setup_pid = os.fork()
    if setup_pid == 0:
        parent.close()
        _setup_process(spec, stdio, child, fifo, identity)  # never returns
    child.close()
    placed: list[Any] = []
    # The init mounts its root while its cgroups are made, and waits for "placed" only
    # where it must (its cgroup mounts, a cgroup namespace, "ready"); "placed" brings the
    # files through which it moves itself in (cgroups.join_through: on v1 that takes no
    # global lock, a write of its pid by us would wait out an RCU grace period). Runtime
    # hooks and a cgroup namespace want the old order: the init placed by us, first.
    early = not (spec.hooks.get("prestart") or spec.hooks.get("createRuntime")) and spec.namespace("cgroup") is None
    join: list[int] = []

    def on_userns() -> None:
        from berth.runtime import userns

        userns.write_maps(setup_pid, spec.id_mappings.uid, spec.id_mappings.gid)

    def on_pid(pid: int) -> None:
        placed.append(_place_in_cgroup(spec, pid, join if early else None))
        if spec.hooks.get("prestart") or spec.hooks.get("createRuntime"):
            state = _hook_state(identity, pid, "creating")
            _run_hooks("prestart", spec, state)
            _run_hooks("createRuntime", spec, state)

    try:
        init_pid, master = _handshake(parent, setup_pid, "container init", on_pid, on_userns,
                                      go_first=early, placed=join)
    except BaseException:
        for fd in join:
            os.close(fd)
        if placed and placed[0] is not None:
            try:
                placed[0].destroy(kill=True)
            except Exception:  # noqa: BLE001  (the create's own error is the one to report)
                pass
        raise
    cgroup = placed[0] if placed else None
    return Created(init_pid, master, parent, cgroup, tuple(spec.process.capabilities.warnings))


def _handshake(parent: _socket.socket, setup_pid: int | None, what: str, on_pid: Callable[[int], None],
               on_userns: Callable[[], None] | None = None, go_first: bool = False,
               placed: list[int] | None = None) -> tuple[int, int | None]:
    """The caller's side of steps 2-4: answer the setup process until the child is ready.

    `placed`, for a container's init: "placed" is sent after on_pid, with the fds on_pid
    left in that list (then closed and the list emptied). Returns (the child's host pid,
    the pty master if it made a terminal). On any failure the child is killed, the
    channel closed, and CreateError raised.
    """
    pid = 0
    try:
        while True:
            msg, fds = _receive(parent)
            if not msg:
                raise CreateError(f"the {what} exited before it was ready")
            doc = leanjson.loads(msg)
            if "error" in doc:
                raise CreateError(doc["error"])
            if doc.get("userns") and on_userns is not None:
                on_userns()
                parent.send(b"mapped")
            if "pid" in doc:
                pid = doc["pid"]
                if go_first:
                    _tell(parent, b"go")
                on_pid(pid)
                if not go_first:
                    _tell(parent, b"go")
                if placed is not None:  # a container's init: its cgroups are ready
                    _tell(parent, b"placed", placed)
                    for fd in placed:
                        os.close(fd)
                    placed.clear()
            if doc.get("ready"):
                return pid, (fds[0] if fds else None)
    except BaseException as e:
        if pid:
            try:
                os.kill(pid, linux.SIGKILL)
            except ProcessLookupError:
                pass
        parent.close()
        if isinstance(e, OSError | ValueError) and not isinstance(e, CreateError):
            raise CreateError(str(e)) from None
        raise
    finally:
        if setup_pid is not None:  # None: not our child (the exec forker's)
            os.waitpid(setup_pid, 0)


def _receive(chan: _socket.socket) -> tuple[bytes, list[int]]:
    """The child's next message. A child that exits with our last word unread resets the
    channel: the first read reports that (once) even when its error message is queued."""
    try:
        msg, fds = linux.recv_fds(chan, 65536, 2)
    except ConnectionResetError:
        msg, fds = linux.recv_fds(chan, 65536, 2)
    return msg, fds


def _tell(chan: _socket.socket, word: bytes, fds: list[int] | None = None) -> None:
    """A word to the child; one that has failed meanwhile has sent why, read next."""
    try:
        if fds:
            linux.send_fds(chan, word, fds)
        else:
            chan.send(word)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _place_in_cgroup(spec: Spec, pid: int, join: list[int] | None) -> Any:
    """Make the container's cgroup; then put `pid` in it, or, given `join`, leave there
    the files through which the init moves itself in."""
    if not spec.cgroups_path:
        return None
    from berth.runtime import cgroups

    cg = cgroups.open_manager(spec.cgroups_path)
    cg.create_and_apply(_with_default_devices(spec))
    if join is None:
        cg.add(pid)
    else:
        try:
            join.extend(cg.open_join_files())
        except BaseException:
            cg.destroy(kill=True)
            raise
    return cg


def _with_default_devices(spec: Spec) -> Any:
    """As runc: the spec's device rules, then one for each spec device, then the defaults."""
    from berth.runtime.cgroups.resources import DEFAULT_ALLOWED_DEVICES, DeviceRule

    resources = spec.resources
    if resources.devices is None:
        return resources
    own = tuple(DeviceRule(True, d.type if d.type in ("c", "b") else "c", d.major, d.minor, "rwm")
                for d in spec.devices if d.type in ("c", "b", "u"))
    defaults = tuple(sorted(DEFAULT_ALLOWED_DEVICES, key=lambda r: r.line()))
    return replace(resources, devices=resources.devices + own + defaults)


def _hook_state(identity: Identity, pid: int, status: str) -> dict[str, Any]:
    from berth.runtime.hooks import state_doc

    return state_doc(identity.container_id, pid, identity.bundle, status)


def _run_hooks(kind: str, spec: Spec, state: dict[str, Any]) -> None:
    if not spec.hooks.get(kind):
        return
    from berth.runtime import hooks

    try:
        hooks.run_all(kind, spec.hooks, state)
    except hooks.HookError as e:
        raise CreateError(str(e)) from None


def start(created: Created) -> None:
    """Step 5: let the init exec the user's command."""
    try:
        created.channel.send(b"start")
    finally:
        created.channel.close()


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


def _send(chan: _socket.socket, doc: dict[str, object], fds: list[int] | None = None) -> None:
    data = leanjson.dumps(doc).encode()
    if fds:
        linux.send_fds(chan, data, fds)
    else:
        chan.send(data)


def _expect(chan: _socket.socket, word: bytes) -> None:
    if chan.recv(64) != word:
        os._exit(1)  # the caller gave up on us


def _setup_process(spec: Spec, stdio: Stdio, chan: _socket.socket, fifo: str | None, identity: Identity) -> None:
    try:
        try:
            user = spec.namespace("user")
            joined: set[str] = set()
            if user is not None and not user.path:
                # as runc: the namespaces given by path are joined before the new user
                # namespace is made, while this process still has the host's capabilities
                # over them (a network namespace that berthd made is owned by the host's)
                for ns in spec.namespaces:
                    if ns.path and ns.type not in ("user", "cgroup"):
                        _join(ns.path, ns.type)
                        joined.add(ns.type)
            if user is not None:
                if user.path:
                    _join(user.path, "user")
                else:
                    linux.unshare(linux.CLONE_NEWUSER)
                    _send(chan, {"userns": True})
                    _expect(chan, b"mapped")
                from berth.runtime import userns

                userns.become_root()
            flags = 0
            for ns in spec.namespaces:
                if ns.type in ("user", "cgroup") or ns.type in joined:
                    continue  # user: done; cgroup: the init, once it is in its cgroup
                if ns.path:
                    _join(ns.path, ns.type)
                else:
                    flags |= NAMESPACE_FLAGS[ns.type]
            linux.unshare(flags)
        except (OSError, CreateError) as e:
            _send(chan, {"error": f"unable to create namespaces: {e}"})
            os._exit(1)
        pid = os.fork()
        if pid == 0:
            _init(spec, stdio, chan, fifo, identity)
        _send(chan, {"pid": pid})
        os._exit(0)
    except BaseException:
        os._exit(1)


def _join(path: str, kind: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, NAMESPACE_FLAGS[kind])
    except OSError as e:
        raise CreateError(f"joining the {kind} namespace {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def lookup(cmd: str, env: list[str]) -> str:
    """Find the command as execve will, with runc's error messages."""
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


def _attach_stdio(proc: Process, stdio: Stdio) -> list[int]:
    """Connect fds 0-2: a new terminal (its master is returned, for the caller) or the pipes."""
    if proc.terminal:
        master, slave = linux.open_pty_pair("/dev/pts/ptmx")
        if proc.console_height and proc.console_width:
            linux.set_window_size(master, proc.console_height, proc.console_width)
        for n in (0, 1, 2):
            os.dup2(slave, n)
        linux.set_controlling_terminal(0)
        os.close(slave)
        return [master]
    if stdio.stdin is not None:
        os.dup2(stdio.stdin, 0)
    else:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    os.dup2(stdio.stdout, 1)
    os.dup2(stdio.stderr, 2)
    return []


@record
class _Prepared:
    path: str
    env: dict[str, str]
    seccomp_filter: Any


def _prepare_exec(spec: Spec, proc: Process) -> _Prepared:
    """Everything that can fail before "ready": cwd, the command, the seccomp filter, the
    AppArmor profile (set now for the execve to come)."""
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise CreateError(f"chdir to cwd (\"{proc.cwd}\") set in config.json failed: {e.strerror}") from None
    path = lookup(proc.args[0], proc.env)
    if proc.apparmor_profile:
        from berth.runtime import apparmor

        try:
            apparmor.apply(proc.apparmor_profile)
        except apparmor.AppArmorError as e:
            raise CreateError(str(e)) from None
    seccomp_filter = None
    if spec.seccomp is not None:
        from berth.runtime import seccomp

        seccomp_filter = seccomp.compile_filter(spec.seccomp)
    env = {}
    for entry in proc.env:
        key, _, value = entry.partition("=")
        env[key] = value
    return _Prepared(path, env, seccomp_filter)


def _home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, as runc sets it when the spec does not."""
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def _ready(chan: _socket.socket, fds: list[int]) -> None:
    _send(chan, {"ready": True}, fds)
    for fd in fds:
        os.close(fd)


def _init(spec: Spec, stdio: Stdio, chan: _socket.socket, fifo: str | None, identity: Identity) -> None:
    """The container's pid 1 until it execs; never returns."""
    try:
        proc = spec.process
        os.setsid()
        # held by path: after pivot_root the FIFO is reached through /proc/self/fd
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC) if fifo else -1
        _expect(chan, b"go")  # runtime hooks done; the cgroup placement may still be under way
        in_cgroups: list[bool] = []

        def wait_placed() -> None:
            if not in_cgroups:
                word, join = linux.recv_fds(chan, 64, 64)
                if word != b"placed":
                    os._exit(1)  # the caller gave up on us
                if join:
                    from berth.runtime import cgroups

                    try:
                        cgroups.join_through(join)
                    except cgroups.CgroupError as e:
                        raise CreateError(str(e)) from None
                in_cgroups.append(True)

        cgroupns = spec.namespace("cgroup")
        if cgroupns is not None:
            wait_placed()
            if cgroupns.path:
                _join(cgroupns.path, "cgroup")
            else:
                linux.unshare(linux.CLONE_NEWCGROUP)
        if not proc.terminal:
            _attach_stdio(proc, stdio)
        from berth.runtime.rootfs import finish_rootfs, prepare_rootfs, secure_join

        # after pivot_root berth's own files are out of sight: import what runs later now
        if spec.seccomp is not None:
            from berth.runtime import seccomp  # noqa: F401
        if proc.apparmor_profile:
            from berth.runtime import apparmor  # noqa: F401
        if spec.hooks.get("startContainer"):
            from berth.runtime import hooks  # noqa: F401

        if proc.cwd != "/":
            cwd = secure_join(spec.root_path, proc.cwd)
            os.makedirs(cwd, mode=0o755, exist_ok=True)
        before_pivot = None
        if spec.hooks.get("createContainer"):
            def before_pivot() -> None:
                _run_hooks("createContainer", spec, _hook_state(identity, os.getpid(), "creating"))
        prepare_rootfs(spec, in_userns=spec.namespace("user") is not None, before_pivot=before_pivot,
                       before_cgroup=wait_placed)
        if spec.hostname is not None and spec.namespace("uts") is not None:
            linux.set_hostname(spec.hostname)
        net = spec.namespace("network")
        if net is not None and not net.path:
            linux.interface_up("lo")
        for key, value in spec.sysctl.items():
            try:
                with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                    f.write(value)
            except OSError as e:
                raise CreateError(f"linux.sysctl: {key}={value}: {e.strerror}") from None
        finish_rootfs(spec)
        if proc.rlimits:
            from berth.runtime import rlimits

            rlimits.apply(proc.rlimits)
        if proc.oom_score_adj is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc.oom_score_adj))
        # the terminal comes from the container's own devpts, so after pivot_root
        fds = _attach_stdio(proc, stdio) if proc.terminal else []
        prepared = _prepare_exec(spec, proc)
        if "HOME" not in prepared.env:
            prepared.env["HOME"] = _home_of(proc.user.uid)
        wait_placed()  # nothing of the user's runs outside the container's cgroups
        _ready(chan, fds)
        if fifo_fd >= 0:
            chan.close()
            gate = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(gate, b"0")
            os.close(gate)
            os.close(fifo_fd)
        else:
            _expect(chan, b"start")
            chan.close()
        if spec.hooks.get("startContainer"):
            _run_hooks("startContainer", spec, _hook_state(identity, os.getpid(), "created"))
        _become(proc, prepared.seccomp_filter)
        os.execve(prepared.path, proc.args, prepared.env)
    except CreateError as e:
        _try_send(chan, f"unable to start container process: {e}")
    except OSError as e:
        _try_send(chan, f"unable to start container process: {e}")
    except BaseException as e:  # any bug here must reach the user, not vanish
        _try_send(chan, f"unable to start container process: {type(e).__name__}: {e}")
    os._exit(127)


def _become(proc: Process, seccomp_filter: Any) -> None:
    """Drop to the process's user and privileges; the last steps before exec."""
    from berth.runtime import capabilities

    if seccomp_filter is not None and not proc.no_new_privileges:
        seccomp_filter.load()  # needs CAP_SYS_ADMIN: before the capabilities go
    user = proc.user

    def switch_user() -> None:
        os.setgroups(user.additional_gids)
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)

    capabilities.apply(proc.capabilities, switch_user)
    os.umask(user.umask if user.umask is not None else 0o022)
    linux.reset_signals()
    os.closerange(3, 65536)
    if proc.no_new_privileges:
        linux.set_no_new_privs()
    if seccomp_filter is not None and proc.no_new_privileges:
        seccomp_filter.load()


def _try_send(chan: _socket.socket, message: str) -> None:
    try:
        _send(chan, {"error": message})
    except OSError:
        sys.stderr.write(message + "\n")


_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup")
_NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
             "mount": "mnt", "cgroup": "cgroup"}


def exec_in(init_pid: int, spec: Spec, proc: Process, stdio: Stdio, cgroup_path: str = "") -> Created:
    """Start `proc` inside a running container (runc exec): same namespaces, cgroup and
    confinement (capabilities, seccomp, no_new_privs) as the spec says.

    Returns like create(): the process waits for start(created) before it execs.
    """
    if cgroup_path:
        from berth.runtime import cgroups  # before the fork: the setup process uses it inside
    parent, child = linux.seqpacket_pair()
    setup_pid = os.fork()
    if setup_pid == 0:
        parent.close()
        exec_setup(init_pid, spec, proc, stdio, child)  # never returns
    child.close()
    # The setup process moves itself into the container's cgroups once it has joined its
    # namespaces (cgroups.join_through); the process it forks then is born in them.
    try:
        join: list[int] = []
        if cgroup_path:
            join = cgroups.open_manager(cgroup_path).open_join_files()
        _tell(parent, b"cgroup", join)
        for fd in join:
            os.close(fd)
    except BaseException:
        try:
            os.kill(setup_pid, linux.SIGKILL)
        except ProcessLookupError:
            pass
        parent.close()
        raise

    pid, master = _handshake(parent, setup_pid, "exec process", lambda _pid: None)
    return Created(pid, master, parent)


def exec_through(forker: _socket.socket, proc_doc: dict[str, Any], stdio: Stdio) -> Created:
    """exec_in() with the setup process forked by the container's exec forker
    (shim/forker.py), which sits in the container's cgroups: the process is born in
    them, no cgroup write on the way. OSError when the forker is gone."""
    parent, child = linux.seqpacket_pair()
    fds = [child.fileno()]
    present = []
    for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
        present.append(fd is not None and fd >= 0)
        if fd is not None and fd >= 0:
            fds.append(fd)
    try:
        linux.send_fds(forker, leanjson.dumps({"process": proc_doc, "stdio": present}).encode(), fds)
    except OSError:
        parent.close()
        raise
    finally:
        child.close()
    parent.send(b"cgroup")  # born in them
    pid, master = _handshake(parent, None, "exec process", lambda _pid: None)
    return Created(pid, master, parent)


def exec_setup(init_pid: int, spec: Spec, proc: Process, stdio: Stdio, chan: _socket.socket) -> None:
    try:
        if spec.seccomp is not None:
            from berth.runtime import seccomp  # noqa: F401  (not importable once inside)
        if proc.apparmor_profile:
            from berth.runtime import apparmor  # noqa: F401
        try:
            own = {k: os.stat(f"/proc/self/ns/{f}").st_ino for k, f in _NS_FILES.items()}
            fds = {}
            for kind in _JOIN_ORDER:
                path = f"/proc/{init_pid}/ns/{_NS_FILES[kind]}"
                try:
                    if os.stat(path).st_ino != own[kind]:
                        fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if kind in ("pid", "mount"):
                        raise CreateError(f"container init {init_pid} is not running") from None
            # as runc's nsexec: the other namespaces first, while this process has the
            # host's capabilities (a network namespace berthd made is the host user
            # namespace's, out of reach from the container's), then the user namespace,
            # then again those that only the container's root may join
            later = []
            for kind in _JOIN_ORDER:
                if kind in fds and kind != "user":
                    try:
                        linux.setns(fds[kind], NAMESPACE_FLAGS[kind])
                    except PermissionError:
                        if "user" not in fds:
                            raise
                        later.append(kind)
                        continue
                    os.close(fds[kind])
            for kind in ["user", *later] if "user" in fds else later:
                linux.setns(fds[kind], NAMESPACE_FLAGS[kind])
                os.close(fds[kind])
        except (OSError, CreateError) as e:
            _send(chan, {"error": f"unable to join the container's namespaces: {e}"})
            os._exit(1)
        word, join = linux.recv_fds(chan, 64, 64)
        if word != b"cgroup":
            os._exit(1)  # the caller gave up on us
        if join:  # else born in them (the exec forker's child)
            from berth.runtime import cgroups  # imported before the fork: no file to read

            try:
                cgroups.join_through(join)
            except cgroups.CgroupError as e:
                _send(chan, {"error": f"exec failed: {e}"})
                os._exit(1)
        pid = os.fork()  # in the container's cgroups now: what it forks is born there
        if pid == 0:
            _exec_child(spec, proc, stdio, chan)
        _send(chan, {"pid": pid})
        os._exit(0)
    except BaseException:
        os._exit(1)


def _exec_child(spec: Spec, proc: Process, stdio: Stdio, chan: _socket.socket) -> None:
    try:
        os.setsid()
        _expect(chan, b"go")
        fds = _attach_stdio(proc, stdio)
        if proc.rlimits:
            from berth.runtime import rlimits

            rlimits.apply(proc.rlimits)
        prepared = _prepare_exec(spec, proc)
        _ready(chan, fds)
        _expect(chan, b"start")
        chan.close()
        _become(proc, prepared.seccomp_filter)
        os.execve(prepared.path, proc.args, prepared.env)
    except CreateError as e:
        _try_send(chan, f"exec failed: {e}")
    except OSError as e:
        _try_send(chan, f"exec failed: {e}")
    except BaseException as e:
        _try_send(chan, f"exec failed: {type(e).__name__}: {e}")
    os._exit(127)
