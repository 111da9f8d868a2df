"""`POST /build` (the classic builder, streamed as Docker streams it) and `POST /build/prune`."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from berth.api.server import Routes, context, json_response, query_bool, query_int
from berth.builder import context as ctxmod
from berth.builder.builder import Builder, BuildOptions
from berth.distribution.manifest import Platform
from berth.distribution.registry import Credentials
from berth.errors import BerthError, InvalidParameter

log = logging.getLogger(__name__)
routes = Routes()


def _builder(request: web.Request) -> Builder:
    return context(request).builder


def _json_param(request: web.Request, name: str, kind: type) -> Any:
    raw = request.query.get(name)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: {raw}") from None
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name}: {raw}")
    return value


def registry_config(header: str | None) -> dict[str, Credentials]:
    """X-Registry-Config: base64url JSON of {server: AuthConfig}, as the docker CLI
    sends every login it knows with a build; a header that does not decode is ignored,
    as dockerd does."""
    if not header:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): Credentials.from_json(v) for k, v in doc.items() if isinstance(v, dict)}


def parse_options(request: web.Request) -> BuildOptions:
    q = request.query
    args = _json_param(request, "buildargs", dict)
    ulimits = []
    for u in _json_param(request, "ulimits", list):
        if isinstance(u, dict) and isinstance(u.get("Name"), str):
            ulimits.append((u["Name"], int(u.get("Soft") or 0), int(u.get("Hard") or 0)))
    extra_hosts = [h for h in q.getall("extrahosts", []) if h]  # one per parameter, as dockerd reads them
    platform = q.get("platform") or ""
    if platform:
        Platform.parse(platform)  # refused before the build starts, in containerd's words
    return BuildOptions(
        dockerfile=q.get("dockerfile") or "Dockerfile",
        tags=q.getall("t", []),
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        labels={str(k): str(v) for k, v in _json_param(request, "labels", dict).items()},
        target=q.get("target") or "",
        no_cache=query_bool(request, "nocache"),
        remove=query_bool(request, "rm", True),
        force_remove=query_bool(request, "forcerm"),
        quiet=query_bool(request, "q"),
        network_mode=q.get("networkmode") or "",
        extra_hosts=extra_hosts,
        shm_size=query_int(request, "shmsize", 0) or 0,
        memory=query_int(request, "memory", 0) or 0,
        ulimits=ulimits,
        cache_from=[str(x) for x in _json_param(request, "cachefrom", list)],
        pull=query_bool(request, "pull"),
        platform=platform,
        registry_auth=registry_config(request.headers.get("X-Registry-Config")),
    )


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    opts = parse_options(request)
    for tag in opts.tags:
        from berth.images import reference

        reference.parse(tag)  # a bad name is refused before anything runs
    builder = _builder(request)
    remote = request.query.get("remote") or ""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)

    async def emit(doc: dict[str, Any]) -> None:
        await response.write(json.dumps(doc).encode() + b"\r\n")

    ctx: ctxmod.Context | None = None
    dockerfile_text: bytes | None = None
    try:
        if remote and ctxmod.is_git_url(remote):
            ctx = await ctxmod.from_git(remote, builder.tmp_root)
        elif remote.startswith(("http://", "https://")):
            ctx, dockerfile_text = await ctxmod.from_url(remote, builder.tmp_root)
            if ctx is None:
                ctx = await ctxmod.from_tar(_empty_tar(), builder.tmp_root)
        else:
            ctx = await ctxmod.from_tar(_body(request), builder.tmp_root, keep=(opts.dockerfile,))
        await builder.build(ctx, opts, emit, dockerfile_text)
    except BerthError as e:
        detail: dict[str, Any] = {"message": str(e)}
        if getattr(e, "code", None):
            detail["code"] = e.code  # type: ignore[attr-defined]  # the CLI exits with it
        await emit({"errorDetail": detail, "error": str(e)})
    except (ConnectionResetError, BrokenPipeError):
        if request.transport is None or request.transport.is_closing():
            log.info("build stopped: the client went away")
            return response
        raise
    except OSError as e:
        log.exception("build failed")
        await emit({"errorDetail": {"message": f"build failed: {e}"}, "error": f"build failed: {e}"})
    finally:
        if ctx is not None:
            ctx.cleanup()
    await response.write_eof()
    return response


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(1 << 20):
        yield chunk


async def _empty_tar() -> AsyncIterator[bytes]:
    yield b"\0" * 1024


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    builder = _builder(request)
    gone = builder.cache.prune()
    return json_response({"CachesDeleted": None if not gone else [], "SpaceReclaimed": 0})


@routes.post("/build/cancel")
async def cancel(request: web.Request) -> web.Response:
    return web.Response(status=200)
