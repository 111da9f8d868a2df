"""The Engine API's HTTP server: routing with version prefixes, negotiation, errors.

Every route is served both unversioned and under `/v1.NN/`. Requests from API
versions outside [MIN_API_VERSION, API_VERSION] are refused with 400, as dockerd does.
BerthErrors become `{"message": ...}` with their status; anything else is a 500 whose
traceback goes to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from berth import API_VERSION, MIN_API_VERSION, clock
from berth.api.context import DaemonContext
from berth.errors import BerthError, InvalidParameter, SystemError_
from berth.plugins.model import AuthzRequest

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
CONTEXT = web.AppKey("context", DaemonContext)


def _vtuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(doc).encode() + b"\n", status=status,
                        content_type="application/json")


def error_response(message: str, status: int) -> web.Response:
    return json_response({"message": message}, status)


def api_version(request: web.Request) -> tuple[int, int]:
    return request.get("api_version", _vtuple(API_VERSION))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BerthError as e:
        if e.status == 304:
            return web.Response(status=304)
        return error_response(str(e), e.status)
    except web.HTTPException as e:
        if e.status in (404, 405):
            msg = "page not found" if e.status == 404 else f"method {request.method} not allowed"
            return error_response(msg, e.status)
        raise
    except ConnectionError as e:  # reset, broken pipe, and aiohttp's own 'Connection lost'
        transport = request.transport
        if transport is None or transport.is_closing():
            # the client left in the middle of a streamed answer (logs -f, stats, a build's
            # output): nobody to answer, and no fault of berthd's
            log.debug("%s %s: the client went away: %s", request.method, request.path, e)
            return web.Response()
        raise  # a stream cut on purpose: aiohttp ends the connection
    except Exception as e:  # a bug: log it whole, tell the client one line
        log.exception("%s %s failed", request.method, request.path)
        return error_response(f"internal error: {type(e).__name__}: {e}", 500)


def _version_middleware() -> Any:
    maximum = _vtuple(API_VERSION)
    minimum = _vtuple(MIN_API_VERSION)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        m = _VERSION_RE.match(request.path)
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            text = f"{version[0]}.{version[1]}"
            if version > maximum:
                return error_response(f"client version {text} is too new. Maximum supported API version is {API_VERSION}", 400)
            if version < minimum:
                return error_response(f"client version {text} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version", 400)
            request["api_version"] = version
        response = await handler(request)
        if not response.prepared:
            response.headers["Api-Version"] = API_VERSION
            response.headers["Server"] = server_header()
            response.headers["Ostype"] = "linux"
        return response

    return middleware


_AUTHZ_MAX_BODY = 4 << 20  # dockerd's limit on a request body put to authorization plugins
_AUTHZ_HIDDEN_HEADERS = {"authorization", "x-registry-config", "x-registry-auth"}
_AUTH_ENDPOINT = re.compile(r"^[^/]*/(v\d[\d.]*/)?auth")
HIJACKED = "berth.hijacked"  # set on a request whose connection a handler took over


@web.middleware
async def authz_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With authorization plugins configured, every routed request is put to them
    (AuthZPlugin.AuthZReq) before its handler runs, and its response after
    (AuthZPlugin.AuthZRes), as dockerd's middleware does:
    - a buffered answer goes to the plugins with its status, headers and (JSON) body,
      and a refusal replaces it with the 403;
    - a streamed answer or a hijacked connection has gone out already: the plugins are
      told (a hijack with status 0, as dockerd tells them) and a refusal is only logged;
    - when the handler failed, they are told with status 0, and the handler's error stands.
    A plugin that cannot be asked fails the request (500). Unrouted requests (404/405)
    are not asked, as dockerd's router answers them outside its middlewares."""
    plugins = context(request).plugins
    if not plugins.authorizing or request.match_info.http_exception is not None:
        return await handler(request)
    body = None
    if _authz_sends_body(request.path, request.content_type):
        if (request.content_length or 0) > _AUTHZ_MAX_BODY:
            raise SystemError_(f"request body too large for authorization plugin: size exceeds {_AUTHZ_MAX_BODY} bytes")
        body = await request.read()  # kept: the handler reads it again
        if len(body) > _AUTHZ_MAX_BODY:
            raise SystemError_(f"request body too large for authorization plugin: size exceeds {_AUTHZ_MAX_BODY} bytes")
    asked = AuthzRequest(request.method, request.raw_path, _authz_headers(request.headers), body or None)
    try:
        await plugins.authorize(asked)
    except BerthError as e:
        log.error("AuthZRequest for %s %s returned error: %s", request.method, request.raw_path, e)
        raise
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        if request.get(HIJACKED):
            await _authz_told(request, asked)
        raise
    except Exception:
        await _authz_told(request, asked)
        raise
    if not plugins.authorizing:  # the chain emptied meanwhile (a plugin disabled)
        return response
    asked.response_status = response.status
    asked.response_headers = _authz_headers(response.headers)
    if response.prepared:
        await _authz_told(request, asked)
        return response
    if isinstance(response, web.Response) and isinstance(response.body, bytes) \
            and _authz_sends_body(request.path, response.content_type):
        asked.response_body = response.body
    try:
        await plugins.authorize_response(asked)
    except BerthError as e:
        log.error("AuthZResponse for %s %s returned error: %s", request.method, request.raw_path, e)
        raise
    return response


async def _authz_told(request: web.Request, asked: AuthzRequest) -> None:
    """AuthZRes for an answer that cannot be taken back: a refusal or failure is logged."""
    plugins = context(request).plugins
    if not plugins.authorizing:
        return
    try:
        await plugins.authorize_response(asked)
    except BerthError as e:
        log.error("AuthZResponse for %s %s returned error: %s", request.method, request.raw_path, e)


def _authz_sends_body(path: str, content_type: str) -> bool:
    """dockerd's sendBody: JSON bodies only, and never those of /auth (credentials)."""
    return content_type == "application/json" and not _AUTH_ENDPOINT.match(path)


def _authz_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as the plugins see them: one value per name, credentials left out."""
    return {k: v for k, v in headers.items() if k.lower() not in _AUTHZ_HIDDEN_HEADERS}


def server_header() -> str:
    from berth import __version__

    return f"Docker/{__version__} (linux) berth/{__version__}"


class Routes:
    """Collects routes; each is registered with and without the version prefix."""

    def __init__(self) -> None:
        self.table: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append((method, path, handler))
            return handler

        return register

    get = lambda self, path: self.add("GET", path)  # noqa: E731
    post = lambda self, path: self.add("POST", path)  # noqa: E731
    delete = lambda self, path: self.add("DELETE", path)  # noqa: E731
    head = lambda self, path: self.add("HEAD", path)  # noqa: E731
    put = lambda self, path: self.add("PUT", path)  # noqa: E731


def make_app(routes: list[Routes], context: DaemonContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, _version_middleware(), authz_middleware],
                          client_max_size=0, handler_args={"max_field_size": 65536})
    app[CONTEXT] = context
    for group in routes:
        for method, path, handler in group.table:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/{api_version:v[0-9]+\.[0-9]+}" + path, handler)
    return app


# -- request helpers ----------------------------------------------------------------------

def context(request: web.Request) -> DaemonContext:
    """The services this request's handler works with."""
    return request.app[CONTEXT]


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() not in ("", "0", "false", "no")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None


async def json_body(request: web.Request, required: bool = True) -> dict[str, Any]:
    data = await request.read()
    if not data.strip():
        if required:
            raise InvalidParameter("invalid JSON: the request body is empty")
        return {}
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid JSON: the request body must be an object")
    return doc


def filters_param(request: web.Request, allowed: set[str]) -> dict[str, list[str]]:
    """The `filters` query parameter: name → values; a name not in `allowed` is refused."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filter: {raw}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter(f"invalid filter: {raw}")
    out: dict[str, list[str]] = {}
    for key, value in doc.items():
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(text: str) -> float:
    """An `until` filter value as unix seconds: a Go duration before now ("24h", "1h30m"),
    unix seconds, or an RFC 3339 time, as dockerd accepts."""
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return time.time() - sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return clock.parse_time(text) / 1e9
    except ValueError:
        raise InvalidParameter(f"invalid filter 'until={text}'") from None
