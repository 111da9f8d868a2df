"""Containers: creating them, the lifecycle state machine, and their records.

created --start--> running --(exit)--> exited --start--> running ...
   any state --remove--> gone   (running only with force: killed first)

A start mounts the root, writes the bundle, and has a shim create the container; the
attach streams that were waiting are connected before the shim lets the process
exec, so no output is lost. One monitor task per running container waits for the
exit, records it, unmounts, and removes the container when asked to (`--rm`).
Records are saved to SQLite at every transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal as signals
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from berth.clock import now_rfc3339
from berth.containers import execs, health, mounting, mounts, networking, restart
from berth.containers import stats as container_stats
from berth.containers.model import (
    Container,
    Health,
    HostConfig,
    LogConfig,
    RunConfig,
    State,
    Status,
)
from berth.containers.names import random_name
from berth.containers.users import resolve_user
from berth.errors import BerthError, Conflict, InvalidParameter, NotFound, NotModified, SystemError_
from berth.images.store import ImageStore
from berth.layers import changeset, diff
from berth.layers.store import LayerStore
from berth.logs import drivers as log_drivers
from berth.network.controller import NetworkController
from berth.network.model import EndpointRequest
from berth.runtime import rlimits, spec
from berth.shim import client as shimclient
from berth.volumes.store import VolumeStore

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signals.NSIG:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        try:
            return int(signals.Signals[name])
        except KeyError:
            pass
    raise InvalidParameter(f"Invalid signal: {value}")


@dataclass
class Attachment:
    """An attach request waiting for the container to start."""

    stdin: bool
    stdout: bool
    stderr: bool
    ready: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class Live:
    """What berthd holds in memory about a container beyond its record."""

    pending_attaches: list[Attachment] = field(default_factory=list)
    exit_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    remove_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    monitor: asyncio.Task[None] | None = None
    shim_proc: asyncio.subprocess.Process | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: restart.RestartTracker = field(default_factory=restart.RestartTracker)
    restarter: asyncio.Task[None] | None = None  # waiting out the back-off, then starting it
    health_monitor: health.HealthMonitor | None = None


class ContainerManager:
    def __init__(self, data_root: str, exec_root: str, db: sqlite3.Connection,
                 images: ImageStore, layers: LayerStore, volumes: VolumeStore,
                 network: NetworkController | None = None) -> None:
        self.data_root = os.path.join(data_root, "containers")
        self.exec_root = os.path.join(exec_root, "containers")
        # shim sockets get short paths: AF_UNIX paths are limited to 107 bytes
        self.socket_dir = os.path.join(exec_root, "s")
        self.db = db
        self.images = images
        self.layers = layers
        self.volumes = volumes
        self.network = network
        self.execs = execs.ExecService(self)
        if network is not None:
            network.named_by = lambda nid: [c.id for c in self.containers.values()
                                            if any(ep.network_id == nid for ep in c.networks.values())]
        self.containers: dict[str, Container] = {}
        self.live: dict[str, Live] = {}
        self.on_event: Callable[[str, Container, dict[str, str]], None] = lambda *a: None
        self.launcher = shimclient.Launcher(exec_root)
        self._reserved_names: set[str] = set()
        self.runtimes: dict[str, str] = {}
        self.default_runtime = "berth"
        self.default_log = LogConfig()  # daemon.json's log-driver and log-opts
        self._shutting_down = False  # its stops are not the user's: restart policies hold
        # The event loop keeps only weak references to tasks: a monitor or a restart that
        # waits on a stream (whose reader only its own frame holds) would otherwise be
        # collected mid-way, leaving a half-started container behind.
        self._tasks: set[asyncio.Task[None]] = set()
        os.makedirs(self.data_root, mode=0o710, exist_ok=True)
        os.makedirs(self.exec_root, mode=0o700, exist_ok=True)
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)

    def runtime_path(self, name: str) -> str:
        """'' for berth's own runtime inside the shim; else the OCI runtime binary.

        Known: berth, the daemon.json `runtimes`, and runc when it is installed (as in Docker).
        """
        name = name or self.default_runtime
        if name == "berth":
            return ""
        if name in self.runtimes:
            return self.runtimes[name]
        if name == "runc":
            path = shutil.which("runc", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            if path:
                return path
        raise InvalidParameter(f"unknown or invalid runtime name: {name}")

    def known_runtimes(self) -> dict[str, str]:
        known = {"berth": "berth-runtime"}
        runc = shutil.which("runc", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if runc:
            known["runc"] = runc
        known.update(self.runtimes)
        return known

    def _default_log_config(self, lc: LogConfig) -> None:
        """As dockerd: no driver named means the daemon's, and a container of the daemon's
        driver gets the daemon's options it does not set itself."""
        if not lc.type:
            lc.type = self.default_log.type
        if lc.type == self.default_log.type:
            for key, value in self.default_log.config.items():
                lc.config.setdefault(key, value)

    def _sock(self, cid: str) -> str:
        return os.path.join(self.socket_dir, cid[:24] + ".sock")

    # -- records ------------------------------------------------------------------------

    def _save(self, c: Container) -> None:
        self.db.execute("INSERT OR REPLACE INTO containers VALUES (?,?,?)",
                        (c.id, c.name, json.dumps(c.to_doc())))

    def load(self) -> None:
        for cid, doc in self.db.execute("SELECT id, doc FROM containers"):
            try:
                c = Container.from_doc(json.loads(doc))
            except (ValueError, TypeError, KeyError) as e:
                log.error("container %s has an unreadable record (%s); skipping it", cid[:12], e)
                continue
            self.containers[c.id] = c
            self.live[c.id] = Live()

    async def restore(self, live_restore: bool) -> None:
        """After a restart: re-adopt containers whose shims still run, close out the rest.

        Without live-restore, survivors of a crash are killed, as dockerd does at start.
        """
        for c in list(self.containers.values()):
            state_dir = os.path.join(self.exec_root, c.id)
            if c.state.status == Status.RESTARTING:  # berthd went away in the back-off
                c.state.status = Status.EXITED
                self._save(c)
            if not c.state.running:
                if os.path.isdir(state_dir):
                    await self._finish_cleanup(c, state_dir)
                continue
            try:
                doc = await shimclient.call(self._sock(c.id), {"op": "state"})
            except (shimclient.ShimError, OSError):
                doc = None
            if doc is not None:
                # its shim still runs (the container may have exited meanwhile): the
                # monitor learns the exit from it either way
                log.info("container %s has its shim still running; watching it again", c.id[:12])
                await self._readopt_volumes(c)
                if self.network is not None:
                    await self.network.readopt(networking.sandbox_request(c), networking.sandbox_of(c))
                self._watch(c)
                if not live_restore and doc.get("status") in ("running", "paused"):
                    log.warning("live-restore is off: stopping container %s", c.id[:12])
                    with contextlib.suppress(shimclient.ShimError):
                        await shimclient.call(self._sock(c.id), {"op": "kill", "signal": signals.SIGKILL})
                        if doc.get("status") == "paused":
                            await shimclient.call(self._sock(c.id), {"op": "resume"})
                continue
            exit_doc: dict[str, Any] = _read_exit_file(state_dir) or {}
            code = exit_doc.get("exit_code")
            log.warning("container %s lost its shim while berthd was away; recording it as exited", c.id[:12])
            c.state = State(status=Status.EXITED, exit_code=255 if code is None else int(code),
                            started_at=c.state.started_at,
                            finished_at=exit_doc.get("finished_at") or now_rfc3339())
            self._save_or_log(c)
            await self._release(c, state_dir, lost=True)
        await self._start_by_policy_at_boot()

    async def _release_network(self, c: Container) -> None:
        if self.network is not None:
            try:
                await self.network.release(networking.sandbox_of(c))
            except BerthError as e:
                log.warning("container %s: releasing its network: %s", c.id[:12], e)
            networking.forget_sandbox(c)
            self._save(c)

    async def _setup_network(self, c: Container) -> str | None:
        """The namespace the container joins: its own sandbox, another container's, or
        None (a private one the runtime makes, or the host's)."""
        mode = c.host_config.network_mode or "bridge"
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.running:
                raise Conflict(f"cannot join network namespace of a non running container: container "
                               f"{other.id} is {other.state.status.value}")
            return other.sandbox_key or f"/proc/{other.state.pid}/ns/net"
        if self.network is None:
            return None
        return networking.keep_sandbox(c, await self.network.setup(networking.sandbox_request(c)))

    def _host_gateway(self) -> str:
        if self.network is None:
            return ""
        try:
            bridge = self.network.get("bridge")
        except NotFound:
            return ""
        return next((s.gateway for s in bridge.subnets if s.gateway and ":" not in s.gateway), "")

    def _link_entries(self, c: Container) -> list[tuple[str, str, str]]:
        """--link name:alias on the default bridge: /etc/hosts lines for the linked containers."""
        out: list[tuple[str, str, str]] = []
        if "bridge" not in c.networks:
            return out  # on user-defined networks a link is a DNS alias of the container's own
        for link in c.host_config.links:
            name, _, alias = link.partition(":")
            try:
                other = self.get(name)
            except NotFound:
                continue
            address = next((ep.ipv4 for ep in other.networks.values() if ep.ipv4), "")
            if address:
                out.append((address, alias if alias != other.name else "", f"{other.id[:12]} {other.name}"))
        return out

    async def _readopt_volumes(self, c: Container) -> None:
        """A container that ran on across a berthd restart holds its volumes still."""
        for mp in c.mounts:
            if mp.type == "volume":
                with contextlib.suppress(BerthError):
                    await self.volumes.mount(self.volumes.get(mp.name), c.id)

    def volume_users(self, name: str) -> list[str]:
        """IDs of the containers (running or not) that mount volume `name`."""
        return [c.id for c in self.containers.values()
                if any(mp.type == "volume" and mp.name == name for mp in c.mounts)]

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without "/"), or unique ID prefix."""
        if not ref:
            raise NotFound("No such container: ")
        c = self.containers.get(ref)
        if c:
            return c
        name = ref.lstrip("/")
        for c in self.containers.values():
            if c.name == name:
                return c
        matches = [c for cid, c in self.containers.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple containers found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        return sorted(self.containers.values(), key=lambda c: c.created, reverse=True)

    def images_in_use(self) -> dict[str, tuple[str, bool]]:
        used: dict[str, tuple[str, bool]] = {}
        for c in self.containers.values():
            if c.image_id not in used or c.state.running:
                used[c.image_id] = (c.id, c.state.running)
        return used

    # -- create ---------------------------------------------------------------------------

    def _check_name(self, name: str) -> str:
        if not NAME_RE.match(name):
            raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = name.lstrip("/")
        others = [(c.name, c.id) for c in self.containers.values()]
        others += [(n, "(being created)") for n in self._reserved_names]
        for other_name, other_id in others:
            if other_name == name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{other_id}". You have to remove (or rename) that container to be able '
                               "to reuse that name.")
        return name

    def _plan_network(self, host: HostConfig, requests: dict[str, EndpointRequest],
                      hostname: str = "") -> dict[str, Any]:
        mode = host.network_mode or "bridge"
        if self.network is None or (mode in ("bridge", "default") and self.network.default_bridge == "none"):
            if mode in ("bridge", "default"):
                host.network_mode = "none" if self.network is not None else mode
            return {}
        if mode.startswith("container:"):
            try:
                other = self.get(mode.split(":", 1)[1])
            except NotFound:
                raise InvalidParameter(f"No such container: {mode.split(':', 1)[1]}") from None
            host.network_mode = f"container:{other.id}"
            if host.port_bindings or host.publish_all_ports:
                raise InvalidParameter("conflicting options: port publishing and the container type network mode")
            if host.dns or host.extra_hosts:
                raise InvalidParameter("conflicting options: dns and the network mode")
            if hostname:
                raise InvalidParameter("conflicting options: hostname and the network mode")
            return {}
        if mode == "host" and (host.port_bindings or host.publish_all_ports):
            log.info("published ports are discarded when using host network mode")
            host.port_bindings, host.publish_all_ports = {}, False
        for link in host.links:
            name = link.split(":", 1)[0].lstrip("/")
            try:
                self.get(name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {name}") from None
        try:
            return self.network.plan_endpoints(mode, requests)
        except NotFound as e:  # a 404 here would make the docker CLI try to pull the image
            raise InvalidParameter(str(e)) from None

    async def create(self, name: str | None, config: RunConfig, host: HostConfig,
                     requests: dict[str, EndpointRequest] | None = None) -> Container:
        if name:
            name = self._check_name(name)
        else:
            taken = {c.name for c in self.containers.values()} | self._reserved_names
            name = random_name(taken)
        image = self.images.resolve(config.image)
        defaults = image.config.config
        if config.cmd is None and config.entrypoint is None:
            config.cmd = defaults.cmd
        if config.entrypoint is None:
            config.entrypoint = defaults.entrypoint
        elif config.entrypoint == [""] or config.entrypoint == []:
            config.entrypoint = None
        argv = (config.entrypoint or []) + (config.cmd or [])
        if not argv:
            raise InvalidParameter("no command specified")
        env = _merge_env(defaults.env, config.env)
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH)
        config.env = env
        config.working_dir = config.working_dir or defaults.working_dir
        if config.working_dir and not config.working_dir.startswith("/"):
            raise InvalidParameter(f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path")
        config.user = config.user or defaults.user
        config.labels = {**defaults.labels, **config.labels}
        config.stop_signal = config.stop_signal or defaults.stop_signal
        health.validate(config.healthcheck)
        config.healthcheck = health.merge(config.healthcheck, defaults.healthcheck)
        config.exposed_ports = sorted(set(config.exposed_ports) | set(defaults.exposed_ports))
        config.volumes = sorted(set(config.volumes) | set(defaults.volumes))
        if config.stop_signal:
            parse_signal(config.stop_signal)
        inherited = [(self.get(other), mode) for other, mode in map(mounts.parse_volumes_from, host.volumes_from)]
        endpoints = self._plan_network(host, requests or {}, config.hostname)
        points = mounts.plan(host.binds, host.mounts, config.volumes, inherited, host.tmpfs.keys(),
                             host.volume_driver)
        restart.validate_policy(host.restart_policy)
        if host.auto_remove and host.restart_policy.name not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        host.runtime = host.runtime or self.default_runtime
        self.runtime_path(host.runtime)  # refuse an unknown runtime at create, as Docker does
        self._default_log_config(host.log_config)
        log_drivers.validate(host.log_config.type, host.log_config.config)
        cid = secrets.token_hex(32)
        mode = host.network_mode or ""
        if not config.hostname and mode == "host":
            config.hostname = socket.gethostname()
        elif not config.hostname and mode.startswith("container:"):
            config.hostname = self.get(mode.split(":", 1)[1]).config.hostname
        config.hostname = config.hostname or cid[:12]
        if config.cmd is not None and config.entrypoint is None:
            path, args = config.cmd[0], config.cmd[1:]
        else:
            path, args = argv[0], argv[1:]
        c = Container(id=cid, name=name, created=now_rfc3339(), image_id=image.id, config=config,
                      host_config=host, path=path, args=args, driver=self.layers.driver, mounts=points,
                      networks=endpoints)
        cdir = os.path.join(self.data_root, cid)
        self._reserved_names.add(name)  # held across the awaits below
        new_volumes: list[str] = []
        try:
            new_volumes = await mounting.create_volumes(self.volumes, points)
            os.makedirs(cdir, mode=0o710)
            c.log_path = log_drivers.log_path(host.log_config.type, host.log_config.config, cdir, cid)
            if c.log_path:
                os.makedirs(os.path.dirname(c.log_path), mode=0o710, exist_ok=True)
            c.hostname_path = os.path.join(cdir, "hostname")
            c.hosts_path = os.path.join(cdir, "hosts")
            c.resolv_conf_path = os.path.join(cdir, "resolv.conf")
            # a vfs driver copies the whole image here: not on the event loop
            await asyncio.to_thread(self.layers.create_rw, cid, image.chain_ids)
            self._save(c)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            self.layers.remove_rw(cid)
            self.db.execute("DELETE FROM containers WHERE id=?", (cid,))
            await mounting.remove_volumes(self.volumes, new_volumes)
            raise
        finally:
            self._reserved_names.discard(name)
        self.containers[cid] = c
        self.live[cid] = Live()
        self.on_event("create", c, {})
        return c

    # -- start --------------------------------------------------------------------------------

    async def start(self, ref: str, *, by_restart_policy: bool = False) -> None:
        c = self.get(ref)
        live = self.live[c.id]
        async with live.lock:
            if by_restart_policy and c.state.status != Status.RESTARTING:
                return  # stopped or removed while it waited
            if not by_restart_policy and c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
                raise NotModified("container already started")
            if c.state.status == Status.REMOVING:
                raise Conflict(f"container {c.id[:12]} is marked for removal and cannot be started")
            if not by_restart_policy:  # the user's start: the restart policy starts over
                live.restarts = restart.RestartTracker()
                c.manually_stopped = False
            try:
                await self._start(c, live)
            except BaseException as e:
                self.layers.unmount(c.id)
                await mounting.release(self.volumes, c)
                await self._release_network(c)
                shutil.rmtree(os.path.join(self.exec_root, c.id), ignore_errors=True)
                message = str(e)
                if isinstance(e, shimclient.ShimError):
                    message = f"failed to create task for container: OCI runtime create failed: {e}"
                    code = 127 if ("executable file not found" in message or "no such file or directory" in message) else (
                        126 if "permission denied" in message else 128)
                    c.state.exit_code = code
                    e = InvalidParameter(message) if code in (126, 127) else SystemError_(message)
                c.state.error = message
                self._save(c)
                for a in live.pending_attaches:
                    if not a.ready.done():
                        a.ready.set_result(None)
                live.pending_attaches.clear()
                if c.host_config.auto_remove:
                    await self._remove(c, volumes=True)
                if isinstance(e, BerthError):
                    raise e from None
                raise

    async def _start(self, c: Container, live: Live) -> None:
        image = self.images.resolve(c.image_id)
        root = self.layers.mount(c.id, image.chain_ids)
        h = c.host_config
        user = resolve_user(root, c.config.user, h.group_add)
        env = list(c.config.env)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home}")
        if c.config.tty and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        if not any(e.startswith("HOSTNAME=") for e in env):
            env.insert(1 if env and env[0].startswith("PATH=") else 0, f"HOSTNAME={c.config.hostname}")
        netns = await self._setup_network(c)
        _write_etc_files(c, self._link_entries(c), self._host_gateway())
        user_mounts = await mounting.prepare(self.volumes, c, root)
        state_dir = os.path.join(self.exec_root, c.id)
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, "exit.json"))
        try:
            config = spec.build_config(spec.BundleRequest(
                root=root, args=[c.path, *c.args], env=env, cwd=c.config.working_dir or "/",
                uid=user.uid, gid=user.gid, additional_gids=user.additional_gids,
                network_namespace=netns, host_network=h.network_mode == "host",
                hostname=c.config.hostname, terminal=c.config.tty, console_size=h.console_size,
                files={"/etc/resolv.conf": c.resolv_conf_path, "/etc/hostname": c.hostname_path,
                       "/etc/hosts": c.hosts_path},
                cgroups_path=f"/berth/{c.id}",
                limits=limits_of(h),
                security=security_of(h),
                rlimits=[rlimits.from_docker(n, soft, hard).to_oci() for n, soft, hard in h.ulimits],
                sysctl=h.sysctls, devices=h.devices, tmpfs=h.tmpfs, shm_size=h.shm_size, mounts=user_mounts,
                oom_score_adj=h.oom_score_adj, init=_init_binary() if h.init else "",
            ))
        except (spec.SpecBuildError, rlimits.UlimitError) as e:
            raise InvalidParameter(str(e)) from None
        spec.write_bundle(state_dir, config)
        proc, pid = await self.launcher.spawn(shimclient.ShimOptions(
            container_id=c.id, bundle=state_dir, state_dir=state_dir, socket=self._sock(c.id),
            log_path=c.log_path, runtime=self.runtime_path(h.runtime),
            stdin=c.config.open_stdin, stdin_once=c.config.stdin_once, log_driver=h.log_config.type,
            log_options=log_drivers.shim_options(h.log_config.type, h.log_config.config,
                                                 log_drivers.ContainerInfo.of(c))))
        live.shim_proc = proc
        for a in live.pending_attaches:
            try:
                streams = await shimclient.attach(self._sock(c.id), a.stdin, a.stdout, a.stderr)
            except shimclient.ShimError:
                streams = None
            if not a.ready.done():
                a.ready.set_result(streams)
            elif streams:
                streams[1].close()
        live.pending_attaches.clear()
        try:
            await shimclient.call(self._sock(c.id), {"op": "start"})
        except shimclient.ShimError:
            with contextlib.suppress(shimclient.ShimError):
                await shimclient.call(self._sock(c.id), {"op": "kill", "signal": 9})
            raise
        c.state = State(status=Status.RUNNING, pid=pid, started_at=now_rfc3339())
        live.exited.clear()
        self._save(c)
        self.on_event("start", c, {})
        self._watch(c)

    def _watch(self, c: Container) -> None:
        live = self.live[c.id]
        live.monitor = self._keep(self._monitor(c, live))
        self._start_health(c, live)

    def _keep(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task held until it is done (see _tasks)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _monitor(self, c: Container, live: Live) -> None:
        state_dir = os.path.join(self.exec_root, c.id)
        doc: dict[str, Any] = {}
        failures = 0
        while True:
            try:
                doc = await shimclient.call(self._sock(c.id), {"op": "wait"})
                break
            except shimclient.ShimError as e:
                doc = dict(_read_exit_file(state_dir) or {})
                failures += 1
                if doc or not os.path.exists(self._sock(c.id)) or failures >= 5:
                    if not doc:
                        log.error("container %s: its shim is gone without recording an exit (%s)%s",
                                  c.id[:12], e, _shim_log(state_dir))
                        await self._reap_lost(c)
                    break
                await asyncio.sleep(0.2)
        code = doc.get("exit_code")
        exit_code = 255 if code is None else int(code)
        await self._stop_health(live)
        delay = None if self._shutting_down else live.restarts.after_exit(
            c.host_config.restart_policy, exit_code, c.manually_stopped, _seconds_since(c.state.started_at))
        async with live.lock:
            c.state = State(status=Status.EXITED if delay is None else Status.RESTARTING,
                            exit_code=exit_code, started_at=c.state.started_at,
                            finished_at=str(doc.get("finished_at") or now_rfc3339()),
                            oom_killed=bool(doc.get("oom_killed")))
            if delay is not None:
                c.restart_count += 1
            self._save_or_log(c)
            with contextlib.suppress(shimclient.ShimError):
                await shimclient.call(self._sock(c.id), {"op": "delete"})
            if live.shim_proc is not None:
                await live.shim_proc.wait()
                live.shim_proc = None
            await self._release(c, state_dir)
            live.monitor = None
            live.exited.set()
            if c.state.oom_killed:
                self.on_event("oom", c, {})
            self.on_event("die", c, {"exitCode": str(exit_code), "execDuration": str(_seconds_since(c.state.started_at))})
            if delay is None:
                self._resolve_exit_waiters(live, exit_code)
            else:  # waiters wait on: the container is not stopped, it is restarting
                live.restarter = self._keep(self._restart_after(c, live, delay))
        if c.host_config.auto_remove and c.id in self.containers:
            try:
                await self.remove(c.id, force=True, volumes=True)
            except BerthError as e:
                log.warning("auto-remove of %s failed: %s", c.id[:12], e)

    async def _finish_cleanup(self, c: Container, state_dir: str) -> None:
        """berthd died between recording a container's exit and cleaning up after it:
        its shim, root mount, volumes and cgroup may still be there."""
        log.warning("container %s exited while berthd was cleaning up; finishing that", c.id[:12])
        with contextlib.suppress(shimclient.ShimError, OSError):
            await shimclient.call(self._sock(c.id), {"op": "delete"})
        await self._release(c, state_dir, lost=True)

    async def _release(self, c: Container, state_dir: str, lost: bool = False) -> None:
        """What a container that stopped held: its root's mount, volumes and network (and,
        when its shim is `lost`, its processes and cgroup), then its state directory.
        A step that fails is logged and the next one still runs, as dockerd's exit
        handling does: the exit must still reach those waiting for it."""
        steps: list[tuple[str, Callable[[], Awaitable[None] | None]]] = [
            ("unmounting its root", lambda: self.layers.unmount(c.id)),
            ("releasing its volumes", lambda: mounting.release(self.volumes, c)),
            ("releasing its network", lambda: self._release_network(c)),
        ]
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
            self._save(c)
        except sqlite3.Error as e:
            log.error("container %s: recording its state: %s", c.id[:12], e)

    async def _reap_lost(self, c: Container) -> None:
        """A shim died: kill what is left of its container and remove the cgroup."""
        from berth.runtime import cgroups

        def clean() -> None:
            try:
                cgroups.open_manager(f"/berth/{c.id}").destroy(kill=True)
            except Exception as e:  # noqa: BLE001
                log.warning("container %s: removing its cgroup: %s", c.id[:12], e)

        await asyncio.to_thread(clean)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._sock(c.id))

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
        if c.id in self.containers and c.state.status == Status.RESTARTING:
            c.state.status = Status.EXITED
            self._save(c)
            self._resolve_exit_waiters(live, c.state.exit_code)

    async def _stopped_by_user(self, c: Container, num: int | None) -> bool:
        """A stop (`num` None) or kill from the user: no restart of an `unless-stopped`
        container until the user starts it (after a stop, SIGKILL or the stop signal, of
        any), a pending restart called off. True when that left it stopped: nothing runs
        to be signalled."""
        live = self.live[c.id]
        if num in (None, signals.SIGKILL) or not c.config.stop_signal or num == parse_signal(c.config.stop_signal):
            live.restarts.cancelled = True
        if not self._shutting_down:
            c.manually_stopped = True
            self._save(c)
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
        self._save(c)

        def probed(changed: str | None) -> None:
            if c.id in self.containers:
                self._save(c)
                if changed:
                    self.on_event(f"health_status: {changed}", c, {})

        live.health_monitor = health.HealthMonitor(
            check, c.health, argv,
            run=lambda argv, timeout: self.exec_run(c.id, argv, timeout=timeout),
            on_probe=probed, paused=lambda: c.state.status == Status.PAUSED,
            started=time.monotonic() - _seconds_since(c.state.started_at))
        live.health_monitor.start()

    async def _stop_health(self, live: Live) -> None:
        monitor, live.health_monitor = live.health_monitor, None
        if monitor is not None:
            await monitor.stop()

    async def _start_by_policy_at_boot(self) -> None:
        """berthd starts: the stopped containers whose policy says so start again."""
        due = [c for c in self.containers.values()
               if c.state.status == Status.EXITED and restart.restart_at_daemon_start(
                   c.host_config.restart_policy, c.state.exit_code, c.manually_stopped,
                   not c.state.started_at.startswith("0001-"))]
        results = await asyncio.gather(*(self.start(c.id) for c in due), return_exceptions=True)
        for c, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("container %s: starting it by its restart policy: %s", c.id[:12], result)
            else:
                log.info("container %s started again by its restart policy", c.id[:12])

    # -- signals, stop, wait --------------------------------------------------------------

    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        num = parse_signal(sig)
        if not c.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {c.id} is not running")
        if await self._stopped_by_user(c, num):
            self.on_event("kill", c, {"signal": str(num)})
            return
        try:
            await shimclient.call(self._sock(c.id), {"op": "kill", "signal": num})
        except shimclient.ShimError as e:
            raise SystemError_(f"cannot kill container: {ref}: {e}") from None
        await self._thaw_for_signal(c)
        self.on_event("kill", c, {"signal": str(num)})

    async def _thaw_for_signal(self, c: Container) -> None:
        """A frozen process acts on no signal: a paused container is thawed to receive it."""
        if c.state.status == Status.PAUSED:
            with contextlib.suppress(shimclient.ShimError):
                await shimclient.call(self._sock(c.id), {"op": "resume"})
            c.state.status = Status.RUNNING
            self._save(c)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotModified("container already stopped")
        live = self.live[c.id]
        num = parse_signal(sig or c.config.stop_signal or "SIGTERM")
        if await self._stopped_by_user(c, None):
            self.on_event("stop", c, {})
            return
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
        sock = self._sock(c.id)
        with contextlib.suppress(shimclient.ShimError):
            await shimclient.call(sock, {"op": "kill", "signal": num})
        await self._thaw_for_signal(c)
        self.on_event("kill", c, {"signal": str(num)})
        if timeout < 0:
            await live.exited.wait()
        else:
            try:
                await asyncio.wait_for(live.exited.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(shimclient.ShimError):
                    await shimclient.call(sock, {"op": "kill", "signal": signals.SIGKILL})
                self.on_event("kill", c, {"signal": str(int(signals.SIGKILL))})
                await live.exited.wait()
        self.on_event("stop", c, {})

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        c = self.get(ref)
        live = self.live[c.id]
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
        c = self.get(ref)
        if c.state.running:
            await self.stop(c.id, timeout)
        await self.start(c.id)
        self.on_event("restart", c, {})

    # -- pause, update, top ----------------------------------------------------------------

    async def _shim_op(self, c: Container, doc: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return await shimclient.call(self._sock(c.id), doc)
        except shimclient.ShimError as e:
            raise SystemError_(f"Cannot {what} container {c.id[:12]}: {e}") from None

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status == Status.PAUSED:
            raise Conflict(f"Container {c.id} is already paused")
        if c.state.status != Status.RUNNING:
            raise Conflict(f"Container {c.id} is not running")
        await self._shim_op(c, {"op": "pause"}, "pause")
        c.state.status = Status.PAUSED
        self._save(c)
        self.on_event("pause", c, {})

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status != Status.PAUSED:
            raise Conflict(f"Container {c.id} is not paused")
        await self._shim_op(c, {"op": "resume"}, "unpause")
        c.state.status = Status.RUNNING
        self._save(c)
        self.on_event("unpause", c, {})

    async def update(self, ref: str, changes: dict[str, Any]) -> list[str]:
        """Change resource limits, on the record and, when it runs, on the container."""
        c = self.get(ref)
        h = c.host_config
        policy = changes.get("restart_policy")
        if policy is not None:  # read at the next exit: nothing more to do for a running container
            restart.validate_policy(policy)
            if h.auto_remove and policy.name not in ("", "no"):
                raise InvalidParameter(f"Cannot update container {c.id}: Restart policy cannot be updated "
                                       "because AutoRemove is enabled for the container")
        for key, value in changes.items():
            setattr(h, key, value)
        if c.state.status in (Status.RUNNING, Status.PAUSED):
            resources = limits_of(h).to_oci()
            resources.pop("devices", None)
            await self._shim_op(c, {"op": "update", "resources": resources}, "update")
        self._save(c)
        self.on_event("update", c, {})
        return []

    async def top(self, ref: str) -> list[int]:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if c.state.status == Status.RESTARTING:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        doc = await self._shim_op(c, {"op": "pids"}, "list processes of")
        self.on_event("top", c, {})
        return [int(p) for p in doc.get("pids", [])]

    async def stats(self, c: Container) -> container_stats.Sample | None:
        """One sample of the container's resource usage; None unless it runs."""
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or not c.state.pid:
            return None
        # The interfaces are those of the namespace it runs in: its own, or another
        # container's (network mode "container:…"), whose endpoints name them.
        owner = c
        mode = c.host_config.network_mode
        if mode.startswith("container:"):
            with contextlib.suppress(BerthError):
                owner = self.get(mode.partition(":")[2])
        interfaces = {ep.ifname for ep in owner.networks.values() if ep.ifname}
        return await asyncio.to_thread(container_stats.take_sample, f"/berth/{c.id}", c.state.pid, interfaces,
                                       os.path.join(self.exec_root, c.id))

    # -- remove, rename ------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.running:
            if not force:
                state = "restarting" if c.state.status == Status.RESTARTING else "running"
                raise Conflict(f'cannot remove container "/{c.name}": container is {state}: '
                               "stop the container before removing or force remove")
            await self._stopped_by_user(c, signals.SIGKILL)
            with contextlib.suppress(shimclient.ShimError):
                await shimclient.call(self._sock(c.id), {"op": "kill", "signal": signals.SIGKILL})
            await self._thaw_for_signal(c)
            self.on_event("kill", c, {"signal": str(int(signals.SIGKILL))})
            await self.live[c.id].exited.wait()
        if c.id not in self.containers:
            return
        await self._remove(c, volumes)

    async def _remove(self, c: Container, volumes: bool = False) -> None:
        if c.id not in self.containers:
            return
        live = self.live[c.id]
        if live.monitor is not None and not live.exited.is_set() and live.monitor is not asyncio.current_task():
            await live.exited.wait()  # it exited, and its monitor is still cleaning up after it
            if c.id not in self.containers:
                return
        if c.state.status == Status.REMOVING:
            raise Conflict(f"removal of container {c.id[:12]} is already in progress")
        c.state.status = Status.REMOVING

        def remove_files() -> None:  # a container's layer can be big: not on the event loop
            self.layers.remove_rw(c.id)
            shutil.rmtree(os.path.join(self.data_root, c.id), ignore_errors=True)
            shutil.rmtree(os.path.join(self.exec_root, c.id), ignore_errors=True)

        await asyncio.to_thread(remove_files)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._sock(c.id))
        self.db.execute("DELETE FROM containers WHERE id=?", (c.id,))
        del self.containers[c.id]
        del self.live[c.id]
        self.execs.forget_container(c.id)
        if volumes:
            await mounting.remove_anonymous(self.volumes, c, lambda name: bool(self.volume_users(name)))
        self.on_event("destroy", c, {})
        for a in live.pending_attaches:
            if not a.ready.done():
                a.ready.set_result(None)
        for f in live.exit_waiters + live.remove_waiters:
            if not f.done():
                f.set_result(c.state.exit_code)

    async def exec_run(self, ref: str, argv: list[str], *, timeout: float | None = None, user: str = "",
                       env: list[str] | None = None) -> tuple[int, bytes]:
        """Run argv in the running container; (exit code, stdout and stderr). Conflict when
        it does not run; TimeoutError (the process killed) after `timeout` seconds."""
        return await self.execs.run(ref, argv, timeout=timeout, user=user, env=env)

    async def connect(self, ref: str, network: str, req: EndpointRequest) -> None:
        """`docker network connect`: joins at once when the container runs."""
        c = self.get(ref)
        if self.network is None:
            raise NotFound(f"network {network} not found")
        async with self.live[c.id].lock:
            name, ep = await self.network.connect(networking.sandbox_request(c), network, req)
            c.networks[name] = ep
            self._save(c)
            if c.state.running:
                _write_etc_files(c, self._link_entries(c), self._host_gateway())

    async def disconnect(self, ref: str, network: str, force: bool = False) -> None:
        try:
            c = self.get(ref)
        except NotFound:
            if force:
                return
            raise
        if self.network is None:
            raise NotFound(f"network {network} not found")
        async with self.live[c.id].lock:
            del c.networks[await self.network.disconnect(networking.sandbox_request(c), network, force)]
            self._save(c)

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        name = self._check_name(new_name)
        old = c.name
        c.name = name
        try:
            self._save(c)
        except sqlite3.IntegrityError:
            c.name = old
            raise Conflict(f'Conflict. The container name "/{name}" is already in use') from None
        if self.network is not None:
            self.network.rename(c.id, name)
        self.on_event("rename", c, {"oldName": "/" + old})

    # -- attach -----------------------------------------------------------------------------

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Streams to the container's stdio; None when it is not (or no longer) running."""
        c = self.get(ref)
        live = self.live[c.id]
        self.on_event("attach", c, {})
        async with live.lock:
            if c.state.status == Status.RUNNING:
                try:
                    return await shimclient.attach(self._sock(c.id), stdin, stdout, stderr)
                except shimclient.ShimError:
                    return None
            if c.state.status == Status.CREATED or c.state.status == Status.EXITED:
                a = Attachment(stdin, stdout, stderr)
                live.pending_attaches.append(a)
                fut = a.ready
            else:
                return None
        return await fut

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"cannot resize container {c.id[:12]}: container is not running")
        try:
            await shimclient.call(self._sock(c.id), {"op": "resize", "height": height, "width": width})
        except shimclient.ShimError:
            return
        self.on_event("resize", c, {"height": str(height), "width": str(width)})

    def detach_pending(self, ref: str, attachment_future: Awaitable[object]) -> None:
        """Forget an attach whose client went away before the start."""
        with contextlib.suppress(NotFound):
            c = self.get(ref)
            live = self.live[c.id]
            live.pending_attaches = [a for a in live.pending_attaches if a.ready is not attachment_future]

    # -- filesystem (cp, diff, export) -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def root_of(self, ref: str) -> AsyncIterator[tuple[Container, str]]:
        """The container's merged root; a stopped one is mounted for the duration only,
        under its lock so that a start waits for it."""
        c = self.get(ref)
        live = self.live[c.id]
        await live.lock.acquire()
        locked = True
        try:
            if c.state.status == Status.REMOVING:
                raise Conflict(f"container {c.id[:12]} is marked for removal")
            if c.state.running:
                live.lock.release()
                locked = False
                yield c, self.layers.mount(c.id, self.images.resolve(c.image_id).chain_ids)
                return
            root = self.layers.mount(c.id, self.images.resolve(c.image_id).chain_ids)
            try:
                yield c, root
            finally:
                self.layers.unmount(c.id)
        finally:
            if locked:
                live.lock.release()

    async def changes(self, ref: str) -> list[diff.Change]:
        c = self.get(ref)
        chain_ids = self.images.resolve(c.image_id).chain_ids
        lowers = [self.layers.diff_dir(chain) for chain in reversed(chain_ids)]
        upper = self.layers.upper_dir(c.id)
        return await asyncio.to_thread(diff.changes, upper, lowers)

    async def write_changes(self, ref: str, out: IO[bytes], pause: bool = True) -> Container:
        """The container's changes as a layer tar (for `docker commit`), written to `out`.

        A running container is paused while its upperdir is read, when `pause`, and
        resumed after, whatever happens; one paused already stays paused."""
        c = self.get(ref)
        chain_ids = self.images.resolve(c.image_id).chain_ids
        lowers = [self.layers.diff_dir(chain) for chain in reversed(chain_ids)]
        upper = self.layers.upper_dir(c.id)
        paused_here = pause and c.state.status == Status.RUNNING
        if paused_here:
            await self.pause(c.id)
        try:
            await asyncio.to_thread(changeset.write_changes, upper, lowers, out)
        finally:
            if paused_here and c.state.status == Status.PAUSED:
                await self.unpause(c.id)
        return c

    # -- shutdown ---------------------------------------------------------------------------

    async def shutdown(self, live_restore: bool) -> None:
        """Without live-restore, stop every running container, as dockerd does."""
        self._shutting_down = True
        running = [c for c in self.containers.values() if c.state.running]
        if not live_restore and running:
            await asyncio.gather(*(self._stop_quietly(c) for c in running))
        for live in self.live.values():
            if live.monitor is not None:
                live.monitor.cancel()
            if live.restarter is not None:
                live.restarter.cancel()
            await self._stop_health(live)
        await self.launcher.stop()

    async def _stop_quietly(self, c: Container) -> None:
        try:
            await asyncio.wait_for(self.stop(c.id), DEFAULT_STOP_TIMEOUT + 5)
        except (BerthError, TimeoutError) as e:
            log.warning("stopping %s at shutdown: %s", c.id[:12], e)


def limits_of(h: HostConfig) -> spec.Limits:
    return spec.Limits(
        memory=h.memory, memory_swap=h.memory_swap, memory_reservation=h.memory_reservation,
        memory_swappiness=h.memory_swappiness, oom_kill_disable=h.oom_kill_disable,
        nano_cpus=h.nano_cpus, cpu_shares=h.cpu_shares, cpu_period=h.cpu_period, cpu_quota=h.cpu_quota,
        cpuset_cpus=h.cpuset_cpus, cpuset_mems=h.cpuset_mems, pids_limit=h.pids_limit,
        blkio_weight=h.blkio_weight)


def security_options(opts: list[str]) -> list[tuple[str, str]]:
    """`--security-opt` values as (key, value): KEY=VALUE, or Docker's older KEY:VALUE."""
    pairs = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        pairs.append((key, value))
    return pairs


def security_of(h: HostConfig) -> spec.Security:
    sec = spec.Security(privileged=h.privileged, cap_add=list(h.cap_add), cap_drop=list(h.cap_drop),
                        readonly_root=h.readonly_rootfs)
    for key, value in security_options(h.security_opt):
        if key == "seccomp":
            sec.seccomp = value
        elif key == "no-new-privileges":
            sec.no_new_privileges = value.lower() in ("", "true", "1")
        elif key == "systempaths" and value == "unconfined":
            sec.masked_paths, sec.readonly_paths = [], []
    sec.apparmor = apparmor_profile_of(h)
    return sec


def apparmor_profile_of(h: HostConfig) -> str:
    """The AppArmor profile the container's processes run under, as dockerd picks it on a
    host with AppArmor: `--security-opt apparmor=NAME`, else "unconfined" when privileged;
    "" without AppArmor (the option is ignored, as dockerd ignores it). berth loads no
    docker-default profile of its own: other containers run unconfined."""
    from berth.runtime import apparmor

    profile = ""
    for key, value in security_options(h.security_opt):
        if key == "apparmor":
            profile = value
    if not profile and h.privileged:
        profile = apparmor.UNCONFINED
    return profile if profile and apparmor.enabled() else ""


def _init_binary() -> str:
    for path in ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini"):
        if os.path.exists(path):
            return path
    raise InvalidParameter("docker-init binary not found: install Debian's tini package for --init")


def _merge_env(base: list[str], override: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for e in base + override:
        key, sep, value = e.partition("=")
        out[key] = e if sep else key
    return list(out.values())


def _shim_log(state_dir: str) -> str:
    try:
        with open(os.path.join(state_dir, "shim.log")) as f:
            text = f.read()[-2000:].strip()
    except OSError:
        return ""
    return f"; its log: {text}" if text else ""


def _seconds_since(stamp: str) -> int:
    """Whole seconds from an RFC 3339 time until now (a die event's execDuration)."""
    from berth.clock import parse_time

    try:
        return max(0, (time.time_ns() - parse_time(stamp)) // 1_000_000_000)
    except ValueError:
        return 0


def _read_exit_file(state_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(state_dir, "exit.json")) as f:
            doc = json.load(f)
            return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def _write_etc_files(c: Container, links: Sequence[tuple[str, str, str]] = (), host_gateway: str = "") -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf as Docker writes them; `links`
    are (address, alias, name-and-id) of `--link`ed containers; `host_gateway` is what
    `--add-host NAME:host-gateway` means (the default bridge's gateway, as Docker)."""
    hostname = c.config.hostname
    fqdn = f"{hostname}.{c.config.domainname}" if c.config.domainname else hostname
    _atomic_write(c.hostname_path, hostname + "\n")
    mode = c.host_config.network_mode
    if mode == "host":
        try:
            with open("/etc/hosts") as f:
                hosts = f.read()
        except OSError:
            hosts = "127.0.0.1\tlocalhost\n"
    else:
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    for entry in c.host_config.extra_hosts:
        name, _, ip = entry.partition(":")
        if ip == "host-gateway":
            ip = host_gateway
        hosts += f"{ip}\t{name}\n"
    for address, alias, names in links:
        hosts += f"{address}\t{alias} {names}\n" if alias else f"{address}\t{names}\n"
    if mode != "host":
        own = [ep for ep in c.networks.values() if ep.ipv4 or ep.ipv6]
        if own:
            ep = own[0]
            label = f"{fqdn} {hostname}" if fqdn != hostname else hostname
            for address in (ep.ipv4, ep.ipv6):
                if address:
                    hosts += f"{address}\t{label}\n"
        elif fqdn != hostname:
            hosts += f"127.0.1.1\t{fqdn}\n"
    _atomic_write(c.hosts_path, hosts)
    h = c.host_config
    embedded = any(name not in ("bridge", "host", "none") for name in c.networks) and mode != "host"
    _atomic_write(c.resolv_conf_path, _resolv_conf(h.dns, h.dns_search, h.dns_options, embedded))


def _resolv_conf(dns: list[str], search: Sequence[str] = (), options: Sequence[str] = (),
                 embedded: bool = False) -> str:
    """The host's resolv.conf without loopback servers (they can't be reached from inside);
    on user-defined networks, the embedded DNS server instead (it forwards to the others)."""
    servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                words = line.split()
                if words[:1] == ["nameserver"] and len(words) > 1:
                    if not words[1].startswith("127.") and words[1] != "::1":
                        servers.append(words[1])
                elif words[:1] == ["search"]:
                    host_search = words[1:]
                elif words[:1] == ["options"]:
                    host_options += words[1:]
    except OSError:
        pass
    if dns:
        servers = list(dns)
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]
    if embedded:
        servers = ["127.0.0.11"]
        host_options = [o for o in host_options if not o.startswith("ndots:")] + ["ndots:0"]
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search or host_search:
        text += "search " + " ".join(search or host_search) + "\n"
    opts = list(options) or host_options
    if opts:
        text += "options " + " ".join(opts) + "\n"
    return text


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{time.monotonic_ns()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)
