"""A recording proxy for the Engine API: what a client (Compose v2, the docker CLI,
docker-py) actually sends to a daemon, request by request.

`recording_proxy(upstream)` listens on a Unix socket of its own, and for each client
connection opens one to the real daemon socket `upstream`, forwards every HTTP/1.1
request and response unchanged, and records each exchange as an `Exchange`: method,
path with query, the request headers that matter, the request body (parsed when it is
JSON), the response status and, when small and JSON, the response body.

Streams keep working: a response with neither Content-Length nor chunked framing
(raw attach streams), a 101 upgrade (hijacked attach/exec), or any request asking for
an upgrade is piped both ways after its head until either side closes; chunked
responses (logs, events, pull progress) are forwarded chunk by chunk as they come.

It is a test helper: one thread accepts, one thread per connection serves, and the
context manager closes them and removes its socket. It changes nothing it forwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Request headers worth keeping in a trace; the rest (User-Agent aside) are transport.
_KEPT_HEADERS = ("content-type", "upgrade", "connection", "x-registry-auth",
                 "x-registry-config", "user-agent")
_BODY_LIMIT = 256 * 1024  # request/response bodies kept in full up to this size
_CHUNK = 65536


@dataclass
class Exchange:
    """One request and its response as seen on the wire."""

    seq: int
    conn: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or a note like "<tar, 2048 bytes>"
    status: int = 0
    response: Any = None  # parsed JSON when small, else a note
    streamed: bool = False  # the connection was piped after the response head

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trace:
    """Every exchange a proxy has recorded, in the order requests arrived."""

    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seq: int = 0

    def new(self, conn: int, method: str, path: str, headers: dict[str, str]) -> Exchange:
        with self._lock:
            self._seq += 1
            ex = Exchange(self._seq, conn, method, path, headers)
            self.exchanges.append(ex)
            return ex

    def take(self) -> list[Exchange]:
        """The exchanges so far, clearing the record (for one step of a scenario)."""
        with self._lock:
            out, self.exchanges = self.exchanges, []
            return out

    def snapshot(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)


class _Reader:
    """A socket read with its own buffer, so that a head can be parsed and what follows
    it forwarded byte for byte."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(_CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    def head(self) -> bytes | None:
        """Bytes up to and including the blank line; None at a clean EOF."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise ConnectionError("connection closed inside an HTTP head")
                return None
        end = self.buf.index(b"\r\n\r\n") + 4
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("connection closed inside a chunked body")
        end = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def exact(self, n: int) -> Iterator[bytes]:
        """n bytes, yielded as they arrive."""
        while n > 0:
            if not self.buf and not self._fill():
                raise ConnectionError("connection closed inside a body")
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def rest(self) -> Iterator[bytes]:
        """Everything until EOF."""
        if self.buf:
            piece, self.buf = self.buf, b""
            yield piece
        while True:
            data = self.sock.recv(_CHUNK)
            if not data:
                return
            yield data


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _relay_body(src: _Reader, dst: socket.socket, headers: dict[str, str],
                until_eof: bool) -> bytes:
    """Forward one message body from src to dst; returns its first _BODY_LIMIT bytes
    (with chunk framing removed)."""
    kept = bytearray()

    def keep(piece: bytes) -> None:
        if len(kept) < _BODY_LIMIT:
            kept.extend(piece[: _BODY_LIMIT - len(kept)])

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = src.line()
            dst.sendall(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = src.line()
                    dst.sendall(trailer)
                    if trailer == b"\r\n":
                        return bytes(kept)
            for piece in src.exact(size):
                dst.sendall(piece)
                keep(piece)
            for piece in src.exact(2):  # the CRLF after the chunk
                dst.sendall(piece)
    elif "content-length" in headers:
        for piece in src.exact(int(headers["content-length"])):
            dst.sendall(piece)
            keep(piece)
    elif until_eof:
        for piece in src.rest():
            dst.sendall(piece)
            keep(piece)
    return bytes(kept)


def _describe_body(data: bytes, content_type: str) -> Any:
    if not data:
        return None
    if len(data) >= _BODY_LIMIT:
        return f"<{content_type or 'body'}, {_BODY_LIMIT}+ bytes>"
    try:
        return json.loads(data)
    except ValueError:
        pass
    lines = data.splitlines()
    if lines and all(_is_json(line) for line in lines if line.strip()):
        return [json.loads(line) for line in lines if line.strip()]  # a JSON stream
    if "tar" in content_type or data[257:262] == b"ustar":
        return f"<tar, {len(data)} bytes>"
    text = data.decode("utf-8", "replace")
    return text if len(text) <= 4096 else f"<{content_type or 'body'}, {len(data)} bytes>"


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _pipe(a: socket.socket, b: socket.socket, a_buffered: bytes, b_buffered: bytes) -> None:
    """Copy bytes both ways until both directions have closed."""

    def one_way(src: socket.socket, dst: socket.socket, first: bytes) -> None:
        try:
            if first:
                dst.sendall(first)
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=one_way, args=(b, a, b_buffered), daemon=True)
    back.start()
    one_way(a, b, a_buffered)
    back.join()


class RecordingProxy:
    """The proxy; use `recording_proxy()` to run one."""

    def __init__(self, upstream: str, listen: str) -> None:
        self.upstream = upstream
        self.socket_path = listen
        self.trace = Trace()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(listen)
        self._server.listen(64)
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._count = 0
        self._acceptor = threading.Thread(target=self._accept, name="apitrace-accept",
                                          daemon=True)

    @property
    def host(self) -> str:
        """The DOCKER_HOST value that sends a client through the proxy."""
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        self._acceptor.start()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._count += 1
            t = threading.Thread(target=self._serve, args=(client, self._count),
                                 name=f"apitrace-{self._count}", daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, client: socket.socket, conn: int) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._conns.update((client, upstream))
        try:
            upstream.connect(self.upstream)
            self._exchange_loop(client, upstream, conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.difference_update((client, upstream))
            client.close()
            upstream.close()

    def _exchange_loop(self, client: socket.socket, upstream: socket.socket, conn: int) -> None:
        creader, ureader = _Reader(client), _Reader(upstream)
        while True:
            head = creader.head()
            if head is None:
                return
            start, headers = _parse_head(head)
            method, _, rest = start.partition(" ")
            path = rest.rpartition(" ")[0]
            kept = {k: v for k, v in headers.items() if k in _KEPT_HEADERS}
            if "x-registry-auth" in kept:
                kept["x-registry-auth"] = "<redacted>"
            ex = self.trace.new(conn, method, path, kept)
            upstream.sendall(head)
            wants_upgrade = "upgrade" in headers.get("connection", "").lower()
            body = _relay_body(creader, upstream, headers, until_eof=False)
            ex.body = _describe_body(body, headers.get("content-type", ""))

            rhead = ureader.head()
            if rhead is None:
                return
            status_line, rheaders = _parse_head(rhead)
            ex.status = int(status_line.split(" ")[1])
            client.sendall(rhead)
            framed = "content-length" in rheaders or "chunked" in rheaders.get(
                "transfer-encoding", "").lower()
            if ex.status == 101 or (wants_upgrade and ex.status < 300) or (
                    not framed and ex.status not in (204, 304) and method != "HEAD"):
                ex.streamed = True
                _pipe(client, upstream, creader.buf, ureader.buf)
                return
            if method == "HEAD" or ex.status in (204, 304):
                continue
            rbody = _relay_body(ureader, client, rheaders, until_eof=False)
            ex.response = _describe_body(rbody, rheaders.get("content-type", ""))
            if rheaders.get("connection", "").lower() == "close":
                return


@contextlib.contextmanager
def recording_proxy(upstream: str, listen: str | None = None) -> Iterator[RecordingProxy]:
    """A running proxy to the daemon socket `upstream`; its socket is `listen` (by
    default a fresh path under /tmp, short enough for AF_UNIX) and is removed after."""
    tmpdir = None
    if listen is None:
        tmpdir = tempfile.mkdtemp(prefix="apit", dir="/tmp")
        listen = str(Path(tmpdir) / "s.sock")
    proxy = RecordingProxy(upstream, listen)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
        if tmpdir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(tmpdir)


def write_trace(exchanges: list[Exchange], path: Path) -> None:
    """The exchanges as a JSON list, one object each, in request order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([e.to_json() for e in exchanges], indent=2) + "\n")
