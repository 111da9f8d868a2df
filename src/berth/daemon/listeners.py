"""The Engine API's TCP listeners: TLS set-up, and the rule about TCP without it.

Whoever reaches the API is root on the host, so a TCP listener is served with TLS and
client certificates checked against `--tlscacert` (`--tlsverify`), as dockerd's. A TCP
listener that is not is refused at start, unless it is on loopback (dockerd's exception)
or TLS was turned off on purpose (`--tls=false` / `--tlsverify=false`): then berthd
warns, loudly, with dockerd's words.

A TLS listener answers a client that speaks plain HTTP to it the way Go's server
does ("Client sent an HTTP request to an HTTPS server.", 400) instead of a handshake
error the client cannot read. TLS is done here (the ssl module on memory buffers) and
the plain bytes handed to aiohttp, so that a refused client hears the alert and a
client's half close (TLS close_notify) is a half close, as with Go's servers. Nothing
here parses HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl

from aiohttp import web

from berth.daemon.config import ConfigError, DaemonConfig

log = logging.getLogger("berthd")

HANDSHAKE_TIMEOUT = 60.0  # for the first bytes, and again for the TLS handshake
_TLS_HANDSHAKE_RECORD = 0x16
# Go's tlsRecordHeaderLooksLikeHTTP: the first five bytes of a request line
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
_HTTP_TO_HTTPS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def server_tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    """The listeners' TLS context (None without --tls/--tlsverify); a certificate that
    does not load, a key that is not its certificate's, or an unreadable CA is a
    ConfigError worded as dockerd's."""
    if not config.tls:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Go's server default
    ctx.set_alpn_protocols(["http/1.1"])
    pair = f'(cert: "{config.tlscert}", key: "{config.tlskey}")'
    try:
        ctx.load_cert_chain(config.tlscert, config.tlskey)
    except OSError as e:
        if isinstance(e, ssl.SSLError):
            raise ConfigError(f"invalid TLS configuration: error reading X509 key pair - make sure the key "
                              f"is not encrypted {pair}: {_ssl_reason(e)}") from None
        raise ConfigError(f"invalid TLS configuration: could not load X509 key pair {pair}: "
                          f"open {e.filename}: {(e.strerror or str(e)).lower()}") from None
    if config.tlsverify:
        # only this CA: the system's roots do not vouch for clients (ExclusiveRootPools)
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=config.tlscacert)
        except ssl.SSLError:
            raise ConfigError("invalid TLS configuration: failed to append certificates from PEM file: "
                              f'"{config.tlscacert}"') from None
        except OSError as e:
            raise ConfigError(f'invalid TLS configuration: could not read CA certificate "{config.tlscacert}": '
                              f"open {config.tlscacert}: {(e.strerror or str(e)).lower()}") from None
    return ctx


def _ssl_reason(e: ssl.SSLError) -> str:
    if e.reason == "KEY_VALUES_MISMATCH":
        return "tls: private key does not match public key"
    if e.reason in ("NO_START_LINE", "PEM_LIB"):
        return "tls: failed to find any PEM data in input"
    return str(e.reason or e).lower().replace("_", " ")


def split_tcp_host(host: str) -> tuple[str, int]:
    """tcp://addr:port → (addr, port); an empty addr is loopback, no port is 2375."""
    addr = host[len("tcp://"):].rstrip("/")
    h, sep, p = addr.rpartition(":")
    if not sep or addr.endswith("]"):  # no port given
        h, p = addr, ""
    try:
        port = int(p or 2375)
    except ValueError:
        raise ConfigError(f"invalid daemon host {host!r}: the port must be a number") from None
    return h.strip("[]") or "127.0.0.1", port


def _is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        pass
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(addr, None, type=socket.SOCK_STREAM))
    except (OSError, ValueError):
        return False


def check_tcp_host(config: DaemonConfig, host: str) -> None:
    """Refuse (ConfigError) or warn about a TCP listener without client verification.
    With --tlsverify there is nothing to say."""
    if config.tls and config.tlsverify:
        return
    addr, _ = split_tcp_host(host)
    said = config.tls is not None  # --tls=false or --tlsverify=false, flag or daemon.json
    if not said and not _is_loopback(addr):
        raise ConfigError(
            f"refusing to listen on {host} without --tlsverify: binding to an IP address without "
            "--tlsverify is insecure and gives root access on this machine to everyone who has access "
            "to your network; generate TLS certificates with client validation (scripts/make-certs) "
            "and start with --tlsverify, or override this by explicitly specifying '--tls=false' or "
            "'--tlsverify=false'")
    log.warning("host=%s: Binding to IP address without --tlsverify is insecure and gives root access on "
                "this machine to everyone who has access to your network.", host)
    log.warning("host=%s: Binding to an IP address, even on localhost, can also give access to scripts "
                "run in a browser. Be safe out there!", host)
    if said:
        log.warning("host=%s: TLS client verification is off on purpose (%s): the API on this address "
                    "has no authentication", host, "--tls=false" if not config.tls else "--tlsverify=false")


def api_warnings(config: DaemonConfig) -> tuple[str, ...]:
    """`docker info`'s warnings about TCP listeners without TLS or without client
    verification, in dockerd's words."""
    attack_surface = ("\n         Access to the remote API is equivalent to root access on the host. Refer"
                      "\n         to the 'Docker daemon attack surface' section in the documentation for"
                      "\n         more information: https://docs.docker.com/go/attack-surface/")
    out = []
    for host in config.hosts:
        if not host.startswith("tcp://"):
            continue
        addr = host[len("tcp://"):]
        if not config.tls:
            out.append(f"[DEPRECATION NOTICE]: API is accessible on http://{addr} without encryption.{attack_surface}")
        elif not config.tlsverify:
            out.append(f"[DEPRECATION NOTICE]: API is accessible on https://{addr} without TLS client "
                       f"verification.{attack_surface}")
    return tuple(out)


class TLSSite(web.BaseSite):
    """aiohttp's TCPSite for TLS, with an accept loop of its own: each connection's
    first bytes are looked at before the handshake (a plain HTTP request gets Go's
    400), and a handshake that fails (a client certificate from another CA, none at
    all) ends only that connection, with TLS's alert."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext,
                 backlog: int = 128) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port = host, port
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1] if self._listener else self._port

    async def start(self) -> None:
        await super().start()
        family, kind, proto, _, address = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(self._backlog)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept_loop(listener))

    async def stop(self) -> None:
        tasks = [t for t in (self._accepting, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await super().stop()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as e:  # EMFILE and the like: this connection is lost, not the listener
                log.warning("accepting on %s: %s", self.name, e)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            first = await asyncio.wait_for(_peek_first_bytes(conn), HANDSHAKE_TIMEOUT)
            if not first or first[0] != _TLS_HANDSHAKE_RECORD:
                if first[:5] in _HTTP_STARTS:
                    with contextlib.suppress(OSError):
                        conn.send(_HTTP_TO_HTTPS)
                        conn.shutdown(socket.SHUT_WR)
                        # what the client sent is read away: closing with it unread would
                        # reset the connection, and the client could lose the answer
                        for _ in range(16):
                            if not conn.recv(65536):
                                break
                return
            assert self._ssl_context is not None
            await _TLSConnection(conn, self._ssl_context).serve(self._runner)
        except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError: a refused client
            log.debug("TLS connection on %s ended: %s", self.name, e)
        except Exception:  # a bug: this connection ends, the listener goes on
            log.exception("TLS connection on %s failed", self.name)
        finally:
            conn.close()


class _TLSConnection:
    """One client's TLS, done here on memory buffers, and the plain bytes passed to
    aiohttp over a socket pair. asyncio's own TLS transport would not do: it drops
    the alert of a failed handshake (the client reads EOF, not "unknown ca"), and it
    ends the whole connection at the client's close_notify, where Go's servers (and
    the docker CLI's attach, which half-closes with it after stdin's end) keep sending
    what the container still writes."""

    def __init__(self, conn: socket.socket, context: ssl.SSLContext) -> None:
        self.conn = conn
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self._sending = asyncio.Lock()

    async def _flush(self) -> None:
        """Send what TLS has to say (records, alerts), in order."""
        loop = asyncio.get_running_loop()
        async with self._sending:
            data = self.outgoing.read()
            if data:
                await loop.sock_sendall(self.conn, data)

    async def _feed(self) -> bool:
        """Read from the client into TLS; False at the connection's end."""
        data = await asyncio.get_running_loop().sock_recv(self.conn, 65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    async def _handshake(self) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                while True:
                    try:
                        self.tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        await self._flush()
                        if not await self._feed():
                            raise ConnectionResetError("the client left during the TLS handshake") from None
        except ssl.SSLError:
            with contextlib.suppress(OSError):
                await self._flush()  # the alert: why the client is refused
            raise
        await self._flush()

    async def serve(self, runner: web.BaseRunner) -> None:
        await self._handshake()
        loop = asyncio.get_running_loop()
        inner, outer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            inner.setblocking(False)
            outer.setblocking(False)
            assert runner.server is not None
            await loop.connect_accepted_socket(runner.server, inner)
        except BaseException:
            inner.close()
            outer.close()
            raise
        try:
            reading = asyncio.create_task(self._client_to_server(outer))
            try:
                await self._server_to_client(outer)
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, ssl.SSLError):
                    await reading
        finally:
            outer.close()

    async def _client_to_server(self, outer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = self.tls.read(65536)
                except ssl.SSLWantReadError:
                    await self._flush()  # e.g. TLS 1.3 key updates
                    if not await self._feed():
                        break
                    continue
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    # close_notify (the docker CLI's half close), or the connection's
                    # own end without it (berth's): the client's input ends
                    break
                if not data:
                    break
                await loop.sock_sendall(outer, data)
        finally:
            with contextlib.suppress(OSError):
                outer.shutdown(socket.SHUT_WR)  # aiohttp reads EOF; it may still answer

    async def _server_to_client(self, outer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(outer, 65536)
            if not data:
                break
            self.tls.write(data)
            await self._flush()
        with contextlib.suppress(ssl.SSLError):
            self.tls.unwrap()  # close_notify; the client's own is not waited for
        with contextlib.suppress(OSError):
            await self._flush()


async def _peek_first_bytes(conn: socket.socket, want: int = 5) -> bytes:
    """The connection's first bytes, left in the socket for the TLS handshake: as soon
    as the first one shows a TLS record, else up to `want` (b"" if the peer left)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = conn.recv(want, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data is not None:
            if not data or data[0] == _TLS_HANDSHAKE_RECORD or len(data) >= want:
                return data
            await asyncio.sleep(0.01)  # a request line arriving byte by byte
            continue
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _set_once, ready)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
