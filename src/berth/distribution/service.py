"""The distribution service the API calls: pull, push, login and a registry's view of
an image (`GET /distribution/{name}/json`), over the registry client, the pull and
push engines, and the image store. It reports image events ("pull", "push") as
Docker does: named by the reference, not the image ID.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from berth.distribution.manifest import Descriptor, ImageIndex, Platform
from berth.distribution.metadata import LayerSources
from berth.distribution.progress import Emit, Progress, PushedManifest
from berth.distribution.pull import MAX_CONFIG, Puller
from berth.distribution.push import Pusher
from berth.distribution.registry import Credentials, Registry, RegistryError
from berth.errors import InvalidParameter, NotFound, Unauthorized
from berth.images import reference
from berth.images.store import ImageStore


@dataclass(frozen=True)
class DistributionInfo:
    """What a registry holds under a name: the manifest or index, and its platforms."""

    descriptor: Descriptor
    platforms: list[Platform]


class DistributionService:
    def __init__(self, images: ImageStore, registry: Registry, sources: LayerSources,
                 max_downloads: int = 3, max_uploads: int = 5, signature_policy: str = "") -> None:
        self.images = images
        self.registry = registry
        self.puller = Puller(images, sources, max_downloads, signature_policy)
        self.pusher = Pusher(images, sources, max_uploads)

    async def close(self) -> None:
        await self.registry.close()

    async def pull(self, name: str, tag: str, platform: str, creds: Credentials, emit: Emit) -> None:
        """`POST /images/create?fromImage=name&tag=tag`: with neither a tag nor a digest,
        every tag of the repository (`docker pull --all-tags`)."""
        with _not_a_401():
            await self._pull(name, tag, platform, creds, emit)

    async def _pull(self, name: str, tag: str, platform: str, creds: Credentials, emit: Emit) -> None:
        ref = _pull_reference(name, tag)
        wanted = Platform.parse(platform) if platform else None
        repo = self.registry.repository(ref, creds)
        if ref.tag or ref.digest:
            result = await self.puller.pull(repo, ref, wanted, emit)
            self._event("pull", ref)
            verb = "Downloaded newer image" if result.updated else "Image is up to date"
            emit(Progress(f"Status: {verb} for {ref.familiar()}"))
            return
        tags = await repo.tags()
        if not tags:
            raise NotFound(f"repository {ref.familiar_name} has no tags")
        updated = False
        for tag_name in tags:
            tagged = reference.Reference(ref.domain, ref.path, tag_name)
            result = await self.puller.pull(repo, tagged, wanted, emit)
            self._event("pull", tagged)
            updated = updated or result.updated
        verb = "Downloaded newer image" if updated else "Image is up to date"
        emit(Progress(f"Status: {verb} for {ref.familiar_name}"))

    async def push(self, name: str, tag: str, creds: Credentials, emit: Emit) -> list[PushedManifest]:
        """`POST /images/{name}/push?tag=tag`: without a tag, every local tag of the repository."""
        with _not_a_401():
            return await self._push(name, tag, creds, emit)

    async def _push(self, name: str, tag: str, creds: Credentials, emit: Emit) -> list[PushedManifest]:
        ref = reference.parse(name, default_tag=False)
        if ref.digest:
            raise InvalidParameter(f"cannot push a digest reference: {name}")
        tags = [tag or ref.tag] if (tag or ref.tag) else self._local_tags(ref)
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        images = []
        for tag_name in tags:
            tagged = reference.Reference(ref.domain, ref.path, tag_name)
            img = self.images.lookup(str(tagged))
            if img is None:
                raise NotFound(f"An image does not exist locally with the tag: {tagged.familiar()}")
            images.append((tagged, img))
        emit(Progress(f"The push refers to repository [{ref.name}]"))
        repo = self.registry.repository(ref, creds, push=True)
        pushed = []
        for tagged, img in images:
            result = await self.pusher.push(repo, tagged, img, emit)
            emit(result)
            self._event("push", tagged)
            pushed.append(result)
        return pushed

    async def login(self, server: str, creds: Credentials) -> str:
        """`POST /auth`: the credentials checked against the registry; an identity token
        when the registry gives one."""
        return await self.registry.login(server, creds)

    async def inspect(self, name: str, creds: Credentials) -> DistributionInfo:
        ref = reference.parse(name)
        repo = self.registry.repository(ref, creds)
        found = await repo.manifest(ref.digest or ref.tag)
        descriptor = Descriptor(found.media_type, found.digest, len(found.raw))
        if isinstance(found, ImageIndex):
            return DistributionInfo(descriptor, [d.platform for d in found.manifests if d.platform is not None])
        config = json.loads(await repo.blob_bytes(found.config, MAX_CONFIG))
        platform = Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                            str(config.get("variant") or ""))
        return DistributionInfo(descriptor, [platform])

    def _local_tags(self, ref: reference.Reference) -> list[str]:
        rows = self.images.db.execute("SELECT name FROM tags WHERE substr(name, 1, ?)=?",
                                      (len(ref.name) + 1, ref.name + ":"))
        return sorted(r[0][len(ref.name) + 1:] for r in rows if "@" not in r[0])

    def _event(self, action: str, ref: reference.Reference) -> None:
        # as dockerd: the actor is the reference, its "name" the repository
        self.images.on_event(action, ref.familiar(), {"name": ref.familiar_name})


@contextlib.contextmanager
def _not_a_401() -> Iterator[None]:
    """A registry's refusal of a pull or push reaches the client as a 500, as dockerd
    answers it: a 401 from the daemon makes the docker CLI stop and ask for a login at
    the terminal ("Login prior to pull"). Only `docker login` gets the 401."""
    try:
        yield
    except Unauthorized as e:
        raise RegistryError(str(e)) from None


def _pull_reference(name: str, tag: str) -> reference.Reference:
    """fromImage and tag as the API gives them: the tag may be a digest, and fromImage
    may carry its own tag or digest."""
    joined = name
    if tag and "@" not in name:
        joined = f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"
    ref = reference.parse(joined, default_tag=False)
    if ref.digest and ref.tag:
        ref = reference.Reference(ref.domain, ref.path, "", ref.digest)
    return ref


def credentials_for(auths: Mapping[str, Credentials], domain: str) -> Credentials:
    """The credentials for registry `domain` among a client's (X-Registry-Config, keyed
    by server address as the docker CLI writes them: "localhost:5000",
    "https://index.docker.io/v1/")."""
    for server, creds in auths.items():
        host = server.split("://", 1)[-1].split("/", 1)[0]
        if host == domain or (domain == "docker.io" and host in ("index.docker.io", "registry-1.docker.io",
                                                                 "docker.io")):
            return creds
    return Credentials()
