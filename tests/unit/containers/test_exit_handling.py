"""What berthd does after a container exits, where a real berthd cannot be made to fail
on demand: the exit reaches its waiters even when a clean-up step fails, and a restart
by policy is not lost to the garbage collector while it waits.

The manager runs in process, with a layer store that refuses to unmount (EBUSY). The
shim is gone and has left its exit.json, as after a shim that recorded the exit and
ended.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import weakref
from pathlib import Path
from typing import Any, cast

import pytest

from berth.containers.manager import ContainerManager, Live
from berth.containers.model import Container, HostConfig, RestartPolicy, RunConfig, State, Status
from berth.metadata import open_db


class StuckLayers:
    def __init__(self) -> None:
        self.unmounts: list[str] = []

    def unmount(self, container_id: str) -> None:
        self.unmounts.append(container_id)
        raise OSError(errno.EBUSY, "Device or resource busy")


def _manager(tmp_path: Path) -> tuple[ContainerManager, StuckLayers, Container, str]:
    layers = StuckLayers()
    db = open_db(str(tmp_path / "berth.db"))
    nothing = cast(Any, None)  # no image or volume is asked for
    m = ContainerManager(str(tmp_path / "data"), str(tmp_path / "exec"), db,
                         images=nothing, layers=cast(Any, layers), volumes=nothing)
    c = Container(id="c0ffee" * 10 + "abcd", name="stuck", created="2026-01-01T00:00:00Z", image_id="sha256:x",
                  config=RunConfig(image="busybox"), host_config=HostConfig(),
                  state=State(status=Status.RUNNING, pid=4242, started_at="2026-01-01T00:00:01Z"))
    m.containers[c.id] = c
    m.live[c.id] = Live()
    state_dir = os.path.join(m.exec_root, c.id)
    os.makedirs(state_dir)
    with open(os.path.join(state_dir, "exit.json"), "w") as f:
        json.dump({"exit_code": 3, "finished_at": "2026-01-01T00:00:02Z"}, f)
    return m, layers, c, state_dir


async def _exit_seen(m: ContainerManager, c: Container) -> None:
    live = m.live[c.id]
    await asyncio.wait_for(m.lifecycle._monitor(c, live), 10)
    await asyncio.wait_for(live.exited.wait(), 1)


def test_a_failed_unmount_still_records_the_exit_and_cleans_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m, layers, c, state_dir = _manager(tmp_path)
    events: list[str] = []
    m.on_event = lambda action, _c, _attrs: events.append(action)
    with caplog.at_level(logging.ERROR):
        asyncio.run(_exit_seen(m, c))
    assert layers.unmounts == [c.id]
    assert (c.state.status, c.state.exit_code) == (Status.EXITED, 3)
    assert "die" in events
    assert not os.path.exists(state_dir)
    assert "unmounting its root" in caplog.text and "Device or resource busy" in caplog.text
    (doc,) = m.db.execute("SELECT doc FROM containers WHERE id = ?", (c.id,)).fetchone()
    assert json.loads(doc)["state"]["exit_code"] == 3


def test_a_database_that_refuses_the_write_does_not_lose_the_exit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m, _layers, c, state_dir = _manager(tmp_path)
    m.db.close()
    with caplog.at_level(logging.ERROR):
        asyncio.run(_exit_seen(m, c))
    assert (c.state.status, c.state.exit_code) == (Status.EXITED, 3)
    assert not os.path.exists(state_dir)
    assert "recording its state" in caplog.text


def test_a_restart_waiting_on_its_start_survives_a_garbage_collection(tmp_path: Path) -> None:
    """The event loop holds tasks weakly. A restart whose start waits on something only
    its own frames hold (a stream's reader is held so, by its protocol only weakly) must
    still be there, and still waiting, after a collection."""
    m, _layers, c, _state_dir = _manager(tmp_path)
    c.host_config.restart_policy = RestartPolicy("always", 0)
    restarts: list[weakref.ref[asyncio.Task[Any]]] = []

    async def start(ref: str, *, by_restart_policy: bool = False) -> None:
        task = asyncio.current_task()
        assert task is not None and by_restart_policy
        restarts.append(weakref.ref(task))
        await asyncio.get_running_loop().create_future()  # only this frame holds it

    m.lifecycle.start = start  # type: ignore[method-assign]

    async def scenario() -> None:
        await asyncio.wait_for(m.lifecycle._monitor(c, m.live[c.id]), 10)
        while not restarts:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        gc.collect()
        task = restarts[0]()
        assert task is not None and not task.done(), "the restart was collected while it waited"
        task.cancel()

    asyncio.run(scenario())
    assert c.state.status == Status.RESTARTING
