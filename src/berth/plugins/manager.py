"""The plugin manager: `docker plugin create/ls/inspect/enable/disable/set/rm`, install,
upgrade and push (over the registry client), and an enabled plugin's interfaces for
the rest of berthd: its volume driver (to the volume store), its log driver (to the
containers, berth.logs.drivers.LogPlugins) and its authorization (to the API: the
chain of --authorization-plugin names, managed plugins or legacy ones, asked in order).

An enabled plugin is a task (a container that is no Docker container: `docker ps`
does not show it), run by the task service from the plugin's rootfs with its config's
entrypoint, env, mounts, network type and capabilities, and with the host directory
`<exec-root>/plugins/<id>` bound at /run/docker/plugins, where it makes its socket.
Enable waits, as Docker does, until the socket answers a connect; a plugin that never
listens is stopped again and stays disabled; one whose process dies later is started
again. berthd's stop stops the plugins (unless live-restore) and its start enables
again those that were enabled.

It speaks no plugin protocol's details itself (volumes/plugin.py has the transport
and the volume protocol, logs/pluginlog.py the log frames) and keeps no volume
records: whether a plugin is in use is asked of the volume store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
from collections.abc import Callable
from typing import IO

from berth.distribution.progress import Emit, Progress, short_id
from berth.distribution.registry import Credentials, Registry
from berth.errors import (
    BerthError,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    SystemError_,
    Unavailable,
)
from berth.images import reference
from berth.logs import pluginlog
from berth.logs.drivers import ContainerInfo
from berth.plugins import remote as remote_plugins
from berth.plugins import store as plugin_store
from berth.plugins.model import (
    AUTHZ,
    AUTHZ_REQUEST,
    AUTHZ_RESPONSE,
    DEFAULT_PATH,
    FULL_ID,
    LOG_DRIVER,
    RUNTIME_DIR,
    VOLUME_DRIVER,
    AuthzRequest,
    Plugin,
    PluginSettings,
    Privilege,
    apply_settings,
    lookup_name,
    normalize_name,
    not_found,
    parse_config,
    privileges_of,
    same_privileges,
)
from berth.runtime import spec
from berth.tasks.model import CreateTaskRequest, TaskError
from berth.tasks.service import TaskService
from berth.volumes.drivers import VolumeDriver
from berth.volumes.plugin import PluginAddress, PluginDriver, locate_plugin
from berth.volumes.plugin import call as plugin_call
from berth.volumes.plugin import call_raw as plugin_call_raw
from berth.volumes.store import VolumeStore

log = logging.getLogger(__name__)

# Docker's pluginPostStart: a first try after half a second, then three more, 3 s apart
SOCKET_WAIT = 0.5 + 3 * 3.0
STOP_TIMEOUT = 10.0  # shutdownPlugin: SIGTERM, then SIGKILL after 10 s
RESTART_DELAY = 1.0
LIST_FILTERS = {"enabled", "capability"}


class PluginManager:
    def __init__(self, data_root: str, exec_root: str, tasks: TaskService, volumes: VolumeStore) -> None:
        self.store = plugin_store.PluginStore(os.path.join(data_root, "plugins"))
        self.run_root = os.path.join(exec_root, "plugins")
        os.makedirs(self.run_root, mode=0o700, exist_ok=True)
        self.tasks = tasks
        self.volumes = volumes
        self.plugins: dict[str, Plugin] = {}
        self._drivers: dict[str, PluginDriver] = {}
        self._lock = asyncio.Lock()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        # (action, plugin ID, name): berthd's event log listens here
        self.on_event: Callable[[str, str, str], None] = lambda *a: None
        self.registry: Registry | None = None  # install and push; daemon/main.py sets it
        # container ID -> (plugin ID, FIFO path in the plugin, on the host, berthd's fd on it)
        self._logging: dict[str, tuple[str, str, str, int]] = {}
        # --authorization-plugin names, in order; a plugin's disable takes it out, as dockerd's does
        self.authz_chain: list[str] = []
        self._legacy_authz: dict[str, PluginAddress] = {}  # legacy authz plugins activated, by name

    # -- lookup -----------------------------------------------------------------------------

    def get(self, ref: str) -> Plugin:
        """A plugin by full ID, name ("x" is "x:latest") or unique ID prefix: Docker's order."""
        if FULL_ID.match(ref):
            p = self.plugins.get(ref)
            if p is None:
                raise not_found(ref)
            return p
        name = lookup_name(ref)
        if name is None:
            raise not_found(ref)
        for p in self.plugins.values():
            if p.name == name:
                return p
        found = [p for pid, p in self.plugins.items() if pid.startswith(ref)]
        if len(found) > 1:
            raise InvalidParameter(f'multiple plugins found for "{ref}"')
        if not found:
            raise not_found(ref)
        return found[0]

    def find(self, filters: dict[str, list[str]]) -> list[Plugin]:
        """`GET /plugins`, with dockerd's filters: `enabled` (one boolean) and
        `capability` (regular expressions every interface of the plugin must match)."""
        enabled: bool | None = None
        if "enabled" in filters:
            values = {v.lower() for v in filters["enabled"]}
            if len(values) == 1 and values <= {"true", "1"}:
                enabled = True
            elif len(values) == 1 and values <= {"false", "0"}:
                enabled = False
            else:
                raise InvalidParameter(f"invalid filter 'enabled={','.join(filters['enabled'])}'")
        out = []
        for p in self.plugins.values():
            if enabled is not None and p.enabled != enabled:
                continue
            if "capability" in filters and not all(_matches_any(filters["capability"], t.capability)
                                                   for t in p.config.types):
                continue
            out.append(p)
        return out

    def names(self, capability: str) -> list[str]:
        """The enabled plugins serving `capability`, as `docker info` lists them."""
        return sorted(p.name for p in self.plugins.values() if p.enabled and p.config.implements(capability))

    def in_use(self, p: Plugin) -> bool:
        """Docker's reference count: volumes made with the plugin's driver hold it, and
        so do the containers logging through it."""
        return any(v.driver == p.name for v in self.volumes.all()) or \
            any(plugin_id == p.id for plugin_id, *_ in self._logging.values())

    def volume_driver(self, name: str) -> VolumeDriver | None:
        """The volume driver of managed plugin `name`; None when there is no such plugin
        (a legacy plugin may have the name), Docker's errors when it cannot serve."""
        wanted = lookup_name(name)
        p = next((p for p in self.plugins.values() if p.name == wanted), None) if wanted else None
        if p is None:
            return None
        if not p.enabled or p.id not in self._drivers:
            raise Conflict(f"error looking up volume plugin {name}: plugin {p.name} found but disabled")
        if not p.config.implements(VOLUME_DRIVER):
            raise InvalidParameter(f'error looking up volume plugin {name}: plugin "{p.name}" '
                                   f'does not provide "{VOLUME_DRIVER}" capability')
        return self._drivers[p.id]

    # -- authorization (docker.authz/1.0) -----------------------------------------------------------

    @property
    def authorizing(self) -> bool:
        return bool(self.authz_chain)

    async def authorize(self, request: AuthzRequest) -> None:
        """dockerd's authorization middleware, request side: each plugin of the chain is
        asked (AuthZPlugin.AuthZReq) in order; the first that refuses ends the request
        (Forbidden), and one that cannot be asked ends it too (SystemError_): fail closed."""
        await self._ask_chain(AUTHZ_REQUEST, request)

    async def authorize_response(self, request: AuthzRequest) -> None:
        """The response side (AuthZPlugin.AuthZRes), `request` with its response filled in."""
        await self._ask_chain(AUTHZ_RESPONSE, request)

    async def _ask_chain(self, method: str, request: AuthzRequest) -> None:
        doc = _authz_doc(request)
        for name in list(dict.fromkeys(self.authz_chain)):
            shown, address = await self._authz_plugin(name)
            try:
                answer = json.loads(await plugin_call_raw(address, method, doc))
            except BerthError as e:
                raise SystemError_(f"plugin {shown} failed with error: {e}") from None
            except ValueError as e:
                raise SystemError_(f"plugin {shown} failed with error: {method}: invalid answer: {e}") from None
            allow = answer.get("Allow", False) if isinstance(answer, dict) else None
            if not isinstance(allow, bool):
                raise SystemError_(f"plugin {shown} failed with error: {method}: invalid answer: "
                                   "not an object with a boolean Allow")
            if not allow:
                msg = answer.get("Msg")
                raise Forbidden(f"authorization denied by plugin {shown}: {msg if isinstance(msg, str) else ''}")

    async def _authz_plugin(self, name: str) -> tuple[str, PluginAddress]:
        """The name dockerd's messages give plugin `name`, and where to call it: an enabled
        managed plugin of that name, else a legacy plugin found (and activated) as Docker
        finds one, in /run/docker/plugins, /etc/docker/plugins, /usr/lib/docker/plugins.
        A legacy plugin's address is kept once it has been activated; a failed lookup is
        tried again by the next request."""
        wanted = lookup_name(name)
        p = next((p for p in self.plugins.values() if p.name == wanted), None) if wanted else None
        if p is not None:
            if not p.enabled or p.id not in self._drivers:
                raise SystemError_(f"plugin {name} failed with error: plugin {p.name} found but disabled")
            if not p.config.implements(AUTHZ):
                raise SystemError_(f'plugin {name} failed with error: plugin "{p.name}" '
                                   f'does not provide "{AUTHZ}" capability')
            return p.name, PluginAddress("unix", path=self._dial_path(p))
        address = self._legacy_authz.get(name)
        if address is not None:
            return name, address
        try:
            address = await asyncio.to_thread(locate_plugin, name)
        except NotFound:
            raise SystemError_(f'plugin {name} failed with error: plugin "{name}" not found') from None
        except BerthError as e:
            raise SystemError_(f"plugin {name} failed with error: legacy plugin: {e}") from None
        try:
            manifest = await plugin_call(address, "Plugin.Activate", None)
        except BerthError as e:
            raise SystemError_(f"plugin {name} failed with error: legacy plugin: {e}") from None
        implements = manifest.get("Implements")
        if not (isinstance(implements, list) and AUTHZ in implements):
            raise SystemError_(f"plugin {name} failed with error: legacy plugin: Plugin does not implement the "
                               f'requested driver: plugin="{name}", requested implementation="{AUTHZ}"')
        self._legacy_authz[name] = address
        return name, address

    # -- log drivers (berth.logs.drivers.LogPlugins) ---------------------------------------------

    def _log_plugin(self, name: str) -> Plugin | None:
        wanted = lookup_name(name)
        p = next((p for p in self.plugins.values() if p.name == wanted), None) if wanted else None
        if p is None or not p.enabled or p.id not in self._drivers or not p.config.implements(LOG_DRIVER):
            return None
        return p

    def is_plugin(self, driver_name: str) -> bool:
        return self._log_plugin(driver_name) is not None

    async def start_logging(self, driver_name: str, info: ContainerInfo) -> dict[str, str]:
        """Docker's plugin log adapter: a FIFO in the plugin's rootfs under
        /run/docker/logging, LogDriver.StartLogging with its path as the plugin sees it.
        berthd holds the FIFO open until StopLogging, so neither side's open blocks."""
        p = self._log_plugin(driver_name)
        if p is None:
            raise InvalidParameter(f"failed to create logger: logger: no log driver named '{driver_name}' is registered")
        fifo_id = secrets.token_hex(32)
        inside = f"/run/docker/logging/{fifo_id}"
        host = os.path.join(self.store.rootfs(p.id), inside.lstrip("/"))
        os.makedirs(os.path.dirname(host), mode=0o700, exist_ok=True)
        os.mkfifo(host, 0o600)
        keeper = os.open(host, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._logging[info.id] = (p.id, inside, host, keeper)
        doc: dict[str, object] = {"File": inside, "Info": _info_doc(info)}
        try:
            await plugin_call(PluginAddress("unix", path=self._dial_path(p)), "LogDriver.StartLogging", doc)
        except BerthError as e:
            await self.stop_logging(driver_name, info.id, tell=False)
            raise SystemError_(f"failed to create logger: error creating logger: {e}") from None
        return {"fifo": host}

    async def read_logs(self, driver_name: str, info: ContainerInfo) -> bytes | None:
        """LogDriver.ReadLogs, when the plugin's capabilities say it can: the frames it
        answers, as json-file lines."""
        p = self._log_plugin(driver_name)
        if p is None:
            return None
        address = PluginAddress("unix", path=self._dial_path(p))
        try:
            caps = await plugin_call(address, "LogDriver.Capabilities", None)
        except BerthError:
            return None  # as Docker: a plugin without Capabilities cannot read
        cap = caps.get("Cap")
        if not (isinstance(cap, dict) and cap.get("ReadLogs")):
            return None
        doc: dict[str, object] = {"Info": _info_doc(info), "Config": {
            "Since": "0001-01-01T00:00:00Z", "Until": "0001-01-01T00:00:00Z", "Tail": -1, "Follow": False}}
        try:
            data = await plugin_call_raw(address, "LogDriver.ReadLogs", doc)
            return pluginlog.as_json_file(pluginlog.decode_entries(data))
        except ValueError as e:
            raise SystemError_(f"error reading logs from plugin {p.name}: {e}") from None

    async def stop_logging(self, driver_name: str, container_id: str, tell: bool = True) -> None:
        session = self._logging.pop(container_id, None)
        if session is None:
            return
        plugin_id, inside, host, keeper = session
        p = self.plugins.get(plugin_id)
        try:
            if tell and p is not None and p.id in self._drivers:
                await plugin_call(PluginAddress("unix", path=self._dial_path(p)), "LogDriver.StopLogging",
                                  {"File": inside})
        except BerthError as e:
            log.warning("plugin %s: LogDriver.StopLogging for %s: %s", driver_name, container_id[:12], e)
        finally:
            os.close(keeper)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host)

    def _check_new_name(self, name: str) -> None:
        if any(p.name == name for p in self.plugins.values()):
            raise Conflict(f"plugin {name} already exists")

    # -- create, set, remove ------------------------------------------------------------------

    async def create(self, repo_name: str, context: IO[bytes]) -> Plugin:
        """`POST /plugins/create?name=…` with the tar of config.json and rootfs/."""
        if not repo_name:
            raise InvalidParameter("failed to parse reference : invalid reference format")
        try:
            name = normalize_name(repo_name)
        except InvalidParameter as e:
            raise InvalidParameter(f"failed to parse reference {repo_name}: {e}") from None
        async with self._lock:
            self._check_new_name(name)
            workdir = self.store.new_workdir()
            try:
                raw, layer, _size = await asyncio.to_thread(plugin_store.split_context, context, workdir)
                try:
                    doc = json.loads(raw)
                except ValueError as e:
                    raise SystemError_(f"failed to parse config: {e}") from None
                config = parse_config(doc)
                p = Plugin(id=secrets.token_hex(32), name=name, enabled=False, config=config,
                           settings=PluginSettings.initial(config), reference=name)
                self._attach_blobs(p, workdir, layer)
                await asyncio.to_thread(self.store.commit, workdir, p)
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            self.plugins[p.id] = p
        self.on_event("create", p.id, name)
        return p

    def _attach_blobs(self, p: Plugin, workdir: str, layer: str) -> None:
        """The config blob a registry would hold (config.json with its rootfs diff IDs)."""
        import hashlib

        doc = dict(p.config.doc)
        doc["rootfs"] = {"type": "layers", "diff_ids": [layer]}
        data = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        plugin_store.write_atomically(os.path.join(workdir, "blobs", digest.replace(":", "-")), data)
        p.config_digest = digest
        p.layer_digests = [layer]
        p.config.doc["rootfs"] = doc["rootfs"]

    # -- install and push ------------------------------------------------------------------------

    def _registry(self) -> Registry:
        if self.registry is None:
            raise Unavailable("plugin install and push need berthd's registry client")
        return self.registry

    async def privileges(self, remote: str, creds: Credentials) -> list[Privilege]:
        """`GET /plugins/privileges?remote=…`: what the plugin there would be granted."""
        found = await remote_plugins.fetch_config(self._registry(), _remote_ref(remote), creds)
        return privileges_of(found.config)

    def install_name(self, remote: str, name: str) -> str:
        """The local name a pull gives: `name` ("x" is "x:latest"), else the remote's."""
        if name:
            return normalize_name(name)
        return _remote_ref(remote).familiar_string()

    async def pull(self, remote: str, name: str, granted: list[Privilege] | None, creds: Credentials,
                   emit: Emit) -> Plugin:
        """`POST /plugins/pull?remote=…&name=…` (docker plugin install): the plugin comes
        in disabled; the client sets and enables it after."""
        ref = _remote_ref(remote)
        local = self.install_name(remote, name)
        if any(p.name == local for p in self.plugins.values()):
            raise InvalidParameter(f"plugin {local} already exists")
        workdir, found, layers = await self._fetch(ref, granted, creds, emit)
        try:
            async with self._lock:
                if any(p.name == local for p in self.plugins.values()):
                    raise InvalidParameter(f"plugin {local} already exists")
                p = Plugin(id=secrets.token_hex(32), name=local, enabled=False, config=found.config,
                           settings=PluginSettings.initial(found.config), reference=str(ref),
                           config_digest=found.manifest.config.digest, layer_digests=layers)
                await asyncio.to_thread(self.store.commit, workdir, p)
                self.plugins[p.id] = p
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self.on_event("pull", p.id, local)
        return p

    async def upgrade(self, ref_text: str, remote: str, granted: list[Privilege] | None, creds: Credentials,
                      emit: Emit) -> None:
        """`POST /plugins/{name}/upgrade?remote=…`: a disabled plugin gets the rootfs and
        config found at `remote`, keeping its ID, name and settings."""
        p = self.get(ref_text)
        if p.enabled:
            raise Conflict(f"plugin must be disabled before upgrading: plugin {p.name} is enabled")
        ref = _remote_ref(remote)
        workdir, found, layers = await self._fetch(ref, granted, creds, emit)
        try:
            async with self._lock:
                if self.plugins.get(p.id) is not p or p.enabled:
                    raise Conflict(f"plugin must be disabled before upgrading: plugin {p.name} is enabled")
                new = Plugin(id=p.id, name=p.name, enabled=False, config=found.config, settings=p.settings,
                             reference=str(ref), config_digest=found.manifest.config.digest, layer_digests=layers)
                await asyncio.to_thread(self.store.replace, workdir, new)
                self.plugins[p.id] = new
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self.on_event("pull", p.id, p.name)

    async def _fetch(self, ref: reference.Reference, granted: list[Privilege] | None, creds: Credentials,
                     emit: Emit) -> tuple[str, remote_plugins.RemotePlugin, list[str]]:
        """A plugin from a registry, unpacked in a new work directory (the caller commits
        or removes it): the directory, what the registry holds, the layer digests."""
        emit(Progress(f"Pulling from {ref.familiar_name}", ref.tag or ref.digest))
        found = await remote_plugins.fetch_config(self._registry(), ref, creds)
        if granted is not None and not same_privileges(privileges_of(found.config), granted):
            raise SystemError_("incorrect privileges")
        workdir = self.store.new_workdir()
        try:
            blobs = os.path.join(workdir, "blobs")
            os.makedirs(blobs, mode=0o700)
            layers = await remote_plugins.download_layers(found, blobs, emit)
            for digest in layers:
                with open(os.path.join(blobs, digest.replace(":", "-")), "rb") as f:
                    await asyncio.to_thread(plugin_store.unpack_layer, f, os.path.join(workdir, "rootfs"))
                emit(Progress("Complete", short_id(digest)))
            config_digest = found.manifest.config.digest
            plugin_store.write_atomically(os.path.join(blobs, config_digest.replace(":", "-")), found.config_raw)
            emit(Progress(f"Digest: {found.manifest.digest}"))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return workdir, found, layers

    async def push(self, ref_text: str, creds: Credentials, emit: Emit) -> None:
        """`POST /plugins/{name}/push`: its layers, config and manifest, under its name."""
        p = self.get(ref_text)
        try:
            ref = reference.parse(p.name)
        except InvalidParameter as e:
            raise InvalidParameter(f"plugin has invalid name {p.name} for push: {e}") from None
        layers = [(d, self.store.blob(p.id, d)) for d in p.layer_digests]
        await remote_plugins.push(self._registry(), ref, creds, self.store.blob(p.id, p.config_digest),
                                  p.config_digest, layers, emit)
        self.on_event("push", p.id, p.name)

    async def set(self, ref: str, args: list[str]) -> None:
        async with self._lock:
            p = self.get(ref)
            apply_settings(p, args)
            await asyncio.to_thread(self.store.save, p)

    async def remove(self, ref: str, force: bool) -> None:
        async with self._lock:
            p = self.get(ref)
            if not force:
                if self.in_use(p):
                    raise Conflict(f"plugin {p.name} is in use")
                if p.enabled:
                    raise Conflict(f"plugin {p.name} is enabled")
            if p.enabled:
                try:
                    await self._stop(p)
                except BerthError as e:
                    log.error("failed to disable plugin '%s': %s", p.name, e)
            await asyncio.to_thread(self.store.remove, p.id)
            shutil.rmtree(os.path.join(self.run_root, p.id), ignore_errors=True)
            del self.plugins[p.id]
        self.on_event("remove", p.id, p.name)

    # -- enable, disable -----------------------------------------------------------------------

    async def enable(self, ref: str, timeout: int = 30) -> None:
        async with self._lock:
            p = self.get(ref)
            if p.enabled:
                raise Conflict(f"plugin already enabled: plugin {p.name} is enabled")
            await self._start(p)
            p.enabled = True
            try:
                await asyncio.to_thread(self.store.save, p)
            except BaseException:
                p.enabled = False
                await self._stop(p)
                raise
        self.on_event("enable", p.id, ref)

    async def disable(self, ref: str, force: bool) -> None:
        async with self._lock:
            p = self.get(ref)
            if not force and self.in_use(p):
                raise Conflict(f"plugin {p.name} is in use")
            if not p.enabled:
                raise Conflict(f"plugin is already disabled: plugin {p.name} found but disabled")
            if p.config.implements(AUTHZ):
                self.authz_chain = [n for n in self.authz_chain if lookup_name(n) != p.name]
            await self._stop(p)
            p.enabled = False
            await asyncio.to_thread(self.store.save, p)
        self.on_event("disable", p.id, ref)

    def socket_path(self, p: Plugin) -> str:
        return os.path.join(self.run_root, p.id, p.config.socket)

    def _dial_path(self, p: Plugin) -> str:
        """The socket's path to connect to: when the real one is too long for AF_UNIX
        (107 bytes; a long exec root), the same socket through a short symlink to its
        directory, `<exec-root>/p/<id[:16]>`."""
        path = self.socket_path(p)
        if len(path.encode()) <= 107:
            return path
        link = self._short_link(p)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.makedirs(os.path.dirname(link), mode=0o700, exist_ok=True)
        os.symlink(os.path.join(self.run_root, p.id), link)
        return os.path.join(link, p.config.socket)

    def _short_link(self, p: Plugin) -> str:
        return os.path.join(os.path.dirname(self.run_root), "p", p.id[:16])

    async def _start(self, p: Plugin) -> None:
        """Run the plugin's task and wait for its socket; on any failure nothing is left."""
        run_dir = os.path.join(self.run_root, p.id)
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir, mode=0o700)
        bundle = self.tasks.bundle(p.id)
        try:
            dial = self._dial_path(p)
            config = await asyncio.to_thread(self._bundle_config, p, run_dir)
            await asyncio.to_thread(spec.write_bundle, bundle, config)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(bundle, "exit.json"))
            try:
                await self.tasks.create(CreateTaskRequest(
                    container_id=p.id, bundle=bundle, log_path=os.path.join(self.store.dir(p.id), "plugin.log")))
            except TaskError as e:
                raise SystemError_(f"failed to create task for plugin {p.name}: OCI runtime create failed: {e}") from None
            try:
                await self.tasks.start(p.id)
                await self._wait_for_socket(p, dial)
            except BaseException:
                await self._end_task(p)
                raise
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(bundle, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._short_link(p))
            raise
        self._adopt(p, dial)

    def _adopt(self, p: Plugin, dial: str) -> None:
        """The plugin's task runs and listens: its driver is handed out, its exit watched."""
        self._drivers[p.id] = PluginDriver(p.name, PluginAddress("unix", path=dial),
                                           base_path=self.store.rootfs(p.id), managed=True)
        self._watchers[p.id] = asyncio.create_task(self._watch(p))

    async def _wait_for_socket(self, p: Plugin, dial: str) -> None:
        path = self.socket_path(p)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOCKET_WAIT
        reason = "no such file or directory"
        while True:
            try:
                _reader, writer = await asyncio.open_unix_connection(dial)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            except OSError as e:
                reason = (e.strerror or str(e)).lower()
            try:
                state = await self.tasks.state(p.id)
                gone = state.status == "stopped"
            except TaskError:
                gone = True
            if gone or loop.time() >= deadline:
                raise SystemError_(f"dial unix {path}: connect: {reason}")
            await asyncio.sleep(0.1)

    async def _watch(self, p: Plugin) -> None:
        """The plugin's process ended while it is enabled: as dockerd's plugin controller,
        start it again (after a second, so that a plugin that cannot run does not spin).
        Until it listens again, calls to it fail with the dial error. A restart that
        fails leaves the plugin disabled, as a failed enable does."""
        try:
            status = await self.tasks.wait(p.id)
        except TaskError as e:
            log.warning("plugin %s (%s): lost its task: %s", p.name, p.id[:12], e)
            return
        log.warning("plugin %s (%s) exited with status %d; starting it again", p.name, p.id[:12], status.exit_code)
        await asyncio.sleep(RESTART_DELAY)
        async with self._lock:
            if self._watchers.get(p.id) is not asyncio.current_task() or self.plugins.get(p.id) is not p:
                return  # disabled or removed meanwhile
            del self._watchers[p.id]
            self._drivers.pop(p.id, None)
            await self._end_task(p)
            try:
                await self._start(p)
            except BerthError as e:
                log.error("plugin %s could not be started again, disabling it: %s", p.name, e)
                p.enabled = False
                await asyncio.to_thread(self.store.save, p)

    async def _end_task(self, p: Plugin) -> None:
        with contextlib.suppress(TaskError):
            await self.tasks.kill(p.id, signal.SIGKILL)
        with contextlib.suppress(TaskError, TimeoutError):
            await asyncio.wait_for(self.tasks.wait(p.id), STOP_TIMEOUT)
        with contextlib.suppress(TaskError):
            await self.tasks.delete(p.id)
        shutil.rmtree(self.tasks.bundle(p.id), ignore_errors=True)

    async def _stop(self, p: Plugin) -> None:
        """Docker's shutdownPlugin: SIGTERM, SIGKILL after 10 s, then the task goes."""
        watcher = self._watchers.pop(p.id, None)
        if watcher is not None:
            watcher.cancel()
        self._drivers.pop(p.id, None)
        try:
            await self.tasks.kill(p.id, signal.SIGTERM)
            await asyncio.wait_for(self.tasks.wait(p.id), STOP_TIMEOUT)
        except (TimeoutError, TaskError):
            pass
        await self._end_task(p)
        shutil.rmtree(os.path.join(self.run_root, p.id), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._short_link(p))

    def _bundle_config(self, p: Plugin, run_dir: str) -> dict[str, object]:
        """The OCI config: Docker's InitSpec for plugins."""
        rootfs = self.store.rootfs(p.id)
        cfg = p.config
        mounts: list[dict[str, object]] = []
        for m in p.settings.mounts:
            source = m.get("Source")
            if not source:
                raise SystemError_("mount source is not specified")
            mounts.append({"destination": m.get("Destination", ""), "type": m.get("Type") or "bind",
                           "source": source, "options": list(m.get("Options") or ["rbind"])})
        mounts.append({"destination": RUNTIME_DIR, "type": "bind", "source": run_dir, "options": ["rbind"]})
        if cfg.network:
            for f in ("/etc/hosts", "/etc/resolv.conf"):
                if os.path.exists(f):
                    mounts.append({"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]})
        _init_layer(rootfs, [str(m["destination"]) for m in mounts] + ([cfg.propagated_mount] if cfg.propagated_mount else []))
        env = [DEFAULT_PATH, *p.settings.env]
        args = [*cfg.entrypoint, *p.settings.args]
        if not args:
            raise SystemError_(f"plugin {p.name} has no entrypoint")
        config = spec.build_config(spec.BundleRequest(
            root=rootfs, args=args, env=env, cwd=cfg.workdir or "/", uid=0, gid=0, additional_gids=[],
            hostname="", terminal=False, host_network=cfg.network == "host", cgroups_path=f"/berth/{p.id}",
            mounts=mounts, security=spec.Security(cap_add=list(cfg.capabilities), seccomp="unconfined")))
        namespaces = config["linux"]["namespaces"]
        drop = {"pid"} if cfg.pid_host else set()
        if cfg.ipc_host:
            drop.add("ipc")
        config["linux"]["namespaces"] = [n for n in namespaces if n["type"] not in drop]
        return config

    # -- berthd's start and end ---------------------------------------------------------------

    async def restore(self, live_restore: bool = False) -> None:
        """berthd starts: read the plugins, and enable again those that were enabled;
        with live-restore, a plugin whose task kept running is taken back as it is."""
        for p in await asyncio.to_thread(self.store.load):
            self.plugins[p.id] = p
        for p in list(self.plugins.values()):
            if not p.enabled:
                if os.path.isdir(self.tasks.bundle(p.id)):  # killed between starting it and saving
                    await self._end_task(p)
                    with contextlib.suppress(TaskError):
                        await self.tasks.delete(p.id, lost=True)
                    shutil.rmtree(self.tasks.bundle(p.id), ignore_errors=True)
                continue
            if live_restore and await self._readopt(p):
                log.info("plugin %s still runs; taken back", p.name)
                continue
            await self._end_task(p)  # a task a berthd killed without its shutdown left
            with contextlib.suppress(TaskError):
                await self.tasks.delete(p.id, lost=True)
            shutil.rmtree(self.tasks.bundle(p.id), ignore_errors=True)
            try:
                await self._start(p)
                log.info("plugin %s enabled again", p.name)
            except BerthError as e:
                log.error("plugin %s could not be enabled again: %s", p.name, e)
                p.enabled = False
                await asyncio.to_thread(self.store.save, p)

    async def _readopt(self, p: Plugin) -> bool:
        try:
            state = await self.tasks.state(p.id)
        except TaskError:
            return False
        if state.status != "running":
            return False
        dial = self._dial_path(p)
        try:
            await self._wait_for_socket(p, dial)
        except BerthError:
            return False
        self._adopt(p, dial)
        return True

    async def shutdown(self, live_restore: bool = False) -> None:
        """berthd stops: the plugins' processes stop too (they start again with berthd),
        unless live-restore keeps them running, as dockerd's plugin manager does."""
        for p in list(self.plugins.values()):
            if not (p.enabled and p.id in self._drivers):
                continue
            if live_restore:
                watcher = self._watchers.pop(p.id, None)
                if watcher is not None:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
                continue
            await self._stop(p)


def _authz_doc(request: AuthzRequest) -> dict[str, object]:
    """Docker's authorization.Request as JSON: empty fields left out, bodies in base64."""
    doc: dict[str, object] = {"RequestMethod": request.method, "RequestUri": request.uri}
    if request.user:
        doc["User"] = request.user
        doc["UserAuthNMethod"] = request.authn_method
    if request.body:
        doc["RequestBody"] = base64.b64encode(request.body).decode()
    if request.headers:
        doc["RequestHeaders"] = request.headers
    if request.response_status:
        doc["ResponseStatusCode"] = request.response_status
    if request.response_body:
        doc["ResponseBody"] = base64.b64encode(request.response_body).decode()
    if request.response_headers:
        doc["ResponseHeaders"] = request.response_headers
    return {k: v for k, v in doc.items() if v != ""}


def _info_doc(info: ContainerInfo) -> dict[str, object]:
    """logger.Info as a log plugin gets it."""
    return {"Config": {}, "ContainerID": info.id, "ContainerName": "/" + info.name.lstrip("/"),
            "ContainerEntrypoint": "", "ContainerArgs": [], "ContainerImageID": info.image_id,
            "ContainerImageName": info.image_name, "ContainerCreated": "0001-01-01T00:00:00Z",
            "ContainerEnv": list(info.env), "ContainerLabels": dict(info.labels), "LogPath": "",
            "DaemonName": "docker"}


def _matches_any(patterns: list[str], text: str) -> bool:
    """filters.Args.Match: any of the values, as a regular expression, found in `text`."""
    for pattern in patterns:
        try:
            if re.search(pattern, text):
                return True
        except re.error:
            continue
    return False


def _remote_ref(remote: str) -> reference.Reference:
    """The `remote` of install and privileges: tagged "latest" when untagged."""
    ref = reference.parse(remote, default_tag=False)
    return ref if ref.digest else ref.with_default_tag()


def _init_layer(rootfs: str, destinations: list[str]) -> None:
    """Docker's initlayer: the mount points the runtime needs, made in the rootfs."""
    for d in ("proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue", "etc", "tmp"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for dest in destinations:
        path = os.path.join(rootfs, dest.lstrip("/"))
        if dest in ("/etc/hosts", "/etc/resolv.conf"):
            if not os.path.exists(path):
                with open(path, "a"):
                    pass
        else:
            os.makedirs(path, exist_ok=True)

