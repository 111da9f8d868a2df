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

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time
from typing import Any

from berth.runtime import state as st

DEFAULT_ROOT = "/run/berth-runtime"


class RuntimeCliError(Exception):
    pass


def _now() -> str:
    from berth.logs.jsonfile import format_time

    return format_time(time.time_ns())


def _signal(text: str) -> int:
    t = text.upper()
    if t.isdigit():
        return int(t)
    name = t if t.startswith("SIG") else "SIG" + t
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise RuntimeCliError(f"unknown signal {text!r}") from None


def _send_console(sock_path: str, master: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])


def cmd_create(root: str, args: argparse.Namespace) -> int:
    from berth.runtime import oci, process

    bundle = os.path.abspath(args.bundle or ".")
    spec = oci.load_bundle(bundle)
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
        created = process.create(spec, process.Stdio(0, 1, 2), fifo=fifo)
        if created.pty_master is not None:
            _send_console(args.console_socket, created.pty_master)
            os.close(created.pty_master)
        created.channel.close()
        record = st.ContainerState(
            id=args.id, pid=created.pid, pid_start=st.process_start_time(created.pid), bundle=bundle,
            rootfs=spec.root_path, created=_now(), owner="root")
        st.save(root, record)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    if args.pid_file:
        _write_pid_file(args.pid_file, created.pid)
    return 0


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
    return 0


def cmd_state(root: str, args: argparse.Namespace) -> int:
    record = st.load(root, args.id)
    doc = _state_doc(root, record)
    print(json.dumps(doc, indent=2))
    return 0


def _state_doc(root: str, record: st.ContainerState) -> dict[str, Any]:
    status = st.status(root, record)
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
    sig = _signal(args.signal)
    if st.status(root, record) == "stopped":
        raise RuntimeCliError("container not running")
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
    status = st.status(root, record)
    if status in ("running", "paused") and not args.force:
        raise RuntimeCliError(f"cannot delete container {args.id} that is not stopped: {status}")
    if status != "stopped":
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while st.status(root, record) != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
    shutil.rmtree(st.container_dir(root, args.id), ignore_errors=True)
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
        print(json.dumps(rows))
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
        json.dump(default_spec(), f, indent="\t")
    return 0


def cmd_features(root: str, args: argparse.Namespace) -> int:
    from berth.runtime.oci import NAMESPACE_FLAGS
    from berth.runtime.rootfs import _FLAG_OPTIONS, _PROPAGATION

    print(json.dumps({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": [],
        "mountOptions": sorted(set(_FLAG_OPTIONS) | set(_PROPAGATION)),
        "linux": {"namespaces": sorted(NAMESPACE_FLAGS)},
        "annotations": {"org.opencontainers.runtime-spec.features.berth": "true"},
    }, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berth-runtime", description="berth's OCI runtime (runc's command line)")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--log", default="")
    p.add_argument("--log-format", default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def with_id(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("id")
        return sp

    for name in ("create", "run"):
        sp = with_id(name, f"{name} a container")
        sp.add_argument("-b", "--bundle", default=".")
        sp.add_argument("--console-socket", default="")
        sp.add_argument("--pid-file", default="")
        sp.add_argument("--no-pivot", action="store_true")
        sp.add_argument("--no-new-keyring", action="store_true")
        sp.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            sp.add_argument("-d", "--detach", action="store_true")
    with_id("start", "start a created container")
    with_id("state", "print the state of a container")
    sp = with_id("kill", "send a signal to the container's init")
    sp.add_argument("signal", nargs="?", default="SIGTERM")
    sp.add_argument("-a", "--all", action="store_true")
    sp = with_id("delete", "delete a container")
    sp.add_argument("-f", "--force", action="store_true")
    sp = sub.add_parser("list", help="list containers")
    sp.add_argument("-f", "--format", default="table")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp = sub.add_parser("spec", help="write a default config.json")
    sp.add_argument("-b", "--bundle", default=".")
    sp.add_argument("--rootless", action="store_true")
    sub.add_parser("features", help="print what this runtime supports")
    return p


COMMANDS = {"create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill,
            "delete": cmd_delete, "run": cmd_run, "list": cmd_list, "spec": cmd_spec,
            "features": cmd_features}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from berth.runtime.oci import SpecError
    from berth.runtime.process import CreateError

    try:
        code = COMMANDS[args.command](args.root, args)
    except (RuntimeCliError, st.StateError, SpecError, CreateError, OSError) as e:
        print(f"berth-runtime: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
