"""The layer store and leases: a layer's tar is held while the layer is made, kept
once a layer names it, and collected when the layer fails or goes."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.errors import InvalidParameter
from berth.layers.store import LayerStore
from berth.metadata import open_db


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    yield data


def store(tmp_path: Path) -> LayerStore:
    return LayerStore(str(tmp_path), open_db(str(tmp_path / "berth.db")), storage_driver="vfs")


def blobs(layers: LayerStore) -> list[str]:
    return sorted(os.listdir(layers.content.blobs))


def test_a_layer_keeps_its_tar_and_removing_it_collects_the_tar(tmp_path: Path) -> None:
    layers = store(tmp_path)
    layer = asyncio.run(layers.apply(chunks_of(tar_of({"hello": b"hi\n"})), None))
    assert layers.content.has(layer.diff_id)
    assert layers.content.leases.all() == []  # its own lease ended with the apply
    layers.content.reconcile()  # a start-up keeps it: the layer references it
    assert layers.content.has(layer.diff_id)
    layers.remove(layer.chain_id)
    assert blobs(layers) == []


def test_a_failed_layer_leaves_no_blob(tmp_path: Path) -> None:
    layers = store(tmp_path)
    cut = tar_of({"big": b"x" * 4000})[:2000]  # stored as a blob, then fails to extract
    with pytest.raises(InvalidParameter):
        asyncio.run(layers.apply(chunks_of(cut), None))
    assert blobs(layers) == [] and layers.content.leases.all() == []


def test_a_callers_lease_holds_a_failed_layers_tar_until_it_ends(tmp_path: Path) -> None:
    layers = store(tmp_path)
    good = tar_of({"a": b"a\n"})
    with layers.content.lease({"berth.operation": "load"}) as lease:
        layer = asyncio.run(layers.apply(chunks_of(good), None, lease=lease))
        layers.remove(layer.chain_id)  # the load failed later and took its layers back
        assert layers.content.has(layer.diff_id)  # still the load's
    assert blobs(layers) == []
