"""berthd's one HTTP client: every outgoing request goes through here (ADD URLs, remote
build contexts, volume plugins, registries; managed plugins next).

It owns the aiohttp sessions and their connectors (TCP, or a UNIX socket for plugins),
their TLS set-up (an ssl.SSLContext per Session, for registries' certs.d), timeouts, the redirect limit, size caps on bodies, proxies from the environment (as
Docker's daemon honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY), and the translation of
aiohttp's and the OS's exceptions into `HTTPClientError`s: berth.errors, one line,
naming the URL. A body is either read whole (capped: `Session.request`), streamed to
a file under a temp name and renamed into place (`Session.download`), or handed to the
caller piece by piece (`Session.stream`); a request body may be streamed from an async
iterator. Redirects to another origin drop the Authorization header (aiohttp's rule,
which registries' blob redirects to storage rely on).

It does not interpret what it fetches: what a status means, a plugin's JSON, whether a
download is an archive are the callers'. Only this module imports aiohttp's client side
(or urllib.request, or http.client) in berthd; the CLI's Engine API client
(berth.client.engine) is another program's and has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.client_proto import ResponseHandler

from berth.errors import SystemError_

CHUNK = 1 << 16  # read from the connection in pieces of this size
STREAM_BUFFER = 1 << 20  # what a streaming Session buffers from its connection at most
WRITE_BATCH = 1 << 20  # and written to the file in batches of this size, in a thread


@dataclass(frozen=True)
class Limits:
    """How long a request may take and how much it may bring back.

    `connect` bounds the connection (a UNIX socket whose listen backlog is full is
    retried until then), `read` the wait for each next piece of the answer, `total`
    the whole exchange, body included (None: no bound). `max_redirects` 0 returns a
    redirect as the answer instead of following it. `max_body` caps the body's
    bytes (None: no cap; `Session.request` has a cap of its own, as it holds the body
    in memory)."""

    connect: float = 30.0
    read: float | None = 30.0
    total: float | None = None
    max_redirects: int = 10
    max_body: int | None = None


REQUEST_MAX_BODY = 64 << 20  # what Session.request holds in memory at most, unless told


# -- errors ---------------------------------------------------------------------------


class HTTPClientError(SystemError_):
    """A request that did not get its answer. `reason` says why without the URL (for
    callers that word the message themselves); str() is one line with both."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f'{method.capitalize()} "{url}": {reason}')
        self.method = method
        self.url = url
        self.reason = reason


class ConnectError(HTTPClientError):
    """No connection: refused, no such socket, no such host. `os_reason` is the bare
    cause ("connection refused"), lower case as Go prints it."""

    def __init__(self, method: str, url: str, reason: str, os_reason: str) -> None:
        super().__init__(method, url, reason)
        self.os_reason = os_reason


class RequestTimeout(HTTPClientError):
    """The answer (or the next piece of it) did not come in time; `seconds` is the
    limit that ran out."""

    def __init__(self, method: str, url: str, what: str, seconds: float) -> None:
        super().__init__(method, url, f"timeout {what} after {seconds:g} s")
        self.seconds = seconds


class TooManyRedirects(HTTPClientError):
    pass


class BodyTooLarge(HTTPClientError):
    pass


class BadStatus(HTTPClientError):
    """A download answered with a status of 400 or above; worded as Docker's builder
    words it: "failed to GET <url> with status 404 Not Found"."""

    def __init__(self, method: str, url: str, status: int, status_reason: str) -> None:
        super().__init__(method, url, f"status {status} {status_reason}".rstrip())
        self.args = (f"failed to {method.upper()} {url} with status {status} {status_reason}".rstrip(),)
        self.status = status
        self.status_reason = status_reason


# -- results --------------------------------------------------------------------------


@dataclass
class Response:
    """An answer read whole. `url` is where it came from, after redirects."""

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


class StreamedResponse:
    """An answer whose body the caller reads as it arrives: `chunks()` (each piece as
    the connection delivers it, within the limits) or `read()` (whole, capped). `url`
    is where it came from, after redirects."""

    def __init__(self, resp: aiohttp.ClientResponse, method: str, url: str, lim: Limits) -> None:
        self._resp, self._method, self._lim = resp, method, lim
        self.url = str(resp.url)
        self.request_url = url
        self.status = resp.status
        self.reason = resp.reason or ""
        self.headers: Mapping[str, str] = resp.headers

    def chunks(self) -> AsyncIterator[bytes]:
        return _body(self._resp, self._method, self.request_url, self._lim, any_size=True)

    async def read(self, limit: int = REQUEST_MAX_BODY) -> bytes:
        lim = self._lim if self._lim.max_body is not None and self._lim.max_body <= limit \
            else replace(self._lim, max_body=limit)
        return b"".join([chunk async for chunk in _body(self._resp, self._method, self.request_url, lim)])


@dataclass
class Download:
    """A body streamed to `path`. `last_modified` is the Last-Modified header as a
    Unix time (None when absent or unreadable)."""

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]
    path: str
    size: int
    last_modified: float | None


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date (RFC 9110, any of its three forms) as a Unix time; None when absent
    or unreadable, as Go's http.ParseTime leaves a zero time."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# -- connections ----------------------------------------------------------------------


async def _connect_unix(path: str, timeout: float) -> socket.socket:
    """A connected socket to `path`. A full listen backlog makes a non-blocking connect
    fail with EAGAIN, which asyncio's sock_connect mistakes for a connect in progress
    (and then writes to an unconnected socket): the plugin is busy, not gone, so the
    connect is tried again until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() >= deadline:
                raise  # EAGAIN: "resource temporarily unavailable", as Go says it then
            await asyncio.sleep(0.01)
        except BaseException:
            sock.close()
            raise


class _UnixConnector(aiohttp.UnixConnector):
    """aiohttp's UNIX connector, with the connect above."""

    async def _create_connection(self, req: aiohttp.ClientRequest, traces: list[Any],
                                 timeout: aiohttp.ClientTimeout) -> ResponseHandler:
        limit = timeout.sock_connect or timeout.connect or timeout.total or 30.0
        try:
            sock = await _connect_unix(self.path, limit)
        except OSError as e:
            raise UnixClientConnectorError(self.path, req.connection_key, e) from e
        try:
            _, proto = await self._loop.create_unix_connection(self._factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        return proto


def _proxy_for(url: str) -> str | None:
    """The proxy the daemon's environment names for `url`, as Go's ProxyFromEnvironment
    (and urllib) read it. aiohttp's trust_env would also send ~/.netrc credentials to
    any host, which a daemon fetching users' URLs must not do."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme.lower())
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


# -- the session ----------------------------------------------------------------------


class Session:
    """One aiohttp ClientSession and its connector: TCP, or the UNIX socket at
    `unix_socket` (then every URL's host is only the Host header). Use it in `async
    with`, or close() it; requests may run on it concurrently."""

    def __init__(self, unix_socket: str | None = None, limits: Limits = Limits(),
                 tls: ssl.SSLContext | bool = True) -> None:
        """`tls`: the SSLContext for https (CAs, client certificate), True for the
        system's default verification, False for none (insecure registries)."""
        self.unix_socket = unix_socket
        self.limits = limits
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector: aiohttp.BaseConnector = (
                _UnixConnector(self.unix_socket) if self.unix_socket
                else aiohttp.TCPConnector(ssl=self.tls, limit=0))
            self._session = aiohttp.ClientSession(connector=connector, read_bufsize=STREAM_BUFFER)
        return self._session

    async def request(self, method: str, url: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None,
                      limits: Limits | None = None) -> Response:
        """Send one request and read its answer whole, whatever its status (the caller
        judges it). The body is capped at `limits.max_body`, or REQUEST_MAX_BODY."""
        lim = limits or self.limits
        if lim.max_body is None:
            lim = replace(lim, max_body=REQUEST_MAX_BODY)
        async with self._exchange(method, url, body, headers, lim) as resp:
            parts = [chunk async for chunk in _body(resp, method, url, lim)]
            return Response(str(resp.url), resp.status, resp.reason or "", resp.headers, b"".join(parts))

    async def download(self, url: str, dest: str, *, headers: Mapping[str, str] | None = None,
                       limits: Limits | None = None) -> Download:
        """GET `url` into the file `dest`: streamed to a temp name in dest's directory,
        then renamed, so `dest` is whole or absent. A status of 400 or above is a
        BadStatus (nothing written)."""
        lim = limits or self.limits
        async with self._exchange("GET", url, b"", headers, lim) as resp:
            if resp.status >= 400:
                raise BadStatus("GET", url, resp.status, resp.reason or "")
            fd, part = tempfile.mkstemp(prefix=".download-", dir=os.path.dirname(dest) or ".")
            size = 0
            try:
                with os.fdopen(fd, "wb") as f:
                    batch: list[bytes] = []
                    held = 0
                    async for chunk in _body(resp, "GET", url, lim):
                        batch.append(chunk)
                        held += len(chunk)
                        if held >= WRITE_BATCH:
                            await asyncio.to_thread(f.writelines, batch)
                            size += held
                            batch, held = [], 0
                    if batch:
                        await asyncio.to_thread(f.writelines, batch)
                        size += held
                os.rename(part, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(part)
                raise
            return Download(str(resp.url), resp.status, resp.reason or "", resp.headers, dest, size,
                            parse_http_date(resp.headers.get("Last-Modified")))

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, body: bytes | AsyncIterable[bytes] = b"",
                     headers: Mapping[str, str] | None = None,
                     limits: Limits | None = None) -> AsyncIterator[StreamedResponse]:
        """Send one request (its body bytes, or streamed from an async iterable with
        chunked transfer encoding unless `headers` give a Content-Length) and yield
        the answer once its head has come, whatever its status; the caller reads the
        body from it inside the `async with`. Leaving early closes the connection."""
        lim = limits or self.limits
        async with self._exchange(method, url, body, headers, lim) as resp:
            yield StreamedResponse(resp, method, url, lim)

    def _exchange(self, method: str, url: str, body: bytes | AsyncIterable[bytes],
                  headers: Mapping[str, str] | None, lim: Limits) -> _Exchange:
        return _Exchange(self, method, url, body, headers, lim)


class _Exchange:
    """One request in flight, as an async context manager: the response once its head
    has come; aiohttp's and the OS's errors translated on the way in and out."""

    def __init__(self, session: Session, method: str, url: str, body: bytes | AsyncIterable[bytes],
                 headers: Mapping[str, str] | None, lim: Limits) -> None:
        self.session, self.method, self.url, self.body, self.headers, self.lim = \
            session, method, url, body, headers, lim
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        lim = self.lim
        timeout = aiohttp.ClientTimeout(total=lim.total, sock_connect=lim.connect, sock_read=lim.read)
        proxy = None if self.session.unix_socket else _proxy_for(self.url)
        data: Any = self.body if not isinstance(self.body, bytes) else (self.body or None)
        try:
            self._resp = await self.session._client().request(
                self.method, self.url, data=data, headers=dict(self.headers or {}),
                allow_redirects=lim.max_redirects > 0, max_redirects=max(lim.max_redirects, 1),
                timeout=timeout, proxy=proxy)
        except Exception as e:
            raise _translate(e, self.method, self.url, lim, self.session.unix_socket) from None
        return self._resp

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._resp is not None:
            if kind is None and self._resp.content.at_eof():
                self._resp.release()  # read to its end: the connection may serve again
            else:
                self._resp.close()  # a body left half-read is not reused


async def _body(resp: aiohttp.ClientResponse, method: str, url: str, lim: Limits,
                any_size: bool = False) -> AsyncIterator[bytes]:
    """The answer's body as it arrives, within the limits: in pieces of CHUNK, or
    (`any_size`) in whatever the connection has buffered, up to STREAM_BUFFER."""
    declared = resp.content_length
    if lim.max_body is not None and declared is not None and declared > lim.max_body:
        raise BodyTooLarge(method, url, f"body of {declared} bytes is over the limit of {lim.max_body}")
    got = 0
    try:
        pieces = resp.content.iter_any() if any_size else resp.content.iter_chunked(CHUNK)
        async for chunk in pieces:
            got += len(chunk)
            if lim.max_body is not None and got > lim.max_body:
                raise BodyTooLarge(method, url, f"body is over the limit of {lim.max_body} bytes")
            yield chunk
    except HTTPClientError:
        raise
    except Exception as e:
        raise _translate(e, method, url, lim, None) from None


def _target(url: str, unix_socket: str | None) -> str:
    """What Go's net errors name: "unix /path" or "tcp host:port"."""
    if unix_socket:
        return f"unix {unix_socket}"
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":443" if scheme.lower() == "https" else ":80"
    return f"tcp {host}"


def _os_reason(e: OSError) -> str:
    """What the errno says, as Go prints it ("connection refused"): asyncio puts its own
    words ("Connect call failed ('127.0.0.1', 80)") where strerror would be."""
    if e.errno:
        return os.strerror(e.errno).lower()
    return (e.strerror or str(e) or type(e).__name__).lower()


def _translate(e: Exception, method: str, url: str, lim: Limits, unix_socket: str | None) -> HTTPClientError:
    """aiohttp's exception (or the OS's, or asyncio's timeout) as an HTTPClientError."""
    if isinstance(e, HTTPClientError):
        return e
    if isinstance(e, aiohttp.TooManyRedirects):
        return TooManyRedirects(method, url, f"stopped after {lim.max_redirects} redirects")
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return RequestTimeout(method, url, "connecting", lim.connect)
    if isinstance(e, aiohttp.ClientConnectorDNSError):
        return ConnectError(method, url, f"dial tcp: lookup {e.host}: no such host", "no such host")
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        cert_error = e.certificate_error
        detail = getattr(cert_error, "verify_message", "") or getattr(cert_error, "reason", "") or str(cert_error)
        return ConnectError(method, url, f"tls: failed to verify certificate: {detail}", "certificate")
    if isinstance(e, aiohttp.ClientSSLError) or isinstance(getattr(e, "os_error", None), ssl.SSLError):
        cause = getattr(e, "os_error", e)
        reason = getattr(cause, "reason", None) or str(cause)
        if reason == "WRONG_VERSION_NUMBER":  # a plain HTTP server answered the handshake
            return ConnectError(method, url, "http: server gave HTTP response to HTTPS client", "tls")
        return ConnectError(method, url, f"tls: {str(reason).lower().replace('_', ' ')}", "tls")
    if isinstance(e, aiohttp.ClientConnectorError):
        cause = e.os_error
        if isinstance(cause, TimeoutError):
            return RequestTimeout(method, url, "connecting", lim.connect)
        reason = _os_reason(cause)
        return ConnectError(method, url, f"dial {_target(url, unix_socket)}: connect: {reason}", reason)
    if isinstance(e, aiohttp.ServerTimeoutError):
        return RequestTimeout(method, url, "waiting for the answer", lim.read or lim.total or 0.0)
    if isinstance(e, TimeoutError):
        return RequestTimeout(method, url, "waiting for the answer", lim.total or lim.read or 0.0)
    if isinstance(e, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError):
        return HTTPClientError(method, url, f"invalid URL: {e}")
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return HTTPClientError(method, url, "the server closed the connection without an answer")
    if isinstance(e, aiohttp.ClientPayloadError):
        return HTTPClientError(method, url, f"the body broke off: {e}")
    if isinstance(e, aiohttp.ClientOSError | OSError):
        return HTTPClientError(method, url, _os_reason(e))
    if isinstance(e, aiohttp.ClientError):
        return HTTPClientError(method, url, str(e) or type(e).__name__)
    raise e


# -- one-off requests -----------------------------------------------------------------


async def request(method: str, url: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None,
                  unix_socket: str | None = None, limits: Limits = Limits()) -> Response:
    """Session.request on a session of its own."""
    async with Session(unix_socket, limits) as session:
        return await session.request(method, url, body=body, headers=headers)


async def download(url: str, dest: str, *, headers: Mapping[str, str] | None = None,
                   limits: Limits = Limits()) -> Download:
    """Session.download on a session of its own."""
    async with Session(None, limits) as session:
        return await session.download(url, dest, headers=headers)
