"""Health checks: a probe run in the container now and then, and the health it gives.

The pure part is Docker's: `merge` a container's Healthcheck with its image's,
`probe_argv` for the command, `record` one probe's result into the `Health` record
(starting -> healthy | unhealthy, failures in the start period not counted, the last
five probes kept). `HealthMonitor` is the loop around it, one asyncio task per running
container with a check: it waits an interval, runs the probe through the runner it was
given (the manager's exec), records, and tells its owner, which saves the record and
emits `health_status: …`. It never touches the container or the store itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from berth.clock import format_time
from berth.containers.model import Health, HealthProbe
from berth.errors import BerthError, InvalidParameter
from berth.images.model import Healthcheck

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
MINIMUM_DURATION_NS = 1_000_000  # Docker's 1ms

log = logging.getLogger(__name__)

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"

# (argv, timeout in seconds) -> (exit code, output); TimeoutError when it ran too long
ProbeRunner = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]


def validate(check: Healthcheck | None) -> None:
    """Refuse what Docker's daemon refuses at create, with its messages."""
    if check is None:
        return
    for name, value in (("Interval", check.interval), ("Timeout", check.timeout),
                        ("StartPeriod", check.start_period), ("StartInterval", check.start_interval)):
        if value != 0 and value < MINIMUM_DURATION_NS:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    if check.retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def merge(own: Healthcheck | None, image: Healthcheck | None) -> Healthcheck | None:
    """The container's check: its own fields, each unset one taken from the image's."""
    if own is None or image is None:
        return own if own is not None else image
    return Healthcheck(test=own.test or list(image.test), interval=own.interval or image.interval,
                       timeout=own.timeout or image.timeout,
                       start_period=own.start_period or image.start_period,
                       start_interval=own.start_interval or image.start_interval,
                       retries=own.retries or image.retries)


def probe_argv(check: Healthcheck | None, shell: list[str] | None = None) -> list[str] | None:
    """The probe's command, or None when the container has no (working) check."""
    if check is None or not check.test:
        return None
    kind, rest = check.test[0], check.test[1:]
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and rest:
        return [*(shell or ["/bin/sh", "-c"]), *rest]
    return None  # "NONE", or a kind Docker does not know either


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: 30s, 1.5s, 500ms, 1m30s, 1h0m0s."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return _trim(ns / size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _trim(rest / 1e9) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def truncate_output(data: bytes) -> str:
    text = data[:MAX_OUTPUT_LEN].decode("utf-8", "replace")
    return text + "..." if len(data) > MAX_OUTPUT_LEN else text


def record(health: Health, check: Healthcheck, probe: HealthProbe, since_start: float) -> str | None:
    """Add a probe's result, `since_start` seconds after the container started; the new
    status when it changed, else None."""
    before = health.status
    health.log = [*health.log, probe][-MAX_LOG_ENTRIES:]
    if probe.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
    elif not (health.status == STARTING and since_start < check.start_period / 1e9):
        health.failing_streak += 1
        if health.failing_streak >= (check.retries if check.retries > 0 else DEFAULT_RETRIES):
            health.status = UNHEALTHY
    return health.status if health.status != before else None


def next_interval(check: Healthcheck, status: str, since_start: float) -> float:
    """Seconds to the next probe: the start interval while starting in the start period."""
    interval = check.interval / 1e9 if check.interval else DEFAULT_INTERVAL
    if status == STARTING and since_start < check.start_period / 1e9:
        return check.start_interval / 1e9 if check.start_interval else DEFAULT_START_INTERVAL
    return interval


class HealthMonitor:
    """Probes one running container until stopped. `on_probe(changed)` is called after
    each probe, with the new status when it changed; `paused()` skips probes."""

    def __init__(self, check: Healthcheck, health: Health, argv: list[str], run: ProbeRunner,
                 on_probe: Callable[[str | None], None], paused: Callable[[], bool] = lambda: False,
                 started: float | None = None) -> None:
        self.check = check
        self.health = health
        self.argv = argv
        self.run = run
        self.on_probe = on_probe
        self.paused = paused
        self.started = time.monotonic() if started is None else started
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a stop must not fail: the container's exit handling waits on it
                log.exception("health check loop failed")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(next_interval(self.check, self.health.status, time.monotonic() - self.started))
            if self.paused():
                continue
            since_start = time.monotonic() - self.started
            probe = await self.probe()
            self.on_probe(record(self.health, self.check, probe, since_start))

    async def probe(self) -> HealthProbe:
        timeout = self.check.timeout / 1e9 if self.check.timeout else DEFAULT_TIMEOUT
        start = format_time(time.time_ns())
        try:
            code, output = await self.run(self.argv, timeout)
            text = truncate_output(output)
        except TimeoutError:
            code, text = -1, f"Health check exceeded timeout ({go_duration(timeout)})"
        except BerthError as e:
            code, text = -1, str(e)
        except Exception as e:  # noqa: BLE001  (a probe that could not run is a failed probe, as Docker's)
            code, text = -1, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return HealthProbe(start=start, end=format_time(time.time_ns()), exit_code=code, output=text)
