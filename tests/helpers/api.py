"""A minimal Engine API client over a UNIX socket, built on http.client.

The e2e tests use it where they want to see the raw HTTP exchange (status codes,
headers, malformed bodies) that the docker CLI and docker-py would hide.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose transport is a UNIX stream socket."""

    def __init__(self, socket_path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def request(
    socket_path: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    """Send one request on a fresh connection and read the whole response."""
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.headers, data)
    finally:
        conn.close()


class ApiClient:
    """Raw requests against one daemon socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return request(self.socket_path, method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Response:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, body: bytes | str | None = None, **kwargs: Any) -> Response:
        return self.request("POST", path, body=body, **kwargs)

    def post_json(self, path: str, payload: Any) -> Response:
        return self.post(
            path, json.dumps(payload), headers={"Content-Type": "application/json"}
        )

    def container_ids(self) -> set[str]:
        """IDs of all containers, running or not; raises if the daemon cannot list them."""
        resp = self.get("/containers/json?all=1")
        if resp.status != 200:
            raise RuntimeError(f"GET /containers/json?all=1 -> {resp.status}: {resp.body!r}")
        return {c["Id"] for c in resp.json()}

    def networks(self) -> dict[str, str] | None:
        """Id -> name of every network, or None if the daemon cannot list them."""
        try:
            resp = self.get("/networks")
        except OSError:
            return None
        if resp.status != 200:
            return None
        return {n["Id"]: n["Name"] for n in resp.json()}

    def remove_network(self, name: str) -> None:
        """A network and the containers still attached to it, if it exists."""
        resp = self.get(f"/networks/{name}")
        if resp.status != 200:
            return
        for cid in resp.json().get("Containers") or {}:
            self.request("DELETE", f"/containers/{cid}?force=1&v=1")
        self.request("DELETE", f"/networks/{name}")
