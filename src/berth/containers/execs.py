"""`docker exec`: processes started in a running container, kept by the container's shim.

An exec is a record (kept in memory, as Docker keeps them) until it runs: then berthd
asks the task service (berth.tasks: the container's shim) to create it from a process
description made here from the container's own process (its environment, user,
working directory, capabilities), changed the way the user asked. The shim has it
forked inside the container's cgroups and namespaces, owns its stdio or terminal, and
reports its exit under the exec's ID, as containerd's shim does for runc's execs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth import stdstream
from berth.containers.model import Container, Status
from berth.containers.users import resolve_user
from berth.errors import Conflict, InvalidParameter, NotFound, SystemError_
from berth.tasks.model import AttachRequest, ExecRequest, TaskError

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
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set once exit_code is final


def new_exec(container_id: str, argv: list[str], **kw: Any) -> Exec:
    if not argv:
        raise InvalidParameter("No exec command specified")
    return Exec(secrets.token_hex(32), container_id, list(argv), **kw)


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
        keys = kw.get("detach_keys") or ""
        if keys:
            try:
                stdstream.parse_detach_keys(keys)
            except stdstream.DetachKeysError:
                raise SystemError_(f"Invalid escape keys ({keys}) provided") from None  # dockerd's: a 500
        e = new_exec(c.id, argv, **kw)
        self.execs[e.id] = e
        self.mgr.on_event("exec_create: " + " ".join(argv), c, {"execID": e.id})
        return e

    def forget_container(self, container_id: str) -> None:
        for k in [k for k, e in self.execs.items() if e.container_id == container_id]:
            del self.execs[k]

    async def start(self, exec_id: str, attach: bool
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Run the exec; with `attach`, the streams to its stdio (output closes at its end)."""
        e = self.get(exec_id)
        if e.started:
            raise Conflict(f"Error: Exec command {e.id} is already running" if e.running
                           else f"Error: Exec command {e.id} has already run")
        c = self._check_running(e.container_id)
        e.started = True
        try:
            with open(os.path.join(self.mgr.tasks.bundle(c.id), "config.json")) as f:
                bundle = json.load(f)
            user = resolve_user(bundle["root"]["path"], e.user) if e.user else None
            doc = process_doc(bundle, e, user.uid if user else 0, user.gid if user else 0,
                              user.additional_gids if user else [], user.home if user else "/")
        except (OSError, ValueError, KeyError) as err:
            e.exit_code = 126
            raise SystemError_(f"cannot exec in container {c.id[:12]}: {err}") from None
        tasks = self.mgr.tasks
        try:
            e.pid = await tasks.exec(ExecRequest(c.id, e.id, doc, stdin=e.attach_stdin))
        except TaskError as err:
            message = f"OCI runtime exec failed: {err}"
            e.exit_code = 127 if ("executable file not found" in message or "no such file or directory" in message) \
                else 126
            raise InvalidParameter(message) from None
        e.running = True
        streams = None
        try:
            if attach:
                streams = await tasks.attach(AttachRequest(c.id, e.attach_stdin, e.attach_stdout, e.attach_stderr,
                                                           exec_id=e.id))
            await tasks.start_exec(c.id, e.id)
        except TaskError as err:
            e.running = False
            e.exit_code = 126
            with contextlib.suppress(TaskError):
                await tasks.kill(c.id, signal.SIGKILL, exec_id=e.id)
            raise SystemError_(f"OCI runtime exec failed: {err}") from None
        self.mgr.on_event("exec_start: " + " ".join(e.argv), c, {"execID": e.id})
        task = asyncio.create_task(self._reap(e, c))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return streams

    async def _reap(self, e: Exec, c: Container) -> None:
        tasks = self.mgr.tasks
        try:
            e.exit_code = (await tasks.wait_exec(c.id, e.id)).exit_code
        except TaskError:
            e.exit_code = e.exit_code if e.exit_code is not None else 255
        finally:
            e.running = False
            e.done.set()
            with contextlib.suppress(TaskError):
                await tasks.delete(c.id, e.id)
        self.mgr.on_event("exec_die", c, {"execID": e.id, "exitCode": str(e.exit_code)})

    def detached(self, exec_id: str) -> None:
        """The client typed the detach keys: the exec goes on without it."""
        e = self.get(exec_id)
        with contextlib.suppress(NotFound):
            self.mgr.on_event("exec_detach", self.mgr.get(e.container_id), {"execID": e.id})

    async def wait(self, exec_id: str) -> int:
        e = self.get(exec_id)
        if e.running:
            await e.done.wait()
        return e.exit_code if e.exit_code is not None else 0

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        e = self.get(exec_id)
        if not e.running:
            raise Conflict(f"exec {e.id} is not running")
        with contextlib.suppress(TaskError):
            await self.mgr.tasks.resize(e.container_id, height, width, exec_id=e.id)

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
                with contextlib.suppress(TaskError):
                    await self.mgr.tasks.kill(e.container_id, signal.SIGKILL, exec_id=e.id)
                raise
            finally:
                writer.close()
            code = await self.wait(e.id)
            return code, stdstream.join_payloads(output)
        finally:
            self.execs.pop(e.id, None)
