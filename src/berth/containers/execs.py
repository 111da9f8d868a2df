"""`docker exec`: processes started in a running container, each kept by a shim of its own.

An exec is a record (kept in memory, as Docker keeps them) until it runs: then berthd
starts a shim in exec mode (runtime/shim.py `--exec-pid`) with the container's bundle
and a process description made here from the container's own process (its environment,
user, working directory, capabilities), changed the way the user asked. The shim joins
the container's namespaces and cgroup, owns the process's stdio or terminal, and
reports its exit as a container's shim does. Its state lives under the container's
state directory, so it goes when the container's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth.containers.model import Container, Status
from berth.containers.users import resolve_user
from berth.errors import Conflict, InvalidParameter, NotFound, SystemError_
from berth.runtime import shimclient

if TYPE_CHECKING:
    from berth.containers.manager import ContainerManager



@dataclass
class Exec:
    id: str
    container_id: str
    argv: list[str]
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    env: list[str] = field(default_factory=list)
    user: str = ""
    working_dir: str = ""
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] = (0, 0)
    # while and after it runs
    running: bool = False
    started: bool = False
    pid: int = 0
    exit_code: int | None = None


def new_exec(container_id: str, argv: list[str], **kw: Any) -> Exec:
    if not argv:
        raise InvalidParameter("No exec command specified")
    return Exec(secrets.token_hex(32), container_id, list(argv), **kw)


def state_dir(container_state_dir: str, exec_id: str) -> str:
    return os.path.join(container_state_dir, "exec", exec_id[:24])


def process_doc(bundle_config: dict[str, Any], e: Exec, uid: int, gid: int, additional_gids: list[int],
                home: str) -> dict[str, Any]:
    """The exec's OCI process: the container's, with the exec's command and changes."""
    base = dict(bundle_config.get("process") or {})
    env = _merge_env(list(base.get("env") or []), e.env)
    if e.user and not any(v.startswith("HOME=") for v in e.env):
        env = [v for v in env if not v.startswith("HOME=")] + [f"HOME={home}"]
    if e.tty and not any(v.startswith("TERM=") for v in env):
        env.append("TERM=xterm")
    doc: dict[str, Any] = {
        **base,
        "terminal": e.tty,
        "args": list(e.argv),
        "env": env,
        "cwd": e.working_dir or base.get("cwd") or "/",
    }
    doc.pop("consoleSize", None)
    if e.tty and e.console_size != (0, 0):
        doc["consoleSize"] = {"height": e.console_size[0], "width": e.console_size[1]}
    if e.user:
        doc["user"] = {"uid": uid, "gid": gid, "additionalGids": additional_gids}
    if e.privileged:  # every capability the host has, as a --privileged container gets
        from berth.runtime import capabilities

        every = capabilities.docker_caps(privileged=True)
        caps = dict(doc.get("capabilities") or {})
        for key in ("bounding", "effective", "permitted"):
            caps[key] = list(every)
        doc["capabilities"] = caps
    return doc


def write_process(directory: str, doc: dict[str, Any]) -> str:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "process.json")
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(path + ".tmp", path)
    return path


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    out = {v.partition("=")[0]: v for v in base}
    for v in extra:
        out[v.partition("=")[0]] = v
    return list(out.values())


class ExecService:
    """The execs of one daemon: records, and the shims that run them."""

    def __init__(self, manager: ContainerManager) -> None:
        self.mgr = manager
        self.execs: dict[str, Exec] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, exec_id: str) -> Exec:
        e = self.execs.get(exec_id)
        if e is None:
            matches = [x for k, x in self.execs.items() if k.startswith(exec_id)] if exec_id else []
            if len(matches) != 1:
                raise NotFound(f"No such exec instance: {exec_id}")
            e = matches[0]
        return e

    def of_container(self, container_id: str) -> list[str]:
        return [e.id for e in self.execs.values() if e.container_id == container_id and e.running]

    def _check_running(self, ref: str) -> Container:
        c = self.mgr.get(ref)
        if c.state.status == Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not c.state.running or c.state.status == Status.RESTARTING:
            raise Conflict(f"Container {c.id} is not running")
        return c

    def create(self, ref: str, argv: list[str], **kw: Any) -> Exec:
        c = self._check_running(ref)
        e = new_exec(c.id, argv, **kw)
        self.execs[e.id] = e
        self.mgr.on_event("exec_create: " + " ".join(argv), c, {"execID": e.id})
        return e

    def forget_container(self, container_id: str) -> None:
        for k in [k for k, e in self.execs.items() if e.container_id == container_id]:
            del self.execs[k]

    def _sock(self, e: Exec) -> str:
        return os.path.join(self.mgr.socket_dir, "x" + e.id[:23] + ".sock")

    async def start(self, exec_id: str, attach: bool
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Run the exec; with `attach`, the streams to its stdio (output closes at its end)."""
        e = self.get(exec_id)
        if e.started:
            raise Conflict(f"Error: Exec command {e.id} is already running" if e.running
                           else f"Error: Exec command {e.id} has already run")
        c = self._check_running(e.container_id)
        e.started = True
        container_state = os.path.join(self.mgr.exec_root, c.id)
        directory = state_dir(container_state, e.id)
        try:
            with open(os.path.join(container_state, "config.json")) as f:
                bundle = json.load(f)
            user = resolve_user(bundle["root"]["path"], e.user) if e.user else None
            doc = process_doc(bundle, e, user.uid if user else 0, user.gid if user else 0,
                              user.additional_gids if user else [], user.home if user else "/")
            process_file = await asyncio.to_thread(write_process, directory, doc)
        except (OSError, ValueError, KeyError) as err:
            e.exit_code = 126
            raise SystemError_(f"cannot exec in container {c.id[:12]}: {err}") from None
        opts = shimclient.ShimOptions(
            container_id=c.id, bundle=container_state, state_dir=directory, socket=self._sock(e), log_path="",
            stdin=e.attach_stdin, stdin_once=True, exec_pid=c.state.pid, process=process_file,
            cgroup=f"/berth/{c.id}")
        try:
            proc, e.pid = await self.mgr.launcher.spawn(opts)
        except shimclient.ShimError as err:
            message = f"OCI runtime exec failed: {err}"
            e.exit_code = 127 if ("executable file not found" in message or "no such file or directory" in message) \
                else 126
            shutil.rmtree(directory, ignore_errors=True)
            raise InvalidParameter(message) from None
        e.running = True
        streams = None
        try:
            if attach:
                streams = await shimclient.attach(self._sock(e), e.attach_stdin, e.attach_stdout, e.attach_stderr)
            await shimclient.call(self._sock(e), {"op": "start"})
        except shimclient.ShimError as err:
            e.running = False
            e.exit_code = 126
            with contextlib.suppress(shimclient.ShimError):
                await shimclient.call(self._sock(e), {"op": "kill", "signal": 9})
            raise SystemError_(f"OCI runtime exec failed: {err}") from None
        self.mgr.on_event("exec_start: " + " ".join(e.argv), c, {"execID": e.id})
        task = asyncio.create_task(self._reap(e, c, proc, directory))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return streams

    async def _reap(self, e: Exec, c: Container, proc: asyncio.subprocess.Process | None, directory: str) -> None:
        try:
            doc = await shimclient.call(self._sock(e), {"op": "wait"})
            code = doc.get("exit_code")
            e.exit_code = 255 if code is None else int(code)
        except (shimclient.ShimError, OSError):
            e.exit_code = e.exit_code if e.exit_code is not None else 255
        finally:
            e.running = False
            with contextlib.suppress(shimclient.ShimError, OSError):
                await shimclient.call(self._sock(e), {"op": "delete"})
            if proc is not None:
                await proc.wait()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._sock(e))
            shutil.rmtree(directory, ignore_errors=True)
        self.mgr.on_event("exec_die", c, {"execID": e.id, "exitCode": str(e.exit_code)})

    async def wait(self, exec_id: str) -> int:
        e = self.get(exec_id)
        while e.running or (e.started and e.exit_code is None):
            await asyncio.sleep(0.01)
        return e.exit_code if e.exit_code is not None else 0

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        e = self.get(exec_id)
        if not e.running:
            raise Conflict(f"exec {e.id} is not running")
        with contextlib.suppress(shimclient.ShimError):
            await shimclient.call(self._sock(e), {"op": "resize", "height": height, "width": width})

    async def run(self, ref: str, argv: list[str], *, timeout: float | None = None, user: str = "",
                  env: list[str] | None = None) -> tuple[int, bytes]:
        """Run argv in the container and collect its output (health probes use this).
        On timeout the process is killed and TimeoutError raised."""
        e = self.create(ref, argv, attach_stdout=True, attach_stderr=True, user=user, env=list(env or []))
        try:
            streams = await self.start(e.id, attach=True)
            assert streams is not None
            reader, writer = streams
            if writer.can_write_eof():
                writer.write_eof()  # no stdin; the output still comes back on this connection
            output = bytearray()

            async def collect() -> None:
                while chunk := await reader.read(65536):
                    output.extend(chunk)

            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                with contextlib.suppress(shimclient.ShimError, OSError):
                    await shimclient.call(self._sock(e), {"op": "kill", "signal": 9})
                raise
            finally:
                writer.close()
            code = await self.wait(e.id)
            return code, _unframe(bytes(output))
        finally:
            self.execs.pop(e.id, None)


def _unframe(data: bytes) -> bytes:
    """Docker's multiplexed stream, its payloads joined."""
    out = bytearray()
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        out += data[8:8 + size]
        data = data[8 + size:]
    return bytes(out)
