"""Health checks: Docker's status rules, and the probe loop with a fake exec."""

from __future__ import annotations

import asyncio

import pytest

from berth.containers import health
from berth.containers.model import Health, HealthProbe
from berth.errors import Conflict, InvalidParameter
from berth.images.model import Healthcheck

MS = 1_000_000


def _probe(code: int) -> HealthProbe:
    return HealthProbe("s", "e", code, "")


def test_unhealthy_after_retries_consecutive_failures() -> None:
    check, h = Healthcheck(["CMD", "false"], retries=2), Health()
    assert health.record(h, check, _probe(1), 100.0) is None
    assert (h.status, h.failing_streak) == ("starting", 1)
    assert health.record(h, check, _probe(1), 100.0) == "unhealthy"
    assert health.record(h, check, _probe(1), 100.0) is None
    assert h.failing_streak == 3
    assert health.record(h, check, _probe(0), 100.0) == "healthy"
    assert h.failing_streak == 0


def test_default_retries_is_three() -> None:
    check, h = Healthcheck(["CMD", "false"]), Health()
    assert [health.record(h, check, _probe(1), 100.0) for _ in range(3)] == [None, None, "unhealthy"]


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    check, h = Healthcheck(["CMD", "x"], start_period=10_000 * MS, retries=1), Health()
    assert health.record(h, check, _probe(1), since_start=5.0) is None
    assert (h.status, h.failing_streak) == ("starting", 0)
    assert health.record(h, check, _probe(0), since_start=6.0) == "healthy"
    assert health.record(h, check, _probe(1), since_start=7.0) == "unhealthy"  # healthy once: it counts


def test_the_log_keeps_the_last_five() -> None:
    check, h = Healthcheck(["CMD", "x"]), Health()
    for code in range(8):
        health.record(h, check, _probe(code), 0.0)
    assert [p.exit_code for p in h.log] == [3, 4, 5, 6, 7]


def test_merge_takes_unset_fields_from_the_image() -> None:
    image = Healthcheck(["CMD-SHELL", "curl -f localhost"], interval=5_000 * MS, retries=4)
    own = Healthcheck([], timeout=2_000 * MS)
    assert health.merge(own, image) == Healthcheck(["CMD-SHELL", "curl -f localhost"], interval=5_000 * MS,
                                                   timeout=2_000 * MS, retries=4)
    assert health.merge(None, image) is image
    assert health.merge(Healthcheck(["NONE"]), image) is not None
    assert health.probe_argv(health.merge(Healthcheck(["NONE"]), image)) is None


def test_probe_argv() -> None:
    assert health.probe_argv(Healthcheck(["CMD", "cat", "/ok"])) == ["cat", "/ok"]
    assert health.probe_argv(Healthcheck(["CMD-SHELL", "test -f /ok"])) == ["/bin/sh", "-c", "test -f /ok"]
    assert health.probe_argv(Healthcheck(["NONE"])) is None
    assert health.probe_argv(Healthcheck([])) is None
    assert health.probe_argv(None) is None


def test_validate() -> None:
    health.validate(Healthcheck(["CMD", "x"], interval=MS, timeout=0))
    with pytest.raises(InvalidParameter, match="Interval in Healthcheck cannot be less than 1ms"):
        health.validate(Healthcheck(["CMD", "x"], interval=10))
    with pytest.raises(InvalidParameter, match="Retries in Healthcheck cannot be negative"):
        health.validate(Healthcheck(["CMD", "x"], retries=-1))


@pytest.mark.parametrize(("seconds", "text"), [
    (30, "30s"), (1.5, "1.5s"), (0.5, "500ms"), (90, "1m30s"), (3600, "1h0m0s"), (60, "1m0s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert health.go_duration(seconds) == text


def test_output_is_truncated_at_4096_bytes() -> None:
    assert health.truncate_output(b"x" * 5000) == "x" * 4096 + "..."
    assert health.truncate_output(b"ok\n") == "ok\n"


def test_next_interval_uses_the_start_interval_in_the_start_period() -> None:
    check = Healthcheck(["CMD", "x"], interval=60_000 * MS, start_period=30_000 * MS, start_interval=1_000 * MS)
    assert health.next_interval(check, "starting", 5.0) == 1.0
    assert health.next_interval(check, "healthy", 5.0) == 60.0
    assert health.next_interval(check, "starting", 31.0) == 60.0
    assert health.next_interval(Healthcheck(["CMD", "x"]), "starting", 0.0) == 30.0


async def _run_monitor(check: Healthcheck, results: list[object], *, paused: bool = False,
                       probes: int) -> tuple[Health, list[str | None], list[tuple[list[str], float]]]:
    """A monitor over a fake exec answering `results` in turn; runs until `probes` probes."""
    h = Health()
    changes: list[str | None] = []
    calls: list[tuple[list[str], float]] = []
    done = asyncio.Event()

    async def run(argv: list[str], timeout: float) -> tuple[int, bytes]:
        calls.append((argv, timeout))
        result = results[min(len(calls), len(results)) - 1]
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, tuple)
        return result

    def on_probe(changed: str | None) -> None:
        changes.append(changed)
        if len(changes) >= probes:
            done.set()

    argv = health.probe_argv(check)
    assert argv is not None
    monitor = health.HealthMonitor(check, h, argv, run, on_probe, paused=lambda: paused)
    monitor.start()
    try:
        await asyncio.wait_for(done.wait(), 0.5 if paused else 5)
    except TimeoutError:
        pass
    await monitor.stop()
    return h, changes, calls


def test_monitor_turns_unhealthy_after_retries() -> None:
    check = Healthcheck(["CMD-SHELL", "exit 1"], interval=5 * MS, timeout=1_000 * MS, retries=3)
    h, changes, calls = asyncio.run(_run_monitor(check, [(1, b"nope\n")], probes=4))
    assert changes[:4] == [None, None, "unhealthy", None]
    assert h.status == "unhealthy"
    assert calls[0] == (["/bin/sh", "-c", "exit 1"], 1.0)
    assert h.log[-1].output == "nope\n" and h.log[-1].exit_code == 1


def test_monitor_healthy_then_unhealthy() -> None:
    check = Healthcheck(["CMD", "probe"], interval=5 * MS, retries=1)
    h, changes, _ = asyncio.run(_run_monitor(check, [(0, b""), (0, b""), (2, b"down")], probes=3))
    assert changes[:3] == ["healthy", None, "unhealthy"]


def test_monitor_timeout_and_errors_are_failures() -> None:
    check = Healthcheck(["CMD", "probe"], interval=5 * MS, timeout=2_000 * MS, retries=5)
    h, _, _ = asyncio.run(_run_monitor(check, [TimeoutError(), Conflict("container x is not running"),
                                               ConnectionResetError(104, "Connection reset by peer")], probes=3))
    assert [(p.exit_code, p.output) for p in h.log[:3]] == [
        (-1, "Health check exceeded timeout (2s)"), (-1, "container x is not running"),
        (-1, "ConnectionResetError: [Errno 104] Connection reset by peer")]
    assert h.failing_streak >= 3


def test_a_monitor_whose_loop_failed_still_stops() -> None:
    """The container's exit handling stops the monitor and must get past it."""
    async def scenario() -> None:
        probed = asyncio.Event()

        async def run(argv: list[str], timeout: float) -> tuple[int, bytes]:
            return 0, b""

        def on_probe(changed: str | None) -> None:
            probed.set()
            raise OSError(28, "No space left on device")  # saving the record failed

        check = Healthcheck(["CMD", "probe"], interval=5 * MS)
        monitor = health.HealthMonitor(check, Health(), ["probe"], run, on_probe)
        monitor.start()
        await asyncio.wait_for(probed.wait(), 5)
        await asyncio.sleep(0)
        await monitor.stop()  # raised the loop's OSError, and the container never exited

    asyncio.run(scenario())


def test_monitor_skips_probes_while_paused() -> None:
    check = Healthcheck(["CMD", "probe"], interval=5 * MS)
    h, changes, calls = asyncio.run(_run_monitor(check, [(0, b"")], paused=True, probes=1))
    assert calls == [] and changes == [] and h.status == "starting"
