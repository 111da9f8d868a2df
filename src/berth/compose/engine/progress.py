"""Progress lines like compose v2's: one line per object (`Container p-web-1 Started`).

Owns: the two writers compose v2 has — plain (a line per event, what scripts and pipes
see) and tty (a block redrawn in place: `[+] Running 3/3`, a spinner or ✔/✘ per line, the
elapsed time on the right) — and the quiet one. Thread-safe: services converge in
parallel.
Must not: know what the events mean.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import TextIO


class Status(Enum):
    WORKING = "working"
    DONE = "done"
    WARNING = "warning"
    ERROR = "error"


@dataclass
class _Line:
    id: str
    text: str
    status: Status
    status_text: str
    started: float
    ended: float | None = None


class Progress:
    """The quiet writer, and the interface: `event(id, text, status, status_text)`."""

    def event(self, id: str, text: str, status: Status = Status.DONE, status_text: str = "") -> None:
        pass

    def working(self, id: str, text: str) -> None:
        self.event(id, text, Status.WORKING)

    def done(self, id: str, text: str) -> None:
        self.event(id, text, Status.DONE)

    def error(self, id: str, text: str, message: str = "") -> None:
        self.event(id, text, Status.ERROR, message)

    def message(self, text: str) -> None:
        """A line outside the block (a warning)."""

    def close(self) -> None:
        pass


OBJECTS = ("Container ", "Network ", "Volume ", "Image ", "Service ")


class PlainProgress(Progress):
    """compose v2's plain writer, one line per event: for an object (a container, network,
    volume, image) its state or error, for a service (pulling, building) the step and
    what went wrong."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def event(self, id: str, text: str, status: Status = Status.DONE, status_text: str = "") -> None:
        if id.startswith(OBJECTS):  # "Container p-web-1  Created", "Container p-web-1  <error>"
            line = f" {id}  {status_text or text}"
        else:  # a service's pull or build: "web Pulling ", "web Error <message>"
            line = f" {id} {text} {status_text}"
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def message(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_GREEN, _RED, _YELLOW, _BLUE, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[0m"


class TtyProgress(Progress):
    """compose v2's tty writer: the block is redrawn in place at every event and every
    tenth of a second while something is working."""

    def __init__(self, out: TextIO, title: str) -> None:
        self.out = out
        self.title = title
        self.lines: dict[str, _Line] = {}
        self.messages: list[str] = []
        self.drawn = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _tick(self) -> None:
        while not self.stopping.wait(0.1):
            with self.lock:
                if any(line.status is Status.WORKING for line in self.lines.values()):
                    self._draw()

    def event(self, id: str, text: str, status: Status = Status.DONE, status_text: str = "") -> None:
        now = time.monotonic()
        with self.lock:
            line = self.lines.get(id)
            if line is None or (line.status is not Status.WORKING and status is Status.WORKING):
                line = self.lines[id] = _Line(id, text, status, status_text, now)
            line.text, line.status, line.status_text = text, status, status_text
            line.ended = None if status is Status.WORKING else now
            self._draw()

    def message(self, text: str) -> None:
        with self.lock:
            self.messages.append(text)
            self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        parts = []
        if self.drawn:
            parts.append(f"\x1b[{self.drawn}A\r")
        done = sum(1 for line in self.lines.values() if line.status is not Status.WORKING)
        head = f"[+] {self.title} {done}/{len(self.lines)}"
        if done == len(self.lines):
            head = _BLUE + head + _RESET
        rows = [head]
        pad = max((len(f"{line.id} {line.text}") for line in self.lines.values()), default=0)
        now = time.monotonic()
        for line in self.lines.values():
            mark = {Status.WORKING: _SPINNER[int(now * 10) % len(_SPINNER)],
                    Status.DONE: _GREEN + "✔" + _RESET, Status.WARNING: _YELLOW + "!" + _RESET,
                    Status.ERROR: _RED + "✘" + _RESET}[line.status]
            text = f"{line.id} {line.text}"
            left = f" {mark} {text}{' ' * (pad - len(text))} {line.status_text}"
            timer = f"{(line.ended or now) - line.started:.1f}s "
            visible = len(left) - (len(_GREEN) + len(_RESET) if line.status is not Status.WORKING else 0)
            rows.append(left + " " * max(1, width - visible - len(timer)) + timer)
        rows += self.messages
        parts.append("".join(f"{row}\x1b[K\n" for row in rows))
        self.out.write("".join(parts))
        self.out.flush()
        self.drawn = len(rows)

    def close(self) -> None:
        self.stopping.set()
        self.ticker.join()
        with self.lock:
            if self.lines or self.messages:
                self._draw()


def progress_for(out: TextIO, *, tty: bool, title: str, quiet: bool = False) -> Progress:
    if quiet:
        return Progress()
    return TtyProgress(out, title) if tty else PlainProgress(out)
