"""Attach: streams to a container's stdio, and the attaches that wait for its start.

`docker run` (and `docker start -a`) attach before the container starts, so that none
of its output is lost: such an attach is an `Attachment` held on the container until
its start, which connects every waiting one to the new task (through the task
service) before the init is let run. An attach to a running container connects at
once; one to a container that cannot run gets None. Resizing the terminal goes here
too, and the event of a client's detaching (the detach keys are watched for by the API,
which owns the client's stream). This module holds no container records: it works on the manager's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from berth.containers.model import Container, Status
from berth.errors import Conflict, NotFound
from berth.tasks.model import AttachRequest, Streams, TaskError

if TYPE_CHECKING:
    from berth.containers.lifecycle import Live
    from berth.containers.manager import ContainerManager


def check_attachable(c: Container, ref: str) -> None:
    """dockerd's refusals of an attach, by the name the client gave (`ref`)."""
    if c.state.status == Status.PAUSED:
        raise Conflict(f"container {ref} is paused, unpause the container before attach")
    if c.state.status == Status.RESTARTING:
        raise Conflict(f"container {ref} is restarting, wait until the container is running")


@dataclass
class Attachment:
    """An attach request waiting for the container to start."""

    stdin: bool
    stdout: bool
    stderr: bool
    ready: asyncio.Future[Streams | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class Attacher:
    """The attach side of one daemon's containers."""

    def __init__(self, manager: ContainerManager) -> None:
        self.mgr = manager

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> Streams | None:
        """Streams to the container's stdio; None when it is not (or no longer) running."""
        mgr = self.mgr
        c = mgr.get(ref)
        live = mgr.live[c.id]
        mgr.on_event("attach", c, {})
        async with live.lock:
            if c.state.status == Status.RUNNING:
                try:
                    return await mgr.tasks.attach(AttachRequest(c.id, stdin, stdout, stderr))
                except TaskError:
                    return None
            if c.state.status == Status.CREATED or c.state.status == Status.EXITED:
                a = Attachment(stdin, stdout, stderr)
                live.pending_attaches.append(a)
                fut = a.ready
            else:
                return None
        return await fut

    def attach_at_start(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> asyncio.Future[Streams | None]:
        """An attach to a container that has not started (created or exited), registered
        at once, with no await in between: its streams come at the next start, None if
        it never comes. A Conflict when the container runs or a start is under way."""
        mgr = self.mgr
        c = mgr.get(ref)
        live = mgr.live[c.id]
        if live.lock.locked() or c.state.status not in (Status.CREATED, Status.EXITED):
            raise Conflict(f"container {c.id[:12]} is not waiting to be started")
        mgr.on_event("attach", c, {})
        a = Attachment(stdin, stdout, stderr)
        live.pending_attaches.append(a)
        return a.ready

    async def connect_pending(self, c: Container, live: Live) -> None:
        """The start's created task: every attach that waited for it gets its streams."""
        for a in live.pending_attaches:
            try:
                streams = await self.mgr.tasks.attach(AttachRequest(c.id, a.stdin, a.stdout, a.stderr))
            except TaskError:
                streams = None
            if not a.ready.done():
                a.ready.set_result(streams)
            elif streams:
                streams[1].close()
        live.pending_attaches.clear()

    @staticmethod
    def fail_pending(live: Live) -> None:
        """The start failed, or the container is gone: the waiting attaches get None."""
        for a in live.pending_attaches:
            if not a.ready.done():
                a.ready.set_result(None)

    def detach_pending(self, ref: str, attachment_future: Awaitable[object]) -> None:
        """Forget an attach whose client went away before the start."""
        with contextlib.suppress(NotFound):
            c = self.mgr.get(ref)
            live = self.mgr.live[c.id]
            live.pending_attaches = [a for a in live.pending_attaches if a.ready is not attachment_future]

    def detached(self, ref: str) -> None:
        with contextlib.suppress(NotFound):
            self.mgr.on_event("detach", self.mgr.get(ref), {})

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.mgr.get(ref)
        if not c.state.running:
            raise Conflict(f"cannot resize container {c.id[:12]}: container is not running")
        try:
            await self.mgr.tasks.resize(c.id, height, width)
        except TaskError:
            return
        self.mgr.on_event("resize", c, {"height": str(height), "width": str(width)})
