"""Display of the daemon's JSON message streams (pull, import, load, push).

Mirrors docker's jsonmessage.DisplayJSONMessagesStream: on a terminal, lines
with an ``id`` are rewritten in place (cursor up/down); elsewhere, progress
updates are dropped and every status is one line.  An ``error`` message ends
the display with that error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from berth.cli.formatting import human_size


class StreamError(Exception):
    """The stream carried an error message (``errorDetail``)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def progress_string(progress: dict[str, Any], width: int = 80, now: float | None = None) -> str:
    current = int(progress.get("current") or 0)
    total = int(progress.get("total") or 0)
    units = progress.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        if not units:
            return f"{human_size(current):>8}"
        return f"{current} {units}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = "[" + "=" * percentage + ">" + " " * max(50 - percentage, 0) + "] "
    numbers = ""
    if progress.get("hidecounts"):
        numbers = ""
    elif not units:
        numbers = f"{human_size(current):>8}/{human_size(total)}"
        if current > total:
            numbers = f"{human_size(current):>8}"
    else:
        numbers = f"{current}/{total} {units}"
        if current > total:
            numbers = f"{current} {units}"
    time_left = ""
    start = int(progress.get("start") or 0)
    if current > 0 and start > 0 and percentage < 50:
        elapsed = (now if now is not None else time.time()) - start
        left = (total - current) * (elapsed / current)
        time_left = " " + _go_duration_rounded(left)
    return bar + numbers + time_left


def _go_duration_rounded(seconds: float) -> str:
    secs = int(round(seconds))
    if secs == 0:
        return "0s"
    hours, rem = divmod(secs, 3600)
    minutes, secs = divmod(rem, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{secs}s"


def _has_progress(msg: dict[str, Any]) -> bool:
    return isinstance(msg.get("progressDetail"), dict)


def display_stream(
    messages: Iterable[Any],
    out: IO[str],
    is_terminal: bool,
    width: int = 80,
    aux: Callable[[Any], None] | None = None,
) -> None:
    """Write the messages to ``out``; raise StreamError on an error message."""
    ids: dict[str, int] = {}
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("aux") is not None:
            if aux is not None:
                aux(msg["aux"])
            continue
        ident = msg.get("id") or ""
        diff = 0
        has_progress = _has_progress(msg) or bool(msg.get("progress"))
        if ident and has_progress:
            line = ids.get(ident)
            if line is None:
                line = len(ids)
                ids[ident] = line
                if is_terminal:
                    out.write("\n")
            diff = len(ids) - line
            if is_terminal and diff:
                out.write(f"\x1b[{diff}A")
        else:
            ids = {}
        _display_one(msg, out, is_terminal, width)
        if ident and is_terminal and diff:
            out.write(f"\x1b[{diff}B")
        out.flush()


def _display_one(msg: dict[str, Any], out: IO[str], is_terminal: bool, width: int) -> None:
    error = msg.get("errorDetail")
    if error or msg.get("error"):
        detail = error if isinstance(error, dict) else {}
        message = detail.get("message") or msg.get("error") or ""
        raise StreamError(str(message), int(detail.get("code") or 0))
    progress = msg.get("progressDetail") if isinstance(msg.get("progressDetail"), dict) else None
    endl = ""
    progress_text = progress_string(progress, width) if progress else ""
    if is_terminal and not msg.get("stream") and progress is not None:
        out.write("\x1b[2K\r")
        endl = "\r"
    elif progress_text:
        return
    if msg.get("timeNano"):
        out.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(msg["timeNano"] / 1e9)) + " ")
    elif msg.get("time"):
        out.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(msg["time"])) + " ")
    if msg.get("id"):
        out.write(f"{msg['id']}: ")
    if msg.get("from"):
        out.write(f"(from {msg['from']}) ")
    status = msg.get("status") or ""
    if progress is not None and is_terminal:
        out.write(f"{status} {progress_text}{endl}")
    elif msg.get("progress"):
        out.write(f"{status} {msg['progress']}{endl}")
    elif msg.get("stream"):
        out.write(f"{msg['stream']}{endl}")
    else:
        out.write(f"{status}{endl}\n")
