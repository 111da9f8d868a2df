"""`/networks/…`: create, list, inspect, remove, prune, connect and disconnect, in Docker's JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api import versions
from berth.api.containers import parse_endpoint_request
from berth.api.server import Routes, context, filters_param, json_body, json_response
from berth.containers.manager import ContainerManager
from berth.errors import InvalidParameter
from berth.network.controller import NETWORK_FILTERS, NetworkController
from berth.network.model import Network, SubnetConfig

routes = Routes()


def _ctl(request: web.Request) -> NetworkController:
    return context(request).network


def _containers(request: web.Request) -> ContainerManager:
    return context(request).containers


def render(n: Network, ctl: NetworkController, with_containers: bool = True) -> dict[str, Any]:
    containers: dict[str, Any] = {}
    if with_containers:
        for c in ctl.attached(n):
            ep = next((e for e in c.networks.values() if e.network_id == n.id), None)
            if ep is None or not ep.endpoint_id:
                continue
            containers[c.id] = {
                "Name": c.name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ipv4}/{ep.ipv4_prefixlen}" if ep.ipv4 else "",
                "IPv6Address": f"{ep.ipv6}/{ep.ipv6_prefixlen}" if ep.ipv6 else "",
            }
    config = []
    for s in n.subnets:
        entry: dict[str, Any] = {"Subnet": s.subnet}
        if s.ip_range:
            entry["IPRange"] = s.ip_range
        if s.gateway:
            entry["Gateway"] = s.gateway
        if s.aux_addresses:
            entry["AuxiliaryAddresses"] = dict(s.aux_addresses)
        config.append(entry)
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": n.driver not in ("host", "null"),
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {"Driver": n.ipam_driver, "Options": n.ipam_options or None if n.builtin else n.ipam_options,
                 "Config": config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": n.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    }


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    filters = filters_param(request, NETWORK_FILTERS)
    older = not versions.client_at_least(request, versions.NETWORK_LIST_WITHOUT_CONTAINERS)
    return json_response([render(n, ctl, with_containers=older) for n in ctl.find(filters)])


@routes.get("/networks/{id}")
async def inspect_network(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    return json_response(render(ctl.get(request.match_info["id"]), ctl))


def _str_dict(doc: dict[str, Any], key: str) -> dict[str, str]:
    value = doc.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"json: cannot unmarshal {key}: it must be an object of strings")
    return dict(value)


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("Name")
    if not isinstance(name, str):
        raise InvalidParameter("json: cannot unmarshal Name: it must be a string")
    ipam_doc = body.get("IPAM") or {}
    if not isinstance(ipam_doc, dict):
        raise InvalidParameter("json: cannot unmarshal IPAM: it must be an object")
    subnets = []
    for entry in ipam_doc.get("Config") or []:
        if not isinstance(entry, dict):
            raise InvalidParameter("json: cannot unmarshal IPAM.Config: entries must be objects")
        subnets.append(SubnetConfig(str(entry.get("Subnet") or ""), str(entry.get("Gateway") or ""),
                                    str(entry.get("IPRange") or ""), _str_dict(entry, "AuxiliaryAddresses")))
    ctl = _ctl(request)
    n = await ctl.create(
        name, str(body.get("Driver") or "bridge"), internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")), enable_ipv6=bool(body.get("EnableIPv6")),
        options=_str_dict(body, "Options"), labels=_str_dict(body, "Labels"),
        ipam_driver=str(ipam_doc.get("Driver") or "default"), ipam_options=_str_dict(ipam_doc, "Options"),
        subnets=subnets)
    return json_response({"Id": n.id, "Warning": ""}, status=201)


@routes.delete("/networks/{id}")
async def remove_network(request: web.Request) -> web.Response:
    await _ctl(request).remove(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/networks/prune")
async def prune_networks(request: web.Request) -> web.Response:
    filters = filters_param(request, {"label", "label!", "until"})
    gone = await _ctl(request).prune(filters)
    context(request).events.log("network", "prune", "", {"reclaimed": "0"})
    return json_response({"NetworksDeleted": gone or None})


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    body = await json_body(request)
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter("no container specified")
    req = parse_endpoint_request(body.get("EndpointConfig") or {})
    await _containers(request).connect(ref, request.match_info["id"], req)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    body = await json_body(request)
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter("no container specified")
    await _containers(request).disconnect(ref, request.match_info["id"], bool(body.get("Force")))
    return web.Response(status=200)
