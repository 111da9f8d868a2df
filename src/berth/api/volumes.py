"""`/volumes/…`: create, list, inspect, remove and prune volumes, in Docker's JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api import versions
from berth.api.server import (
    Routes,
    context,
    filters_param,
    json_body,
    json_response,
    query_bool,
)
from berth.containers.manager import ContainerManager
from berth.errors import InvalidParameter
from berth.volumes.store import (
    LIST_FILTERS,
    PRUNE_FILTERS,
    Volume,
    VolumeFilters,
    VolumePruneFilters,
    VolumeStore,
)

routes = Routes()


def _store(request: web.Request) -> VolumeStore:
    return context(request).volumes


def _containers(request: web.Request) -> ContainerManager:
    return context(request).containers


def render(v: Volume, store: VolumeStore) -> dict[str, Any]:
    return {
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels or None,
        "Mountpoint": store.mountpoint(v),
        "Name": v.name,
        "Options": v.options,
        "Scope": v.scope,
    }


def render_with_usage(v: Volume, store: VolumeStore, refs: int) -> dict[str, Any]:
    """The `docker system df -v` form: with UsageData (size -1 where unknown)."""
    return {**render(v, store), "UsageData": {"Size": store.size(v), "RefCount": refs}}


def _str_dict(doc: dict[str, Any], key: str) -> dict[str, str]:
    value = doc.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in value.items()):
        raise InvalidParameter(f"json: cannot unmarshal {key}: it must be an object of strings")
    return dict(value)


def _bool_filter(name: str, value: str) -> bool:
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{name}={value}'")


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    store, mgr = _store(request), _containers(request)
    raw = filters_param(request, LIST_FILTERS)
    filters = VolumeFilters(
        dangling=frozenset(_bool_filter("dangling", x) for x in raw["dangling"]) if "dangling" in raw else None,
        driver=tuple(raw["driver"]) if "driver" in raw else None,
        name=tuple(raw["name"]) if "name" in raw else None,
        label=tuple(raw.get("label", [])))
    vols = store.find(filters, lambda name: bool(mgr.volume_users(name)))
    return json_response({"Volumes": [render(v, store) for v in vols], "Warnings": None})


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.Response:
    body = await json_body(request, required=False)
    name = body.get("Name") or ""
    driver = body.get("Driver") or "local"
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidParameter("json: cannot unmarshal Name and Driver: they must be strings")
    options = _str_dict(body, "DriverOpts")
    labels = _str_dict(body, "Labels")
    store = _store(request)
    v = await store.create(name, driver, options if "DriverOpts" in body and body["DriverOpts"] is not None
                           else None, labels)
    return json_response(render(v, store), status=201)


@routes.get("/volumes/{name}")
async def inspect_volume(request: web.Request) -> web.Response:
    store = _store(request)
    return json_response(render(store.get(request.match_info["name"]), store))


@routes.delete("/volumes/{name}")
async def remove_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _store(request).remove(name, _containers(request).volume_users(name), force=query_bool(request, "force"))
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def prune_volumes(request: web.Request) -> web.Response:
    store, mgr = _store(request), _containers(request)
    raw = filters_param(request, PRUNE_FILTERS)
    filters = VolumePruneFilters(
        label=tuple(raw.get("label", [])), label_not=tuple(raw.get("label!", [])),
        all=any(_bool_filter("all", x) for x in raw["all"]) if "all" in raw else None)
    all_volumes = not versions.client_at_least(request, versions.VOLUME_PRUNE_ANONYMOUS_ONLY)
    deleted, reclaimed = await store.prune(filters, lambda name: bool(mgr.volume_users(name)), all_volumes)
    return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})
