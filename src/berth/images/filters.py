"""Which images: `docker images`' filters and `docker image prune`'s choice.

The API parses the `filters` parameter into an `ImageFilters`; this module resolves
the image names in it and applies it to the store's records. It reads the store and
never writes it (the prune itself is `ImageStore.prune`); it knows no JSON.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from berth import clock
from berth.images import reference
from berth.images.model import Image
from berth.images.store import ImageStore


@dataclass(frozen=True)
class ImageFilters:
    """`docker images --filter …` (and prune's), checked."""

    dangling: bool | None = None  # only untagged (True) or only tagged (False) images
    label: tuple[str, ...] = ()  # every one must hold: "key", "key=value", "key!=value"
    reference: tuple[str, ...] = ()  # shell patterns on "repo:tag" or "repo"
    before: tuple[str, ...] = ()  # image names: only images created before them
    since: tuple[str, ...] = ()  # image names: only images created after them
    until: tuple[float, ...] = ()  # unix seconds: only images created before them


def created_epoch(img: Image) -> int:
    """The image's creation time in unix seconds; 0 when it has none that parses."""
    try:
        return clock.parse_time(img.config.created) // 1_000_000_000
    except ValueError:
        return 0


def _label_matches(img: Image, pattern: str) -> bool:
    labels = img.config.config.labels
    key, eq, value = pattern.partition("=")
    if key.endswith("!"):
        return not (key[:-1] in labels and labels[key[:-1]] == value)
    return key in labels and (not eq or labels[key] == value)


def _ref_matches(ref: str, pattern: str) -> bool:
    """`reference=` against a tag (`name:tag`) or a digest reference (`name@sha256:…`)."""
    name = ref.split("@", 1)[0]
    repo = reference.split_repo_tag(name)[0]
    return fnmatch.fnmatch(ref, pattern) or fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(repo, pattern)


def matcher(store: ImageStore, filters: ImageFilters) -> Callable[[Image], bool]:
    """A test for the `label`, `reference`, `before`, `since` and `until` filters (the
    names in `before` and `since` resolved once, NotFound for an unknown one)."""
    before = [created_epoch(store.resolve(name)) for name in filters.before]
    since = [created_epoch(store.resolve(name)) for name in filters.since]

    def matches(img: Image) -> bool:
        created = created_epoch(img)
        if filters.reference and not any(_ref_matches(t, r) for t in img.repo_tags + img.repo_digests
                                         for r in filters.reference):
            return False
        if not all(_label_matches(img, pattern) for pattern in filters.label):
            return False
        if any(created >= b for b in before) or any(created <= s for s in since):
            return False
        return not any(created >= u for u in filters.until)

    return matches


def list_images(store: ImageStore, filters: ImageFilters, show_all: bool = False) -> list[Image]:
    """`docker images`: the top-level images (every one with `show_all`) that pass."""
    matches = matcher(store, filters)
    out = []
    for img in store.all():
        intermediate = store.is_intermediate(img)
        if intermediate and not show_all:
            continue
        if filters.dangling is not None and filters.dangling != (not img.repo_tags and not img.repo_digests and not intermediate):
            continue
        if matches(img):
            out.append(img)
    return out


def prune(store: ImageStore, filters: ImageFilters, used: set[str]) -> tuple[list[dict[str, str]], int]:
    """`docker image prune`: dangling images by default, every unused one with
    dangling=false; never one in `used` (image IDs containers stand on). Returns what
    went (ImageStore.prune's records) and the bytes freed."""
    matches = matcher(store, filters)
    candidates = [img for img in store.all() if matches(img)]
    return store.prune(candidates, used, dangling_only=filters.dangling is not False)
