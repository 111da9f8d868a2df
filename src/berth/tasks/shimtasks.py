"""ShimTaskService: the TaskService over berth-shim (berth/shim), one shim per container.

The shim holds the container's processes and speaks one JSON line per connection
(its protocol is in shim/shim.py); this module is the only one in berthd that speaks
it. It owns the on-disk layout of a task: the bundle (and shim state) directory
`<exec-root>/containers/<id>` and the shim's socket `<exec-root>/s/<id[:24]>.sock`
(AF_UNIX paths are limited to 107 bytes). It does not know containers' records or
Docker's words: a ShimError becomes a tasks.model error, the caller words it.

Shims started by an older berthd keep running across an upgrade (live-restore): an
operation such a shim does not know is done here instead where it can be (stats).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

from berth.runtime.cgroups import CgroupError
from berth.runtime.spec import Limits
from berth.shim import client as shimclient
from berth.shim.backends import read_basics
from berth.tasks import counters
from berth.tasks.model import (
    AttachRequest,
    CreatedTask,
    CreateTaskRequest,
    ExecRequest,
    ExitStatus,
    Streams,
    TaskError,
    TaskState,
    TaskStats,
    TaskUnavailable,
    UnknownOperation,
)

log = logging.getLogger(__name__)

_NOTE = "task.json"  # beside the bundle: what a clean-up without the shim needs to know
_RUNTIME_DELETE_TIMEOUT = 10.0
_SHIM_END_TIMEOUT = 5.0  # a shim told to kill its container reports the exit within this


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except shimclient.ShimGone as e:
        raise TaskUnavailable(str(e)) from None
    except shimclient.ShimError as e:
        if str(e).startswith("unknown op"):
            raise UnknownOperation(str(e)) from None
        raise TaskError(str(e)) from None


class ShimTaskService:
    """The tasks of one daemon, each kept by its own shim."""

    def __init__(self, exec_root: str) -> None:
        self.exec_root = exec_root
        self.bundle_root = os.path.join(exec_root, "containers")
        self.socket_root = os.path.join(exec_root, "s")
        self.launcher = shimclient.Launcher(exec_root)  # daemon/main.py starts its zygote
        # shims started as our own children (no zygote): waited for at delete
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        os.makedirs(self.socket_root, mode=0o700, exist_ok=True)

    # -- layout -------------------------------------------------------------------------

    def bundle(self, container_id: str) -> str:
        return os.path.join(self.bundle_root, container_id)

    def socket(self, container_id: str) -> str:
        return os.path.join(self.socket_root, container_id[:24] + ".sock")

    def shim_present(self, container_id: str) -> bool:
        """Whether the shim's socket is still there (a shim that ended removes it)."""
        return os.path.exists(self.socket(container_id))

    def last_words(self, container_id: str) -> str:
        """The end of the shim's own log, for the message about a shim that died."""
        try:
            with open(os.path.join(self.bundle(container_id), "shim.log")) as f:
                text = f.read()[-2000:].strip()
        except OSError:
            return ""
        return f"; its log: {text}" if text else ""

    def recorded_exit(self, container_id: str) -> ExitStatus | None:
        try:
            with open(os.path.join(self.bundle(container_id), "exit.json")) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return None
        return ExitStatus.of(doc) if isinstance(doc, dict) else None

    def forget(self, container_id: str) -> None:
        """A removed container's task: its socket, if a shim left it behind."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket(container_id))

    # -- talking to the shim ----------------------------------------------------------

    async def _call(self, container_id: str, doc: dict[str, Any], exec_id: str = "") -> dict[str, Any]:
        if exec_id:
            doc = {**doc, "exec": exec_id}
        with _translated():
            return await shimclient.call(self.socket(container_id), doc)

    # -- the init -------------------------------------------------------------------------

    async def create(self, req: CreateTaskRequest) -> CreatedTask:
        with open(os.path.join(req.bundle, _NOTE), "w") as f:
            json.dump({"runtime": req.runtime}, f)
        with _translated():
            proc, pid = await self.launcher.spawn(shimclient.ShimOptions(
                container_id=req.container_id, bundle=req.bundle, state_dir=req.bundle,
                socket=self.socket(req.container_id), log_path=req.log_path, runtime=req.runtime,
                stdin=req.stdin, stdin_once=req.stdin_once, log_driver=req.log_driver,
                log_options=dict(req.log_options)))
        if proc is not None:
            self._procs[req.container_id] = proc
        return CreatedTask(pid=pid)

    async def start(self, container_id: str) -> None:
        await self._call(container_id, {"op": "start"})

    async def kill(self, container_id: str, signal: int, exec_id: str = "") -> None:
        await self._call(container_id, {"op": "kill", "signal": int(signal)}, exec_id)

    async def wait(self, container_id: str, exec_id: str = "") -> ExitStatus:
        return ExitStatus.of(await self._call(container_id, {"op": "wait"}, exec_id))

    async def state(self, container_id: str) -> TaskState:
        return TaskState.of(await self._call(container_id, {"op": "state"}))

    async def pause(self, container_id: str) -> None:
        await self._call(container_id, {"op": "pause"})

    async def resume(self, container_id: str) -> None:
        await self._call(container_id, {"op": "resume"})

    async def update(self, container_id: str, limits: Limits) -> None:
        resources = limits.to_oci()
        resources.pop("devices", None)  # the device rules are the create's, not an update's
        await self._call(container_id, {"op": "update", "resources": resources})

    async def pids(self, container_id: str) -> list[int]:
        doc = await self._call(container_id, {"op": "pids"})
        return [int(p) for p in doc.get("pids", [])]

    async def resize(self, container_id: str, height: int, width: int, exec_id: str = "") -> None:
        await self._call(container_id, {"op": "resize", "height": height, "width": width}, exec_id)

    async def attach(self, req: AttachRequest) -> Streams:
        with _translated():
            return await shimclient.attach(self.socket(req.container_id), req.stdin, req.stdout, req.stderr,
                                           exec_id=req.exec_id)

    async def stats(self, container_id: str) -> TaskStats | None:
        bundle = self.bundle(container_id)
        found: Any
        try:
            doc = await self._call(container_id, {"op": "stats"})
            found = doc.get("cgroup")
        except (UnknownOperation, TaskUnavailable):
            # a shim of an older berthd (or none): the bundle names the cgroup all the same
            try:
                found = await asyncio.to_thread(counters.read_bundle_counters, bundle)
            except CgroupError as e:
                raise TaskError(str(e)) from None
        if found is None:
            return None
        cgroup = counters.decode(found) if isinstance(found, dict) else found
        return TaskStats(cgroup=await asyncio.to_thread(counters.without_forker, cgroup, bundle))

    async def delete(self, container_id: str, exec_id: str = "", *, lost: bool = False) -> None:
        if exec_id:
            await self._call(container_id, {"op": "delete"}, exec_id)
            return
        if lost:
            await self._clean_up_lost(container_id)
            return
        try:
            await self._call(container_id, {"op": "delete"})
        finally:
            proc = self._procs.pop(container_id, None)
            if proc is not None:
                await proc.wait()

    async def remove_remains(self, container_id: str, cgroups_path: str) -> list[str]:
        """A task berthd lost track of (it was killed while it made or ended the task):
        the shim, if it still runs, kills what it holds and ends; then what the
        container's processes left (a cgroup at `cgroups_path` or the bundle's, the OCI
        runtime's record) goes. What was found, in words, for the log."""
        found: list[str] = []
        if self.shim_present(container_id):
            found.append("its shim")
            with contextlib.suppress(TaskError):
                await self.kill(container_id, signal.SIGKILL)
            with contextlib.suppress(TaskError, TimeoutError):
                await asyncio.wait_for(self.wait(container_id), _SHIM_END_TIMEOUT)
            with contextlib.suppress(TaskError):
                await self.delete(container_id)
        if await asyncio.to_thread(self._cgroup_exists, self._cgroups_path(container_id) or cgroups_path):
            found.append("its cgroup")
        if found or os.path.isdir(self.bundle(container_id)):
            await self._clean_up_lost(container_id, cgroups_path)
        return found

    def _cgroups_path(self, container_id: str) -> str:
        return read_basics(self.bundle(container_id)).cgroups_path

    @staticmethod
    def _cgroup_exists(path: str) -> bool:
        from berth.runtime import cgroups

        return bool(path) and cgroups.open_manager(path).exists()

    async def _clean_up_lost(self, container_id: str, cgroups_path: str = "") -> None:
        """The shim died: its container's processes may run on, orphaned, in its cgroup
        (the bundle's, else `cgroups_path`)."""
        bundle = self.bundle(container_id)
        proc = self._procs.pop(container_id, None)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        try:
            with open(os.path.join(bundle, _NOTE)) as f:
                runtime = str(json.load(f).get("runtime") or "")
        except (OSError, ValueError, AttributeError):
            runtime = ""  # berth's own runtime, or a task made by an older berthd
        if runtime:
            await self._runtime_delete(runtime, container_id)

        def remove_cgroup() -> None:
            from berth.runtime import cgroups

            path = read_basics(bundle).cgroups_path or cgroups_path
            if not path:
                return
            try:
                cgroups.open_manager(path).destroy(kill=True)
            except Exception as e:  # noqa: BLE001  (logged: the rest of the clean-up goes on)
                log.warning("container %s: removing its cgroup: %s", container_id[:12], e)

        await asyncio.to_thread(remove_cgroup)
        self.forget(container_id)

    async def _runtime_delete(self, binary: str, container_id: str) -> None:
        """`RUNTIME delete --force`, with the root the shim gave the runtime."""
        root = os.path.join(self.exec_root, "runtime-" + os.path.basename(binary))
        try:
            proc = await asyncio.create_subprocess_exec(
                binary, "--root", root, "delete", "--force", container_id,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            log.warning("container %s: %s delete: %s", container_id[:12], binary, e)
            return
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), _RUNTIME_DELETE_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            log.warning("container %s: %s delete timed out", container_id[:12], binary)
            return
        if proc.returncode != 0 and os.path.isdir(os.path.join(root, container_id)):
            log.warning("container %s: %s delete: %s", container_id[:12], binary,
                        err.decode(errors="replace").strip())

    # -- exec processes --------------------------------------------------------------------

    async def exec(self, req: ExecRequest) -> int:
        doc = await self._call(req.container_id, {"op": "exec", "id": req.exec_id, "process": req.process,
                                                  "stdin": req.stdin})
        return int(doc["pid"])

    async def start_exec(self, container_id: str, exec_id: str) -> None:
        await self._call(container_id, {"op": "start"}, exec_id)

    async def wait_exec(self, container_id: str, exec_id: str) -> ExitStatus:
        return await self.wait(container_id, exec_id)

    # -- a daemon's end -----------------------------------------------------------------------

    async def close(self) -> None:
        """berthd stops: the zygote goes; the shims stay (they outlive berthd)."""
        await self.launcher.stop()
