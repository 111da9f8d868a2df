"""`/_ping`, `/version`, `/info`, `/system/df`: what the daemon is and what it holds."""

from __future__ import annotations

import asyncio
import json
import os
import platform
from typing import Any

from aiohttp import web

from berth import API_VERSION, MIN_API_VERSION, __version__
from berth.api import containers as container_api
from berth.api import images as image_api
from berth.api import versions
from berth.api import volumes as volume_api
from berth.api.server import Routes, context, json_response, server_header
from berth.clock import now_rfc3339
from berth.containers.model import Status
from berth.distribution.registry import Credentials
from berth.errors import InvalidParameter
from berth.images.store import ARCH
from berth.plugins.model import LOG_DRIVER, VOLUME_DRIVER

routes = Routes()


def _ping_headers() -> dict[str, str]:
    return {"Api-Version": API_VERSION, "Ostype": "linux", "Server": server_header(),
            "Builder-Version": "1", "Docker-Experimental": "false", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}


def _registry_config(mirrors: tuple[str, ...], insecure: tuple[str, ...]) -> dict[str, Any]:
    """/info's RegistryConfig, as dockerd's ServiceConfig shows it: loopback is always an
    insecure CIDR; a name in insecure-registries is an index config that is not secure."""
    cidrs = ["::1/128", "127.0.0.0/8"]
    index_configs: dict[str, Any] = {
        "docker.io": {"Name": "docker.io", "Mirrors": [m.rstrip("/") + "/" for m in mirrors],
                      "Secure": True, "Official": True}}
    for entry in insecure:
        if "/" in entry:
            if entry not in cidrs:
                cidrs.append(entry)
        else:
            index_configs[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    return {"InsecureRegistryCIDRs": cidrs, "IndexConfigs": index_configs,
            "Mirrors": [m.rstrip("/") + "/" for m in mirrors]}


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    """`docker login`: the credentials are checked against the registry; berthd keeps
    nothing (the client stores them, as Docker's CLI does)."""
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        raise InvalidParameter("invalid JSON in the login request") from None
    if not isinstance(body, dict):
        raise InvalidParameter("the login request must be a JSON object")
    creds = Credentials.from_json(body)
    token = await context(request).distribution.login(creds.server, creds)
    return json_response({"Status": "Login Succeeded", "IdentityToken": token})


@routes.get("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers=_ping_headers(), content_type="text/plain")


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.Response:
    return web.Response(headers=_ping_headers(), content_type="text/plain")


def _kernel() -> str:
    return platform.release()


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    components: list[dict[str, Any]] = [{"Name": "Engine", "Version": __version__, "Details": {
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Arch": ARCH, "Os": "linux",
        "KernelVersion": _kernel(), "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
        "BuildTime": "", "Experimental": "false"}}]
    return json_response({
        "Platform": {"Name": "berth"},
        "Components": components,
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": ARCH,
        "KernelVersion": _kernel(),
        "BuildTime": "",
    })


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    ctx = context(request)
    containers = list(ctx.containers.containers.values())
    running = sum(1 for c in containers if c.state.status == Status.RUNNING)
    paused = sum(1 for c in containers if c.state.status == Status.PAUSED)
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return versions.respond(request, versions.INFO, {
        "ID": ctx.info.daemon_id,
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(ctx.images.all()),
        "Driver": ctx.layers.driver,
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local", *ctx.plugins.names(VOLUME_DRIVER)], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file", "none", *ctx.plugins.names(LOG_DRIVER)]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "Debug": ctx.info.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": now_rfc3339(),
        "LoggingDriver": ctx.info.log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(),
        "NEventsListener": ctx.events.listeners,
        "KernelVersion": _kernel(),
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_config(ctx.info.registry_mirrors, ctx.info.insecure_registries),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem,
        "DockerRootDir": ctx.info.data_root,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": {name: {"path": path} for name, path in ctx.containers.known_runtimes().items()},
        "DefaultRuntime": ctx.containers.default_runtime,
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": ctx.info.live_restore,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [f"name=seccomp,profile={ctx.info.seccomp_profile}", *ctx.info.security_options],
        "Warnings": ([*([] if ctx.info.seccomp_profile == "builtin"
                        else ["WARNING: daemon is not using the default seccomp profile"]),
                     *ctx.info.warnings] or None),
    })


@routes.get("/system/df")
async def disk_usage(request: web.Request) -> web.Response:
    """`docker system df`: layers counted once; an image's SharedSize is what its layers
    share with other images."""
    ctx = context(request)
    images = ctx.images.all()
    layer_sizes: dict[str, int] = {}
    users: dict[str, int] = {}
    for img in images:
        for chain_id in img.chain_ids:
            users[chain_id] = users.get(chain_id, 0) + 1
            if chain_id not in layer_sizes:
                layer = ctx.layers.get(chain_id)
                layer_sizes[chain_id] = layer.size if layer else 0
    counts: dict[str, int] = {}
    containers = ctx.containers.all()
    for c in containers:
        counts[c.image_id] = counts.get(c.image_id, 0) + 1
    image_docs = []
    for img in images:
        doc = image_api.render_summary(img)
        doc["Containers"] = counts.get(img.id, 0)
        doc["SharedSize"] = sum(layer_sizes[ch] for ch in img.chain_ids if users[ch] > 1)
        image_docs.append(doc)
    sizes = {img.id: img.size for img in images}
    container_docs = []
    for c in containers:
        doc = container_api.render_summary(c)
        doc["SizeRw"] = await asyncio.to_thread(ctx.layers.rw_size, c.id)
        doc["SizeRootFs"] = doc["SizeRw"] + sizes.get(c.image_id, 0)
        container_docs.append(doc)
    vols = ctx.volumes.all()
    refs = {v.name: len(ctx.containers.volume_users(v.name)) for v in vols}
    return versions.respond(request, versions.SYSTEM_DF, {
        "LayersSize": ctx.images.layers_size(),
        "Images": image_docs,
        "Containers": container_docs,
        "Volumes": await asyncio.to_thread(
            lambda: [volume_api.render_with_usage(v, ctx.volumes, refs[v.name]) for v in vols]),
        "BuildCache": [],
    })
