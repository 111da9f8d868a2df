"""`docker images`' filters and image prune's choice, over a store's records:
dangling, labels (with `!=`), reference patterns, before/since/until by creation time."""

from __future__ import annotations

from typing import Any

import pytest

from berth.errors import NotFound
from berth.images.filters import ImageFilters, created_epoch, list_images, prune
from berth.images.model import Image, ImageConfig, RunConfig


def _image(n: int, tags: list[str], labels: dict[str, str] | None = None) -> Image:
    config = ImageConfig(f"2026-01-0{n}T00:00:00Z", "amd64", "linux", RunConfig(labels=labels or {}), [])
    return Image(f"sha256:{n:064d}", config, 100 * n, repo_tags=tags)


class _Store:
    """What the filters ask of the image store."""

    def __init__(self, images: list[Image], intermediate: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.images = images
        self.intermediate = intermediate
        self.pruned: Any = None

    def all(self) -> list[Image]:
        return list(self.images)

    def resolve(self, name: str) -> Image:
        for img in self.images:
            if name == img.id or name in img.repo_tags:
                return img
        raise NotFound(f"No such image: {name}")

    def is_intermediate(self, img: Image) -> bool:
        return img.id in self.intermediate

    def prune(self, candidates: list[Image], used: set[str], dangling_only: bool) -> tuple[list[dict[str, str]], int]:
        self.pruned = ([img.id for img in candidates], used, dangling_only)
        return [], 0


@pytest.fixture
def store() -> _Store:
    return _Store([_image(1, ["busybox:latest"], {"os": "tiny"}), _image(2, []), _image(3, ["app:v1"]),
                   _image(4, [])], intermediate={f"sha256:{4:064d}"})


def _tags(store: _Store, filters: ImageFilters, show_all: bool = False) -> list[int]:
    return [int(img.id[-1]) for img in list_images(store, filters, show_all)]  # type: ignore[arg-type]


def test_intermediate_images_only_with_all(store: _Store) -> None:
    assert _tags(store, ImageFilters()) == [1, 2, 3]
    assert _tags(store, ImageFilters(), show_all=True) == [1, 2, 3, 4]


def test_dangling(store: _Store) -> None:
    assert _tags(store, ImageFilters(dangling=True), show_all=True) == [2]
    assert _tags(store, ImageFilters(dangling=False)) == [1, 3]


def test_labels(store: _Store) -> None:
    assert _tags(store, ImageFilters(label=("os",))) == [1]
    assert _tags(store, ImageFilters(label=("os=tiny",))) == [1]
    assert _tags(store, ImageFilters(label=("os!=tiny",))) == [2, 3]


def test_reference_patterns(store: _Store) -> None:
    assert _tags(store, ImageFilters(reference=("busybox",))) == [1]
    assert _tags(store, ImageFilters(reference=("a*:v*",))) == [3]


def test_before_since_until(store: _Store) -> None:
    assert _tags(store, ImageFilters(before=("app:v1",))) == [1, 2]
    assert _tags(store, ImageFilters(since=("busybox:latest",))) == [2, 3]
    assert _tags(store, ImageFilters(until=(float(created_epoch(store.images[1])),))) == [1]
    with pytest.raises(NotFound):
        _tags(store, ImageFilters(before=("nope",)))


def test_prune_hands_the_store_its_candidates(store: _Store) -> None:
    prune(store, ImageFilters(label=("os",)), {"x"})  # type: ignore[arg-type]
    assert store.pruned == ([f"sha256:{1:064d}"], {"x"}, True)
    prune(store, ImageFilters(dangling=False), set())  # type: ignore[arg-type]
    assert store.pruned[2] is False  # every unused image, not only untagged ones
