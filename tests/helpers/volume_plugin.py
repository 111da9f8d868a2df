"""An example Docker volume plugin: the one berth's tests and README point to.

It serves Docker's legacy volume plugin protocol (Plugin.Activate and
VolumeDriver.Create/Remove/Mount/Unmount/Path/Get/List/Capabilities, HTTP/1.1 POSTs
of JSON) on a UNIX socket, with the standard library only:

    .venv/bin/python tests/helpers/volume_plugin.py --socket /run/docker/plugins/example.sock \\
        --root /var/lib/example-volumes

Each volume is a plain directory ROOT/volumes/NAME; the Opts it was created with are
written to ROOT/volumes/NAME.opts.json, so that a test can check that options pass
through. It keeps, in memory, which mount IDs use each volume, and refuses to remove a
volume that is mounted. Failures are answered the way plugins built on Docker's
go-plugins-helpers answer them: HTTP 500 and {"Err": "<one line>"}.

The socket is bound under a temporary name and renamed into place once it listens, so
a client that sees the socket file can connect. Nothing is printed before that. SIGTERM
(or SIGINT) stops the server and removes the socket.

It is an example, not a storage system: it does not persist its mount table and does
no real mount(2); "mounting" hands out the directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socketserver
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from types import FrameType

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class PluginError(Exception):
    """A failure answered to the caller as {"Err": message}."""


class ExampleVolumes:
    """The plugin's state: volume directories under `root`, and who mounts them."""

    def __init__(self, root: str, scope: str = "local") -> None:
        self.dir = os.path.join(root, "volumes")
        os.makedirs(self.dir, exist_ok=True)
        self.scope = scope
        self._mounts: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _path(self, op: str, name: object) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise PluginError(f"{op} {name}: invalid volume name")
        return os.path.join(self.dir, name)

    def _existing(self, op: str, name: object) -> str:
        path = self._path(op, name)
        if not os.path.isdir(path):
            raise PluginError(f"{op} {name}: no such volume")
        return path

    def _info(self, name: str) -> dict[str, object]:
        return {"Name": name, "Mountpoint": os.path.join(self.dir, name)}

    def create(self, req: dict[str, object]) -> dict[str, object]:
        path = self._path("create", req.get("Name"))
        opts = req.get("Opts") or {}
        if not isinstance(opts, dict):
            raise PluginError(f"create {req.get('Name')}: Opts must be an object")
        if not os.path.isdir(path):
            with open(path + ".opts.json.tmp", "w") as f:
                json.dump(opts, f)
            os.rename(path + ".opts.json.tmp", path + ".opts.json")
            os.makedirs(path, exist_ok=True)
        return {}

    def remove(self, req: dict[str, object]) -> dict[str, object]:
        name = req.get("Name")
        path = self._existing("remove", name)
        with self._lock:
            if self._mounts.get(str(name)):
                raise PluginError(f"remove {name}: volume has active mounts")
            shutil.rmtree(path)
            try:
                os.unlink(path + ".opts.json")
            except FileNotFoundError:
                pass
        return {}

    def mount(self, req: dict[str, object]) -> dict[str, object]:
        name, mount_id = req.get("Name"), req.get("ID")
        path = self._existing("mount", name)
        if not isinstance(mount_id, str) or not mount_id:
            raise PluginError(f"mount {name}: no mount ID")
        with self._lock:
            self._mounts.setdefault(str(name), set()).add(mount_id)
        return {"Mountpoint": path}

    def unmount(self, req: dict[str, object]) -> dict[str, object]:
        name, mount_id = req.get("Name"), req.get("ID")
        self._existing("unmount", name)
        with self._lock:
            users = self._mounts.get(str(name), set())
            users.discard(str(mount_id))
            if not users:
                self._mounts.pop(str(name), None)
        return {}

    def path(self, req: dict[str, object]) -> dict[str, object]:
        return {"Mountpoint": self._existing("path", req.get("Name"))}

    def get(self, req: dict[str, object]) -> dict[str, object]:
        name = req.get("Name")
        self._existing("get", name)
        with self._lock:
            mounts = len(self._mounts.get(str(name), ()))
        return {"Volume": {**self._info(str(name)), "Status": {"mounts": mounts}}}

    def list(self, req: dict[str, object]) -> dict[str, object]:
        names = sorted(n for n in os.listdir(self.dir) if os.path.isdir(os.path.join(self.dir, n)))
        return {"Volumes": [self._info(n) for n in names]}

    def capabilities(self, req: dict[str, object]) -> dict[str, object]:
        return {"Capabilities": {"Scope": self.scope}}


def make_handler(volumes: ExampleVolumes) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[dict[str, object]], dict[str, object]]] = {
        "/Plugin.Activate": lambda req: {"Implements": ["VolumeDriver"]},
        "/VolumeDriver.Create": volumes.create,
        "/VolumeDriver.Remove": volumes.remove,
        "/VolumeDriver.Mount": volumes.mount,
        "/VolumeDriver.Unmount": volumes.unmount,
        "/VolumeDriver.Path": volumes.path,
        "/VolumeDriver.Get": volumes.get,
        "/VolumeDriver.List": volumes.list,
        "/VolumeDriver.Capabilities": volumes.capabilities,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            route = routes.get(self.path)
            if route is None:
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return
            try:
                req = json.loads(raw) if raw.strip() else {}
                if not isinstance(req, dict):
                    raise PluginError("request body must be a JSON object")
                status, answer = 200, route(req)
            except PluginError as e:
                status, answer = 500, {"Err": str(e)}
            except (ValueError, OSError) as e:
                status, answer = 500, {"Err": f"{self.path.lstrip('/')}: {e}"}
            self._send(status, json.dumps(answer).encode(), CONTENT_TYPE)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(socket_path: str, root: str, scope: str = "local") -> None:
    """Serve until SIGTERM or SIGINT, then remove the socket."""
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    staging = f"{socket_path}.{os.getpid()}.tmp"
    server = UnixServer(staging, make_handler(ExampleVolumes(root, scope)))

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever(), which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        os.rename(staging, socket_path)
        print(f"volume plugin listening on {socket_path}", flush=True)
        server.serve_forever(poll_interval=0.05)  # shutdown() waits up to one interval
    finally:
        server.server_close()
        for path in (staging, socket_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An example Docker volume plugin.")
    parser.add_argument("--socket", required=True, help="UNIX socket to listen on")
    parser.add_argument("--root", required=True, help="directory that holds the volumes")
    parser.add_argument("--scope", default="local", choices=("local", "global"),
                        help="the scope VolumeDriver.Capabilities reports")
    args = parser.parse_args(argv)
    serve(args.socket, args.root, args.scope)
    return 0


if __name__ == "__main__":
    sys.exit(main())
