"""The container lifecycle: start, exit, restart, stop, kill, wait, pause, remove.

Every change of a container's status is a move in the one table of containers/states.py
(`states.move`); this module does the work around the moves. A start mounts the root,
writes the bundle, and has the task service create the task; the attach streams that
were waiting are connected before the init is let run, so no output is lost. One
monitor task per running container waits for the exit, records it, cleans up, and
starts the container again when its restart policy says so, or removes it when asked
to (`--rm`). Records are saved at every transition (through the manager, which owns
them); this module never reads or writes the containers table itself, and it talks to
the shim only through the task service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal as signals
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth.clock import now_rfc3339
from berth.containers import defaults, etcfiles, health, mounting, networking, restart, states
from berth.containers.attach import Attachment
from berth.containers.defaults import DEFAULT_STOP_TIMEOUT, parse_signal
from berth.containers.model import Container, Health, State, Status
from berth.containers.states import Op
from berth.containers.users import resolve_user
from berth.errors import BerthError, Conflict, InvalidParameter, NotModified, SystemError_
from berth.logs import drivers as log_drivers
from berth.runtime import spec
from berth.tasks.model import CreateTaskRequest, ExitStatus, TaskError

if TYPE_CHECKING:
    from berth.containers.manager import ContainerManager

log = logging.getLogger(__name__)
KILL_WAIT = 10  # seconds a SIGKILL waits for the exit, as dockerd


@dataclass
class Live:
    """What berthd holds in memory about a container beyond its record."""

    pending_attaches: list[Attachment] = field(default_factory=list)
    exit_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    remove_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    monitor: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: restart.RestartTracker = field(default_factory=restart.RestartTracker)
    restarter: asyncio.Task[None] | None = None  # waiting out the back-off, then starting it
    health_monitor: health.HealthMonitor | None = None


@contextlib.asynccontextmanager
async def task_op(c: Container, what: str) -> AsyncIterator[None]:
    """A task service failure as Docker words it: "Cannot pause container …: …"."""
    try:
        yield
    except TaskError as e:
        raise SystemError_(f"Cannot {what} container {c.id[:12]}: {e}") from None


class Lifecycle:
    """The lifecycle of one daemon's containers, over the manager's records."""

    def __init__(self, manager: ContainerManager) -> None:
        self.mgr = manager
        self.shutting_down = False  # its stops are not the user's: restart policies hold
        # The event loop keeps only weak references to tasks: a monitor or a restart that
        # waits on a stream (whose reader only its own frame holds) would otherwise be
        # collected mid-way, leaving a half-started container behind.
        self._tasks: set[asyncio.Task[None]] = set()

    # -- berthd's start: what survived it -------------------------------------------------

    async def restore(self, live_restore: bool) -> None:
        """After a restart: re-adopt containers whose shims still run, close out the rest.

        Without live-restore, survivors of a crash are killed, as dockerd does at start.
        """
        removing: list[Container] = []
        for c in list(self.mgr.containers.values()):
            state_dir = self.mgr.tasks.bundle(c.id)
            if c.state.status == Status.RESTARTING:  # berthd went away in the back-off
                states.move(c, Op.GIVE_UP)
                self.mgr._save(c)
            if not c.state.running:
                await self._repair_stopped(c, state_dir)
                if c.state.status == Status.REMOVING:
                    removing.append(c)
                continue
            try:
                task = await self.mgr.tasks.state(c.id)
            except TaskError:
                task = None
            if task is not None:
                # its shim still runs (the container may have exited meanwhile): the
                # monitor learns the exit from it either way
                log.info("container %s has its shim still running; watching it again", c.id[:12])
                await self.mgr._readopt_volumes(c)
                if self.mgr.network is not None:
                    await self.mgr.network.readopt(networking.sandbox_request(c), networking.sandbox_of(c))
                self._watch(c)
                if not live_restore and task.status in ("running", "paused"):
                    log.warning("live-restore is off: stopping container %s", c.id[:12])
                    with contextlib.suppress(TaskError):
                        await self.mgr.tasks.kill(c.id, signals.SIGKILL)
                        if task.status == "paused":
                            await self.mgr.tasks.resume(c.id)
                continue
            recorded = self.mgr.tasks.recorded_exit(c.id) or ExitStatus(255)
            log.warning("container %s lost its shim while berthd was away; recording it as exited", c.id[:12])
            states.move(c, Op.EXIT, State(exit_code=recorded.exit_code, started_at=c.state.started_at,
                                          finished_at=recorded.finished_at or now_rfc3339()))
            self._save_or_log(c)
            await self._release(c, state_dir, lost=True)
        if self.mgr.network is not None:
            removed = await self.mgr.network.reconcile()
            if removed:
                log.warning("removed what no container holds any more: %s", "; ".join(removed))
        for c in removing:  # berthd was killed while it removed these: the removal ends now
            log.warning("container %s was being removed when berthd stopped; removing it", c.id[:12])
            c.state.status = Status.DEAD
            try:
                await self._remove(c, volumes=True)  # as dockerd's restore removes it
            except (BerthError, OSError) as e:
                log.error("container %s: finishing its removal: %s", c.id[:12], e)
        await self._start_by_policy_at_boot()

    async def _start_by_policy_at_boot(self) -> None:
        """berthd starts: the stopped containers whose policy says so start again."""
        due = [c for c in self.mgr.containers.values()
               if c.state.status == Status.EXITED and restart.restart_at_daemon_start(
                   c.host_config.restart_policy, c.state.exit_code, c.manually_stopped,
                   not c.state.started_at.startswith("0001-"))]
        results = await asyncio.gather(*(self.start(c.id) for c in due), return_exceptions=True)
        for c, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("container %s: starting it by its restart policy: %s", c.id[:12], result)
            else:
                log.info("container %s started again by its restart policy", c.id[:12])

    async def _repair_stopped(self, c: Container, state_dir: str) -> None:
        """berthd was killed part-way through starting `c`, or cleaning up after its
        exit: whatever it holds of the start goes (its shim with what it created, the
        root's mount, its network, cgroup, volumes), and what was found is logged."""
        found = await self.mgr.tasks.remove_remains(c.id, defaults.cgroups_path(c))
        mounted = self.mgr.layers.mounted(c.id)
        if mounted:
            found.append("its root's mount")
        networked = bool(c.sandbox_key) or any(ep.result() is not None for ep in c.networks.values())
        if networked:
            found.append("its network")
        if os.path.isdir(state_dir):
            found.append("its bundle")
            await self._release(c, state_dir)  # the volumes too: it got as far as its bundle
        else:
            if mounted:
                self.mgr.layers.unmount(c.id)
            if networked:
                await self.mgr._release_network(c)
        if found:
            log.warning("container %s is %s but berthd had not finished with it; removed %s",
                        c.id[:12], c.state.status.value, ", ".join(found))

    # -- start, and the exit -------------------------------------------------------------------

    async def start(self, ref: str, *, by_restart_policy: bool = False) -> None:
        c = self.mgr.get(ref)
        live = self.mgr.live[c.id]
        async with live.lock:
            op = Op.RESTART if by_restart_policy else Op.START
            if by_restart_policy and not states.allowed(c.state.status, op):
                return  # stopped or removed while it waited
            states.check(c, op)
            if not by_restart_policy:  # the user's start: the restart policy starts over
                live.restarts = restart.RestartTracker()
                c.manually_stopped = False
            try:
                await self._start(c, live, op)
            except BaseException as e:
                self.mgr.layers.unmount(c.id)
                mounting.unmount_shm(os.path.join(self.mgr.data_root, c.id))
                await mounting.release(self.mgr.volumes, c)
                await self.mgr._release_network(c)
                if self.mgr.log_plugins is not None:
                    with contextlib.suppress(Exception):
                        await self.mgr.log_plugins.stop_logging(c.host_config.log_config.type, c.id)
                shutil.rmtree(self.mgr.tasks.bundle(c.id), ignore_errors=True)
                message = str(e)
                if isinstance(e, TaskError):
                    message = f"failed to create task for container: OCI runtime create failed: {e}"
                    code = 127 if ("executable file not found" in message or "no such file or directory" in message) else (
                        126 if "permission denied" in message else 128)
                    c.state.exit_code = code
                    e = InvalidParameter(message) if code in (126, 127) else SystemError_(message)
                c.state.error = message
                self.mgr._save(c)
                self.mgr.attacher.fail_pending(live)
                live.pending_attaches.clear()
                if c.host_config.auto_remove:
                    await self._remove(c, volumes=True)
                if isinstance(e, BerthError):
                    raise e from None
                raise

    async def _start(self, c: Container, live: Live, op: Op) -> None:
        image = self.mgr.images.resolve(c.image_id)
        root = self.mgr.layers.mount(c.id, image.chain_ids)
        h = c.host_config
        user = resolve_user(root, c.config.user, h.group_add)
        netns = await self.mgr._setup_network(c)
        if not h.network_mode.startswith("container:"):  # else the other's files, as they are
            etcfiles.write_etc_files(c, self.mgr._link_entries(c), self.mgr._host_gateway())
        user_mounts = await mounting.prepare(self.mgr.volumes, c, root)
        state_dir = self.mgr.tasks.bundle(c.id)
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, "exit.json"))
        shared = self.mgr._shared_namespaces(c)
        config = defaults.oci_config(c, root, user, netns, user_mounts, shared, self.mgr.link_env(c),
                                     self.mgr.daemon_defaults, self.mgr.id_maps_of(c))
        spec.write_bundle(state_dir, config)
        log_driver, log_options = h.log_config.type, log_drivers.shim_options(
            h.log_config.type, h.log_config.config, c.log_info())
        if self.mgr.log_plugins is not None and self.mgr.is_log_plugin(log_driver):
            log_driver, log_options = "plugin", await self.mgr.log_plugins.start_logging(log_driver, c.log_info())
        created = await self.mgr.tasks.create(CreateTaskRequest(
            container_id=c.id, bundle=state_dir, log_path=c.log_path, runtime=self.mgr.runtime_path(h.runtime),
            stdin=c.config.open_stdin, stdin_once=c.config.stdin_once, log_driver=log_driver,
            log_options=log_options))
        pid = created.pid
        await self.mgr.attacher.connect_pending(c, live)
        try:
            await self.mgr.tasks.start(c.id)
        except TaskError:
            with contextlib.suppress(TaskError):
                await self.mgr.tasks.kill(c.id, signals.SIGKILL)
            raise
        states.move(c, op, State(pid=pid, started_at=now_rfc3339()))
        live.exited.clear()
        self.mgr._save(c)
        self.mgr.on_event("start", c, {})
        self._watch(c)

    def _watch(self, c: Container) -> None:
        live = self.mgr.live[c.id]
        live.monitor = self._keep(self._monitor(c, live))
        self._start_health(c, live)

    def _keep(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task held until it is done (see _tasks)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _monitor(self, c: Container, live: Live) -> None:
        state_dir = self.mgr.tasks.bundle(c.id)
        ended: ExitStatus | None = None
        failures = 0
        while True:
            try:
                ended = await self.mgr.tasks.wait(c.id)
                break
            except TaskError as e:
                ended = self.mgr.tasks.recorded_exit(c.id)
                failures += 1
                if ended or not self.mgr.tasks.shim_present(c.id) or failures >= 5:
                    if not ended:
                        log.error("container %s: its shim is gone without recording an exit (%s)%s",
                                  c.id[:12], e, self.mgr.tasks.last_words(c.id))
                        await self._reap_lost(c)
                    break
                await asyncio.sleep(0.2)
        ended = ended or ExitStatus(255)
        exit_code = ended.exit_code
        await self._stop_health(live)
        delay = None if self.shutting_down else live.restarts.after_exit(
            c.host_config.restart_policy, exit_code, c.manually_stopped, seconds_since(c.state.started_at))
        async with live.lock:
            # the waiters of this exit are those already waiting: one that comes while the
            # exit is handled (a next-exit after a not-running wait saw it exited) waits on
            waiting, live.exit_waiters = live.exit_waiters, []
            states.move(c, Op.EXIT if delay is None else Op.EXIT_TO_RESTART,
                        State(exit_code=exit_code, started_at=c.state.started_at,
                              finished_at=ended.finished_at or now_rfc3339(), oom_killed=ended.oom_killed))
            if delay is not None:
                c.restart_count += 1
            self._save_or_log(c)
            with contextlib.suppress(TaskError):
                await self.mgr.tasks.delete(c.id)
            await self._release(c, state_dir)
            live.monitor = None
            live.exited.set()
            if c.state.oom_killed:
                self.mgr.on_event("oom", c, {})
            self.mgr.on_event("die", c, {"exitCode": str(exit_code), "execDuration": str(seconds_since(c.state.started_at))})
            # those waiting for the exit hear of it even when the restart policy brings the
            # container back: dockerd's not-running and next-exit conditions end here too
            for f in waiting:
                if not f.done():
                    f.set_result(exit_code)
            if delay is not None:
                live.restarter = self._keep(self._restart_after(c, live, delay))
        if c.host_config.auto_remove and c.id in self.mgr.containers:
            try:
                await self.remove(c.id, force=True, volumes=True)
            except BerthError as e:
                log.warning("auto-remove of %s failed: %s", c.id[:12], e)

    async def _release(self, c: Container, state_dir: str, lost: bool = False) -> None:
        """What a container that stopped held: its root's mount, volumes and network (and,
        when its shim is `lost`, its processes and cgroup), then its state directory.
        A step that fails is logged and the next one still runs, as dockerd's exit
        handling does: the exit must still reach those waiting for it."""
        steps: list[tuple[str, Callable[[], Awaitable[None] | None]]] = [
            ("unmounting its root", lambda: self.mgr.layers.unmount(c.id)),
            ("unmounting its shareable /dev/shm",
             lambda: mounting.unmount_shm(os.path.join(self.mgr.data_root, c.id))),
            ("releasing its volumes", lambda: mounting.release(self.mgr.volumes, c)),
            ("releasing its network", lambda: self.mgr._release_network(c)),
        ]
        if self.mgr.log_plugins is not None:
            plugins, driver = self.mgr.log_plugins, c.host_config.log_config.type
            steps.append(("stopping its log plugin", lambda: plugins.stop_logging(driver, c.id)))
        if lost:
            steps.append(("removing what is left of it", lambda: self._reap_lost(c)))
        for what, step in steps:
            try:
                pending = step()
                if pending is not None:
                    await pending
            except Exception as e:  # noqa: BLE001  (logged; the other steps must run)
                log.error("container %s: %s: %s", c.id[:12], what, e)
        shutil.rmtree(state_dir, ignore_errors=True)

    def _save_or_log(self, c: Container) -> None:
        """Record `c`; if the database cannot take it, berthd goes on with what it knows."""
        try:
            self.mgr._save(c)
        except sqlite3.Error as e:
            log.error("container %s: recording its state: %s", c.id[:12], e)

    async def _reap_lost(self, c: Container) -> None:
        """A shim died: kill what is left of its container and remove its cgroup."""
        await self.mgr.tasks.delete(c.id, lost=True)

    # -- restart policies and health checks ----------------------------------------------------

    def _resolve_exit_waiters(self, live: Live, exit_code: int) -> None:
        for f in live.exit_waiters:
            if not f.done():
                f.set_result(exit_code)
        live.exit_waiters.clear()

    async def _restart_after(self, c: Container, live: Live, delay: float) -> None:
        """The restart policy's start, after the back-off; when it fails the container
        stays exited, as Docker's does."""
        await asyncio.sleep(delay)
        if live.restarter is asyncio.current_task():
            live.restarter = None  # from here on a stop waits for this start, as for any other
        try:
            await self.start(c.id, by_restart_policy=True)
        except Exception as e:  # noqa: BLE001 - whatever failed, the container is left stopped
            log.warning("container %s: restart by its policy failed: %s", c.id[:12], e)
        self._stay_exited(c, live)

    def _stay_exited(self, c: Container, live: Live) -> None:
        if c.id in self.mgr.containers and c.state.status == Status.RESTARTING:
            states.move(c, Op.GIVE_UP)
            self.mgr._save(c)
            self._resolve_exit_waiters(live, c.state.exit_code)

    async def _stopped_by_user(self, c: Container, num: int | None) -> bool:
        """A stop (`num` None) or kill from the user: no restart of an `unless-stopped`
        container until the user starts it (after a stop, SIGKILL or the stop signal, of
        any), a pending restart called off. True when that left it stopped: nothing runs
        to be signalled."""
        live = self.mgr.live[c.id]
        if num in (None, signals.SIGKILL) or not c.config.stop_signal or num == parse_signal(c.config.stop_signal):
            live.restarts.cancelled = True
        if not self.shutting_down:
            c.manually_stopped = True
            self.mgr._save(c)
        if c.state.status != Status.RESTARTING:
            return False
        if live.restarter is not None:
            live.restarter.cancel()
            live.restarter = None
        else:
            async with live.lock:  # its start is under way: what runs after it is stopped as usual
                pass
        self._stay_exited(c, live)
        return not c.state.running

    def _start_health(self, c: Container, live: Live) -> None:
        """Probe a container that has a health check while it runs: "starting" again at
        each start, the log of the earlier runs kept (as Docker)."""
        check = c.config.healthcheck
        argv = health.probe_argv(check)
        if check is None or argv is None:
            return
        if c.health is None:
            c.health = Health()
        c.health.status, c.health.failing_streak = health.STARTING, 0
        self.mgr._save(c)

        def probed(changed: str | None) -> None:
            if c.id in self.mgr.containers:
                self.mgr._save(c)
                if changed:
                    self.mgr.on_event(f"health_status: {changed}", c, {})

        live.health_monitor = health.HealthMonitor(
            check, c.health, argv,
            run=lambda argv, timeout: self.mgr.exec_run(c.id, argv, timeout=timeout),
            on_probe=probed, paused=lambda: c.state.status == Status.PAUSED,
            started=time.monotonic() - seconds_since(c.state.started_at))
        live.health_monitor.start()

    async def _stop_health(self, live: Live) -> None:
        monitor, live.health_monitor = live.health_monitor, None
        if monitor is not None:
            await monitor.stop()

    # -- signals, stop, wait --------------------------------------------------------------

    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.mgr.get(ref)
        num = parse_signal(sig)
        if not c.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {c.id} is not running")
        if await self._stopped_by_user(c, num):
            self.mgr.on_event("kill", c, {"signal": str(num)})
            return
        try:
            await self.mgr.tasks.kill(c.id, num)
        except TaskError as e:
            raise SystemError_(f"cannot kill container: {ref}: {e}") from None
        await self._thaw_for_signal(c)
        self.mgr.on_event("kill", c, {"signal": str(num)})
        if num == signals.SIGKILL:
            # as dockerd: a SIGKILL returns once the container has exited (10 s at most), so
            # what the client asks next sees it stopped
            try:
                await asyncio.wait_for(self.mgr.live[c.id].exited.wait(), KILL_WAIT)
            except TimeoutError:
                log.warning("container %s did not exit within %d s of SIGKILL", c.id[:12], KILL_WAIT)

    async def _thaw_for_signal(self, c: Container) -> None:
        """A frozen process acts on no signal: a paused container is thawed to receive it."""
        if states.allowed(c.state.status, Op.THAW):
            with contextlib.suppress(TaskError):
                await self.mgr.tasks.resume(c.id)
            states.move(c, Op.THAW)
            self.mgr._save(c)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.mgr.get(ref)
        if not c.state.running:
            raise NotModified("container already stopped")
        live = self.mgr.live[c.id]
        num = parse_signal(sig or c.config.stop_signal or "SIGTERM")
        if await self._stopped_by_user(c, None):
            self.mgr.on_event("stop", c, {})
            return
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
        with contextlib.suppress(TaskError):
            await self.mgr.tasks.kill(c.id, num)
        await self._thaw_for_signal(c)
        self.mgr.on_event("kill", c, {"signal": str(num)})
        if timeout < 0:
            await live.exited.wait()
        else:
            try:
                await asyncio.wait_for(live.exited.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(TaskError):
                    await self.mgr.tasks.kill(c.id, signals.SIGKILL)
                self.mgr.on_event("kill", c, {"signal": str(int(signals.SIGKILL))})
                await live.exited.wait()
        self.mgr.on_event("stop", c, {})

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        c = self.mgr.get(ref)
        live = self.mgr.live[c.id]
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut: asyncio.Future[int] = loop.create_future()
            live.remove_waiters.append(fut)
            return await fut
        if condition == "not-running" and not c.state.running:
            return c.state.exit_code
        if condition not in ("not-running", "next-exit"):
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        fut = loop.create_future()
        live.exit_waiters.append(fut)
        return await fut

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        c = self.mgr.get(ref)
        if c.state.running:
            await self.stop(c.id, timeout)
        await self.start(c.id)
        self.mgr.on_event("restart", c, {})

    # -- pause --------------------------------------------------------------------------------

    async def pause(self, ref: str) -> None:
        c = self.mgr.get(ref)
        states.check(c, Op.PAUSE)
        async with task_op(c, "pause"):
            await self.mgr.tasks.pause(c.id)
        states.move(c, Op.PAUSE)
        self.mgr._save(c)
        self.mgr.on_event("pause", c, {})

    async def unpause(self, ref: str) -> None:
        c = self.mgr.get(ref)
        states.check(c, Op.UNPAUSE)
        async with task_op(c, "unpause"):
            await self.mgr.tasks.resume(c.id)
        states.move(c, Op.UNPAUSE)
        self.mgr._save(c)
        self.mgr.on_event("unpause", c, {})

    # -- remove ---------------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.mgr.get(ref)
        async with self.mgr.live[c.id].lock:  # a start under way ends first: nothing is removed under it
            pass
        if c.id not in self.mgr.containers:
            return
        if c.state.running:
            if not force:
                raise states.refusal(c, Op.REMOVE, ref)
            await self._stopped_by_user(c, signals.SIGKILL)
            with contextlib.suppress(TaskError):
                await self.mgr.tasks.kill(c.id, signals.SIGKILL)
            await self._thaw_for_signal(c)
            self.mgr.on_event("kill", c, {"signal": str(int(signals.SIGKILL))})
            await self.mgr.live[c.id].exited.wait()
        if c.id not in self.mgr.containers:
            return
        await self._remove(c, volumes)

    async def _remove(self, c: Container, volumes: bool = False) -> None:
        if c.id not in self.mgr.containers:
            return
        live = self.mgr.live[c.id]
        if live.monitor is not None and not live.exited.is_set() and live.monitor is not asyncio.current_task():
            await live.exited.wait()  # it exited, and its monitor is still cleaning up after it
            if c.id not in self.mgr.containers:
                return
        states.move(c, Op.REMOVE)

        def remove_files() -> None:  # a container's layer can be big: not on the event loop
            self.mgr.layers.remove_rw(c.id)
            # a shareable /dev/shm left mounted by a berthd that died: not emptied by rmtree
            mounting.unmount_shm(os.path.join(self.mgr.data_root, c.id))
            shutil.rmtree(os.path.join(self.mgr.data_root, c.id), ignore_errors=True)
            shutil.rmtree(self.mgr.tasks.bundle(c.id), ignore_errors=True)

        await asyncio.to_thread(remove_files)
        self.mgr.tasks.forget(c.id)
        self.mgr._forget(c)
        if volumes:
            await mounting.remove_anonymous(self.mgr.volumes, c, lambda name: bool(self.mgr.volume_users(name)))
        self.mgr.on_event("destroy", c, {})
        self.mgr.attacher.fail_pending(live)
        for f in live.exit_waiters + live.remove_waiters:
            if not f.done():
                f.set_result(c.state.exit_code)

    # -- berthd's end ---------------------------------------------------------------------------

    async def shutdown(self, live_restore: bool) -> None:
        """Without live-restore, stop every running container, as dockerd does."""
        self.shutting_down = True
        running = [c for c in self.mgr.containers.values() if c.state.running]
        if not live_restore and running:
            await asyncio.gather(*(self._stop_quietly(c) for c in running))
        for live in self.mgr.live.values():
            if live.monitor is not None:
                live.monitor.cancel()
            if live.restarter is not None:
                live.restarter.cancel()
            await self._stop_health(live)
        await self.mgr.tasks.close()

    async def _stop_quietly(self, c: Container) -> None:
        try:
            await asyncio.wait_for(self.stop(c.id), DEFAULT_STOP_TIMEOUT + 5)
        except (BerthError, TimeoutError) as e:
            log.warning("stopping %s at shutdown: %s", c.id[:12], e)


def seconds_since(stamp: str) -> int:
    """Whole seconds from an RFC 3339 time until now (a die event's execDuration)."""
    from berth.clock import parse_time

    try:
        return max(0, (time.time_ns() - parse_time(stamp)) // 1_000_000_000)
    except ValueError:
        return 0
