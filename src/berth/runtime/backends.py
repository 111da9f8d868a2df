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
import subprocess
import sys
from typing import Any

from berth.runtime import oci


class RuntimeError_(Exception):
    pass


class BerthRuntime:
    def __init__(self, container_id: str, bundle: str) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.created: Any = None
        self.cgroup: Any = None

    def create(self, spec: oci.Spec, stdin: int | None, stdout: int, stderr: int) -> tuple[int, int | None]:
        from berth.runtime import process

        try:
            self.created = process.create(spec, process.Stdio(stdin, stdout, stderr),
                                          identity=process.Identity(self.container_id, self.bundle))
        except process.CreateError as e:
            raise RuntimeError_(str(e)) from None
        self.cgroup = self.created.cgroup
        return self.created.pid, self.created.pty_master

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
            return self.cgroup is not None and self.cgroup.oom_kill_count() > 0
        except OSError:
            return False

    def delete(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.destroy(kill=True)
            except Exception as e:  # noqa: BLE001  (the exit must still be recorded)
                print(f"berth-shim: removing cgroup {self.cgroup.path}: {e}", file=sys.stderr)

    def _need_cgroup(self, what: str) -> Any:
        if self.cgroup is None:
            raise RuntimeError_(f"cannot {what}: the container has no cgroup")
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
        proc = subprocess.run(self._cmd(*args), input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError_(self._error(proc.stderr.decode(errors="replace").strip()
                                            or f"{os.path.basename(self.binary)} {args[0]} failed"))

    def create(self, spec: oci.Spec, stdin: int | None, stdout: int, stderr: int) -> tuple[int, int | None]:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.cgroups_path = spec.cgroups_path
        pid_file = os.path.join(self.state_dir, "init.pid")
        args = ["create", "--bundle", self.bundle, "--pid-file", pid_file]
        console = None
        if spec.process.terminal:
            console_path = os.path.join(self.state_dir, "console.sock")
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.lexists(console_path):
                os.unlink(console_path)
            console.bind(console_path)
            console.listen(1)
            console.settimeout(30)
            args += ["--console-socket", console_path]
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
