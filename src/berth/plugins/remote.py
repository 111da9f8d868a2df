"""Plugins to and from a registry: `docker plugin install` (privileges, then pull) and
`docker plugin push`, over berth's registry client.

A plugin in a registry is a schema 2 manifest whose config has the media type
application/vnd.docker.plugin.v1+json (the plugin's config.json, with its rootfs's
diff IDs) and whose layers are the rootfs, gzipped. This module moves those bytes and
says how far it got; the manager decides names and keeps the result.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from berth.distribution.manifest import (
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    Descriptor,
    ImageManifest,
    build_manifest,
)
from berth.distribution.progress import Emit, Progress, PushedManifest, Reporter, short_id
from berth.distribution.registry import Credentials, Registry, Repository
from berth.errors import SystemError_
from berth.images.reference import Reference
from berth.plugins.model import PluginConfig, parse_config

PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
_CHUNK = 1 << 20


@dataclass
class RemotePlugin:
    """What a registry holds under a reference: its manifest, config blob and config."""

    repo: Repository
    manifest: ImageManifest
    config_raw: bytes
    config: PluginConfig


async def fetch_config(registry: Registry, ref: Reference, creds: Credentials) -> RemotePlugin:
    repo = registry.repository(ref, creds)
    doc = await repo.manifest(ref.digest or ref.tag)
    if not isinstance(doc, ImageManifest) or doc.config.media_type != PLUGIN_CONFIG:
        raise SystemError_("fetched plugin image but plugin config is missing")
    raw = await repo.blob_bytes(doc.config)
    try:
        config = parse_config(json.loads(raw))
    except ValueError as e:
        raise SystemError_(f"failed to parse config: {e}") from None
    return RemotePlugin(repo, doc, raw, config)


async def download_layers(remote: RemotePlugin, blobs: str, emit: Emit) -> list[str]:
    """Every layer's blob into `blobs/<algo>-<hex>`, as it came; their digests."""
    digests = []
    for layer in remote.manifest.layers:
        layer_id = short_id(layer.digest)
        reporter = Reporter(emit, layer_id, "Downloading", layer.size)
        path = os.path.join(blobs, layer.digest.replace(":", "-"))
        f = await asyncio.to_thread(open, path + ".tmp", "wb")
        try:
            async for chunk in remote.repo.blob_chunks(layer, reporter.update):
                await asyncio.to_thread(f.write, chunk)
        finally:
            await asyncio.to_thread(f.close)
        os.rename(path + ".tmp", path)
        emit(Progress("Download complete", layer_id))
        digests.append(layer.digest)
    return digests


async def _file_chunks(path: str) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, _CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(f.close)


async def push(registry: Registry, ref: Reference, creds: Credentials, config_blob: str, config_digest: str,
               layers: list[tuple[str, str]], emit: Emit) -> None:
    """The plugin's layer blobs (digest, path) and config blob, then its manifest under
    `ref`'s tag."""
    repo = registry.repository(ref, creds, push=True)
    emit(Progress(f"The push refers to repository [{ref.familiar_name}]"))
    descriptors = []
    for digest, path in layers:
        layer_id = short_id(digest)
        size = os.path.getsize(path)
        emit(Progress("Preparing", layer_id))
        if await repo.blob_size(digest) is None:
            reporter = Reporter(emit, layer_id, "Pushing", size)
            stored = await repo.upload(_file_chunks(path), reporter.update, media_type=DOCKER_LAYER)
            if stored.digest != digest:
                raise SystemError_(f"error pushing plugin: layer {digest} changed on disk (now {stored.digest})")
            emit(Progress("Pushed", layer_id))
        else:
            emit(Progress("Layer already exists", layer_id))
        descriptors.append(Descriptor(DOCKER_LAYER, digest, size))
    with open(config_blob, "rb") as f:
        config = f.read()
    if await repo.blob_size(config_digest) is None:
        await repo.upload_bytes(config, PLUGIN_CONFIG)
    raw = build_manifest(Descriptor(PLUGIN_CONFIG, config_digest, len(config)), descriptors)
    digest = await repo.put_manifest(ref.tag or "latest", DOCKER_MANIFEST, raw)
    emit(PushedManifest(ref.tag or "latest", digest, len(raw)))
