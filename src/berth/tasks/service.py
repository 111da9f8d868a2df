"""The TaskService interface: what berthd can do with one container's processes.

Modelled on containerd's tasks API: a task is a container's init process, created from
a bundle and then started; exec processes run beside it and are addressed by their
exec ID. Every method takes the container's ID; the errors are those of tasks.model
(`TaskError`, `TaskUnavailable`, `UnknownOperation`), never a shim's or an OS error.
Callers translate them to berth.errors with the words Docker uses.
"""

from __future__ import annotations

from typing import Protocol

from berth.runtime.spec import Limits
from berth.tasks.model import (
    AttachRequest,
    CreatedTask,
    CreateTaskRequest,
    ExecRequest,
    ExitStatus,
    Streams,
    TaskState,
    TaskStats,
)


class TaskService(Protocol):
    def bundle(self, container_id: str) -> str:
        """The task's bundle directory: the caller writes config.json there before create;
        the shim keeps its state (exit.json, its log) there too."""

    async def create(self, req: CreateTaskRequest) -> CreatedTask:
        """Start the container's shim; it creates the container (not started)."""

    async def start(self, container_id: str) -> None:
        """Start the created init."""

    async def kill(self, container_id: str, signal: int, exec_id: str = "") -> None:
        """Signal the init (or an exec); a process that is gone already is no error."""

    async def wait(self, container_id: str, exec_id: str = "") -> ExitStatus:
        """The process's exit, once it has exited."""

    async def state(self, container_id: str) -> TaskState: ...

    def recorded_exit(self, container_id: str) -> ExitStatus | None:
        """The exit the shim wrote down (exit.json), for when the shim is gone."""

    def shim_present(self, container_id: str) -> bool:
        """Whether the task's shim may still answer (a shim that ended is not)."""

    def last_words(self, container_id: str) -> str:
        """The end of a dead shim's own log ("; its log: …"), or ""."""

    async def exec(self, req: ExecRequest) -> int:
        """Create an exec process in the running task; its pid."""

    async def start_exec(self, container_id: str, exec_id: str) -> None: ...

    async def wait_exec(self, container_id: str, exec_id: str) -> ExitStatus: ...

    async def resize(self, container_id: str, height: int, width: int, exec_id: str = "") -> None: ...

    async def attach(self, req: AttachRequest) -> Streams:
        """The stdio of the init or an exec, in Docker's framing (raw with a terminal)."""

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def update(self, container_id: str, limits: Limits) -> None:
        """Apply changed resource limits to the running task."""

    async def pids(self, container_id: str) -> list[int]: ...

    async def stats(self, container_id: str) -> TaskStats | None:
        """The task's cgroup counters; None when its cgroup is gone."""

    async def delete(self, container_id: str, exec_id: str = "", *, lost: bool = False) -> None:
        """The end of an exited process: its shim (or an exec's record) goes. A `lost`
        task, whose shim died, is cleaned up from its bundle instead: what is left of its
        processes killed, its cgroup removed, the OCI runtime's record deleted."""

    async def remove_remains(self, container_id: str, cgroups_path: str) -> list[str]:
        """A task berthd lost track of (killed while it made or ended it): its shim, if
        any, ends with its processes; its cgroup (the bundle's, or `cgroups_path`) and
        the OCI runtime's record go. What was found, in words."""

    def forget(self, container_id: str) -> None:
        """The container is removed: whatever its task left behind goes."""

    async def close(self) -> None:
        """berthd stops; the tasks run on (they outlive berthd)."""
