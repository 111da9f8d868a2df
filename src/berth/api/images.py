"""`/images/…`: Docker's image routes over ImageStore."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from berth.api.server import Routes, json_response, query_bool
from berth.containers.manager import ContainerManager
from berth.errors import BerthError, InvalidParameter, NotFound
from berth.images import archive, reference
from berth.images.content import file_chunks
from berth.images.model import Image
from berth.images.store import ImageStore
from berth.logs import jsonfile

routes = Routes()
log = logging.getLogger(__name__)


def _store(request: web.Request) -> ImageStore:
    return request.app["ctx"].images


def _containers(request: web.Request) -> ContainerManager:
    return request.app["ctx"].containers


def _created_epoch(img: Image) -> int:
    try:
        return jsonfile.parse_time(img.config.created) // 1_000_000_000
    except ValueError:
        return 0


def render_summary(img: Image) -> dict[str, Any]:
    return {
        "Id": img.id,
        "ParentId": "",
        "RepoTags": img.repo_tags,
        "RepoDigests": [],
        "Created": _created_epoch(img),
        "Size": img.size,
        "SharedSize": -1,
        "VirtualSize": img.size,
        "Labels": img.config.config.labels or None,
        "Containers": -1,
    }


def render_inspect(img: Image) -> dict[str, Any]:
    cfg = img.config
    run = cfg.config.to_oci()
    container_config: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": run.get("User", ""), "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": run.get("Env"), "Cmd": run.get("Cmd"), "Image": "",
        "Volumes": run.get("Volumes"), "WorkingDir": run.get("WorkingDir", ""),
        "Entrypoint": run.get("Entrypoint"), "OnBuild": run.get("OnBuild"), "Labels": run.get("Labels"),
    }
    if "ExposedPorts" in run:
        container_config["ExposedPorts"] = run["ExposedPorts"]
    if "StopSignal" in run:
        container_config["StopSignal"] = run["StopSignal"]
    return {
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": [],
        "Parent": "",
        "Comment": cfg.comment,
        "Created": cfg.created,
        "DockerVersion": cfg.docker_version,
        "Author": cfg.author,
        "Config": container_config,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": cfg.diff_ids},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    images = _store(request).all()
    filters = json.loads(request.query.get("filters") or "{}")
    refs = filters.get("reference") or []
    if isinstance(refs, dict):
        refs = [k for k, v in refs.items() if v]
    out = []
    for img in images:
        if refs and not any(_ref_matches(t, r) for t in img.repo_tags for r in refs):
            continue
        out.append(render_summary(img))
    return json_response(out)


def _ref_matches(tag: str, pattern: str) -> bool:
    import fnmatch

    repo = tag.rsplit(":", 1)[0]
    return fnmatch.fnmatch(tag, pattern) or fnmatch.fnmatch(repo, pattern)


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


@routes.get("/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    """`docker save`: the archive streams as it is written, layer blobs read in threads."""
    if not names:
        raise InvalidParameter("no images to save: pass one or more names")
    store = _store(request)
    entries = archive.save_entries(store.save_selection(names))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    try:
        for entry in entries:
            await response.write(archive.tar_header(entry))
            if entry.data is not None:
                await response.write(entry.data + archive.tar_padding(len(entry.data)))
            elif entry.blob is not None:
                path = store.layers.content.path(entry.blob)
                async for chunk in file_chunks(path, 0, entry.size):
                    await response.write(chunk)
                await response.write(archive.tar_padding(entry.size))
    except ConnectionResetError:
        raise
    except (BerthError, OSError) as e:
        # Too late for an error status: cut the stream, so the client sees a short archive.
        log.warning("docker save of %s stopped: %s", ", ".join(names), e)
        raise ConnectionResetError(str(e)) from None
    await response.write(archive.TAR_END)
    await response.write_eof()
    return response


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    """`docker load`: nothing is stored unless every image of the archive is."""

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 20):
            yield chunk

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        lines = await _store(request).load_archive(body())
    except (BerthError, OSError) as e:
        await response.write(json.dumps({"errorDetail": {"message": str(e)}, "error": str(e)}).encode() + b"\n")
        await response.write_eof()
        return response
    for line in lines:
        await response.write(json.dumps({"stream": line + "\n"}).encode() + b"\n")
    await response.write_eof()
    return response


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    return json_response(render_inspect(_store(request).resolve(request.match_info["name"])))


@routes.get("/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    img = _store(request).resolve(request.match_info["name"])
    out = []
    for i, h in enumerate(reversed(img.config.history)):
        out.append({
            "Id": img.id if i == 0 else "<missing>",
            "Created": jsonfile.parse_time(h.created) // 1_000_000_000 if h.created else 0,
            "CreatedBy": h.created_by, "Tags": img.repo_tags if i == 0 else None,
            "Size": img.size if i == len(img.config.history) - 1 else 0, "Comment": h.comment,
        })
    return json_response(out)


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    store = _store(request)
    img = store.resolve(request.match_info["name"])
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    tag_name = request.query.get("tag") or "latest"
    ref = reference.parse(f"{repo}:{tag_name}")
    store.tag(img.id, str(ref))
    return web.Response(status=201)


@routes.delete("/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    results = _store(request).remove(name, query_bool(request, "force"), _containers(request).images_in_use())
    return json_response(results)


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    src = request.query.get("fromSrc")
    if src is None:
        image = request.query.get("fromImage", "")
        tag_name = request.query.get("tag", "")
        name = f"{image}:{tag_name}" if tag_name and "@" not in image else image
        try:
            ref = reference.parse(name)
        except InvalidParameter:
            raise
        raise NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                       "require 'docker login': berth cannot reach a registry for it yet")
    if src != "-":
        raise InvalidParameter("importing from a URL is not supported yet; pass the archive on stdin")
    repo = request.query.get("repo", "")
    tag_name = request.query.get("tag", "")
    repo_tag = None
    if repo:
        repo_tag = f"{repo}:{tag_name}" if tag_name else repo
        reference.parse(repo_tag)
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 20):
            yield chunk

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        image_id = await _store(request).import_rootfs(body(), repo_tag, changes, message)
    except BerthError as e:
        await response.write(json.dumps({"errorDetail": {"message": str(e)}, "error": str(e)}).encode() + b"\n")
        await response.write_eof()
        return response
    await response.write(json.dumps({"status": image_id}).encode() + b"\n")
    await response.write_eof()
    return response
