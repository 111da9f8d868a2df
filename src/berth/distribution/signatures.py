"""The signature check of a pull: the policy's requirements for the reference and, when
they ask for signatures, the cosign signatures the repository holds for the manifest.

The check runs once the manifest is resolved and before any layer is fetched, so a
refused image leaves nothing behind. The policy file is read at each pull, as
containers/image reads policy.json per operation: an edited policy applies to the next
pull without a restart (berthd checks it once at start-up, to refuse a broken one early).
"""

from __future__ import annotations

import asyncio

from berth.distribution.manifest import ImageIndex
from berth.distribution.registry import Repository
from berth.errors import NotFound
from berth.images import reference
from berth.trust import policy, sigstore


async def check(policy_path: str, repo: Repository, ref: reference.Reference, manifest_digest: str) -> None:
    """Raise policy.Rejected unless the policy at `policy_path` (none: anything goes)
    accepts `ref`, resolved to the manifest (or index) `manifest_digest`."""
    rules = await asyncio.to_thread(policy.load, policy_path)
    if rules is None:
        return
    decision = rules.for_reference(ref)
    found = await signatures(repo, manifest_digest) if decision.needs_signatures else []
    rules.check(ref, manifest_digest, decision, found)


async def signatures(repo: Repository, manifest_digest: str) -> list[sigstore.Signature]:
    """The cosign signatures under `sha256-<hex>.sig`; none when there is no such tag."""
    try:
        attached = await repo.manifest(sigstore.signature_tag(manifest_digest))
    except NotFound:
        return []
    if isinstance(attached, ImageIndex):
        return []
    out = []
    for layer in attached.layers[:sigstore.MAX_SIGNATURES]:
        if layer.media_type != sigstore.PAYLOAD_MEDIA_TYPE:
            continue
        payload = await repo.blob_bytes(layer, sigstore.MAX_PAYLOAD)
        out.append(sigstore.Signature(payload, layer.annotations.get(sigstore.SIGNATURE_ANNOTATION, "")))
    return out
