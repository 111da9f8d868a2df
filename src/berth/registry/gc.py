"""Garbage collection of the registry's store: mark every blob some manifest reaches,
sweep the rest, as distribution's `registry garbage-collect` does.

The mark reads only; the sweep unlinks one blob file at a time (each unlink atomic),
and untagged manifests lose their repository link before anything they reach is
swept, so a crash mid-way leaves a store that still serves everything marked. Run it
while the registry is stopped or read-only: a blob pushed during the sweep and not yet
named by a manifest is fair game, as in distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from berth.registry.protocol import RegistryError, parse_manifest
from berth.registry.storage import Storage

TEMPORARY_AGE = 3600.0  # a temporary file this old belongs to no running write


@dataclass
class Collection:
    marked: set[str] = field(default_factory=set)
    untagged: list[tuple[str, str]] = field(default_factory=list)  # (repo, manifest digest)
    swept: list[str] = field(default_factory=list)


def _reach(storage: Storage, digest: str, marked: set[str]) -> None:
    """Mark a manifest and everything it references (indexes followed down)."""
    stack = [digest]
    while stack:
        current = stack.pop()
        if current in marked or storage.blob_size(current) is None:
            continue
        marked.add(current)
        try:
            manifest = parse_manifest(storage.read_blob(current), None)
        except (RegistryError, OSError):
            continue
        marked.update(blob.digest for blob in manifest.blobs)
        stack.extend(child.digest for child in manifest.children)


def mark(storage: Storage, delete_untagged: bool) -> Collection:
    result = Collection()
    for repo in storage.catalog():
        revisions = storage.revisions(repo)
        if not delete_untagged:
            roots = set(revisions)
        else:
            roots = {d for t in storage.tags(repo) if (d := storage.tag_target(repo, t))}
            # what a kept index names is kept too, and so are referrers of kept manifests
            kept: set[str] = set()
            for root in roots:
                _reach(storage, root, kept)
            changed = True
            while changed:
                changed = False
                for digest in revisions:
                    if digest in kept:
                        continue
                    subject = _subject_of(storage, digest)
                    if subject is not None and subject in kept:
                        _reach(storage, digest, kept)
                        changed = True
            roots = {d for d in revisions if d in kept}
            result.untagged += [(repo, d) for d in revisions if d not in kept]
        for root in roots:
            _reach(storage, root, result.marked)
    return result


def _subject_of(storage: Storage, digest: str) -> str | None:
    try:
        manifest = parse_manifest(storage.read_blob(digest), None)
    except (RegistryError, OSError):
        return None
    return manifest.subject.digest if manifest.subject else None


def collect(storage: Storage, dry_run: bool, delete_untagged: bool,
            say: Callable[[str], None]) -> Collection:
    result = mark(storage, delete_untagged)
    for repo in storage.catalog():
        say(f"{repo}")
    for repo, digest in result.untagged:
        say(f"manifest eligible for deletion: {repo}@{digest}")
        if not dry_run:
            storage.delete_manifest(repo, digest)
    for digest in storage.all_blobs():
        if digest not in result.marked:
            say(f"blob eligible for deletion: {digest}")
            result.swept.append(digest)
            if not dry_run:
                storage.delete_blob(digest)
    if not dry_run:
        for path in storage.remove_temporaries(TEMPORARY_AGE):
            say(f"removed a leftover temporary file: {path}")
        swept = set(result.swept)
        for repo in storage.catalog():
            for digest in storage.layer_links(repo):
                if digest in swept:
                    storage.unlink_blob(repo, digest)
    say(f"{len(result.marked)} blobs marked, {len(result.swept)} blobs "
        f"{'eligible for deletion' if dry_run else 'deleted'}")
    return result
