"""The runtimes a shim can drive: berth's own, in-process, or an OCI runtime binary.

One interface, two back ends, picked per container (`docker run --runtime`):
  - `BerthRuntime` creates the container from this process with berth.runtime.process
    (no extra exec: the fast path);
  - `OciCliRuntime` runs runc's command line (`runc`, `crun`, `berth-runtime`) on the
    same bundle: create with the shim's pipes as stdio (a terminal comes back through
    --console-socket), start, pause, resume, update, delete.
The shim never asks which one it has.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

from berth.runtime import oci


class RuntimeError_(Exception):
    pass


@dataclass(frozen=True)
class Basics:
    """What the shim itself needs of a bundle: the whole spec is parsed by the runtime."""

    terminal: bool = False
    cgroups_path: str = ""


def read_basics(bundle: str) -> Basics:
    """The bundle's process.terminal and linux.cgroupsPath; a bundle that does not parse
    gives the defaults here and its error from the runtime's own parse."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return Basics()
    if not isinstance(doc, dict):
        return Basics()
    proc, linux = doc.get("process"), doc.get("linux")
    terminal = proc.get("terminal") is True if isinstance(proc, dict) else False
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    return Basics(terminal, path if isinstance(path, str) else "")


class BerthRuntime:
    """berth.runtime.process, run in a short-lived child of the shim (the "creator").

    The shim lives as long as its container, and every page of the zygote it touches
    becomes its own: a forked CPython dirties the pages of each object whose reference
    count it changes, and each function it runs. The spec's parse and the container's
    creation touch much of berth.runtime (~1 MiB of pages); done in the creator, that
    memory goes when it exits. The init, its grandchild, is reparented to the shim (a
    child subreaper) when the setup process between them exits."""

    def __init__(self, container_id: str, bundle: str) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.created: Any = None
        self.cgroups_path = ""
        self.cgroup: Any = None

    def create(self, basics: Basics, stdin: int | None, stdout: int, stderr: int) -> tuple[int, int | None]:
        from berth.runtime import process

        self.cgroups_path = basics.cgroups_path
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        creator = os.fork()
        if creator == 0:
            ours.close()
            self._creator(theirs, stdin, stdout, stderr)  # never returns
        theirs.close()
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ours, 65536, 2)
        finally:
            ours.close()
            os.waitpid(creator, 0)
        doc = json.loads(msg) if msg else {"error": "the container's creator exited without a word"}
        if "error" in doc:
            for fd in fds:
                os.close(fd)
            raise RuntimeError_(doc["error"])
        master = fds[1] if len(fds) > 1 else None
        self.created = process.Created(int(doc["pid"]), master, socket.socket(fileno=fds[0]))
        return self.created.pid, master

    def _creator(self, chan: socket.socket, stdin: int | None, stdout: int, stderr: int) -> None:
        try:
            from berth.runtime import process

            try:
                spec = oci.load_bundle(self.bundle)
                created = process.create(spec, process.Stdio(stdin, stdout, stderr),
                                          identity=process.Identity(self.container_id, self.bundle))
            except (oci.SpecError, process.CreateError, OSError) as e:
                chan.send(json.dumps({"error": str(e)}).encode())
            except BaseException as e:  # noqa: BLE001  (a bug must reach the user, not hang the shim)
                chan.send(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
            else:
                fds = [created.channel.fileno()] + ([created.pty_master] if created.pty_master is not None else [])
                socket.send_fds(chan, [json.dumps({"pid": created.pid}).encode()], fds)
        finally:
            os._exit(0)

    def start(self) -> None:
        from berth.runtime import process

        process.start(self.created)

    def pause(self) -> None:
        self._need_cgroup("pause").freeze()

    def resume(self) -> None:
        self._need_cgroup("unpause").thaw()

    def update(self, resources: dict[str, Any]) -> None:
        from berth.runtime.cgroups.resources import parse_resources

        self._need_cgroup("update").update(parse_resources(resources))

    def pids(self) -> list[int]:
        return self._need_cgroup("top").pids()

    def oom_killed(self) -> bool:
        try:
            return bool(self.cgroups_path) and self._need_cgroup("check").oom_kill_count() > 0
        except OSError:
            return False

    def delete(self) -> None:
        if self.cgroups_path:
            try:
                self._need_cgroup("delete").destroy(kill=True)
            except Exception as e:  # noqa: BLE001  (the exit must still be recorded)
                print(f"berth-shim: removing cgroup {self.cgroups_path}: {e}", file=sys.stderr)

    def _need_cgroup(self, what: str) -> Any:
        if not self.cgroups_path:
            raise RuntimeError_(f"cannot {what}: the container has no cgroup")
        if self.cgroup is None:
            from berth.runtime import cgroups

            self.cgroup = cgroups.open_manager(self.cgroups_path)
        return self.cgroup


class OciCliRuntime:
    """runc's command line, as containerd's runc shim drives it."""

    def __init__(self, binary: str, root: str, container_id: str, bundle: str, state_dir: str) -> None:
        self.binary = binary
        self.root = root
        self.container_id = container_id
        self.bundle = bundle
        self.state_dir = state_dir
        self.log = os.path.join(state_dir, "runtime.log")
        self.cgroups_path = ""

    def _cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, "--log", self.log, "--log-format", "json", *args]

    def _error(self, fallback: str) -> str:
        try:
            with open(self.log) as f:
                lines = f.read().splitlines()
        except OSError:
            return fallback
        for line in reversed(lines):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("level") in ("error", "fatal"):
                return str(doc.get("msg") or fallback)
        return fallback

    def _run(self, *args: str, stdin: bytes | None = None) -> None:
        import subprocess  # here, not above: it loads threading into the zygote, whose
        # after-fork hook then writes to ~200 KiB of every shim's pages

        proc = subprocess.run(self._cmd(*args), input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError_(self._error(proc.stderr.decode(errors="replace").strip()
                                            or f"{os.path.basename(self.binary)} {args[0]} failed"))

    def create(self, basics: Basics, stdin: int | None, stdout: int, stderr: int) -> tuple[int, int | None]:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.cgroups_path = basics.cgroups_path
        pid_file = os.path.join(self.state_dir, "init.pid")
        args = ["create", "--bundle", self.bundle, "--pid-file", pid_file]
        console = None
        if basics.terminal:
            console_path = os.path.join(self.state_dir, "console.sock")
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.lexists(console_path):
                os.unlink(console_path)
            console.bind(console_path)
            console.listen(1)
            console.settimeout(30)
            args += ["--console-socket", console_path]
        import subprocess

        null = os.open(os.devnull, os.O_RDWR)
        try:
            proc = subprocess.Popen(self._cmd(*args, self.container_id),
                                    stdin=stdin if stdin is not None else null,
                                    stdout=stdout if stdout >= 0 else null,
                                    stderr=stderr if stderr >= 0 else null)
            master = None
            if console is not None:
                try:
                    conn, _ = console.accept()
                    with conn:
                        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
                    master = fds[0] if fds else None
                except OSError:
                    master = None
            code = proc.wait()
        finally:
            os.close(null)
            if console is not None:
                console.close()
        if code != 0:
            raise RuntimeError_(self._error(f"{os.path.basename(self.binary)} create failed (exit {code})"))
        with open(pid_file) as f:
            return int(f.read().strip()), master

    def start(self) -> None:
        self._run("start", self.container_id)

    def pause(self) -> None:
        self._run("pause", self.container_id)

    def resume(self) -> None:
        self._run("resume", self.container_id)

    def update(self, resources: dict[str, Any]) -> None:
        self._run("update", "--resources", "-", self.container_id, stdin=json.dumps(resources).encode())

    def pids(self) -> list[int]:
        import subprocess

        proc = subprocess.run(self._cmd("ps", "--format", "json", self.container_id), capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError_(self._error("ps failed"))
        return list(json.loads(proc.stdout or b"[]") or [])

    def oom_killed(self) -> bool:
        if not self.cgroups_path:
            return False
        try:
            from berth.runtime import cgroups

            return cgroups.open_manager(self.cgroups_path).oom_kill_count() > 0
        except OSError:
            return False

    def delete(self) -> None:
        try:
            self._run("delete", "--force", self.container_id)
        except RuntimeError_:
            pass
