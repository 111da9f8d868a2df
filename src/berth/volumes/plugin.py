"""Volume plugins: a `VolumeDriver` that speaks Docker's volume plugin protocol.

A legacy (v1) Docker plugin is a process that serves HTTP/1.1 on a UNIX socket (or on
TCP, named by a spec file). Docker finds it by name: NAME.sock or NAME/NAME.sock, or a
spec file NAME.spec (one line, `unix:///path` or `tcp://host:port`) or NAME.json
(`{"Name", "Addr"}`), in /run/docker/plugins, /etc/docker/plugins and
/usr/lib/docker/plugins. Every call is a POST of a JSON body to /Plugin.Activate or
/VolumeDriver.<Method>; an answer with a non-empty "Err" is a failure.

This module owns three things: the lookup of a plugin's address (`find_plugin`), the
protocol itself as pure code on bytes (`encode_request`, `decode_response`), and the
thin transport that sends one request (`_post`, through berth.httpclient). `PluginDriver`
puts them together: it activates the plugin once, lazily and thread-safely, checks
that it implements "VolumeDriver", and caches its capabilities (the scope).

It does not keep volume records or reference counts (volumes/store.py does), and it
does not run or manage plugin processes: for a managed (v2) plugin, berth/plugins does,
and hands out a PluginDriver made with its socket and rootfs (the paths such a plugin
answers are inside its rootfs).
Calls block, with Docker's timeouts: the store runs them in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import stat
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from berth import httpclient
from berth.errors import BerthError, NotFound, SystemError_
from berth.volumes.drivers import DriverVolume

log = logging.getLogger(__name__)

PLUGIN_DIRS = ("/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins")
VOLUME_DRIVER = "VolumeDriver"
ACCEPT = "application/vnd.docker.plugins.v1.2+json"
CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
DUMMY_HOST = "plugin.moby.localhost"  # the Host header Docker sends to a UNIX socket plugin

# Docker's plugin client: 30 s by default; its volume proxy gives Create and Mount two
# minutes (they may provision or attach storage) and every other method one.
ACTIVATE_TIMEOUT = 30.0
SHORT_TIMEOUT = 60.0
LONG_TIMEOUT = 120.0
_LONG_METHODS = ("VolumeDriver.Create", "VolumeDriver.Mount")
_T = TypeVar("_T")


# -- addresses -------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginAddress:
    """Where a plugin listens: a UNIX socket path, or a TCP host and port."""

    network: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.network == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_address(addr: str) -> PluginAddress:
    """`unix:///run/x.sock` or `tcp://host:port`, as a spec file holds it."""
    text = addr.strip()
    parts = urlsplit(text)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path  # "unix://relative" is tolerated, as Go's url does
        if not path:
            raise SystemError_(f"invalid plugin address {text!r}: no socket path")
        return PluginAddress("unix", path=path)
    if parts.scheme in ("tcp", "http"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise SystemError_(f"invalid plugin address {text!r}: want tcp://host:port")
        return PluginAddress("tcp", host=parts.hostname, port=port)
    if not parts.scheme:
        raise SystemError_(f"invalid plugin address {text!r}: Unknown protocol")
    raise SystemError_(f"invalid plugin address {text!r}: unsupported protocol {parts.scheme!r}")


# -- discovery -------------------------------------------------------------------------


def _not_found(name: str) -> NotFound:
    return NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')


def _candidates(directory: str, name: str, ext: str) -> list[str]:
    return [os.path.join(directory, name + ext), os.path.join(directory, name, name + ext)]


def _read_spec(path: str, name: str) -> PluginAddress:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SystemError_(f"error looking up volume plugin {name}: {path}: {e.strerror}") from None
    if path.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise SystemError_(f"error looking up volume plugin {name}: {path}: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Addr"), str):
            raise SystemError_(f'error looking up volume plugin {name}: {path}: no "Addr"')
        if doc.get("TLSConfig"):
            raise SystemError_(f"error looking up volume plugin {name}: {path}: "
                               "TLS plugin addresses are not supported")
        text = doc["Addr"]
    try:
        return parse_address(text)
    except SystemError_ as e:
        raise SystemError_(f"error looking up volume plugin {name}: {path}: {e}") from None


def locate_plugin(name: str, dirs: Sequence[str] = PLUGIN_DIRS) -> PluginAddress:
    """The address of plugin `name`, looked up the way Docker does: sockets first
    (NAME.sock, NAME/NAME.sock), then spec files (NAME.spec, NAME.json, and the same
    under NAME/), directory by directory. NotFound when there is none."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise _not_found(name)
    for directory in dirs:
        for path in _candidates(directory, name, ".sock"):
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    return PluginAddress("unix", path=path)
            except OSError:
                continue
    for directory in dirs:
        for ext in (".spec", ".json"):
            for path in _candidates(directory, name, ext):
                if os.path.isfile(path):
                    return _read_spec(path, name)
    raise _not_found(name)


def find_plugin(name: str, dirs: Sequence[str] = PLUGIN_DIRS) -> PluginDriver:
    """A driver for volume plugin `name`. Only the file system is read here: the plugin
    is activated by the driver's first call (or by `PluginDriver.activate`)."""
    return PluginDriver(name, locate_plugin(name, dirs))


class PluginRegistry:
    """One PluginDriver per plugin name, so that each plugin is activated once."""

    def __init__(self, dirs: Sequence[str] = PLUGIN_DIRS) -> None:
        self.dirs = tuple(dirs)
        self._drivers: dict[str, PluginDriver] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> PluginDriver:
        with self._lock:
            driver = self._drivers.get(name)
            if driver is None:
                driver = self._drivers[name] = find_plugin(name, self.dirs)
            return driver


# -- the protocol, on bytes ------------------------------------------------------------


@dataclass(frozen=True)
class PluginRequest:
    """One call, ready to send: POST `target` with `headers` and `body`."""

    method: str  # "Plugin.Activate", "VolumeDriver.Mount" …
    target: str
    headers: dict[str, str]
    body: bytes
    timeout: float


def encode_request(method: str, args: dict[str, object] | None) -> PluginRequest:
    """`args` None sends an empty body, as Docker does for Plugin.Activate."""
    body = b"" if args is None else json.dumps(args).encode()
    headers = {"Accept": ACCEPT, "Content-Type": CONTENT_TYPE, "Content-Length": str(len(body))}
    if method == "Plugin.Activate":
        timeout = ACTIVATE_TIMEOUT
    elif method in _LONG_METHODS:
        timeout = LONG_TIMEOUT
    else:
        timeout = SHORT_TIMEOUT
    return PluginRequest(method, "/" + method, headers, body, timeout)


class PluginCallError(SystemError_):
    """The plugin answered a call with an error; `status` of its HTTP answer kept in
    `http_status` (404 means it does not serve that method)."""

    def __init__(self, message: str, http_status: int, err: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.err = err


def decode_response(method: str, status: int, body: bytes) -> dict[str, object]:
    """The answer's JSON object; PluginCallError for a non-200 status or a non-empty
    "Err", worded as Docker words it: "VolumeDriver.Mount: <Err>"."""
    doc: object = None
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        pass
    if status != 200:
        err = ""
        if isinstance(doc, dict) and isinstance(doc.get("Err"), str):
            err = doc["Err"]
        if not err:
            err = body.decode(errors="replace").strip() or f"HTTP status {status}"
        raise PluginCallError(f"{method}: {_one_line(err)}", status, err)
    if not isinstance(doc, dict):
        raise PluginCallError(f"{method}: invalid answer from plugin: not a JSON object", status, "")
    if doc.get("Err"):
        text = str(doc["Err"])
        raise PluginCallError(f"{method}: {_one_line(text)}", status, text)
    return doc


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- transport -------------------------------------------------------------------------


def _post(address: PluginAddress, request: PluginRequest) -> tuple[int, bytes]:
    """Send one request through berthd's HTTP client (a session of its own); SystemError_
    when the plugin cannot be reached or does not answer in time."""
    return _blocking(_post_async(address, request))


async def _post_async(address: PluginAddress, request: PluginRequest) -> tuple[int, bytes]:
    if address.network == "unix":
        url, unix_socket = f"http://{DUMMY_HOST}{request.target}", address.path
    else:
        host = f"[{address.host}]" if ":" in address.host else address.host
        url, unix_socket = f"http://{host}:{address.port}{request.target}", None
    limits = httpclient.Limits(connect=request.timeout, read=None, total=request.timeout, max_redirects=0)
    try:
        resp = await httpclient.request("POST", url, body=request.body, headers=request.headers,
                                        unix_socket=unix_socket, limits=limits)
    except httpclient.ConnectError as e:
        raise SystemError_(f"{request.method}: dial {address}: connect: {e.os_reason}") from None
    except httpclient.RequestTimeout:
        raise SystemError_(f"{request.method}: no answer from {address} within {request.timeout:g} s") from None
    except httpclient.HTTPClientError as e:
        raise SystemError_(f"{request.method}: {address}: {e.reason}") from None
    return resp.status, resp.body


async def call(address: PluginAddress, method: str, args: dict[str, object] | None) -> dict[str, object]:
    """One call of any plugin protocol (LogDriver.StartLogging …), from the event loop."""
    status, body = await _post_async(address, encode_request(method, args))
    return decode_response(method, status, body)


async def call_raw(address: PluginAddress, method: str, args: dict[str, object] | None) -> bytes:
    """A call whose answer is not JSON but a stream (LogDriver.ReadLogs): its bytes."""
    status, body = await _post_async(address, encode_request(method, args))
    if status != 200:
        decode_response(method, status, body)  # raises, with the plugin's words
    return body


def _blocking(call: Coroutine[Any, Any, _T]) -> _T:
    """Run `call` to its end on an event loop of its own: the driver's methods block
    (the store runs them in a thread), the HTTP client is async. On a thread whose loop
    runs (the store reading `scope`), it blocks that loop, as a blocking call there did."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call).result()


# -- the driver ------------------------------------------------------------------------


@dataclass
class PluginManifest:
    """What Plugin.Activate answered."""

    implements: list[str] = field(default_factory=list)


class PluginDriver:
    """A VolumeDriver backed by a legacy Docker volume plugin at `address`."""

    def __init__(self, name: str, address: PluginAddress, *, base_path: str = "", managed: bool = False) -> None:
        self.name = name
        self.address = address
        self.base_path = base_path  # a managed plugin's rootfs: its mountpoints are relative to it
        # a managed plugin declares its interfaces in its config, and is not activated
        self._manifest: PluginManifest | None = PluginManifest([VOLUME_DRIVER]) if managed else None
        self._scope: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PluginDriver({self.name!r}, {str(self.address)!r})"

    # -- activation and capabilities

    def activate(self) -> PluginManifest:
        """Plugin.Activate, once, then the capabilities (optional: a failure there is
        logged and retried by the next read of `scope`). A failed activation is not
        kept: the next call tries again, as Docker retries a plugin that was not ready."""
        with self._lock:
            if self._manifest is not None:
                return self._manifest
            try:
                doc = self._call("Plugin.Activate", None)
            except BerthError as e:
                raise SystemError_(f"error looking up volume plugin {self.name}: {e}") from None
            implements = doc.get("Implements")
            kinds = [str(k) for k in implements] if isinstance(implements, list) else []
            if VOLUME_DRIVER not in kinds:
                raise SystemError_(
                    f"error looking up volume plugin {self.name}: Plugin does not implement the "
                    f'requested driver: plugin="{self.name}", requested implementation="{VOLUME_DRIVER}"')
            self._manifest = PluginManifest(kinds)
            if self._scope is None:
                try:
                    self._scope = self._capabilities()
                except BerthError as e:
                    log.warning("volume plugin %s: cannot read its capabilities: %s", self.name, e)
            return self._manifest

    def _capabilities(self) -> str:
        """The scope from VolumeDriver.Capabilities; "local" when the plugin does not
        serve the method (it is optional), or says something else."""
        try:
            doc = self._call("VolumeDriver.Capabilities", {})
        except PluginCallError as e:
            if e.http_status == 404:
                return "local"
            raise
        caps = doc.get("Capabilities")
        scope = caps.get("Scope") if isinstance(caps, dict) else None
        scope = scope.lower() if isinstance(scope, str) else ""
        if scope not in ("local", "global"):
            if scope:
                log.warning("volume plugin %s reports unknown scope %r; using local", self.name, scope)
            return "local"
        return scope

    @property
    def scope(self) -> str:
        """"local" or "global", as the plugin's capabilities say. The first read may
        activate the plugin; when it cannot be reached the answer is "local", not kept."""
        if self._scope is None:
            try:
                self.activate()
                with self._lock:
                    if self._scope is None:
                        self._scope = self._capabilities()
            except BerthError as e:
                log.warning("volume plugin %s: assuming local scope: %s", self.name, e)
                return "local"
        return self._scope

    @scope.setter
    def scope(self, value: str) -> None:
        """An explicit scope (from configuration) instead of the plugin's answer."""
        self._scope = value

    # -- calls

    def _call(self, method: str, args: dict[str, object] | None) -> dict[str, object]:
        request = encode_request(method, args)
        status, body = _post(self.address, request)
        return decode_response(method, status, body)

    def _volume_call(self, method: str, args: dict[str, object]) -> dict[str, object]:
        self.activate()
        return self._call(method, args)

    def create(self, name: str, options: dict[str, str]) -> None:
        self._volume_call("VolumeDriver.Create", {"Name": name, "Opts": dict(options)})

    def remove(self, name: str) -> None:
        self._volume_call("VolumeDriver.Remove", {"Name": name})

    def mount(self, name: str, mount_id: str) -> str:
        doc = self._volume_call("VolumeDriver.Mount", {"Name": name, "ID": mount_id})
        mountpoint = doc.get("Mountpoint")
        if not isinstance(mountpoint, str) or not mountpoint:
            raise SystemError_(f"VolumeDriver.Mount: volume plugin {self.name} returned no "
                               f"mountpoint for volume {name}")
        return self._host_path(mountpoint)

    def _host_path(self, mountpoint: str) -> str:
        if not self.base_path or not mountpoint:
            return mountpoint
        return os.path.join(self.base_path, os.path.normpath("/" + mountpoint).lstrip("/"))

    def unmount(self, name: str, mount_id: str) -> None:
        self._volume_call("VolumeDriver.Unmount", {"Name": name, "ID": mount_id})

    def path(self, name: str) -> str:
        doc = self._volume_call("VolumeDriver.Path", {"Name": name})
        mountpoint = doc.get("Mountpoint")
        return self._host_path(mountpoint) if isinstance(mountpoint, str) else ""

    def get(self, name: str) -> DriverVolume:
        try:
            doc = self._volume_call("VolumeDriver.Get", {"Name": name})
        except PluginCallError as e:
            raise NotFound(str(e)) from None
        volume = _driver_volume(doc.get("Volume"))
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def list(self) -> list[DriverVolume]:
        doc = self._volume_call("VolumeDriver.List", {})
        entries = doc.get("Volumes")
        if not isinstance(entries, list):
            return []
        return [v for v in map(_driver_volume, entries) if v is not None]


def _driver_volume(doc: object) -> DriverVolume | None:
    """A DriverVolume from the protocol's {"Name", "Mountpoint", "Status"}; None when the
    entry has no name."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Name"), str) or not doc["Name"]:
        return None
    mountpoint = doc.get("Mountpoint")
    status = doc.get("Status")
    return DriverVolume(doc["Name"], mountpoint if isinstance(mountpoint, str) else "",
                        {str(k): v for k, v in status.items()} if isinstance(status, dict) else {})
