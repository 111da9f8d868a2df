"""Containers: their records, and the one entry point the API, the builder and the daemon use.

`ContainerManager` owns the records (in memory and in the containers table), names,
create, rename, networks joined and left, and the container's file system (cp, diff,
commit). The rest is done by the modules it is made of, each behind the same public
methods as before:
  - containers/defaults.py: create-time defaults and the record's OCI translation;
  - containers/lifecycle.py: start, exit, restart, stop, kill, wait, pause, remove,
    over the one table of state transitions in containers/states.py;
  - containers/attach.py: attach streams, attaches waiting for a start, resize;
  - containers/execs.py: `docker exec`;
  - berth.tasks: the task service, the only way to the container's shim.
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
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

from berth.clock import now_rfc3339
from berth.containers import defaults, etcfiles, execs, links, mounting, mounts, networking, restart
from berth.containers import stats as container_stats
from berth.containers.attach import Attacher, Attachment
from berth.containers.defaults import (  # the names the API and older callers import from here
    DEFAULT_PATH,
    DEFAULT_STOP_TIMEOUT,
    apparmor_profile_of,
    limits_of,
    parse_signal,
    security_of,
    security_options,
)
from berth.containers.lifecycle import Lifecycle, Live, task_op
from berth.containers.model import Container, HostConfig, LogConfig, RunConfig, Status
from berth.containers.names import random_name
from berth.containers.resources import discard_unsupported, host_support
from berth.containers.store import ContainerStore
from berth.errors import BerthError, Conflict, InvalidParameter, NotFound, SystemError_
from berth.images.store import ImageStore
from berth.layers import changeset, diff
from berth.layers.store import LayerStore
from berth.logs import drivers as log_drivers
from berth.network.controller import NetworkController
from berth.network.model import EndpointRequest
from berth.runtime import userns
from berth.runtime.userns import IdMappings
from berth.tasks.model import Streams, TaskError
from berth.tasks.service import TaskService
from berth.tasks.shimtasks import ShimTaskService
from berth.volumes.store import VolumeStore

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

__all__ = ["DEFAULT_PATH", "DEFAULT_STOP_TIMEOUT", "Attachment", "ContainerManager", "Live", "apparmor_profile_of",
           "limits_of", "parse_signal", "security_of", "security_options"]


class ContainerManager:
    def __init__(self, data_root: str, exec_root: str, db: sqlite3.Connection,
                 images: ImageStore, layers: LayerStore, volumes: VolumeStore,
                 network: NetworkController | None = None) -> None:
        self.data_root = os.path.join(data_root, "containers")
        self.exec_root = os.path.join(exec_root, "containers")
        self.db = db
        self.store = ContainerStore(db)
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
        tasks = ShimTaskService(exec_root)
        self.launcher = tasks.launcher  # daemon/main.py starts the zygote through it
        self.tasks: TaskService = tasks
        self._reserved_names: set[str] = set()
        self.runtimes: dict[str, str] = {}
        self.default_runtime = "berth"
        self.default_log = LogConfig()  # daemon.json's log-driver and log-opts
        self.daemon_defaults = defaults.DaemonDefaults()  # --no-new-privileges, --default-ulimit, --seccomp-profile
        self.log_plugins: log_drivers.LogPlugins | None = None  # managed plugins' log drivers
        self.id_maps: IdMappings | None = None  # berthd --userns-remap: containers' user namespace (`remap`)
        self._root_gid = 0
        self.lifecycle = Lifecycle(self)
        self.attacher = Attacher(self)
        os.makedirs(self.data_root, mode=0o710, exist_ok=True)
        os.makedirs(self.exec_root, mode=0o700, exist_ok=True)

    def remap(self, maps: IdMappings, root_gid: int) -> None:
        """Run containers in a user namespace of `maps` (berthd --userns-remap), unless they
        ask for the host's; their directories let the remapped root's group through."""
        self.id_maps = maps
        self._root_gid = root_gid
        os.chown(self.data_root, os.getuid(), root_gid)

    def id_maps_of(self, c: Container) -> IdMappings | None:
        """The user namespace `c` runs in: the remapped one, or None for the host's."""
        return None if c.host_config.userns_mode == "host" else self.id_maps

    def container_owner(self, uid: int, gid: int) -> tuple[int, int]:
        """A file's host owner as the remapped containers see it (0 for an unmapped id,
        as the image's own files always map); the ids themselves without remapping."""
        if self.id_maps is None:
            return uid, gid
        return (userns.container_id(self.id_maps.uid, uid) or 0, userns.container_id(self.id_maps.gid, gid) or 0)

    def _check_userns(self, host: HostConfig) -> None:
        """What dockerd refuses in a container of the remapped user namespace."""
        if self.id_maps is None or host.userns_mode == "host":
            return
        if host.privileged:
            raise InvalidParameter("privileged mode is incompatible with user namespaces.  You must run the "
                                   "container in the host namespace when running privileged mode")
        if host.network_mode == "host":
            raise InvalidParameter("cannot share the host's network namespace when user namespaces are enabled")
        if host.pid_mode == "host":
            raise InvalidParameter("cannot share the host PID namespace when user namespaces are enabled")

    def is_log_plugin(self, driver: str) -> bool:
        return self.log_plugins is not None and self.log_plugins.is_plugin(driver)

    def runtime_path(self, name: str) -> str:
        """'' for berth's own runtime inside the shim; else the OCI runtime binary."""
        return defaults.runtime_path(name, self.default_runtime, self.runtimes)

    def known_runtimes(self) -> dict[str, str]:
        return defaults.known_runtimes(self.runtimes)

    # -- records ------------------------------------------------------------------------

    def _save(self, c: Container) -> None:
        self.store.save(c.id, c.name, json.dumps(c.to_doc()))

    def load(self) -> None:
        for cid, doc in self.store.records():
            try:
                c = Container.from_doc(json.loads(doc))
            except (ValueError, TypeError, KeyError) as e:
                log.error("container %s has an unreadable record (%s); skipping it", cid[:12], e)
                continue
            self.containers[c.id] = c
            self.live[c.id] = Live()

    def _forget(self, c: Container) -> None:
        """The record of a removed container goes, with what berthd held of it in memory."""
        self.store.delete(c.id)
        del self.containers[c.id]
        del self.live[c.id]
        self.execs.forget_container(c.id)

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
            # and lives by its /etc/hosts, resolv.conf and hostname: dockerd points the
            # container at the other's files (inspect shows the other's paths)
            c.hostname_path, c.hosts_path = other.hostname_path, other.hosts_path
            c.resolv_conf_path = other.resolv_conf_path
            c.config.hostname, c.config.domainname = other.config.hostname, other.config.domainname
            return other.sandbox_key or f"/proc/{other.state.pid}/ns/net"
        if self.network is None:
            return None
        return networking.keep_sandbox(c, await self.network.setup(networking.sandbox_request(c)))

    def _donor(self, ref: str, kind: str) -> Container:
        """The running container whose `kind` (PID, IPC) namespace another joins, refused
        as dockerd refuses it."""
        # dockerd finds the PID donor while writing the spec, and answers any failure
        # there as its own (500); the IPC donor before, as the caller's mistake.
        error: type[BerthError] = SystemError_ if kind == "PID" else InvalidParameter
        try:
            other = self.get(ref)
        except (NotFound, InvalidParameter) as e:
            raise error(f"failed to join {kind} namespace: {e}") from None
        if other.state.status == Status.RESTARTING:
            raise (error if kind == "PID" else Conflict)(
                f"failed to join {kind} namespace: Container {ref} is restarting, wait until the container is running")
        if not other.state.running or not other.state.pid:
            raise (error if kind == "PID" else Conflict)(
                f"failed to join {kind} namespace: container {ref} is not running")
        return other

    def _shared_namespaces(self, c: Container) -> defaults.SharedNamespaces:
        """Where `c`'s pid, IPC and UTS namespaces and its /dev/shm come from, as its
        PidMode, IpcMode and UTSMode say; a shareable container's /dev/shm is mounted."""
        h = c.host_config
        shared = defaults.SharedNamespaces()
        kind, _, other = h.pid_mode.partition(":")
        if h.pid_mode == "host":
            shared.pid = "host"
        elif kind == "container":
            shared.pid = f"/proc/{self._donor(other, 'PID').state.pid}/ns/pid"
        kind, _, other = h.ipc_mode.partition(":")
        if h.ipc_mode == "host":
            if not os.path.isdir("/dev/shm"):
                raise SystemError_("/dev/shm is not mounted, but must be for --ipc=host")
            shared.ipc, shared.shm_source = "host", "/dev/shm"
        elif kind == "container":
            donor = self._donor(other, "IPC")
            shm = mounting.shm_path(os.path.join(self.data_root, donor.id))
            if donor.host_config.ipc_mode == "host":
                shm = "/dev/shm"
            elif not os.path.ismount(shm):
                raise InvalidParameter(f"failed to join IPC namespace: container {other}: non-shareable IPC "
                                       "(hint: use IpcMode:shareable for the donor container)")
            shared.ipc, shared.shm_source = f"/proc/{donor.state.pid}/ns/ipc", shm
        elif h.ipc_mode == "none":
            shared.shm_source = "none"
        elif h.ipc_mode == "shareable" and not any(mp.destination == "/dev/shm" for mp in c.mounts):
            shared.shm_source = mounting.mount_shm(os.path.join(self.data_root, c.id),
                                                   h.shm_size or defaults.DEFAULT_SHM_SIZE)
        if h.uts_mode == "host":
            shared.uts = "host"
        return shared

    def _host_gateway(self) -> str:
        if self.network is None:
            return ""
        try:
            bridge = self.network.get("bridge")
        except NotFound:
            return ""
        return next((s.gateway for s in bridge.subnets if s.gateway and ":" not in s.gateway), "")

    def _linked(self, c: Container) -> list[tuple[str, Container]]:
        """`c`'s legacy links on the default bridge: (alias, the container linked to), for
        those that still exist (on user-defined networks a link is a DNS alias instead)."""
        out: list[tuple[str, Container]] = []
        if "bridge" not in c.networks:
            return out
        for link in c.host_config.links:
            name, _, alias = link.partition(":")
            with contextlib.suppress(NotFound, InvalidParameter):
                other = self.get(name)
                out.append((alias or other.name, other))
        return out

    def _link_entries(self, c: Container) -> list[tuple[str, str]]:
        """/etc/hosts lines for `c`'s links: the linked container's address, then its alias,
        its hostname and (when the alias is another name) its name, as dockerd writes them."""
        out: list[tuple[str, str]] = []
        for alias, other in self._linked(c):
            names = f"{alias} {other.config.hostname}" + (f" {other.name}" if alias != other.name else "")
            bridge = other.networks.get("bridge")
            for address in (bridge.ipv4, bridge.ipv6) if bridge else ():
                if address:
                    out.append((address, names))
        return out

    def link_env(self, c: Container) -> list[str]:
        """The environment dockerd gives a container for its legacy links (ALIAS_NAME,
        ALIAS_PORT…, ALIAS_ENV_…); refused (as dockerd, a 500) when one of them does not run."""
        env: list[str] = []
        own = c.networks.get("bridge")
        for alias, other in self._linked(c):
            if not other.state.running:
                raise SystemError_(f"Cannot link to a non running container: /{other.name} AS /{c.name}/{alias}")
            bridge = other.networks.get("bridge")
            if bridge is None:
                raise SystemError_(f"container {other.id} not attached to default bridge network")
            env += links.link_env(own.ipv4 if own else "", bridge.ipv4, f"/{c.name}/{alias}",
                                  other.config.env, other.config.exposed_ports)
        return env

    def remove_link(self, ref: str) -> None:
        """`docker rm --link /parent/alias`: the parent forgets the link, as dockerd does
        (its /etc/hosts line stays until its network is set up again)."""
        full = ref if ref.startswith("/") else "/" + ref
        parent_name, _, alias = full.rpartition("/")
        if not parent_name:
            self.get(ref)  # 404 for no such container, as dockerd looks it up first
            raise SystemError_("Conflict, cannot remove the default link name of the container")
        try:
            parent = self.get(parent_name)
        except NotFound:
            raise NotFound(f"No such container: {ref}") from None
        kept = []
        found = False
        for link in parent.host_config.links:
            name, _, link_alias = link.partition(":")
            if (link_alias or name.lstrip("/")) == alias and not found:
                found = True
                continue
            kept.append(link)
        if not found:
            raise NotFound(f"No such container: {ref}")
        parent.host_config.links = kept
        self._save(parent)

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
            if host.dns:
                raise InvalidParameter("conflicting options: dns and the network mode")
            if host.extra_hosts:
                raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
            if hostname:
                raise InvalidParameter("conflicting options: hostname and the network mode")
            if host.links:
                raise InvalidParameter("conflicting options: container type network can't be used with links. "
                                       "This would result in undefined behavior")
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

    def _settle_host_config(self, host: HostConfig, config: RunConfig) -> None:
        """What dockerd fills in, discards and refuses at create: the default IPC and
        cgroup namespace modes, "container:<name>" turned into the other's ID, Docker's
        masked and read-only paths, storage options, the daemon's default ulimits."""
        if host.uts_mode == "host" and config.hostname:
            raise InvalidParameter("conflicting options: hostname and the UTS mode")
        host.ipc_mode = host.ipc_mode or "private"
        if not host.cgroupns_mode:
            v2 = defaults.cgroup_version() == "v2"
            host.cgroupns_mode = "private" if v2 and not host.privileged else "host"
        for attr in ("pid_mode", "ipc_mode"):
            kind, _, other = getattr(host, attr).partition(":")
            if kind == "container" and other:
                with contextlib.suppress(NotFound, InvalidParameter):
                    setattr(host, attr, f"container:{self.get(other).id}")
        if not host.privileged:
            if host.masked_paths is None:
                host.masked_paths = list(defaults.MASKED_PATHS)
            if host.readonly_paths is None:
                host.readonly_paths = list(defaults.READONLY_PATHS)
        if host.storage_opt:
            raise InvalidParameter("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        host.ulimits = defaults.ulimits_of(host, self.daemon_defaults)  # dockerd 20.10 writes them in

    async def create(self, name: str | None, config: RunConfig, host: HostConfig,
                     requests: dict[str, EndpointRequest] | None = None,
                     warnings: list[str] | None = None) -> Container:
        """A new container; what dockerd warns about at create (settings it discards)
        is added to `warnings`."""
        warned: list[str] = [] if warnings is None else warnings
        if name:
            name = self._check_name(name)
        else:
            taken = {c.name for c in self.containers.values()} | self._reserved_names
            name = random_name(taken)
        image = self.images.resolve(config.image)
        argv = defaults.apply_image_defaults(config, image.config.config)
        inherited = [(self.get(other), mode) for other, mode in map(mounts.parse_volumes_from, host.volumes_from)]
        ports_discarded = host.network_mode == "host" and bool(host.port_bindings)
        endpoints = self._plan_network(host, requests or {}, config.hostname)
        points = mounts.plan(host.binds, host.mounts, config.volumes, inherited, host.tmpfs.keys(),
                             host.volume_driver)
        restart.validate_policy(host.restart_policy)
        if host.auto_remove and host.restart_policy.name not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        warned.extend(discard_unsupported(host, host_support()))
        if ports_discarded:  # after the resources' warnings, as dockerd checks them
            warned.append("Published ports are discarded when using host network mode")
        if host.memory > 0 and host.memory_swap == 0:  # dockerd's default: as much swap as memory
            host.memory_swap = 2 * host.memory
        self._settle_host_config(host, config)
        self._check_userns(host)
        host.runtime = host.runtime or self.default_runtime
        self.runtime_path(host.runtime)  # refuse an unknown runtime at create, as Docker does
        defaults.default_log_config(host.log_config, self.default_log)
        if not self.is_log_plugin(host.log_config.type):
            log_drivers.validate(host.log_config.type, host.log_config.config)
        cid = secrets.token_hex(32)
        mode = host.network_mode or ""
        if not config.hostname and (mode == "host" or host.uts_mode == "host"):
            config.hostname = socket.gethostname()
        elif mode.startswith("container:"):  # the names of the container whose network it joins
            other = self.get(mode.split(":", 1)[1]).config
            config.hostname, config.domainname = other.hostname, other.domainname
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
            if self.id_maps is not None:
                os.chown(cdir, os.getuid(), self._root_gid)
            c.log_path = log_drivers.log_path(host.log_config.type, host.log_config.config, cdir, cid)
            if c.log_path:
                os.makedirs(os.path.dirname(c.log_path), mode=0o710, exist_ok=True)
            c.hostname_path = os.path.join(cdir, "hostname")
            c.hosts_path = os.path.join(cdir, "hosts")
            c.resolv_conf_path = os.path.join(cdir, "resolv.conf")
            # a vfs driver copies the whole image here: not on the event loop
            await asyncio.to_thread(self.layers.create_rw, cid, image.chain_ids)
            if any(mp.type == "volume" and mp.copy_data and not mp.subpath for mp in points):
                root = self.layers.mount(cid, image.chain_ids)
                try:
                    await mounting.populate(self.volumes, c, root)
                finally:
                    self.layers.unmount(cid)
            self._save(c)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            self.layers.remove_rw(cid)
            self.store.delete(cid)
            await mounting.remove_volumes(self.volumes, new_volumes)
            raise
        finally:
            self._reserved_names.discard(name)
        self.containers[cid] = c
        self.live[cid] = Live()
        self.on_event("create", c, {})
        return c

    # -- the lifecycle (containers/lifecycle.py) ----------------------------------------------

    async def restore(self, live_restore: bool) -> None:
        """After a restart: re-adopt containers whose shims still run, close out the rest."""
        await self.lifecycle.restore(live_restore)

    async def start(self, ref: str, *, by_restart_policy: bool = False) -> None:
        await self.lifecycle.start(ref, by_restart_policy=by_restart_policy)

    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        await self.lifecycle.kill(ref, sig)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await self.lifecycle.stop(ref, timeout, sig)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        return await self.lifecycle.wait(ref, condition)

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        await self.lifecycle.restart(ref, timeout)

    async def pause(self, ref: str) -> None:
        await self.lifecycle.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self.lifecycle.unpause(ref)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        await self.lifecycle.remove(ref, force, volumes)

    async def shutdown(self, live_restore: bool) -> None:
        """Without live-restore, stop every running container, as dockerd does."""
        await self.lifecycle.shutdown(live_restore)

    # -- update, top, stats: the running task's resources ------------------------------------

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
            async with task_op(c, "update"):
                await self.tasks.update(c.id, limits_of(h))
        self._save(c)
        self.on_event("update", c, {})
        return []

    async def top(self, ref: str) -> list[int]:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if c.state.status == Status.RESTARTING:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        async with task_op(c, "list processes of"):
            pids = await self.tasks.pids(c.id)
        self.on_event("top", c, {})
        return pids

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
        try:
            counters = await self.tasks.stats(c.id)
        except TaskError as e:
            raise SystemError_(f"Cannot read the stats of container {c.id[:12]}: {e}") from None
        if counters is None:
            return None
        return await asyncio.to_thread(container_stats.take_sample, counters.cgroup, c.state.pid, interfaces)

    # -- exec, networks, rename ----------------------------------------------------------

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
                etcfiles.update_running(c, self._link_entries(c), self._host_gateway())

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
            if c.state.running:
                etcfiles.update_running(c, self._link_entries(c), self._host_gateway())

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

    # -- attach (containers/attach.py) --------------------------------------------------------

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> Streams | None:
        """Streams to the container's stdio; None when it is not (or no longer) running."""
        return await self.attacher.attach(ref, stdin, stdout, stderr)

    def attach_at_start(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> asyncio.Future[Streams | None]:
        """An attach to a container not yet started, registered at once (the builder's RUN)."""
        return self.attacher.attach_at_start(ref, stdin, stdout, stderr)

    async def resize(self, ref: str, height: int, width: int) -> None:
        await self.attacher.resize(ref, height, width)

    def detached(self, ref: str) -> None:
        """An attach's client typed the detach keys: the container goes on."""
        self.attacher.detached(ref)

    def detach_pending(self, ref: str, attachment_future: Awaitable[object]) -> None:
        """Forget an attach whose client went away before the start."""
        self.attacher.detach_pending(ref, attachment_future)

    # -- filesystem (cp, diff, export) -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def root_of(self, ref: str, *, with_mounts: bool = False) -> AsyncIterator[tuple[Container, str]]:
        """The container's merged root; a stopped one is mounted for the duration only,
        under its lock so that a start waits for it. With `with_mounts`, the view of it
        that `docker cp` works on, running or not: its volumes and bind mounts bound in
        (containers/mounting.py's `view`); `docker export` takes the merged root only."""
        c = self.get(ref)
        live = self.live[c.id]
        await live.lock.acquire()
        locked = True
        try:
            if c.state.status == Status.REMOVING:
                raise Conflict(f"container {c.id[:12]} is marked for removal")
            root = self.layers.mount(c.id, self.images.resolve(c.image_id).chain_ids)
            mounted_here = not c.state.running
            if not mounted_here:
                live.lock.release()  # its root stays mounted while it runs; a stop need not wait
                locked = False
            try:
                if with_mounts:
                    async with mounting.view(self.volumes, c, root) as view_root:
                        yield c, view_root
                else:
                    yield c, root
            finally:
                if mounted_here:
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
            await asyncio.to_thread(changeset.write_changes, upper, lowers, out, self.layers.id_maps)
        finally:
            if paused_here and c.state.status == Status.PAUSED:
                await self.unpause(c.id)
        return c
