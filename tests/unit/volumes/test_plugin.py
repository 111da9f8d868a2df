"""PluginDriver against the example volume plugin (tests/helpers/volume_plugin.py) run as
a subprocess, found through discovery in a private plugin directory; and against small
in-process fakes for the plugins that misbehave."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from berth.errors import NotFound, SystemError_
from berth.volumes.plugin import (
    PluginAddress,
    PluginRegistry,
    decode_response,
    find_plugin,
    locate_plugin,
    parse_address,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "helpers" / "volume_plugin.py"


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    # Short, under /tmp: a UNIX socket path must fit in 108 bytes.
    path = tempfile.mkdtemp(prefix="berth-vp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class ExamplePlugin:
    proc: subprocess.Popen[bytes]
    socket: str
    root: str

    def volume_dir(self, name: str) -> str:
        return os.path.join(self.root, "volumes", name)


def start_example(socket_path: str, root: str, *extra: str) -> ExamplePlugin:
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--socket", socket_path, "--root", root, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while not os.path.exists(socket_path):
        if proc.poll() is not None:
            raise AssertionError(f"example plugin exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            stop_example(proc)
            raise AssertionError("example plugin did not listen within 5 s")
        time.sleep(0.01)
    return ExamplePlugin(proc, socket_path, root)


def stop_example(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stderr:
        proc.stderr.close()
    return proc.returncode


@pytest.fixture
def example(plugin_dir: str) -> Iterator[ExamplePlugin]:
    plugin = start_example(os.path.join(plugin_dir, "example.sock"), os.path.join(plugin_dir, "data"))
    yield plugin
    stop_example(plugin.proc)


# -- the example plugin, through discovery --------------------------------------------


def test_create_passes_options_through(example: ExamplePlugin, plugin_dir: str) -> None:
    driver = find_plugin("example", dirs=[plugin_dir])
    driver.create("data1", {"size": "1G", "encrypted": "true"})
    assert os.path.isdir(example.volume_dir("data1"))
    with open(example.volume_dir("data1") + ".opts.json") as f:
        assert json.load(f) == {"size": "1G", "encrypted": "true"}


def test_get_list_and_path(example: ExamplePlugin, plugin_dir: str) -> None:
    driver = find_plugin("example", dirs=[plugin_dir])
    driver.create("b", {})
    driver.create("a", {})
    got = driver.get("a")
    assert (got.name, got.mountpoint, got.status) == ("a", example.volume_dir("a"), {"mounts": 0})
    assert [(v.name, v.mountpoint) for v in driver.list()] == [
        ("a", example.volume_dir("a")), ("b", example.volume_dir("b"))]
    assert driver.path("b") == example.volume_dir("b")


def test_mount_unmount_remove(example: ExamplePlugin, plugin_dir: str) -> None:
    driver = find_plugin("example", dirs=[plugin_dir])
    driver.create("v", {})
    host_path = driver.mount("v", "c1")
    assert os.path.isdir(host_path)
    Path(host_path, "hello").write_text("hi")
    assert driver.mount("v", "c2") == host_path
    assert driver.get("v").status == {"mounts": 2}
    driver.unmount("v", "c1")
    driver.unmount("v", "c2")
    assert driver.get("v").status == {"mounts": 0}
    driver.remove("v")
    assert not os.path.exists(host_path)
    assert driver.list() == []


def test_remove_while_mounted_is_refused(example: ExamplePlugin, plugin_dir: str) -> None:
    driver = find_plugin("example", dirs=[plugin_dir])
    driver.create("busy", {})
    driver.mount("busy", "c1")
    with pytest.raises(SystemError_) as e:
        driver.remove("busy")
    assert str(e.value) == "VolumeDriver.Remove: remove busy: volume has active mounts"
    driver.unmount("busy", "c1")
    driver.remove("busy")


def test_unknown_volume(example: ExamplePlugin, plugin_dir: str) -> None:
    driver = find_plugin("example", dirs=[plugin_dir])
    with pytest.raises(NotFound) as e:
        driver.get("nope")
    assert str(e.value) == "VolumeDriver.Get: get nope: no such volume"
    with pytest.raises(SystemError_) as e2:
        driver.mount("nope", "c1")
    assert str(e2.value) == "VolumeDriver.Mount: mount nope: no such volume"
    with pytest.raises(SystemError_, match="^VolumeDriver.Path: path nope: no such volume$"):
        driver.path("nope")


def test_scope_from_capabilities(plugin_dir: str) -> None:
    plugin = start_example(os.path.join(plugin_dir, "shared.sock"), os.path.join(plugin_dir, "data"),
                           "--scope", "global")
    try:
        assert find_plugin("shared", dirs=[plugin_dir]).scope == "global"
    finally:
        stop_example(plugin.proc)


def test_spec_files_point_at_the_socket(example: ExamplePlugin, plugin_dir: str) -> None:
    specs = os.path.join(plugin_dir, "specs")
    os.makedirs(os.path.join(specs, "nested"))
    Path(specs, "byspec.spec").write_text(f"unix://{example.socket}\n")
    Path(specs, "nested", "nested.spec").write_text(f"unix://{example.socket}")
    Path(specs, "byjson.json").write_text(json.dumps({"Name": "byjson", "Addr": f"unix://{example.socket}"}))
    find_plugin("byspec", dirs=[specs]).create("s1", {})
    assert [v.name for v in find_plugin("byjson", dirs=[specs]).list()] == ["s1"]
    assert find_plugin("nested", dirs=[specs]).get("s1").name == "s1"


def test_socket_in_a_directory_of_its_name(plugin_dir: str) -> None:
    os.makedirs(os.path.join(plugin_dir, "deep"))
    plugin = start_example(os.path.join(plugin_dir, "deep", "deep.sock"), os.path.join(plugin_dir, "data"))
    try:
        assert locate_plugin("deep", dirs=[plugin_dir]) == PluginAddress("unix", path=plugin.socket)
        find_plugin("deep", dirs=[plugin_dir]).create("x", {})
    finally:
        stop_example(plugin.proc)


def test_plugin_exits_on_sigterm_and_removes_its_socket(example: ExamplePlugin) -> None:
    assert stop_example(example.proc) == 0
    assert not os.path.exists(example.socket)


# -- discovery -------------------------------------------------------------------------


def test_unknown_plugin(plugin_dir: str) -> None:
    for name in ("nosuch", "../etc", ""):
        with pytest.raises(NotFound) as e:
            find_plugin(name, dirs=[plugin_dir])
        assert str(e.value) == f'error looking up volume plugin {name}: plugin "{name}" not found'


def test_a_file_named_sock_that_is_not_a_socket_is_skipped(plugin_dir: str) -> None:
    Path(plugin_dir, "plain.sock").write_text("")
    with pytest.raises(NotFound):
        find_plugin("plain", dirs=[plugin_dir])


def test_registry_caches_drivers(example: ExamplePlugin, plugin_dir: str) -> None:
    registry = PluginRegistry([plugin_dir])
    assert registry.get("example") is registry.get("example")


def test_parse_address() -> None:
    assert parse_address("unix:///run/p.sock\n") == PluginAddress("unix", path="/run/p.sock")
    assert parse_address("tcp://127.0.0.1:8080") == PluginAddress("tcp", host="127.0.0.1", port=8080)
    assert str(parse_address("tcp://[::1]:9")) == "tcp://[::1]:9"
    for bad in ("/run/p.sock", "tcp://host", "ftp://x:1", "unix://"):
        with pytest.raises(SystemError_, match="invalid plugin address"):
            parse_address(bad)


def test_decode_response_err_in_a_200_answer() -> None:
    assert decode_response("VolumeDriver.Path", 200, b'{"Mountpoint": "/x", "Err": ""}') == {
        "Mountpoint": "/x", "Err": ""}
    with pytest.raises(SystemError_, match="^VolumeDriver.Create: disk full$"):
        decode_response("VolumeDriver.Create", 200, b'{"Err": "disk\\nfull"}')
    with pytest.raises(SystemError_, match="^VolumeDriver.List: boom$"):
        decode_response("VolumeDriver.List", 500, b"boom\n")


# -- plugins that misbehave, served in-process -----------------------------------------


@dataclass
class FakePlugin:
    """Answers each path from `routes` (status, body); 404 for the others."""

    routes: dict[str, tuple[int, bytes]]
    calls: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls.append(self.path)
                status, body = fake.routes.get(self.path, (404, b"404 page not found\n"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


@pytest.fixture
def serve_fake() -> Iterator[object]:
    servers: list[socketserver.BaseServer] = []

    def serve(fake: FakePlugin, unix_path: str = "") -> socketserver.BaseServer:
        server: socketserver.BaseServer
        if unix_path:
            server = _UnixServer(unix_path, fake.handler())
        else:
            server = _TCPServer(("127.0.0.1", 0), fake.handler())
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


ACTIVATE_VOLUME = (200, b'{"Implements": ["VolumeDriver"]}')


def test_activation_happens_once(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    fake = FakePlugin({"/Plugin.Activate": ACTIVATE_VOLUME,
                       "/VolumeDriver.List": (200, b'{"Volumes": [{"Name": "v"}]}')})
    serve_fake(fake, os.path.join(plugin_dir, "once.sock"))
    driver = find_plugin("once", dirs=[plugin_dir])
    assert fake.calls == []  # lookup reads only the file system
    failures: list[BaseException] = []

    def list_volumes() -> None:
        try:
            driver.list()
        except BaseException as e:  # noqa: BLE001  (asserted below)
            failures.append(e)

    # more callers at once than the plugin's listen backlog holds: they wait, not fail
    threads = [threading.Thread(target=list_volumes) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert driver.list()[0].name == "v"
    assert fake.calls.count("/Plugin.Activate") == 1
    assert fake.calls.count("/VolumeDriver.Capabilities") == 1
    assert driver.scope == "local"  # Capabilities is optional: 404 means local
    assert fake.calls.count("/VolumeDriver.Capabilities") == 1


def test_a_plugin_that_is_not_a_volume_driver(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    serve_fake(FakePlugin({"/Plugin.Activate": (200, b'{"Implements": ["NetworkDriver"]}')}),
               os.path.join(plugin_dir, "net.sock"))
    with pytest.raises(SystemError_) as e:
        find_plugin("net", dirs=[plugin_dir]).create("v", {})
    assert str(e.value) == ('error looking up volume plugin net: Plugin does not implement the requested '
                            'driver: plugin="net", requested implementation="VolumeDriver"')


def test_a_socket_that_is_not_a_plugin(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    serve_fake(FakePlugin({}), os.path.join(plugin_dir, "web.sock"))
    with pytest.raises(SystemError_) as e:
        find_plugin("web", dirs=[plugin_dir]).list()
    assert str(e.value) == "error looking up volume plugin web: Plugin.Activate: 404 page not found"


def test_a_socket_that_closes_at_once(plugin_dir: str) -> None:
    path = os.path.join(plugin_dir, "mute.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        conn.close()

    t = threading.Thread(target=accept_and_close, daemon=True)
    t.start()
    try:
        with pytest.raises(SystemError_, match=r"^error looking up volume plugin mute: .*Plugin.Activate"):
            find_plugin("mute", dirs=[plugin_dir]).list()
    finally:
        t.join(timeout=5)
        listener.close()


def test_a_socket_nobody_listens_on(plugin_dir: str) -> None:
    path = os.path.join(plugin_dir, "gone.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays; connecting to it is refused
    with pytest.raises(SystemError_) as e:
        find_plugin("gone", dirs=[plugin_dir]).mount("v", "c1")
    assert str(e.value) == (f"error looking up volume plugin gone: Plugin.Activate: "
                            f"dial unix://{path}: connect: connection refused")


def test_tcp_spec_file(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    fake = FakePlugin({"/Plugin.Activate": ACTIVATE_VOLUME,
                       "/VolumeDriver.Capabilities": (200, b'{"Capabilities": {"Scope": "GLOBAL"}}'),
                       "/VolumeDriver.Mount": (200, b'{"Mountpoint": "/mnt/remote"}'),
                       "/VolumeDriver.Get": (200, b'{"Err": "volume nope not found"}')})
    server = serve_fake(fake)
    host, port = server.server_address
    Path(plugin_dir, "remote.spec").write_text(f"tcp://{host}:{port}\n")
    driver = find_plugin("remote", dirs=[plugin_dir])
    assert driver.mount("v", "c1") == "/mnt/remote"
    assert driver.scope == "global"
    with pytest.raises(NotFound, match="^VolumeDriver.Get: volume nope not found$"):
        driver.get("nope")


def test_a_call_made_on_a_running_event_loop(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    """The driver blocks; on a thread whose event loop runs (berthd's, reading `scope`)
    its call still completes, on a loop of its own."""
    fake = FakePlugin({"/Plugin.Activate": ACTIVATE_VOLUME,
                       "/VolumeDriver.Capabilities": (200, b'{"Capabilities": {"Scope": "global"}}')})
    serve_fake(fake, os.path.join(plugin_dir, "onloop.sock"))

    async def read_scope() -> str:
        return find_plugin("onloop", dirs=[plugin_dir]).scope

    assert asyncio.run(read_scope()) == "global"


def test_a_redirect_is_an_answer_not_followed(serve_fake, plugin_dir: str) -> None:  # type: ignore[no-untyped-def]
    fake = FakePlugin({"/Plugin.Activate": (307, b"")})
    serve_fake(fake, os.path.join(plugin_dir, "moved.sock"))
    with pytest.raises(SystemError_, match="^error looking up volume plugin moved: Plugin.Activate: HTTP status 307$"):
        find_plugin("moved", dirs=[plugin_dir]).list()
    assert fake.calls == ["/Plugin.Activate"]
