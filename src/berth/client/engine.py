"""A small Engine API client for the berth CLI: HTTP/1.1 over a UNIX or TCP socket.

What it owns: choosing the daemon address (``-H``, ``DOCKER_HOST``,
``BERTH_HOST``), API version negotiation through ``GET /_ping``, plain requests
with JSON bodies, streamed responses (logs, pull progress), hijacked
connections (attach, exec) and the errors the docker CLI prints for each
failure.  It is deliberately stdlib-only and imports nothing heavy, so the
CLI starts fast.

The protocol pieces that need no socket — the response-head parser and the
chunked-transfer decoder — are pure classes at the top; the socket code is a thin
adapter below them. The stdout/stderr frame codec is berth.stdstream's (pure, stdlib
only), re-exported here.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

# The frame codec is berth.stdstream's; the CLI imports it from here, as before.
from berth.stdstream import STDERR as STDERR
from berth.stdstream import STDIN as STDIN
from berth.stdstream import STDOUT as STDOUT
from berth.stdstream import SYSTEM
from berth.stdstream import FrameDecoder as FrameDecoder
from berth.stdstream import encode_frame as encode_frame

DEFAULT_HOST = "unix:///run/berth/berth.sock"
API_VERSION = "1.51"
CLIENT_VERSION = "0.1.0"
DUMMY_HOST = "api.moby.localhost"


class ClientError(Exception):
    """An error to print; ``status`` is the CLI exit code to use."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class DaemonUnreachable(ClientError):
    """No daemon answers at the chosen address."""


class APIError(ClientError):
    """The daemon answered with an error status."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.http_status = http_status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.http_status == 404


# --------------------------------------------------------------------------
# Pure protocol pieces


class ResponseHead:
    """Status line and headers (names lower-cased) of an HTTP response."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers or {}

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def parse_response_head(data: bytes) -> ResponseHead:
    """Parse ``HTTP/1.1 200 OK\\r\\nName: value\\r\\n...`` (without the blank line)."""
    lines = data.decode("latin-1").split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ClientError(f"malformed HTTP response {status_line!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise ClientError(f"malformed HTTP status code {parts[1]!r}") from None
    reason = parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return ResponseHead(status, reason, headers)


class ChunkedDecoder:
    """Incremental decoder of ``Transfer-Encoding: chunked`` bodies."""

    def __init__(self) -> None:
        self._buf = b""
        self._remaining = 0  # bytes left in the current chunk
        self._state = "size"  # size, data, data-crlf, trailer, done
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._state == "size":
                idx = self._buf.find(b"\r\n")
                if idx < 0:
                    break
                line = self._buf[:idx].split(b";", 1)[0].strip()
                self._buf = self._buf[idx + 2 :]
                try:
                    self._remaining = int(line, 16)
                except ValueError:
                    raise ClientError(f"malformed chunk size {line!r}") from None
                self._state = "data" if self._remaining else "trailer"
            elif self._state == "data":
                if not self._buf:
                    break
                take = self._buf[: self._remaining]
                self._buf = self._buf[len(take) :]
                self._remaining -= len(take)
                out.append(take)
                if self._remaining == 0:
                    self._state = "data-crlf"
            elif self._state == "data-crlf":
                if len(self._buf) < 2:
                    break
                self._buf = self._buf[2:]
                self._state = "size"
            elif self._state == "trailer":
                idx = self._buf.find(b"\r\n")
                if idx < 0:
                    break
                line = self._buf[:idx]
                self._buf = self._buf[idx + 2 :]
                if not line:
                    self._state = "done"
                    self.done = True
            else:
                break
        return b"".join(out)


SYSTEMERR = SYSTEM  # the name this module gave stream 3


def iter_json_stream(chunks: Iterator[bytes]) -> Iterator[Any]:
    """Decode a stream of concatenated JSON values (docker's jsonmessage streams)."""
    decoder = json.JSONDecoder()
    buf = ""
    pending = b""
    for chunk in chunks:
        pending += chunk
        try:
            buf += pending.decode("utf-8")
            pending = b""
        except UnicodeDecodeError:
            continue
        while True:
            stripped = buf.lstrip()
            if not stripped:
                buf = ""
                break
            try:
                value, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buf = stripped
                break
            yield value
            buf = stripped[end:]
    if buf.strip():
        raise ClientError("unexpected EOF")


def daemon_message(body: bytes, status: int, reason: str) -> str:
    """The error message in an error response body (JSON ``message`` or raw text)."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    if text:
        return text
    return reason or f"status {status}"


# --------------------------------------------------------------------------
# Host selection


_INIT_ERROR = "Failed to initialize: unable to resolve berth endpoint: "


def choose_host(flag_hosts: list[str] | None = None) -> str:
    if flag_hosts:
        if len(flag_hosts) > 1:
            raise ClientError(_INIT_ERROR + "Specify only one -H")
        return flag_hosts[0]
    return os.environ.get("DOCKER_HOST") or os.environ.get("BERTH_HOST") or DEFAULT_HOST


def parse_host(host: str) -> tuple[str, str | tuple[str, int]]:
    """``unix:///path`` → ("unix", path); ``tcp://h:p`` → ("tcp", (h, p))."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if not path:
            raise ClientError(f"{_INIT_ERROR}invalid bind address format: {host}")
        return "unix", path
    if host.startswith("/"):
        return "unix", host
    if host.startswith(("tcp://", "http://")):
        rest = host.split("://", 1)[1].rstrip("/")
        if rest.startswith("["):
            h, _, p = rest[1:].partition("]:")
        else:
            h, _, p = rest.rpartition(":") if ":" in rest else (rest, "", "")
        port = int(p) if p else 2375
        return "tcp", (h or "127.0.0.1", port)
    raise ClientError(f"{_INIT_ERROR}invalid bind address format: {host}")


# --------------------------------------------------------------------------
# TLS, as the docker CLI sets it up


@dataclass(frozen=True)
class TLSOptions:
    """TLS to a tcp:// daemon. `verify`: check the daemon's certificate against `ca`
    (and its name against the host); `cert`/`key`: the client certificate ("" = none)."""

    verify: bool
    ca: str
    cert: str
    key: str


def tls_options(tls: bool, tlsverify: bool | None, ca: str, cert: str, key: str,
                config_dir: str = "") -> TLSOptions | None:
    """The docker CLI's rules: --tlsverify (or DOCKER_TLS_VERIFY) implies --tls (as does
    DOCKER_TLS); the files default to ca.pem, cert.pem and key.pem in $DOCKER_CERT_PATH
    (else the config directory), and a default client certificate or key that does not
    exist is left out. `tlsverify` None: not given as a flag."""
    verify = tlsverify if tlsverify is not None else bool(os.environ.get("DOCKER_TLS_VERIFY"))
    if not (tls or verify or tlsverify is not None or os.environ.get("DOCKER_TLS")):
        return None
    cert_dir = os.environ.get("DOCKER_CERT_PATH") or config_dir or os.environ.get("DOCKER_CONFIG") \
        or os.path.join(os.path.expanduser("~"), ".docker")
    if not cert:
        cert = os.path.join(cert_dir, "cert.pem")
        cert = cert if os.path.exists(cert) else ""
    if not key:
        key = os.path.join(cert_dir, "key.pem")
        key = key if os.path.exists(key) else ""
    return TLSOptions(verify, ca or os.path.join(cert_dir, "ca.pem"), cert, key)


def client_tls_context(opts: TLSOptions) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.verify:
        try:
            ctx.load_verify_locations(cafile=opts.ca)
        except OSError as e:
            raise ClientError(f'could not read CA certificate "{opts.ca}": '
                              f"{(e.strerror or str(e)).lower()}") from None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.cert or opts.key:
        try:
            ctx.load_cert_chain(opts.cert, opts.key)
        except OSError as e:
            detail = "private key does not match public key" if getattr(e, "reason", "") == "KEY_VALUES_MISMATCH" \
                else (e.strerror or str(e)).lower()
            raise ClientError(f"could not load X509 key pair: {detail}") from None
    return ctx


# OpenSSL's alert names where Go's differ
_GO_ALERTS = {"unknown ca": "unknown certificate authority", "certificate expired": "expired certificate",
              "certificate revoked": "revoked certificate", "protocol version": "protocol version not supported"}


def _tls_reason(e: OSError) -> str:
    """A TLS failure as Go words it."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: x509: {e.verify_message}"
    reason = getattr(e, "reason", None) or ""
    if reason == "WRONG_VERSION_NUMBER":
        return "http: server gave HTTP response to HTTPS client"
    if reason.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
        alert = reason.split("_ALERT_", 1)[1].lower().replace("_", " ")
        alert = _GO_ALERTS.get(alert, alert)
        text = f"remote error: tls: {alert}"
        if alert in ("bad certificate", "handshake failure", "unknown certificate authority",
                     "certificate required"):
            text = ("the server probably has client authentication (--tlsverify) enabled; check your "
                    f"TLS client certification settings: {text}")
        return text
    return (reason or e.strerror or str(e)).lower().replace("_", " ")


# --------------------------------------------------------------------------
# Sockets


class _Conn:
    """One HTTP connection: write a request, read one response."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False

    def recv(self, size: int = 65536) -> bytes:
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        try:
            return self.sock.recv(size)
        except OSError:
            return b""

    def read_head(self) -> ResponseHead:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise _EOFBeforeAnswer("unexpected EOF reading the response from the daemon")
            self.buf += data
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest
        return parse_response_head(head)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class _EOFBeforeAnswer(ClientError):
    """The daemon closed the connection before answering."""


class Response:
    """A response whose body is read incrementally (and then the connection closed)."""

    def __init__(self, conn: _Conn, head: ResponseHead, method: str) -> None:
        self.conn = conn
        self.head = head
        self.status = head.status
        self._chunked = "chunked" in head.header("transfer-encoding").lower()
        self._decoder = ChunkedDecoder() if self._chunked else None
        length = head.header("content-length")
        self._remaining: int | None = int(length) if length.isdigit() else None
        if method == "HEAD" or head.status in (204, 304):
            self._remaining = 0
            self._chunked = False
        self._eof = False

    def header(self, name: str, default: str = "") -> str:
        return self.head.header(name, default)

    def iter_chunks(self) -> Iterator[bytes]:
        while not self._eof:
            if self._remaining == 0 and not self._chunked:
                break
            data = self.conn.recv()
            if not data:
                break
            if self._decoder is not None:
                out = self._decoder.feed(data)
                if out:
                    yield out
                if self._decoder.done:
                    break
                continue
            if self._remaining is not None:
                data = data[: self._remaining]
                self._remaining -= len(data)
            yield data
        self._eof = True
        self.conn.close()

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def json(self) -> Any:
        body = self.read()
        if not body.strip():
            return None
        return json.loads(body)

    def close(self) -> None:
        self._eof = True
        self.conn.close()


class Hijacked:
    """A connection upgraded to a raw bidirectional stream (attach, exec start)."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.sock = conn.sock

    def recv(self) -> bytes:
        return self.conn.recv()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            # TLS's half close would be its close_notify, but the ssl module sends that
            # only with unwrap(), which then reads on for the daemon's own and throws away
            # the output it meets. The TCP half close underneath says the same to berthd
            # (and to dockerd, whose reader ends at an EOF too); SSLSocket.shutdown would
            # drop the TLS layer under our reader, so the socket's own is called.
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.conn.close()


class Client:
    """Engine API client; the API version is negotiated on first use."""

    def __init__(self, host: str, tls: TLSOptions | None = None) -> None:
        self.host = host
        self.proto, self.addr = parse_host(host)
        self.tls = tls if self.proto == "tcp" else None
        self._tls_context: ssl.SSLContext | None = None
        self._version: str | None = os.environ.get("DOCKER_API_VERSION") or None
        self.server_os = ""

    # -- connections
    def _connect(self) -> socket.socket:
        try:
            if self.proto == "unix":
                assert isinstance(self.addr, str)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.addr)
            else:
                assert isinstance(self.addr, tuple)
                sock = socket.create_connection(self.addr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    return self._wrap_tls(sock)
            return sock
        except PermissionError as exc:
            raise DaemonUnreachable(
                f"permission denied while trying to connect to the berth daemon socket at {self.host}: "
                f"{exc.strerror.lower() if exc.strerror else exc}"
            ) from None
        except ssl.SSLError:
            raise
        except OSError:
            raise DaemonUnreachable(self.unreachable_message()) from None

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        if self._tls_context is None:
            assert self.tls is not None
            self._tls_context = client_tls_context(self.tls)
        assert isinstance(self.addr, tuple)
        try:
            return self._tls_context.wrap_socket(sock, server_hostname=self.addr[0])
        except BaseException:
            sock.close()
            raise

    def _url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.addr[0]}:{self.addr[1]}{path}" if self.proto == "tcp" else self.host

    def unreachable_message(self) -> str:
        return f"Cannot connect to the berth daemon at {self.host}. Is berthd running?"

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = self._negotiate()
        return self._version

    def _negotiate(self) -> str:
        try:
            resp = self._send("GET", "/_ping", None, {}, versioned=False)
        except DaemonUnreachable:
            raise
        except ClientError:
            return API_VERSION
        resp.read()
        self.server_os = resp.header("ostype")
        server = resp.header("api-version")
        if resp.status >= 400 and resp.status != 404:
            return API_VERSION
        if server and _version_tuple(server) < _version_tuple(API_VERSION):
            return server
        return API_VERSION

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None,
        headers: Mapping[str, str],
        versioned: bool = True,
    ) -> Response:
        if versioned:
            path = f"/v{self.version}{path}"
        try:
            sock = self._connect()
        except ssl.SSLError as exc:  # the TLS handshake
            raise ClientError(f'error during connect: {method} "{self._url(path)}": {_tls_reason(exc)}') from None
        conn = _Conn(sock)
        host = DUMMY_HOST if self.proto == "unix" else f"{self.addr[0]}:{self.addr[1]}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"User-Agent: berth-cli/{CLIENT_VERSION}"]
        for name, value in headers.items():
            lines.append(f"{name}: {value}")
        streaming = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body)}")
        elif streaming:
            lines.append("Transfer-Encoding: chunked")
        elif method in ("POST", "PUT"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if isinstance(body, bytes):
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                if body is not None:
                    for chunk in body:
                        if chunk:
                            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sock.sendall(b"0\r\n\r\n")
            resp_head = conn.read_head()
        except BrokenPipeError:
            # the daemon may have answered early (e.g. an error) and closed
            resp_head = conn.read_head()
        except _EOFBeforeAnswer:
            conn.close()
            if self.tls is None:
                raise
            # under TLS 1.3 a refused client certificate shows only now, and asyncio's
            # server ends the connection without its alert
            raise ClientError(f'error during connect: {method} "{self._url(path)}": the server probably has '
                              "client authentication (--tlsverify) enabled; check your TLS client "
                              "certification settings: EOF") from None
        except OSError as exc:
            conn.close()
            reason = _tls_reason(exc) if isinstance(exc, ssl.SSLError) else str(exc)
            raise ClientError(f'error during connect: {method} "{self._url(path)}": {reason}') from None
        return Response(conn, resp_head, method)

    # -- requests
    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | Iterator[bytes] | None = None,
    ) -> Response:
        """Send a request; raise APIError for error statuses; return the open response."""
        hdrs = dict(headers or {})
        data: bytes | Iterator[bytes] | None = raw_body
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        resp = self._send(method, path + _query(params), data, hdrs)
        if resp.status >= 400:
            message = daemon_message(resp.read(), resp.status, resp.head.reason)
            raise APIError(resp.status, message)
        return resp

    def head(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """A HEAD request; the caller looks at the status (errors are not raised)."""
        resp = self._send("HEAD", path + _query(params), None, {})
        resp.read()
        return resp

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params).json()

    def get_raw(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        return self.request("GET", path, params).read()

    def post_json(self, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        return self.request("POST", path, params, body).json()

    def post(self, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> None:
        self.request("POST", path, params, body).read()

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params).json()

    def hijack(self, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Hijacked:
        """POST with ``Upgrade: tcp``; on ``101`` (or ``200``) the socket becomes the stream."""
        hdrs = {"Connection": "Upgrade", "Upgrade": "tcp"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            hdrs["Content-Type"] = "application/json"
        resp = self._send("POST", path + _query(params), data, hdrs)
        if resp.status >= 400:
            message = daemon_message(resp.read(), resp.status, resp.head.reason)
            raise APIError(resp.status, message)
        if resp.status not in (101, 200):
            resp.close()
            raise ClientError(f"unexpected response from daemon to attach: {resp.status} {resp.head.reason}")
        return Hijacked(resp.conn)


def _query(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        if isinstance(value, (list, tuple)):
            pairs.extend((key, str(v)) for v in value)
            continue
        pairs.append((key, str(value)))
    if not pairs:
        return ""
    return "?" + urlencode(pairs)


def path_escape(segment: str) -> str:
    """Escape one path segment (a container name or image reference)."""
    return quote(segment, safe=":@")


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def filters_json(pairs: list[tuple[str, str]]) -> str | None:
    """Encode ``--filter k=v`` pairs as the API's ``{"k": {"v": true}}`` JSON."""
    if not pairs:
        return None
    out: dict[str, dict[str, bool]] = {}
    for key, value in pairs:
        out.setdefault(key, {})[value] = True
    return json.dumps(out, separators=(",", ":"))
