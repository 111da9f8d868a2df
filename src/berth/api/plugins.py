"""`/plugins/…`: managed plugins (list, inspect, create, enable, disable, set, remove,
privileges, pull, push), in Docker's JSON."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from aiohttp import web

from berth.api import progress
from berth.api.server import Routes, context, filters_param, json_response, query_bool
from berth.distribution.registry import Credentials
from berth.errors import InvalidParameter
from berth.plugins.manager import LIST_FILTERS, PluginManager
from berth.plugins.model import Plugin, Privilege

routes = Routes()


def _plugins(request: web.Request) -> PluginManager:
    return context(request).plugins


def render(p: Plugin) -> dict[str, Any]:
    return {
        "Config": p.config.doc,
        "Enabled": p.enabled,
        "Id": p.id,
        "Name": p.name,
        "PluginReference": p.reference,
        "Settings": p.settings.to_doc(),
    }


@routes.get("/plugins")
async def list_plugins(request: web.Request) -> web.Response:
    filters = filters_param(request, LIST_FILTERS)
    return json_response([render(p) for p in _plugins(request).find(filters)])


@routes.get("/plugins/{name:.*}/json")
async def inspect_plugin(request: web.Request) -> web.Response:
    return json_response(render(_plugins(request).get(request.match_info["name"])))


@routes.post("/plugins/create")
async def create_plugin(request: web.Request) -> web.Response:
    with tempfile.TemporaryFile() as spool:
        async for chunk in request.content.iter_chunked(1 << 16):
            spool.write(chunk)
        spool.seek(0)
        await _plugins(request).create(request.query.get("name", ""), spool)
    return web.Response(status=204)


@routes.post("/plugins/{name:.*}/enable")
async def enable_plugin(request: web.Request) -> web.Response:
    text = request.query.get("timeout", "0")
    try:
        timeout = int(text)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
    await _plugins(request).enable(request.match_info["name"], timeout)
    return web.Response(status=200)


@routes.post("/plugins/{name:.*}/disable")
async def disable_plugin(request: web.Request) -> web.Response:
    await _plugins(request).disable(request.match_info["name"], query_bool(request, "force"))
    return web.Response(status=200)


@routes.post("/plugins/{name:.*}/set")
async def set_plugin(request: web.Request) -> web.Response:
    data = await request.read()
    try:
        args = json.loads(data) if data.strip() else []
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidParameter("json: cannot unmarshal the body into []string")
    await _plugins(request).set(request.match_info["name"], args)
    return web.Response(status=204)


@routes.delete("/plugins/{name:.*}")
async def remove_plugin(request: web.Request) -> web.Response:
    await _plugins(request).remove(request.match_info["name"], query_bool(request, "force"))
    return web.Response(status=200)


def _privileges_doc(privileges: list[Privilege]) -> list[dict[str, Any]]:
    return [{"Name": p.name, "Description": p.description, "Value": p.value} for p in privileges]


def _privileges_of(doc: object) -> list[Privilege]:
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise InvalidParameter("json: cannot unmarshal the body into types.PluginPrivileges")
    out = []
    for item in doc:
        if not isinstance(item, dict):
            raise InvalidParameter("json: cannot unmarshal the body into types.PluginPrivileges")
        value = item.get("Value") or []
        out.append(Privilege(str(item.get("Name") or ""), str(item.get("Description") or ""),
                             [str(v) for v in value] if isinstance(value, list) else []))
    return out


@routes.get("/plugins/privileges")
async def get_privileges(request: web.Request) -> web.Response:
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    found = await _plugins(request).privileges(request.query.get("remote", ""), creds)
    return json_response(_privileges_doc(found))


@routes.post("/plugins/pull")
async def pull_plugin(request: web.Request) -> web.StreamResponse:
    data = await request.read()
    try:
        granted = _privileges_of(json.loads(data)) if data.strip() else None
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    remote = request.query.get("remote", "")
    name = request.query.get("name", "")
    plugins = _plugins(request)
    local = plugins.install_name(remote, name)
    return await progress.stream(request, lambda emit: plugins.pull(remote, name, granted, creds, emit),
                                 headers={"Docker-Plugin-Name": local})


@routes.post("/plugins/{name:.*}/upgrade")
async def upgrade_plugin(request: web.Request) -> web.StreamResponse:
    data = await request.read()
    try:
        granted = _privileges_of(json.loads(data)) if data.strip() else None
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    name = request.match_info["name"]
    plugins = _plugins(request)
    plugins.get(name)  # before the stream: a 404 of its own
    return await progress.stream(
        request, lambda emit: plugins.upgrade(name, request.query.get("remote", ""), granted, creds, emit))


@routes.post("/plugins/{name:.*}/push")
async def push_plugin(request: web.Request) -> web.StreamResponse:
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    name = request.match_info["name"]
    plugins = _plugins(request)
    plugins.get(name)  # before the stream: a 404 of its own
    return await progress.stream(request, lambda emit: plugins.push(name, creds, emit))
