"""ShimTaskService against a stand-in shim on a real UNIX socket: the requests it sends,
the errors it raises, the stats of a shim that predates the stats op (read from the
bundle instead), and the clean-up of a task whose shim is lost."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.runtime import cgroups
from berth.runtime.cgroups import CgroupStats
from berth.runtime.spec import Limits
from berth.tasks import counters
from berth.tasks.model import (
    AttachRequest,
    ExecRequest,
    ExitStatus,
    TaskError,
    TaskState,
    TaskStats,
    TaskUnavailable,
    UnknownOperation,
)
from berth.tasks.shimtasks import ShimTaskService

CID = "5eed" * 16
Answer = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def exec_root() -> Iterator[str]:
    # short: a shim's socket path must fit AF_UNIX's 107 bytes
    root = tempfile.mkdtemp(prefix="bt-", dir="/tmp")
    os.makedirs(os.path.join(root, "s"))
    os.makedirs(os.path.join(root, "containers", CID))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _bundle(svc: ShimTaskService, cgroups_path: str = "/elsewhere/" + CID) -> str:
    bundle = svc.bundle(CID)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({"process": {"terminal": False}, "linux": {"cgroupsPath": cgroups_path}}, f)
    return bundle


async def _with_shim(svc: ShimTaskService, answer: Answer, work: Callable[[], Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Run `work` while a stand-in shim serves the task's socket; (its result, the requests)."""
    seen: list[dict[str, Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = json.loads(await reader.readline())
        seen.append(req)
        writer.write(json.dumps(answer(req)).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, svc.socket(CID))
    try:
        return await work(), seen
    finally:
        server.close()
        await server.wait_closed()


def test_operations_send_the_shims_requests(exec_root: str) -> None:
    svc = ShimTaskService(exec_root)

    answers: dict[str, dict[str, Any]] = {
        "exec": {"pid": 99}, "wait": {"exit_code": 3, "finished_at": "t1", "oom_killed": True},
        "state": {"pid": 7, "status": "paused"}, "pids": {"pids": [7, 8]}}

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        return answers.get(req["op"], {"ok": True})

    async def work() -> list[Any]:
        return [
            await svc.kill(CID, 15),
            await svc.kill(CID, 9, exec_id="e1"),
            await svc.wait(CID),
            await svc.wait_exec(CID, "e1"),
            await svc.state(CID),
            await svc.exec(ExecRequest(CID, "e1", {"args": ["sh"]}, stdin=True)),
            await svc.start_exec(CID, "e1"),
            await svc.resize(CID, 24, 80, exec_id="e1"),
            await svc.pause(CID),
            await svc.resume(CID),
            await svc.update(CID, Limits(memory=1 << 20)),
            await svc.pids(CID),
            await svc.delete(CID, "e1"),
        ]

    results, seen = asyncio.run(_with_shim(svc, answer, work))
    assert results[2] == results[3] == ExitStatus(3, "t1", True)
    assert results[4] == TaskState(7, "paused")
    assert results[5] == 99
    assert results[11] == [7, 8]
    assert seen[0] == {"op": "kill", "signal": 15}
    assert seen[1] == {"op": "kill", "signal": 9, "exec": "e1"}
    assert seen[3] == {"op": "wait", "exec": "e1"}
    assert seen[5] == {"op": "exec", "id": "e1", "process": {"args": ["sh"]}, "stdin": True}
    assert seen[6] == {"op": "start", "exec": "e1"}
    assert seen[7] == {"op": "resize", "height": 24, "width": 80, "exec": "e1"}
    assert [r["op"] for r in seen[8:10]] == ["pause", "resume"]
    assert seen[10]["op"] == "update" and "devices" not in seen[10]["resources"]
    assert seen[10]["resources"]["memory"]["limit"] == 1 << 20
    assert seen[12] == {"op": "delete", "exec": "e1"}


def test_errors_are_the_task_services(exec_root: str) -> None:
    svc = ShimTaskService(exec_root)

    async def refused() -> None:
        await svc.start(CID)

    with pytest.raises(TaskError, match="container is not in the created state") as err:
        asyncio.run(_with_shim(svc, lambda req: {"error": "container is not in the created state"}, refused))
    assert type(err.value) is TaskError
    with pytest.raises(UnknownOperation):
        asyncio.run(_with_shim(svc, lambda req: {"error": "unknown op 'start'"}, refused))
    with pytest.raises(TaskUnavailable, match="does not answer"):
        asyncio.run(svc.start(CID))  # no shim at all
    with pytest.raises(TaskUnavailable):
        asyncio.run(svc.attach(AttachRequest(CID, False, True, True)))


def test_stats_come_from_the_shim(exec_root: str) -> None:
    svc = ShimTaskService(exec_root)
    sent = CgroupStats(memory_usage=4096, pids_current=2, cpu_percpu_ns=(1, 2))

    async def work() -> TaskStats | None:
        return await svc.stats(CID)

    stats, seen = asyncio.run(_with_shim(svc, lambda req: {"cgroup": counters.encode(sent)}, work))
    assert seen == [{"op": "stats"}]
    assert stats == TaskStats(sent)
    gone, _ = asyncio.run(_with_shim(svc, lambda req: {"cgroup": None}, work))
    assert gone is None


def test_a_shim_that_predates_stats_is_read_from_its_bundle(exec_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container live-restored from the previous berthd keeps its old shim, which
    answers the stats op with an error: the counters are read from the cgroup its
    bundle names, and the exec forker's note is applied as for a new shim's."""
    svc = ShimTaskService(exec_root)
    bundle = _bundle(svc)
    with open(os.path.join(bundle, "forker"), "w") as f:
        json.dump({"pid": 4321, "pids_limit_raised": True}, f)
    read: list[str] = []

    class Group:
        def __init__(self, path: str) -> None:
            self.path = path

        def exists(self) -> bool:
            return True

        def stats(self) -> CgroupStats:
            read.append(self.path)
            return CgroupStats(pids_current=3, pids_limit=11, memory_usage=1 << 20)

    monkeypatch.setattr(cgroups, "open_manager", lambda path: Group(path))

    async def work() -> TaskStats | None:
        return await svc.stats(CID)

    stats, seen = asyncio.run(_with_shim(svc, lambda req: {"error": f"unknown op {req['op']!r}"}, work))
    assert seen == [{"op": "stats"}]
    assert read == ["/elsewhere/" + CID], "the bundle's own cgroupsPath, not a guess"
    assert stats == TaskStats(CgroupStats(pids_current=2, pids_limit=10, memory_usage=1 << 20))


def test_a_lost_task_is_cleaned_up_from_its_bundle(exec_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No shim to ask: the runtime's record is deleted (runc/crun), the cgroup the bundle
    names is destroyed with what runs in it, and the shim's socket goes."""
    svc = ShimTaskService(exec_root)
    _bundle(svc)
    calls = Path(exec_root) / "runtime-calls"
    runtime = Path(exec_root) / "fakerunc"
    runtime.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    runtime.chmod(runtime.stat().st_mode | stat.S_IEXEC)
    with open(os.path.join(svc.bundle(CID), "task.json"), "w") as f:
        json.dump({"runtime": str(runtime)}, f)
    Path(svc.socket(CID)).touch()
    destroyed: list[tuple[str, bool]] = []

    class Group:
        def __init__(self, path: str) -> None:
            self.path = path

        def destroy(self, kill: bool = False) -> None:
            destroyed.append((self.path, kill))

    monkeypatch.setattr(cgroups, "open_manager", lambda path: Group(path))
    asyncio.run(svc.delete(CID, lost=True))
    assert calls.read_text().split() == ["--root", os.path.join(exec_root, "runtime-fakerunc"), "delete", "--force", CID]
    assert destroyed == [("/elsewhere/" + CID, True)]
    assert not svc.shim_present(CID)


def test_a_lost_task_of_berths_own_runtime_or_an_older_berthd_has_no_runtime_to_ask(
        exec_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = ShimTaskService(exec_root)
    _bundle(svc, cgroups_path="/berth/" + CID)
    destroyed: list[str] = []

    class Group:
        def __init__(self, path: str) -> None:
            self.path = path

        def destroy(self, kill: bool = False) -> None:
            destroyed.append(self.path)

    monkeypatch.setattr(cgroups, "open_manager", lambda path: Group(path))
    asyncio.run(svc.delete(CID, lost=True))
    assert destroyed == ["/berth/" + CID]


def test_the_exit_a_shim_wrote_down(exec_root: str) -> None:
    svc = ShimTaskService(exec_root)
    assert svc.recorded_exit(CID) is None
    with open(os.path.join(svc.bundle(CID), "exit.json"), "w") as f:
        json.dump({"exit_code": 137, "finished_at": "2026-01-01T00:00:02Z", "oom_killed": True}, f)
    assert svc.recorded_exit(CID) == ExitStatus(137, "2026-01-01T00:00:02Z", True)
