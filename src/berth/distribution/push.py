"""`docker push`: an image's layers, config and manifest into a repository.

Each layer is kept locally as its plain tar; a registry wants it compressed. Before
compressing anything the pusher asks what the registry already has: a layer this berth
pulled from or pushed to the same registry (LayerSources) is checked with one HEAD
("Layer already exists") or mounted from the repository it is in ("Mounted from …").
Only the rest is gzipped (isal, in a thread) and streamed up as it is compressed, at
most `max_uploads` layers at once; the registry client hashes the stream on the way,
so no compressed copy is written to disk. The config goes up as its exact bytes (the
image ID is their digest), then a Docker schema 2 manifest under the tag. The image
gains the manifest's digest as a RepoDigest, as Docker's push does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from isal import isal_zlib

from berth.content.digest import of_bytes
from berth.distribution.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    Descriptor,
    build_manifest,
)
from berth.distribution.metadata import LayerSource, LayerSources
from berth.distribution.progress import Emit, Progress, PushedManifest, Reporter, short_id
from berth.distribution.registry import Repository
from berth.errors import NotFound
from berth.images import reference
from berth.images.model import Image
from berth.images.store import ImageStore

_READ = 4 << 20  # the layer tar is read and compressed by this much at a time
GZIP_LEVEL = 1  # isal's levels are 0-3; 1 compresses about as well as gzip -6, many times faster


async def gzip_chunks(path: str, progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The file at `path` gzipped, compressed in a thread as it is read; `progress`
    gets the plain bytes read so far."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        comp = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
        done = 0

        def step() -> tuple[bytes, int]:
            data = f.read(_READ)
            if not data:
                return comp.flush(), 0
            return comp.compress(data), len(data)

        while True:
            out, read = await asyncio.to_thread(step)
            if out:
                yield out
            if not read:
                return
            done += read
            progress(done)
    finally:
        await asyncio.to_thread(f.close)


class Pusher:
    def __init__(self, images: ImageStore, sources: LayerSources, max_uploads: int = 5) -> None:
        self.images = images
        self.content = images.layers.content
        self.sources = sources
        self.uploads = asyncio.Semaphore(max(1, max_uploads))

    async def push(self, repo: Repository, ref: reference.Reference, img: Image, emit: Emit) -> PushedManifest:
        """Push `img` as `ref` (a tag of `repo`); returns what the registry stored."""
        diff_ids = img.config.diff_ids
        for diff_id in reversed(diff_ids):
            emit(Progress("Preparing", short_id(diff_id)))
        uploads = [asyncio.create_task(self._push_layer(repo, ref, diff_id, emit)) for diff_id in diff_ids]
        try:
            layers = list(await asyncio.gather(*uploads))
        except BaseException:
            for task in uploads:
                task.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)
            raise
        config = self.images.config_bytes(img.id)
        config_desc = Descriptor(DOCKER_CONFIG, of_bytes(config), len(config))
        if await repo.blob_size(config_desc.digest) is None:
            await repo.upload_bytes(config, DOCKER_CONFIG)
        raw = build_manifest(config_desc, layers, DOCKER_MANIFEST)
        digest = await repo.put_manifest(ref.tag, DOCKER_MANIFEST, raw)
        self.images.add_digest(img.id, ref.name, digest)
        emit(Progress(f"{ref.tag}: digest: {digest} size: {len(raw)}"))
        return PushedManifest(ref.tag, digest, len(raw))

    async def _push_layer(self, repo: Repository, ref: reference.Reference, diff_id: str,
                          emit: Emit) -> Descriptor:
        layer_id = short_id(diff_id)
        if self.uploads.locked():
            emit(Progress("Waiting", layer_id))
        async with self.uploads:
            known = self.sources.of_layer(diff_id, ref.domain)
            known.sort(key=lambda s: s.repository != ref.name)  # this repository's first
            for source in known:
                desc = Descriptor(source.media_type, source.digest, source.size)
                if await repo.blob_size(source.digest) is not None:
                    emit(Progress("Layer already exists", layer_id))
                    self._remember(diff_id, desc, ref)
                    return desc
                if source.repository != ref.name and await repo.mount_blob(source.digest, source.path):
                    emit(Progress(f"Mounted from {source.path}", layer_id))
                    self._remember(diff_id, desc, ref)
                    return desc
            if not self.content.has(diff_id):
                raise NotFound(f"cannot push layer {diff_id}: its tar was not kept (the image was "
                               "stored by an older berth); rebuild or re-pull the image")
            total = self.content.size(diff_id)
            reporter = Reporter(emit, layer_id, "Pushing", total)
            reporter.update(0)
            uploaded = await repo.upload(gzip_chunks(self.content.path(diff_id), reporter.update))
            desc = Descriptor(DOCKER_LAYER, uploaded.digest, uploaded.size)
            emit(Progress("Pushed", layer_id))
            self._remember(diff_id, desc, ref)
            return desc

    def _remember(self, diff_id: str, desc: Descriptor, ref: reference.Reference) -> None:
        self.sources.add(LayerSource(diff_id, desc.digest, desc.size, desc.media_type, ref.name))

