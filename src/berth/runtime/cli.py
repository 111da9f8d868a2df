"""berth-runtime: an OCI runtime with runc's command line.

  berth-runtime [--root DIR] create [--bundle DIR] [--console-socket SOCK] [--pid-file F] ID
  berth-runtime start ID | state ID | kill ID [SIGNAL] [--all] | delete [-f] ID
  berth-runtime run [-d] [--bundle DIR] ... ID | list | spec | features

As with runc, `create` leaves the container's init waiting on `<root>/<id>/exec.fifo`
with the caller's stdio (or a terminal sent to --console-socket), and exits; the
init's parent becomes the nearest child subreaper (the shim). Errors are one line on
stderr and exit status 1.
"""

from __future__ import annotations

import _signal  # not `signal`: see linux.py
import os
import sys
import time

from berth.runtime import leanjson
from berth.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

DEFAULT_ROOT = "/run/berth-runtime"


class RuntimeCliError(Exception):
    pass


def _remove_dir(path: str) -> None:
    """A container's directory under --root: its files (state.json, exec.fifo), then it."""
    try:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _now() -> str:
    from berth.clock import format_time

    return format_time(time.time_ns())


_SPECS: dict[str, Any] = {}


def _spec_of(bundle: str) -> Any:
    """The bundle's spec, parsed once per command (`run` creates, starts and deletes)."""
    if bundle not in _SPECS:
        from berth.runtime import oci

        _SPECS[bundle] = oci.load_bundle(bundle)
    return _SPECS[bundle]


def _signal_number(text: str) -> int:
    t = text.upper()
    if t.isdigit():
        return int(t)
    name = t if t.startswith("SIG") else "SIG" + t
    import signal

    try:
        return int(signal.Signals[name])
    except KeyError:
        raise RuntimeCliError(f"unknown signal {text!r}") from None


def _send_console(sock_path: str, master: int) -> None:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])


def cmd_create(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import process

    bundle = os.path.abspath(args.bundle or ".")
    spec = _spec_of(bundle)
    if spec.process.terminal and not args.console_socket:
        raise RuntimeCliError("cannot allocate tty if runtime is not given --console-socket")
    d = st.container_dir(root, args.id)
    os.makedirs(root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(d, 0o711)
    except FileExistsError:
        raise RuntimeCliError(f"container with id exists: {args.id}") from None
    fifo = os.path.join(d, "exec.fifo")
    try:
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # whatever the umask: the container's root must open it
        _chown_to_container_root(fifo, spec)
        created = process.create(spec, process.Stdio(0, 1, 2), fifo=fifo,
                                 identity=process.Identity(args.id, bundle))
        if created.pty_master is not None:
            _send_console(args.console_socket, created.pty_master)
            os.close(created.pty_master)
        created.channel.close()
        record = st.ContainerState(
            id=args.id, pid=created.pid, pid_start=st.process_start_time(created.pid), bundle=bundle,
            rootfs=spec.root_path, created=_now(), owner="root", cgroup_path=spec.cgroups_path)
        st.save(root, record)
    except BaseException:
        _remove_dir(d)
        raise
    if args.pid_file:
        _write_pid_file(args.pid_file, created.pid)
    return 0


def _chown_to_container_root(path: str, spec: Any) -> None:
    """In a user namespace, the host ids that the container's uid and gid 0 are."""
    if spec.namespace("user") is None:
        return
    from berth.runtime import userns

    uid = userns.host_id(spec.id_mappings.uid, 0)
    gid = userns.host_id(spec.id_mappings.gid, 0)
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def cmd_start(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import process

    record = st.load(root, args.id)
    current = st.status(root, record)
    if current != "created":
        raise RuntimeCliError("cannot start a container that has stopped" if current == "stopped"
                              else "cannot start an already running container")
    process.start_fifo(os.path.join(st.container_dir(root, args.id), "exec.fifo"))
    _hooks(root, record, "poststart", "running")
    return 0


def _hooks(root: str, record: st.ContainerState, kind: str, status: str) -> None:
    """poststart/poststop: failures are warnings, as the runtime spec says."""
    from berth.runtime import oci

    try:
        spec = _spec_of(record.bundle)
    except oci.SpecError:
        return
    if not spec.hooks.get(kind):
        return
    from berth.runtime import hooks

    try:
        hooks.run_all(kind, spec.hooks, hooks.state_doc(record.id, record.pid, record.bundle, status))
    except hooks.HookError as e:
        print(f"berth-runtime: warning: {e}", file=sys.stderr)


def _cgroup(record: st.ContainerState) -> Any:
    if not record.cgroup_path:
        raise RuntimeCliError(f"container {record.id} has no cgroup")
    from berth.runtime import cgroups

    return cgroups.open_manager(record.cgroup_path)


def _frozen(record: st.ContainerState) -> bool:
    if not record.cgroup_path:
        return False
    try:
        return bool(_cgroup(record).state() == "frozen")
    except OSError:
        return False


def _current(root: str, record: st.ContainerState) -> str:
    return st.status(root, record, frozen=_frozen(record))


def cmd_pause(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    if _current(root, record) != "running":
        raise RuntimeCliError("container not running")
    _cgroup(record).freeze()
    return 0


def cmd_resume(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    if _current(root, record) != "paused":
        raise RuntimeCliError("container not paused")
    _cgroup(record).thaw()
    return 0


def cmd_update(root: str, args: argparse.Namespace) -> int:
    from berth.runtime.cgroups.resources import parse_resources

    record = st.load(root, args.id)
    doc: dict[str, Any] = {}
    if args.resources:
        text = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
        try:
            doc = leanjson.loads(text)
        except ValueError as e:
            raise RuntimeCliError(f"--resources: invalid JSON: {e}") from None
    memory = doc.setdefault("memory", {})
    cpu = doc.setdefault("cpu", {})
    for flag, section, key in (("memory", memory, "limit"), ("memory_swap", memory, "swap"),
                               ("memory_reservation", memory, "reservation"), ("cpu_quota", cpu, "quota"),
                               ("cpu_period", cpu, "period"), ("cpu_share", cpu, "shares"),
                               ("cpu_rt_period", cpu, "realtimePeriod"), ("cpu_rt_runtime", cpu, "realtimeRuntime"),
                               ("blkio_weight", doc.setdefault("blockIO", {}), "weight")):
        value = getattr(args, flag)
        if value is not None:
            section[key] = value
    if args.cpuset_cpus is not None:
        cpu["cpus"] = args.cpuset_cpus
    if args.cpuset_mems is not None:
        cpu["mems"] = args.cpuset_mems
    if args.pids_limit is not None:
        doc["pids"] = {"limit": args.pids_limit}
    _cgroup(record).update(parse_resources({k: v for k, v in doc.items() if v}))
    return 0


def cmd_ps(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    pids = _cgroup(record).pids()
    if args.format == "json":
        print(leanjson.dumps(pids))
        return 0
    print("PID   CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        print(f"{pid:<5} {cmd}")
    return 0


def cmd_exec(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import linux, oci, process
    from berth.runtime.record import replace

    record = st.load(root, args.id)
    if _current(root, record) not in ("running", "created"):
        raise RuntimeCliError(f"cannot exec in a {_current(root, record)} container")
    spec = oci.load_bundle(record.bundle)
    if args.process:
        with open(args.process) as f:
            try:
                proc_doc = leanjson.load(f)
            except ValueError as e:
                raise RuntimeCliError(f"--process: invalid JSON: {e}") from None
        proc = oci.parse_spec({"root": {"path": record.rootfs}, "process": proc_doc}, record.bundle).process
    else:
        if not args.argv:
            raise RuntimeCliError("exec needs a command (or --process)")
        proc = replace(spec.process, args=list(args.argv), terminal=args.tty)
        if args.env:
            proc = replace(proc, env=[*proc.env, *args.env])
        if args.cwd:
            proc = replace(proc, cwd=args.cwd)
        if args.user:
            uid, _, gid = args.user.partition(":")
            proc = replace(proc, user=oci.User(int(uid), int(gid or 0), []))
        if args.no_new_privs:
            proc = replace(proc, no_new_privileges=True)
    if proc.terminal and not args.console_socket:
        raise RuntimeCliError("cannot allocate tty if runtime is not given --console-socket")
    if not args.detach:
        linux.set_child_subreaper()
    created = process.exec_in(record.pid, spec, proc, process.Stdio(0, 1, 2), record.cgroup_path)
    if created.pty_master is not None:
        _send_console(args.console_socket, created.pty_master)
        os.close(created.pty_master)
    if args.pid_file:
        _write_pid_file(args.pid_file, created.pid)
    process.start(created)
    if args.detach:
        return 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == created.pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def cmd_state(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    doc = _state_doc(root, record)
    print(leanjson.dumps(doc, indent=2))
    return 0


def _state_doc(root: str, record: st.ContainerState) -> dict[str, Any]:
    status = _current(root, record)
    return {
        "ociVersion": "1.2.0",
        "id": record.id,
        "pid": record.pid if status != "stopped" else 0,
        "status": status,
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": record.owner,
        "annotations": record.annotations or {},
    }


def cmd_kill(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    sig = _signal_number(args.signal)
    if st.status(root, record) == "stopped":
        raise RuntimeCliError("container not running")
    if args.all and record.cgroup_path:
        _cgroup(record).kill_all(sig)
        return 0
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        raise RuntimeCliError("container not running") from None
    return 0


def cmd_delete(root: str, args: argparse.Namespace) -> int:
    try:
        record = st.load(root, args.id)
    except st.StateError:
        if args.force:
            return 0
        raise
    status = _current(root, record)
    if status in ("running", "paused") and not args.force:
        raise RuntimeCliError(f"cannot delete container {args.id} that is not stopped: {status}")
    if status != "stopped":
        try:
            os.kill(record.pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status == "paused":
            _cgroup(record).thaw()
        deadline = time.monotonic() + 5
        while st.status(root, record) != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
    if record.cgroup_path:
        try:
            _cgroup(record).destroy(kill=True)
        except OSError as e:
            print(f"berth-runtime: warning: removing cgroup {record.cgroup_path}: {e}", file=sys.stderr)
    _remove_dir(st.container_dir(root, args.id))
    _hooks(root, record, "poststop", "stopped")
    return 0


def cmd_run(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import linux

    if not args.detach:
        linux.set_child_subreaper()  # the init becomes our child: we wait for it
    cmd_create(root, args)
    record = st.load(root, args.id)
    try:
        cmd_start(root, args)
    except BaseException:
        args.force = True
        cmd_delete(root, args)
        raise
    if args.detach:
        return 0
    code = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == record.pid:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            break
    args.force = True
    cmd_delete(root, args)
    return code


def cmd_list(root: str, args: argparse.Namespace) -> int:
    rows = []
    for cid in st.list_ids(root):
        try:
            record = st.load(root, cid)
        except st.StateError:
            continue
        rows.append(_state_doc(root, record))
    if args.format == "json":
        print(leanjson.dumps(rows))
        return 0
    if args.quiet:
        for r in rows:
            print(r["id"])
        return 0
    table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def default_spec(rootless: bool = False) -> dict[str, Any]:
    from berth.runtime import spec as specmod

    config = specmod.build_config(specmod.BundleRequest(
        root="rootfs", args=["sh"], env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                         "TERM=xterm"],
        cwd="/", uid=0, gid=0, additional_gids=[], hostname="runc", terminal=True))
    config["root"]["readonly"] = True
    return config


def cmd_spec(root: str, args: argparse.Namespace) -> int:
    bundle = args.bundle or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeCliError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        import json

        json.dump(default_spec(), f, indent="\t")
    return 0


def cmd_features(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import apparmor
    from berth.runtime.capabilities import CAPABILITY_NAMES
    from berth.runtime.oci import NAMESPACE_FLAGS
    from berth.runtime.rootfs import _FLAG_OPTIONS, _PROPAGATION

    try:
        from berth.runtime import seccomp

        seccomp_features = seccomp.features()
    except OSError:  # no libseccomp here
        seccomp_features = {"enabled": False}
    print(leanjson.dumps({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(set(_FLAG_OPTIONS) | set(_PROPAGATION)),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(CAPABILITY_NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_features,
            "apparmor": {"enabled": apparmor.enabled()},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.berth": "true"},
    }, indent=2))
    return 0


# The options of the commands a caller runs for every container (create, start, state,
# kill, delete, run): (spellings, dest, type, default). `_quick_parse` reads these
# without argparse, whose import and set-up cost more than the rest of `state`; the
# same rows define them for argparse, which parses everything else and prints help.
_Option = tuple[tuple[str, ...], str, type, object]
_GLOBAL_OPTIONS: list[_Option] = [
    (("--root",), "root", str, DEFAULT_ROOT), (("--log",), "log", str, ""),
    (("--log-format",), "log_format", str, "text"), (("--debug",), "debug", bool, False),
    (("--systemd-cgroup",), "systemd_cgroup", bool, False),
]
_CREATE_OPTIONS: list[_Option] = [
    (("-b", "--bundle"), "bundle", str, "."), (("--console-socket",), "console_socket", str, ""),
    (("--pid-file",), "pid_file", str, ""), (("--no-pivot",), "no_pivot", bool, False),
    (("--no-new-keyring",), "no_new_keyring", bool, False), (("--preserve-fds",), "preserve_fds", int, 0),
]
_QUICK_COMMANDS: dict[str, tuple[str, list[_Option]]] = {
    "create": ("create a container", _CREATE_OPTIONS),
    "run": ("run a container", [*_CREATE_OPTIONS, (("-d", "--detach"), "detach", bool, False)]),
    "start": ("start a created container", []),
    "state": ("print the state of a container", []),
    "kill": ("send a signal to the container's init", [(("-a", "--all"), "all", bool, False)]),
    "delete": ("delete a container", [(("-f", "--force"), "force", bool, False)]),
}
_KILL_SIGNAL = "SIGTERM"  # kill's optional second positional


class _Args:
    """argparse.Namespace's shape, for what `_quick_parse` read."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def _quick_parse(argv: list[str]) -> Any:
    """The common command lines of the commands above, or None for anything else (help,
    an unknown or abbreviated option, a missing or extra argument): argparse then
    parses it and says what is wrong."""
    values: dict[str, object] = {dest: default for _, dest, _, default in _GLOBAL_OPTIONS}
    options = {spelling: (dest, kind) for spellings, dest, kind, _ in _GLOBAL_OPTIONS for spelling in spellings}
    positionals: list[str] = []
    command = None
    rest = iter(argv)
    for arg in rest:
        if command is None and not arg.startswith("-"):
            if arg not in _QUICK_COMMANDS:
                return None
            command = values["command"] = arg
            options = {}  # as argparse: the global options come before the command
            for spellings, dest, kind, default in _QUICK_COMMANDS[arg][1]:
                values[dest] = default
                options.update(dict.fromkeys(spellings, (dest, kind)))
            continue
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in options:
            return None
        dest, kind = options[name]
        if kind is bool:
            if eq:
                return None
            values[dest] = True
            continue
        if not eq:
            following = next(rest, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        try:
            values[dest] = kind(value)
        except ValueError:
            return None
    if command is None or not positionals or len(positionals) > (2 if command == "kill" else 1):
        return None
    values["id"] = positionals[0]
    if command == "kill":
        values["signal"] = positionals[1] if len(positionals) > 1 else _KILL_SIGNAL
    return _Args(**values)


def _parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(prog="berth-runtime", description="berth's OCI runtime (runc's command line)")

    def add(parser: argparse.ArgumentParser, rows: list[_Option]) -> None:
        for spellings, dest, kind, default in rows:
            if kind is bool:
                parser.add_argument(*spellings, dest=dest, action="store_true")
            else:
                parser.add_argument(*spellings, dest=dest, type=kind, default=default)

    add(p, _GLOBAL_OPTIONS)
    sub = p.add_subparsers(dest="command", required=True)

    def with_id(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("id")
        return sp

    for name, (help_text, rows) in _QUICK_COMMANDS.items():
        sp = with_id(name, help_text)
        add(sp, rows)
        if name == "kill":
            sp.add_argument("signal", nargs="?", default=_KILL_SIGNAL)
    sp = sub.add_parser("list", help="list containers")
    sp.add_argument("-f", "--format", default="table")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp = sub.add_parser("spec", help="write a default config.json")
    sp.add_argument("-b", "--bundle", default=".")
    sp.add_argument("--rootless", action="store_true")
    sub.add_parser("features", help="print what this runtime supports")
    with_id("pause", "freeze every process of the container")
    with_id("resume", "thaw a paused container")
    sp = with_id("ps", "list the container's processes")
    sp.add_argument("-f", "--format", default="table")
    sp = with_id("update", "change the container's resource limits")
    sp.add_argument("-r", "--resources", default="")
    for flag in ("memory", "memory-swap", "memory-reservation", "cpu-quota", "cpu-period", "cpu-share",
                 "cpu-rt-period", "cpu-rt-runtime", "blkio-weight", "pids-limit"):
        sp.add_argument(f"--{flag}", type=int, default=None)
    sp.add_argument("--cpuset-cpus", default=None)
    sp.add_argument("--cpuset-mems", default=None)
    sp = with_id("exec", "run a process in a running container")
    sp.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")
    sp.add_argument("-p", "--process", default="")
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--console-socket", default="")
    sp.add_argument("--pid-file", default="")
    sp.add_argument("--cwd", default="")
    sp.add_argument("-e", "--env", action="append", default=[])
    sp.add_argument("-u", "--user", default="")
    sp.add_argument("--no-new-privs", action="store_true")
    return p


COMMANDS = {"create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill,
            "delete": cmd_delete, "run": cmd_run, "list": cmd_list, "spec": cmd_spec,
            "features": cmd_features, "pause": cmd_pause, "resume": cmd_resume, "update": cmd_update,
            "ps": cmd_ps, "exec": cmd_exec}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _quick_parse(argv) or _parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args.root, args)
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        print(f"berth-runtime: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's (one line, exit 1), not berth's (a traceback). Those
    of modules the command did not load cannot have been raised, and loading them to
    find out would cost `state` or `kill` most of its time."""
    from berth.errors import BerthError

    kinds: list[type[BaseException]] = [RuntimeCliError, st.StateError, BerthError, OSError]
    for module, name in (("berth.runtime.oci", "SpecError"), ("berth.runtime.process", "CreateError")):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    return tuple(kinds)


def launch() -> None:
    """The `berth-runtime` program: main(), then exit without the interpreter's teardown
    (freeing every module and object costs a few ms and achieves nothing here)."""
    try:
        main()
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    launch()
