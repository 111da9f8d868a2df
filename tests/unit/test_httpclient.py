"""berth.httpclient, berthd's one HTTP client, against a real aiohttp server on 127.0.0.1
(and on a UNIX socket): redirects and their limit, size caps, streaming to a file,
errors that name the URL, Last-Modified."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from berth import httpclient
from berth.errors import SystemError_
from berth.httpclient import (
    BadStatus,
    BodyTooLarge,
    ConnectError,
    HTTPClientError,
    Limits,
    RequestTimeout,
    TooManyRedirects,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[str, Handler], unix_socket: str = "") -> AsyncIterator[str]:
    """An aiohttp server for `routes` (path -> handler, any method); yields its base URL
    (for a UNIX socket, a base URL whose host only names the Host header)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if unix_socket:
            await web.UnixSite(runner, unix_socket).start()
            yield "http://plugin.moby.localhost"
        else:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = tempfile.mkdtemp(prefix="berth-http-", dir="/tmp")  # short: UNIX socket paths fit in 108 bytes
    yield Path(path)
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- requests ------------------------------------------------------------------------


def test_request_reads_the_answer_and_follows_redirects() -> None:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=201, body=b"hi " + body, headers={"X-Seen": request.method})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hello")

    async def scenario() -> None:
        async with serve({"/hello": hello, "/moved": moved}) as base:
            resp = await httpclient.request("POST", f"{base}/hello", body=b"there")
            assert (resp.status, resp.reason, resp.body) == (201, "Created", b"hi there")
            assert resp.headers["x-seen"] == "POST"  # case-insensitive
            resp = await httpclient.request("GET", f"{base}/moved")
            assert (resp.status, resp.url, resp.body) == (201, f"{base}/hello", b"hi ")

    run(scenario())


def test_a_status_is_the_callers_to_judge() -> None:
    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, body=b"short and stout")

    async def scenario() -> None:
        async with serve({"/t": teapot}) as base:
            resp = await httpclient.request("GET", f"{base}/t")
            assert (resp.status, resp.body) == (418, b"short and stout")

    run(scenario())


def test_redirect_limit() -> None:
    async def loop(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        raise web.HTTPFound(f"/loop/{n + 1}")

    async def scenario() -> None:
        async with serve({"/loop/{n}": loop}) as base:
            url = f"{base}/loop/0"
            with pytest.raises(TooManyRedirects) as e:
                await httpclient.request("GET", url, limits=Limits(max_redirects=3))
            assert str(e.value) == f'Get "{url}": stopped after 3 redirects'
            with pytest.raises(TooManyRedirects, match="stopped after 10 redirects"):
                await httpclient.download(url, "/nonexistent/never-written")
            resp = await httpclient.request("GET", url, limits=Limits(max_redirects=0))
            assert (resp.status, resp.headers["Location"]) == (302, "/loop/1")

    run(scenario())


def test_size_cap_on_a_declared_and_on_a_chunked_body(tmp: Path) -> None:
    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async def scenario() -> None:
        async with serve({"/declared": declared, "/chunked": chunked}) as base:
            cap = Limits(max_body=4096)
            for path in ("/declared", "/chunked"):
                with pytest.raises(BodyTooLarge, match=f'^Get "{base}{path}": body .*over the limit'):
                    await httpclient.request("GET", f"{base}{path}", limits=cap)
                with pytest.raises(BodyTooLarge):
                    await httpclient.download(f"{base}{path}", str(tmp / "capped"), limits=cap)
            assert os.listdir(tmp) == []  # neither the file nor its temp name
            resp = await httpclient.request("GET", f"{base}/chunked", limits=Limits(max_body=100_000))
            assert len(resp.body) == 100_000

    run(scenario())


def test_download_streams_to_the_file_as_it_arrives(tmp: Path) -> None:
    """The server sends half, then waits until that half is on disk under the temp name
    before it sends the rest: a client that held the body until its end would stall."""
    half = 4 << 20
    block = bytes(range(256)) * 4096  # 1 MiB
    dest = tmp / "big.bin"
    seen_on_disk = []

    def written() -> int:
        return sum(os.path.getsize(tmp / n) for n in os.listdir(tmp) if n.startswith(".download-"))

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT",
                                           "Content-Length": str(2 * half)})
        await resp.prepare(request)
        for _ in range(half // len(block)):
            await resp.write(block)
        for _ in range(500):
            if written() >= half - httpclient.WRITE_BATCH:
                break
            await asyncio.sleep(0.01)
        seen_on_disk.append(written())
        for _ in range(half // len(block)):
            await resp.write(block)
        await resp.write_eof()
        return resp

    async def scenario() -> httpclient.Download:
        async with serve({"/big": big}) as base:
            return await httpclient.download(f"{base}/big", str(dest))

    got = run(scenario())
    assert seen_on_disk[0] >= half - httpclient.WRITE_BATCH
    assert got.path == str(dest)
    assert got.size == 2 * half and dest.stat().st_size == 2 * half
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(block * (2 * half // len(block))).digest()
    assert got.last_modified == 1445412480.0
    assert os.listdir(tmp) == ["big.bin"]


def test_a_body_that_breaks_off_leaves_nothing(tmp: Path) -> None:
    async def liar(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"z" * 10)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def scenario() -> None:
        async with serve({"/liar": liar}) as base:
            with pytest.raises(HTTPClientError) as e:
                await httpclient.download(f"{base}/liar", str(tmp / "f"))
            assert str(e.value).startswith(f'Get "{base}/liar": ')
            assert "\n" not in str(e.value)

    run(scenario())
    assert os.listdir(tmp) == []


# -- errors --------------------------------------------------------------------------


def test_errors_name_the_url_in_one_line(tmp: Path) -> None:
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    released = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await released.wait()
        return web.Response()

    async def scenario() -> None:
        url = f"http://127.0.0.1:{_free_port()}/x"
        with pytest.raises(ConnectError) as refused:
            await httpclient.request("GET", url)
        port = url.split(":")[2].split("/")[0]
        assert str(refused.value) == f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
        assert refused.value.os_reason == "connection refused"
        assert isinstance(refused.value, SystemError_)
        async with serve({"/missing": missing, "/slow": slow}) as base:
            with pytest.raises(BadStatus) as bad:
                await httpclient.download(f"{base}/missing", str(tmp / "m"))
            assert str(bad.value) == f"failed to GET {base}/missing with status 404 Not Found"
            assert bad.value.status == 404
            with pytest.raises(RequestTimeout) as slow_e:
                await httpclient.request("GET", f"{base}/slow", limits=Limits(read=0.2))
            assert str(slow_e.value) == f'Get "{base}/slow": timeout waiting for the answer after 0.2 s'
            with pytest.raises(RequestTimeout, match=f'^Post "{base}/slow": timeout .* after 0.3 s$'):
                await httpclient.request("POST", f"{base}/slow", limits=Limits(read=None, total=0.3))
            released.set()
        with pytest.raises(HTTPClientError, match='^Get "ftp://example.invalid/x": '):
            await httpclient.request("GET", "ftp://example.invalid/x")

    run(scenario())
    assert os.listdir(tmp) == []


def test_http_dates() -> None:
    assert httpclient.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert httpclient.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777.0
    assert httpclient.parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777.0
    assert httpclient.parse_http_date("yesterday") is None
    assert httpclient.parse_http_date(None) is None


# -- UNIX sockets ----------------------------------------------------------------------


def test_a_request_over_a_unix_socket(tmp: Path) -> None:
    path = str(tmp / "p.sock")

    async def activate(request: web.Request) -> web.Response:
        return web.json_response({"Host": request.host, "Body": (await request.read()).decode()})

    async def scenario() -> None:
        async with serve({"/Plugin.Activate": activate}, unix_socket=path) as base:
            resp = await httpclient.request("POST", f"{base}/Plugin.Activate", body=b"{}", unix_socket=path)
            assert resp.status == 200
            assert resp.body == b'{"Host": "plugin.moby.localhost", "Body": "{}"}'
        with pytest.raises(ConnectError) as e:  # the socket file stays; nobody listens
            await httpclient.request("POST", f"{base}/Plugin.Activate", unix_socket=path)
        assert e.value.reason == f"dial unix {path}: connect: connection refused"
        assert str(e.value).startswith(f'Post "{base}/Plugin.Activate": ')
        os.unlink(path)
        with pytest.raises(ConnectError) as e:
            await httpclient.request("POST", f"{base}/Plugin.Activate", unix_socket=path)
        assert e.value.os_reason == "no such file or directory"

    run(scenario())


def test_a_full_listen_backlog_is_waited_out(tmp: Path) -> None:
    """A non-blocking connect to a UNIX socket whose backlog is full fails with EAGAIN;
    the seam tries again (asyncio alone would write to an unconnected socket)."""
    path = str(tmp / "busy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        listener.setblocking(False)

        async def serve_late() -> None:
            await asyncio.sleep(0.3)  # the backlog stays full meanwhile
            for _ in range(4):
                conn, _ = await loop.sock_accept(listener)
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += await loop.sock_recv(conn, 4096)
                    await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

        server = asyncio.ensure_future(serve_late())
        answers = await asyncio.gather(*(
            httpclient.request("GET", "http://plugin.moby.localhost/x", unix_socket=path) for _ in range(4)))
        await server
        return [a.status for a in answers]

    try:
        assert run(scenario()) == [200, 200, 200, 200]
    finally:
        listener.close()


# -- the seam is the only one ------------------------------------------------------------


def test_no_other_module_of_berthd_makes_http_requests() -> None:
    """http.client, urllib.request and aiohttp's client side appear only in the seam (and
    in the CLI's Engine API client and its registry client for `berth trust`, another
    program's)."""
    src = Path(__file__).resolve().parents[2] / "src" / "berth"
    allowed = {src / "httpclient.py", src / "client" / "engine.py", src / "client" / "registry.py"}
    client_names = ("Client", "TCPConnector", "UnixConnector", "request")
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                names = [f"{node.value.id}.{node.attr}"]
            else:
                continue
            for name in names:
                if name.startswith(("http.client", "urllib.request")) or (
                        name.startswith("aiohttp.") and name.split(".")[1].startswith(client_names)):
                    offenders.append(f"{path.relative_to(src)}:{node.lineno}: {name}")
    assert offenders == []
