"""The lifecycle's one table of state transitions: every move it allows, and the
refusals in Docker's words for the operations a user can ask for in the wrong state."""

from __future__ import annotations

import pytest

from berth.containers import states
from berth.containers.model import Container, HostConfig, RunConfig, State, Status
from berth.containers.states import TRANSITIONS, Op
from berth.errors import BerthError, Conflict, NotModified

CID = "ab" * 32


def _container(status: Status) -> Container:
    return Container(id=CID, name="web", created="2026-01-01T00:00:00Z", image_id="sha256:x",
                     config=RunConfig(image="busybox"), host_config=HostConfig(),
                     state=State(status=status, pid=42, exit_code=3, started_at="2026-01-01T00:00:01Z"))


ALLOWED = [(op, before, after) for op, row in TRANSITIONS.items() for before, after in row.items()]
REFUSED = [(op, before) for op in Op for before in Status if before not in TRANSITIONS[op]]


@pytest.mark.parametrize(("op", "before", "after"), ALLOWED)
def test_an_allowed_move_sets_the_tables_status(op: Op, before: Status, after: Status) -> None:
    c = _container(before)
    assert states.check(c, op) == after
    assert c.state.status == before, "check moves nothing"
    assert states.move(c, op) == after
    assert c.state.status == after
    assert (c.state.pid, c.state.exit_code) == (42, 3), "a move without a new state keeps the rest"


@pytest.mark.parametrize(("op", "before"), REFUSED)
def test_a_move_the_table_has_no_row_for_is_refused_and_changes_nothing(op: Op, before: Status) -> None:
    c = _container(before)
    assert not states.allowed(before, op)
    with pytest.raises(BerthError):
        states.move(c, op)
    assert c.state.status == before


def test_the_table_is_dockers() -> None:
    S = Status
    assert TRANSITIONS[Op.START] == {S.CREATED: S.RUNNING, S.EXITED: S.RUNNING, S.DEAD: S.RUNNING}
    assert TRANSITIONS[Op.RESTART] == {S.RESTARTING: S.RUNNING}
    assert TRANSITIONS[Op.PAUSE] == {S.RUNNING: S.PAUSED}
    assert TRANSITIONS[Op.UNPAUSE] == TRANSITIONS[Op.THAW] == {S.PAUSED: S.RUNNING}
    assert TRANSITIONS[Op.EXIT] == {S.RUNNING: S.EXITED, S.PAUSED: S.EXITED}
    assert TRANSITIONS[Op.EXIT_TO_RESTART] == {S.RUNNING: S.RESTARTING, S.PAUSED: S.RESTARTING}
    assert TRANSITIONS[Op.GIVE_UP] == {S.RESTARTING: S.EXITED}
    assert TRANSITIONS[Op.REMOVE] == {S.CREATED: S.REMOVING, S.EXITED: S.REMOVING, S.DEAD: S.REMOVING}
    assert set(TRANSITIONS) == set(Op)


def test_a_start_or_an_exit_begins_a_new_state() -> None:
    c = _container(Status.EXITED)
    c.state.error, c.state.oom_killed, c.state.finished_at = "boom", True, "2026-01-01T00:00:09Z"
    states.move(c, Op.START, State(pid=7, started_at="2026-01-02T00:00:00Z"))
    assert c.state == State(status=Status.RUNNING, pid=7, started_at="2026-01-02T00:00:00Z")
    states.move(c, Op.EXIT, State(exit_code=137, started_at=c.state.started_at, finished_at="2026-01-02T00:00:05Z",
                                  oom_killed=True))
    assert c.state == State(status=Status.EXITED, exit_code=137, started_at="2026-01-02T00:00:00Z",
                            finished_at="2026-01-02T00:00:05Z", oom_killed=True)


@pytest.mark.parametrize(("op", "status", "kind", "message"), [
    (Op.START, Status.RUNNING, NotModified, "container already started"),
    (Op.START, Status.PAUSED, NotModified, "container already started"),
    (Op.START, Status.RESTARTING, NotModified, "container already started"),
    (Op.START, Status.REMOVING, Conflict, f"container {CID[:12]} is marked for removal and cannot be started"),
    (Op.PAUSE, Status.PAUSED, Conflict, f"Container {CID} is already paused"),
    (Op.PAUSE, Status.EXITED, Conflict, f"Container {CID} is not running"),
    (Op.PAUSE, Status.CREATED, Conflict, f"Container {CID} is not running"),
    (Op.PAUSE, Status.RESTARTING, Conflict, f"Container {CID} is not running"),
    (Op.UNPAUSE, Status.RUNNING, Conflict, f"Container {CID} is not paused"),
    (Op.UNPAUSE, Status.EXITED, Conflict, f"Container {CID} is not paused"),
    (Op.REMOVE, Status.RUNNING, Conflict, 'cannot remove container "web": container is running: '
                                          "stop the container before removing or force remove"),
    (Op.REMOVE, Status.PAUSED, Conflict, 'cannot remove container "web": container is paused and must be '
                                         "unpaused first"),
    (Op.REMOVE, Status.RESTARTING, Conflict, 'cannot remove container "web": container is restarting: '
                                             "stop the container before removing or force remove"),
    (Op.REMOVE, Status.REMOVING, Conflict, f"removal of container {CID[:12]} is already in progress"),
])
def test_refusals_say_what_docker_says(op: Op, status: Status, kind: type[BerthError], message: str) -> None:
    with pytest.raises(kind) as refused:
        states.check(_container(status), op)
    assert type(refused.value) is kind
    assert str(refused.value) == message
