"""`/distribution/{name}/json`: what a registry holds under a name (the manifest or
index descriptor and its platforms), as `docker manifest inspect`'s daemon side and
`docker service create` use it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api.server import Routes, context, json_response
from berth.distribution.manifest import Platform
from berth.distribution.registry import Credentials

routes = Routes()


def _platform(p: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.variant:
        out["variant"] = p.variant
    return out


@routes.get("/distribution/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    found = await context(request).distribution.inspect(request.match_info["name"], creds)
    d = found.descriptor
    return json_response({
        "Descriptor": {"mediaType": d.media_type, "digest": d.digest, "size": d.size},
        "Platforms": [_platform(p) for p in found.platforms],
    })
