"""What a pull or a push reports as it goes, as typed records: the API turns them
into Docker's JSON message stream (status, id, progressDetail, progress bar, aux).

The statuses are Docker's words, because the docker CLI and docker-py show them as
they are: "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum",
"Download complete", "Extracting", "Pull complete", "Already exists"; "Preparing",
"Pushing", "Pushed", "Layer already exists", "Mounted from …". A layer is named by the
first 12 hex digits of its registry digest on a pull and of its diff ID on a push.

`Reporter` throttles byte counts to a few updates a second per layer (Docker sends one
every 100 ms at most): a 200 MB layer must not become thousands of JSON lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from berth.content.digest import hex_of

_EVERY = 0.1  # seconds between two byte-count updates of one layer
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One message: `status` alone, or about layer `id` (with bytes done of `total`)."""

    status: str
    id: str = ""
    current: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class PushedManifest:
    """The manifest a push stored under `tag` (the stream's `aux` record)."""

    tag: str
    digest: str
    size: int


Message = Progress | PushedManifest
Emit = Callable[[Message], None]


def short_id(digest: str) -> str:
    return hex_of(digest)[:12]


class Reporter:
    """Progress of one layer's bytes, throttled: `update(done)` as bytes move."""

    def __init__(self, emit: Emit, layer_id: str, status: str, total: int) -> None:
        self.emit = emit
        self.layer_id = layer_id
        self.status = status
        self.total = total
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= _EVERY or done >= self.total:
            self._last = now
            self.emit(Progress(self.status, self.layer_id, done, self.total))


async def drain(work: Callable[[Emit], Awaitable[T]], sink: Callable[[Message], Awaitable[None]]) -> T:
    """Run `work(emit)`, handing what it emits to `sink` in order as it comes (`emit`
    is synchronous, `sink` may wait on a slow client); returns work's result or raises
    its error once every message before it is sunk. If `sink` fails, work is cancelled."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.ensure_future(work(queue.put_nowait))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await sink(getter.result())
            else:
                getter.cancel()
            while not queue.empty():
                await sink(queue.get_nowait())
            if task.done() and queue.empty():
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _human(n: float) -> str:
    """Go's units.HumanSize: decimal units, 4 significant digits."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n:.4g}TB"


def progress_bar(current: int, total: int) -> str:
    """jsonmessage.JSONProgress's String() at a wide terminal."""
    if total <= 0:
        return f"{_human(current):>8}" if current > 0 else ""
    filled = min(int(current * 100 / total) // 2, 50)
    return "[" + "=" * filled + ">" + " " * (50 - filled) + "] " + f"{_human(current):>8}/{_human(total)}"


def to_json(msg: Message) -> dict[str, Any]:
    """One message in Docker's JSON message stream (the wire format the docker CLI and
    docker-py read from pulls, pushes and the classic builder's FROM)."""
    if isinstance(msg, PushedManifest):
        return {"progressDetail": {}, "aux": {"Tag": msg.tag, "Digest": msg.digest, "Size": msg.size}}
    out: dict[str, Any] = {"status": msg.status}
    if msg.current is not None:
        total = msg.total or 0
        out["progressDetail"] = {"current": msg.current, "total": total}
        out["progress"] = progress_bar(msg.current, total)
    elif msg.id:
        out["progressDetail"] = {}
    if msg.id:
        out["id"] = msg.id
    return out
