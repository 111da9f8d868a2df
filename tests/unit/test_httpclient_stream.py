"""berth.httpclient's streaming and TLS, against real aiohttp servers on 127.0.0.1:
bodies read as they arrive and sent from async iterators, redirects that drop
credentials when they leave the origin, a TLS set-up per session, TLS failures worded
as Go words them."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from berth import httpclient
from berth.httpclient import ConnectError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[str, Handler], tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


BIG = bytes(range(256)) * 40000  # 10 MB


async def big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=203, headers={"X-Kind": "big"})
    resp.content_length = len(BIG)
    await resp.prepare(request)
    for i in range(0, len(BIG), 1 << 20):
        await resp.write(BIG[i:i + (1 << 20)])
    return resp


async def echo(request: web.Request) -> web.Response:
    seen = {"chunked": request.headers.get("Transfer-Encoding", ""),
            "length": request.headers.get("Content-Length", ""),
            "auth": request.headers.get("Authorization", "")}
    body = await request.read()
    return web.json_response({**seen, "size": len(body), "head": body[:8].decode()})


def test_stream_yields_the_body_as_it_arrives() -> None:
    async def scenario() -> None:
        async with serve({"/big": big}) as base, httpclient.Session() as session:
            async with session.stream("GET", f"{base}/big") as resp:
                assert (resp.status, resp.reason, resp.headers["x-kind"]) == (203, "Non-Authoritative Information",
                                                                             "big")
                pieces = [chunk async for chunk in resp.chunks()]
            assert b"".join(pieces) == BIG and len(pieces) > 1
            async with session.stream("GET", f"{base}/big") as resp:  # read whole, capped
                assert await resp.read() == BIG
                with pytest.raises(httpclient.BodyTooLarge):
                    await resp.read(100)
            for _ in range(3):  # leaving early closes the connection; the session goes on
                async with session.stream("GET", f"{base}/big") as resp:
                    async for _chunk in resp.chunks():
                        break

    run(scenario())


def test_request_body_streamed_from_an_async_iterator() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(10):
            yield b"%08d" % i + b"x" * 100000
            await asyncio.sleep(0)

    async def scenario() -> None:
        async with serve({"/echo": echo}) as base, httpclient.Session() as session:
            async with session.stream("PATCH", f"{base}/echo", body=pieces()) as resp:
                got = await resp.read()
            assert b'"chunked": "chunked"' in got and b'"size": 1000080' in got and b'"head": "00000000"' in got
            async with session.stream("PUT", f"{base}/echo", body=pieces(),
                                      headers={"Content-Length": "1000080"}) as resp:
                got = await resp.read()
            assert b'"length": "1000080"' in got and b'"chunked": ""' in got

    run(scenario())


def test_redirects_drop_credentials_when_they_leave_the_origin() -> None:
    async def scenario() -> None:
        async with serve({"/echo": echo}) as other:
            async def away(request: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect(f"{other}/echo")

            async def here(request: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect("/echo")

            async with serve({"/away": away, "/here": here, "/echo": echo}) as base, \
                    httpclient.Session() as session:
                secret = {"Authorization": "Basic c2VjcmV0"}
                async with session.stream("GET", f"{base}/away", headers=secret) as resp:
                    assert resp.url == f"{other}/echo"
                    assert b'"auth": ""' in await resp.read()
                async with session.stream("GET", f"{base}/here", headers=secret) as resp:
                    assert b'"auth": "Basic c2VjcmV0"' in await resp.read()

    run(scenario())


def make_tls(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context that trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context()
    client.load_verify_locations(cafile=str(tmp / "cert.pem"))
    return server, client


def test_tls_per_session_and_its_failures(tmp_path: Path) -> None:
    server_tls, client_tls = make_tls(tmp_path)

    async def scenario() -> None:
        async with serve({"/echo": echo}, tls=server_tls) as base:
            async with httpclient.Session(tls=client_tls) as trusting:
                assert (await trusting.request("GET", f"{base}/echo")).status == 200
            async with httpclient.Session(tls=False) as unverified:
                assert (await unverified.request("GET", f"{base}/echo")).status == 200
            async with httpclient.Session() as system:
                with pytest.raises(ConnectError) as e:
                    await system.request("GET", f"{base}/echo")
                assert str(e.value) == (f'Get "{base}/echo": tls: failed to verify certificate: '
                                        "self-signed certificate")
        async with serve({"/echo": echo}) as plain, httpclient.Session(tls=False) as session:
            with pytest.raises(ConnectError) as e:
                await session.request("GET", plain.replace("http://", "https://") + "/echo")
            assert str(e.value).endswith(": http: server gave HTTP response to HTTPS client")

    run(scenario())
