"""`docker pull`: a reference becomes a manifest, a config and layers in the stores.

The manifest (an index is narrowed to one platform: the host's, or the one asked
for) and the config come first, whole and verified. Then every layer the layer store
lacks is fetched, at most `max_downloads` at once, each streamed straight into the
content store: hashed as it arrives (the registry's digest, by the registry client),
decompressed and hashed again (the diff ID the config names), so a layer is written
once and checked twice before anything is extracted. Layers are extracted in order, as
each has its parent; the image is recorded last, in one transaction.

With a signature policy, the resolved manifest's signatures are checked before
anything is fetched (`signatures.check`): a refused image leaves nothing.

Everything the pull writes is held by one content lease. A failure at any point
(a bad digest, a lost registry, a cancelled request) releases the lease and removes
the layers it made, so no image and no dangling layer is left; a berthd killed half
way leaves a lease that the next start-up drops, and the layers no image uses are
removed then too (ImageStore.collect_unused_layers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from berth.content import digest
from berth.content.digest import is_digest
from berth.content.leases import Lease
from berth.content.store import Blob
from berth.distribution.manifest import Descriptor, ImageIndex, ImageManifest, Platform, select
from berth.distribution.metadata import LayerSource, LayerSources
from berth.distribution.progress import Emit, Progress, Reporter, short_id
from berth.distribution.registry import Repository, VerificationError
from berth.distribution.signatures import check as check_signatures
from berth.errors import InvalidParameter, NotFound
from berth.images import reference
from berth.images.store import ImageStore
from berth.layers.store import chain_id_of

MAX_CONFIG = 8 << 20  # an image config larger than this is refused


@dataclass(frozen=True)
class PullResult:
    image_id: str
    manifest_digest: str
    updated: bool  # the name now points at a different image than before


@dataclass(frozen=True)
class _Plan:
    manifest: ImageManifest
    manifest_digest: str  # what the name resolved to (the index's digest for an index)
    config: bytes
    diff_ids: list[str]


class Puller:
    def __init__(self, images: ImageStore, sources: LayerSources, max_downloads: int = 3,
                 signature_policy: str = "") -> None:
        self.images = images
        self.signature_policy = signature_policy  # policy.json's path; "": no check
        self.layers = images.layers
        self.content = images.layers.content
        self.sources = sources
        self.downloads = asyncio.Semaphore(max(1, max_downloads))

    async def pull(self, repo: Repository, ref: reference.Reference, platform: Platform | None,
                   emit: Emit) -> PullResult:
        """Pull `ref` (a tag or a digest) from `repo`; progress goes to `emit`."""
        plan = await self._resolve(repo, ref, platform)
        if self.signature_policy:
            await check_signatures(self.signature_policy, repo, ref, plan.manifest_digest)
        emit(Progress(f"Pulling from {ref.path}", ref.digest or ref.tag))
        have = self.images.lookup(digest.of_bytes(plan.config))
        size = have.size if have is not None else await self._fetch_layers(repo, ref, plan, emit)
        name = str(ref) if ref.tag and not ref.digest else None
        before = self.images.lookup(str(ref))
        image_id = self.images.commit_pulled(plan.config, size, [name] if name else [],
                                             plan.manifest_digest, ref.name)
        emit(Progress(f"Digest: {plan.manifest_digest}"))
        return PullResult(image_id, plan.manifest_digest, before is None or before.id != image_id)

    async def _resolve(self, repo: Repository, ref: reference.Reference,
                       platform: Platform | None) -> _Plan:
        found = await repo.manifest(ref.digest or ref.tag)
        top_digest = found.digest
        wanted = platform or Platform.host()
        if isinstance(found, ImageIndex):
            chosen = select(found, wanted)
            found = await repo.manifest(chosen.digest)
            if isinstance(found, ImageIndex):
                raise InvalidParameter(f"{ref.familiar()}: an index may not name another index "
                                       f"({chosen.digest}) as a platform's image")
        config = await repo.blob_bytes(found.config, MAX_CONFIG)
        try:
            doc = json.loads(config)
            diff_ids = list(doc["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidParameter(f"{ref.familiar()}: the image config {found.config.digest} "
                                   "is not a valid image configuration") from None
        if not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
            raise InvalidParameter(f"{ref.familiar()}: the image config {found.config.digest} "
                                   "names a layer by an invalid digest")
        if len(diff_ids) != len(found.layers):
            raise InvalidParameter(f"{ref.familiar()}: layers from manifest don't match image configuration")
        if platform is not None:
            actual = Platform(str(doc.get("os") or ""), str(doc.get("architecture") or ""),
                              str(doc.get("variant") or ""))
            if not platform.matches(actual):
                raise NotFound(f"image with reference {ref.familiar()} was found but does not match "
                               f"the specified platform: wanted {platform}, actual: {actual}")
        return _Plan(found, top_digest, config, diff_ids)

    async def _fetch_layers(self, repo: Repository, ref: reference.Reference, plan: _Plan,
                            emit: Emit) -> int:
        """Every layer of the plan in the layer store; returns the image's size.

        Each missing layer is downloaded and then extracted by its own task: a layer's
        directory does not need its parent's, so extractions overlap the downloads and
        each other. Once all are in place, one sync makes them durable and they are
        recorded bottom first, as `apply_blob` would have."""
        extracted: list[str] = []  # chain IDs whose directories this pull made
        tasks: list[asyncio.Task[tuple[str, int]] | None] = []
        with self.content.lease({"berth.operation": "pull", "berth.reference": str(ref)}) as lease:
            try:
                chain: str | None = None
                for desc, diff_id in zip(plan.manifest.layers, plan.diff_ids, strict=True):
                    chain = chain_id_of(chain, diff_id)
                    if self.layers.get(chain) is not None:
                        emit(Progress("Already exists", short_id(desc.digest)))
                        tasks.append(None)
                        continue
                    emit(Progress("Pulling fs layer", short_id(desc.digest)))
                    tasks.append(asyncio.create_task(
                        self._layer(repo, ref, desc, diff_id, chain, lease, emit, extracted)))
                done = [await task if task is not None else None for task in tasks]
                if any(d is not None for d in done):
                    await self.layers.sync()
                size = 0
                parent: str | None = None
                for desc, diff_id, made in zip(plan.manifest.layers, plan.diff_ids, done, strict=True):
                    chain_id = chain_id_of(parent, diff_id)
                    layer = self.layers.get(chain_id)
                    if layer is None:
                        assert made is not None
                        layer = self.layers.record(chain_id, diff_id, parent, made[1])
                    if made is not None:
                        emit(Progress("Pull complete", short_id(desc.digest)))
                    parent = layer.chain_id
                    size += layer.size
                return size
            except BaseException:
                for task in tasks:
                    if task is not None:
                        task.cancel()
                await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
                self.images.collect_layers(extracted)
                raise

    async def _layer(self, repo: Repository, ref: reference.Reference, desc: Descriptor, diff_id: str,
                     chain_id: str, lease: Lease, emit: Emit, extracted: list[str]) -> tuple[str, int]:
        """Download one layer and extract it as `chain_id`'s directory (not yet recorded)."""
        blob = await self._download(repo, ref, desc, diff_id, lease, emit)
        layer_id = short_id(desc.digest)
        emit(Progress("Extracting", layer_id, 0, desc.size))
        size, made = await self.layers.extract_blob(blob, chain_id)
        if made:  # else another pull made it: not ours to remove if this one fails
            extracted.append(chain_id)
        emit(Progress("Extracting", layer_id, desc.size, desc.size))
        return chain_id, size

    async def _download(self, repo: Repository, ref: reference.Reference, desc: Descriptor, diff_id: str,
                        lease: Lease, emit: Emit) -> Blob:
        layer_id = short_id(desc.digest)
        if self.content.has(diff_id):  # the same tar under another parent: no download
            self.content.hold(lease, diff_id)
            if self.content.has(diff_id):
                emit(Progress("Download complete", layer_id))
                return Blob(diff_id, self.content.size(diff_id))
        if self.downloads.locked():
            emit(Progress("Waiting", layer_id))
        async with self.downloads:
            reporter = Reporter(emit, layer_id, "Downloading", desc.size)
            reporter.update(0)
            try:
                async with contextlib.aclosing(repo.blob_chunks(desc, reporter.update)) as chunks:
                    blob = await self.content.write_stream(chunks, expected=diff_id, decompress=True,
                                                           lease=lease)
            except VerificationError:
                raise
            except InvalidParameter as e:
                raise InvalidParameter(f"failed to register layer {desc.digest} of {ref.familiar()}: {e}") from None
            emit(Progress("Verifying Checksum", layer_id))
            emit(Progress("Download complete", layer_id))
        self.sources.add(LayerSource(diff_id, desc.digest, desc.size, desc.media_type, ref.name))
        return blob
