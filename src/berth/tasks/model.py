"""The task service's vocabulary: its requests, its results and its errors.

Plain records with Python names; the shim's JSON exists only in shimtasks.py. This
module does no I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from berth.runtime.cgroups import CgroupStats

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TaskError(Exception):
    """The shim refused or failed an operation; the message is the shim's (or runtime's)."""


class TaskUnavailable(TaskError):
    """The task's shim does not answer (it is gone, or went away mid-answer)."""


class UnknownOperation(TaskError):
    """The shim does not know the operation: one started by an older berthd."""


@dataclass(frozen=True)
class CreateTaskRequest:
    """Start a shim for a container; the shim creates the container from the bundle."""

    container_id: str
    bundle: str  # TaskService.bundle(container_id), with config.json written; the shim's state goes there too
    log_path: str
    stdin: bool = False
    stdin_once: bool = False
    runtime: str = ""  # an OCI runtime binary (runc, crun); "" for berth's own
    log_driver: str = "json-file"
    log_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatedTask:
    pid: int  # the container's init, created and waiting for start


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended; `exit_code` 255 when the shim did not know (as Docker)."""

    exit_code: int
    finished_at: str = ""  # RFC 3339; "" when the shim did not say
    oom_killed: bool = False

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ExitStatus:
        code = doc.get("exit_code")
        return cls(exit_code=255 if code is None else int(code), finished_at=str(doc.get("finished_at") or ""),
                   oom_killed=bool(doc.get("oom_killed")))

    def to_doc(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "finished_at": self.finished_at, "oom_killed": self.oom_killed}


@dataclass(frozen=True)
class TaskState:
    """What the shim knows of a process: "created", "running", "paused" or "stopped"."""

    pid: int
    status: str
    exit: ExitStatus | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> TaskState:
        return cls(pid=int(doc.get("pid") or 0), status=str(doc.get("status") or ""),
                   exit=ExitStatus.of(doc) if doc.get("exit_code") is not None else None)


@dataclass(frozen=True)
class ExecRequest:
    """An exec process to create in a running task (not started until `start_exec`)."""

    container_id: str
    exec_id: str
    process: dict[str, Any]  # the OCI process (config.json's "process" shape)
    stdin: bool = False


@dataclass(frozen=True)
class AttachRequest:
    """The stdio streams of the init (`exec_id` "") or of one exec process."""

    container_id: str
    stdin: bool
    stdout: bool
    stderr: bool
    exec_id: str = ""


@dataclass(frozen=True)
class TaskStats:
    """The counters of the task's cgroup, with the shim's own exec forker left out."""

    cgroup: CgroupStats
