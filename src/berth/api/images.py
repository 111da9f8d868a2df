"""`/images/…`: Docker's image routes over ImageStore."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from berth import clock
from berth.api import progress, versions
from berth.api.containers import config_doc
from berth.api.server import Routes, context, filters_param, json_response, parse_until, query_bool
from berth.builder.changes import apply_changes
from berth.containers.manager import ContainerManager
from berth.containers.model import RunConfig as ContainerConfig
from berth.content.store import file_chunks
from berth.distribution.registry import Credentials
from berth.errors import BerthError, InvalidParameter
from berth.images import archive, reference
from berth.images import filters as image_filters
from berth.images.model import Image, RunConfig, container_config_doc
from berth.images.store import ImageStore, merge_run_config
from berth.layers.store import LayerStore

routes = Routes()
log = logging.getLogger(__name__)


def _store(request: web.Request) -> ImageStore:
    return context(request).images


def _containers(request: web.Request) -> ContainerManager:
    return context(request).containers


def _layers(request: web.Request) -> LayerStore:
    return context(request).layers


def render_summary(img: Image) -> dict[str, Any]:
    """An image of the list (and of `system df`) with what every API version may show;
    `versions.shape` makes it the client's."""
    return {
        "Id": img.id,
        "ParentId": img.parent,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Created": image_filters.created_epoch(img),
        "Size": img.size,
        "SharedSize": -1,
        "Labels": img.config.config.labels or None,
        "Containers": -1,
    }


def graph_driver(img: Image, layers: LayerStore) -> dict[str, Any]:
    """Where the image's layers lie, in the shape `docker image inspect` shows."""
    graph = layers.describe_image(img.chain_ids)
    return {"Name": graph.name, "Data": graph.data}


def render_inspect(img: Image, layers: LayerStore) -> dict[str, Any]:
    """`docker image inspect` with what every API version may show (the builder's
    container, a Config with container-only fields added before 1.50 by the table);
    `versions.shape` makes it the client's."""
    cfg = img.config
    run = cfg.config.to_oci()
    # An image's Config shows these even when the image does not set them (dockerd
    # marshals them without omitempty); the others only when set.
    config: dict[str, Any] = {"Cmd": None, "Entrypoint": None, "Env": None, "Labels": None, "OnBuild": None,
                              "User": "", "Volumes": None, "WorkingDir": "", **run}
    doc: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": img.parent,
        "Comment": cfg.comment,
    }
    if cfg.created:
        doc["Created"] = cfg.created
    if cfg.container:
        doc["Container"] = cfg.container
    # dockerd shows the builder's (or committed) container's config kept in the image, and
    # an empty one for images that have none. Those here show their own config instead
    # (pulled, imported, or built before berth kept it), so that Debian's docker-compose
    # 1.29 (API 1.41) finds the image's VOLUMEs in ContainerConfig.Volumes and carries
    # their data over when it recreates a container.
    doc["ContainerConfig"] = (cfg.container_config if cfg.container_config is not None
                              else container_config_doc(cfg.config))
    doc.update({
        "DockerVersion": cfg.docker_version,
        "Author": cfg.author,
        "Config": config,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": img.size,
        "GraphDriver": graph_driver(img, layers),
        "RootFS": {"Type": "layers", "Layers": cfg.diff_ids},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
    return doc


def parse_image_filters(filters: dict[str, list[str]]) -> image_filters.ImageFilters:
    """`filters` of the list and of prune, checked with dockerd's messages."""
    dangling = None
    if filters.get("dangling"):
        wanted = set()
        for v in filters["dangling"]:
            if v.lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={v}'")
            wanted.add(v.lower() in ("true", "1"))
        if len(wanted) > 1:
            raise InvalidParameter("invalid filter 'dangling': both true and false given")
        dangling = wanted.pop()
    return image_filters.ImageFilters(
        dangling=dangling, label=tuple(filters.get("label", [])), reference=tuple(filters.get("reference", [])),
        before=tuple(filters.get("before", [])), since=tuple(filters.get("since", [])),
        until=tuple(parse_until(v) for v in filters.get("until", [])))


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    filters = parse_image_filters(filters_param(request, {"dangling", "label", "reference", "before", "since",
                                                          "until"}))
    found = image_filters.list_images(_store(request), filters, query_bool(request, "all"))
    counts: dict[str, int] = {}
    for c in _containers(request).all():
        counts[c.image_id] = counts.get(c.image_id, 0) + 1
    out = []
    for img in found:
        summary = render_summary(img)
        summary["Containers"] = counts.get(img.id, 0)
        out.append(summary)
    return versions.respond(request, versions.IMAGE_LIST, out)


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    """`docker image prune`: dangling images by default, every unused one with
    dangling=false; never an image a container (running or not) stands on."""
    filters = parse_image_filters(filters_param(request, {"dangling", "label", "until"}))
    used = set(_containers(request).images_in_use())
    deleted, reclaimed = image_filters.prune(_store(request), filters, used)
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _image_config_of(c: ContainerConfig) -> RunConfig:
    return RunConfig(user=c.user, env=list(c.env), cmd=c.cmd, entrypoint=c.entrypoint,
                     working_dir=c.working_dir, labels=dict(c.labels), exposed_ports=list(c.exposed_ports),
                     volumes=list(c.volumes), stop_signal=c.stop_signal, healthcheck=c.healthcheck)


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    """`docker commit`: the container's changes become one more layer on its image, its
    config (overridden by the body, then by `changes`) the new image's."""
    store = _store(request)
    mgr = _containers(request)
    c = mgr.get(request.query.get("container", ""))
    repo = request.query.get("repo", "")
    tag_name = request.query.get("tag", "")
    repo_tag = None
    if repo:
        repo_tag = f"{repo}:{tag_name}" if tag_name else repo
        reference.parse(repo_tag)
    elif tag_name:
        raise InvalidParameter("tag is specified without a repository")
    body: Any = None
    if request.can_read_body:
        text = await request.text()
        if text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                raise InvalidParameter("invalid JSON in the commit's container config") from None
    if body is not None and not isinstance(body, dict):
        raise InvalidParameter("the commit's container config must be a JSON object")
    base = _image_config_of(c.config)
    run_config = RunConfig.from_oci(body) if body else _image_config_of(c.config)
    run_config = merge_run_config(apply_changes(run_config, request.query.getall("changes", [])), base)
    parent = store.resolve(c.image_id)
    with tempfile.NamedTemporaryFile(dir=os.path.join(_layers(request).root, "tmp"), suffix=".tar") as out:
        await mgr.write_changes(c.id, out, pause=query_bool(request, "pause", True))
        out.flush()
        image_id = await store.commit(
            parent, out.name, run_config, created_by=" ".join(c.config.cmd or []),
            author=request.query.get("author", ""), comment=request.query.get("comment", ""),
            repo_tag=repo_tag, container=c.id, container_config=config_doc(c))
    mgr.on_event("commit", c, {"comment": request.query.get("comment", ""), "imageID": image_id,
                               "imageRef": reference.parse(repo_tag).familiar() if repo_tag else ""})
    return json_response({"Id": image_id}, status=201)


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
    selection = store.save_selection(names)
    entries = archive.save_entries(selection)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    try:
        for entry in entries:
            await response.write(archive.tar_header(entry))
            if entry.data is not None:
                await response.write(entry.data + archive.tar_padding(len(entry.data)))
            elif entry.blob is not None:
                path = _layers(request).content.path(entry.blob)
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
    for item in selection:
        store.log_event("save", item.image_id, item.image_id)
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


@routes.post("/images/{name:.+}/push")
async def push(request: web.Request) -> web.StreamResponse:
    """`docker push`: the tag given, or every tag of the repository without one."""
    service = context(request).distribution
    creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
    name = request.match_info["name"]
    tag_name = request.query.get("tag", "")
    return await progress.stream(request, lambda emit: service.push(name, tag_name, creds, emit))


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    img = _store(request).resolve(request.match_info["name"])
    return versions.respond(request, versions.IMAGE_INSPECT, render_inspect(img, _layers(request)))


@routes.get("/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    store = _store(request)
    img = store.resolve(request.match_info["name"])
    # Each entry that made a layer gets that layer's size, in order; an entry is named by
    # the local image it was the top of (its parent chain), else "<missing>", as Docker.
    sizes: list[int] = []
    chain = iter(img.chain_ids)
    for h in img.config.history:
        layer = None if h.empty_layer else _layers(request).get(next(chain, ""))
        sizes.append(layer.size if layer is not None else 0)
    ids: dict[int, tuple[str, list[str]]] = {}
    up: Image | None = img
    while up is not None:
        ids.setdefault(len(up.config.history), (up.id, up.repo_tags))
        up = store.lookup(up.parent) if up.parent else None
    out = []
    for k in range(len(img.config.history) - 1, -1, -1):
        h = img.config.history[k]
        image_id, tags = ids.get(k + 1, ("<missing>", []))
        out.append({
            "Id": image_id,
            "Created": clock.parse_time(h.created) // 1_000_000_000 if h.created else 0,
            "CreatedBy": h.created_by, "Tags": tags or None, "Size": sizes[k], "Comment": h.comment,
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
        service = context(request).distribution
        try:
            creds = Credentials.from_header(request.headers.get("X-Registry-Auth"))
        except InvalidParameter:
            creds = Credentials()  # as dockerd: a pull with a header that does not decode is anonymous
        image = request.query.get("fromImage", "")
        tag_name = request.query.get("tag", "")
        platform = request.query.get("platform", "")
        reference.parse(image, default_tag=False)  # a bad name is a 400 before anything starts
        return await progress.stream(request, lambda emit: service.pull(image, tag_name, platform, creds, emit))
    if src != "-":
        raise InvalidParameter("importing from a URL is not supported yet; pass the archive on stdin")
    repo = request.query.get("repo", "")
    tag_name = request.query.get("tag", "")
    repo_tag = None
    if repo:
        repo_tag = f"{repo}:{tag_name}" if tag_name else repo
        reference.parse(repo_tag)
    run_config = apply_changes(RunConfig(), request.query.getall("changes", []))
    message = request.query.get("message", "")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 20):
            yield chunk

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        image_id = await _store(request).import_rootfs(body(), repo_tag, run_config, message)
    except BerthError as e:
        await response.write(json.dumps({"errorDetail": {"message": str(e)}, "error": str(e)}).encode() + b"\n")
        await response.write_eof()
        return response
    await response.write(json.dumps({"status": image_id}).encode() + b"\n")
    await response.write_eof()
    return response
