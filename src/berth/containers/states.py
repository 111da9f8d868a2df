"""The container lifecycle as one table: which operation moves which state to which.

    created ──start──▶ running ──pause──▶ paused ──unpause──▶ running
    running | paused ──exit──▶ exited            (its process ended, or its shim was lost)
    running | paused ──exit, to restart──▶ restarting ──restart──▶ running
    restarting ──give up──▶ exited                (the restart called off)
    paused ──thaw──▶ running                      (thawed so that a signal reaches it)
    exited ──start──▶ running
    created | exited | dead ──remove──▶ removing  (then gone)

`TRANSITIONS` is that table; `move` is the only way a container's status changes, and
`check` refuses an operation in a state the table has no row for, with Docker's words.
Pure: it changes the record in memory only; saving it and emitting events are the
caller's (containers/lifecycle.py).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from berth.containers.model import Container, State, Status
from berth.errors import BerthError, Conflict, NotModified


class Op(enum.StrEnum):
    START = "start"  # the user's start (docker start, run, restart)
    RESTART = "restart"  # the restart policy's start, after the back-off
    PAUSE = "pause"
    UNPAUSE = "unpause"
    THAW = "thaw"  # a paused container thawed to receive a signal (kill, stop, rm -f)
    EXIT = "exit"  # its process ended (or its shim was lost)
    EXIT_TO_RESTART = "exit to restart"  # ended, and its restart policy starts it again
    GIVE_UP = "give up"  # a pending restart called off, or berthd restarted during the back-off
    REMOVE = "remove"


S = Status

TRANSITIONS: Mapping[Op, Mapping[Status, Status]] = {
    Op.START: {S.CREATED: S.RUNNING, S.EXITED: S.RUNNING, S.DEAD: S.RUNNING},
    Op.RESTART: {S.RESTARTING: S.RUNNING},
    Op.PAUSE: {S.RUNNING: S.PAUSED},
    Op.UNPAUSE: {S.PAUSED: S.RUNNING},
    Op.THAW: {S.PAUSED: S.RUNNING},
    Op.EXIT: {S.RUNNING: S.EXITED, S.PAUSED: S.EXITED},
    Op.EXIT_TO_RESTART: {S.RUNNING: S.RESTARTING, S.PAUSED: S.RESTARTING},
    Op.GIVE_UP: {S.RESTARTING: S.EXITED},
    Op.REMOVE: {S.CREATED: S.REMOVING, S.EXITED: S.REMOVING, S.DEAD: S.REMOVING},
}


def allowed(status: Status, op: Op) -> bool:
    return status in TRANSITIONS[op]


def refusal(c: Container, op: Op, ref: str | None = None) -> BerthError:
    """The error for `op` on `c` in its present state, in Docker's words; `ref` is how
    the client named the container."""
    status = c.state.status
    if op in (Op.START, Op.RESTART):
        if status == S.REMOVING:
            return Conflict(f"container {c.id[:12]} is marked for removal and cannot be started")
        return NotModified("container already started")
    if op == Op.PAUSE:
        if status == S.PAUSED:
            return Conflict(f"Container {c.id} is already paused")
        return Conflict(f"Container {c.id} is not running")
    if op in (Op.UNPAUSE, Op.THAW):
        return Conflict(f"Container {c.id} is not paused")
    if op == Op.REMOVE:
        # dockerd (API 1.50+) names the container as the client did
        if status == S.REMOVING:
            return Conflict(f"removal of container {ref or c.id[:12]} is already in progress")
        if status == S.PAUSED:
            reason = "container is paused and must be unpaused first"
        else:
            what = "restarting" if status == S.RESTARTING else "running"
            reason = f"container is {what}: stop the container before removing or force remove"
        return Conflict(f'cannot remove container "{ref or c.name}": {reason}')
    return Conflict(f"container {c.id[:12]} is {status.value}: it cannot {op.value}")


def check(c: Container, op: Op) -> Status:
    """The state `op` would move `c` to; the refusal when the table has no such move."""
    target = TRANSITIONS[op].get(c.state.status)
    if target is None:
        raise refusal(c, op)
    return target


def move(c: Container, op: Op, new_state: State | None = None) -> Status:
    """Move `c` by `op`: its status becomes the table's target. With `new_state`, the
    record's whole state is replaced by it (a start or an exit begins a new one)."""
    target = check(c, op)
    if new_state is not None:
        c.state = dataclasses.replace(new_state, status=target)
    else:
        c.state.status = target
    return target
