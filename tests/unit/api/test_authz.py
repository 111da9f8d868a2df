"""The authorization middleware (berth.api.server.authz_middleware) against a stand-in
for the plugin chain: what is asked when, and what a refusal does to the answer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from berth.api.context import DaemonContext
from berth.api.server import Routes, make_app
from berth.errors import Forbidden, NotFound
from berth.plugins.model import AuthzRequest


class Chain:
    """Records each question; refuses requests or responses whose path is listed."""

    def __init__(self, deny: frozenset[str] = frozenset(), deny_response: frozenset[str] = frozenset()) -> None:
        self.deny = deny
        self.deny_response = deny_response
        self.asked: list[tuple[str, AuthzRequest]] = []
        self.authorizing = True

    async def authorize(self, request: AuthzRequest) -> None:
        self.asked.append(("req", dataclasses.replace(request)))
        if request.uri.partition("?")[0] in self.deny:
            raise Forbidden("authorization denied by plugin p: no")

    async def authorize_response(self, request: AuthzRequest) -> None:
        self.asked.append(("res", dataclasses.replace(request)))
        if request.uri.partition("?")[0] in self.deny_response:
            raise Forbidden("authorization denied by plugin p: not this answer")


routes = Routes()
made: list[str] = []


@routes.post("/things/create")
async def _create(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    made.append(doc["Name"])
    return web.json_response({"Id": doc["Name"]}, status=201)


@routes.get("/stream")
async def _stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(b'{"a": 1}\n')
    return resp


@routes.get("/missing")
async def _missing(request: web.Request) -> web.StreamResponse:
    raise NotFound("no such thing: x")


def _run(chain: Chain, calls: Any) -> Any:
    async def main() -> Any:
        ctx = cast(DaemonContext, SimpleNamespace(plugins=chain))
        client = TestClient(TestServer(make_app([routes], ctx)))
        await client.start_server()
        try:
            return await calls(client)
        finally:
            await client.close()

    return asyncio.run(main())


def test_request_and_response_are_asked_with_bodies() -> None:
    chain = Chain()

    async def calls(client: TestClient) -> tuple[int, Any]:
        r = await client.post("/v1.45/things/create?x=1", json={"Name": "a"},
                              headers={"X-Registry-Auth": "secret"})
        return r.status, await r.json()

    assert _run(chain, calls) == (201, {"Id": "a"})
    (k1, req), (k2, res) = chain.asked
    assert (k1, k2) == ("req", "res")
    assert (req.method, req.uri, req.body) == ("POST", "/v1.45/things/create?x=1", b'{"Name": "a"}')
    assert "X-Registry-Auth" not in req.headers and req.headers["Content-Type"] == "application/json"
    assert res.response_status == 201 and json.loads(res.response_body or b"") == {"Id": "a"}
    assert res.response_headers["Content-Type"].startswith("application/json")


def test_refused_request_never_reaches_the_handler() -> None:
    chain = Chain(deny=frozenset({"/things/create"}))
    made.clear()

    async def calls(client: TestClient) -> tuple[int, Any]:
        r = await client.post("/things/create", json={"Name": "b"})
        return r.status, await r.json()

    assert _run(chain, calls) == (403, {"message": "authorization denied by plugin p: no"})
    assert made == [] and [k for k, _ in chain.asked] == ["req"]


def test_refused_response_is_replaced_by_the_403() -> None:
    chain = Chain(deny_response=frozenset({"/things/create"}))
    made.clear()

    async def calls(client: TestClient) -> tuple[int, Any]:
        r = await client.post("/things/create", json={"Name": "c"})
        return r.status, await r.json()

    assert _run(chain, calls) == (403, {"message": "authorization denied by plugin p: not this answer"})
    assert made == ["c"]  # the handler ran, as in dockerd


def test_streamed_answer_is_told_and_kept() -> None:
    chain = Chain(deny_response=frozenset({"/stream"}))

    async def calls(client: TestClient) -> tuple[int, bytes]:
        r = await client.get("/stream")
        return r.status, await r.read()

    assert _run(chain, calls) == (200, b'{"a": 1}\n')
    assert [(k, r.response_status, r.response_body) for k, r in chain.asked] == [("req", 0, None), ("res", 200, None)]


def test_failed_handler_is_told_with_status_0_and_its_error_stands() -> None:
    chain = Chain(deny_response=frozenset({"/missing"}))

    async def calls(client: TestClient) -> tuple[int, Any]:
        r = await client.get("/missing")
        return r.status, await r.json()

    assert _run(chain, calls) == (404, {"message": "no such thing: x"})
    assert [(k, r.response_status) for k, r in chain.asked] == [("req", 0), ("res", 0)]


def test_unrouted_requests_are_not_asked() -> None:
    chain = Chain()

    async def calls(client: TestClient) -> int:
        return (await client.get("/no/such/route")).status

    assert _run(chain, calls) == 404
    assert chain.asked == []


