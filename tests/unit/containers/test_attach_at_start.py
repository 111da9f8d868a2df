"""An attach made before a start (the builder's RUN) is registered at once, with no
await in between, and is answered when the container starts or goes away."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from berth.containers.attach import Attacher
from berth.containers.manager import ContainerManager, Live
from berth.containers.model import Container, HostConfig, RunConfig, State, Status
from berth.errors import Conflict
from berth.metadata import open_db


def _manager(tmp_path: Path, status: Status) -> tuple[ContainerManager, Container]:
    nothing = cast(Any, None)
    m = ContainerManager(str(tmp_path / "data"), str(tmp_path / "exec"), open_db(str(tmp_path / "berth.db")),
                         images=nothing, layers=nothing, volumes=nothing)
    c = Container(id="be" * 32, name="run", created="2026-01-01T00:00:00Z", image_id="sha256:x",
                  config=RunConfig(image="busybox"), host_config=HostConfig(), state=State(status=status))
    m.containers[c.id] = c
    m.live[c.id] = Live()
    return m, c


def test_it_is_pending_as_soon_as_it_returns_and_gets_none_if_the_start_fails(tmp_path: Path) -> None:
    async def scenario() -> None:
        m, c = _manager(tmp_path, Status.CREATED)
        events: list[str] = []
        m.on_event = lambda action, _c, _attrs: events.append(action)
        ready = m.attach_at_start(c.id, False, True, True)
        live = m.live[c.id]
        assert [(a.stdin, a.stdout, a.stderr) for a in live.pending_attaches] == [(False, True, True)]
        assert events == ["attach"]
        Attacher.fail_pending(live)
        assert await ready is None

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED, Status.RESTARTING, Status.REMOVING])
def test_a_container_that_runs_is_refused(tmp_path: Path, status: Status) -> None:
    async def scenario() -> None:
        m, c = _manager(tmp_path, status)
        with pytest.raises(Conflict, match="not waiting to be started"):
            m.attach_at_start(c.id, False, True, True)
        assert not m.live[c.id].pending_attaches

    asyncio.run(scenario())
