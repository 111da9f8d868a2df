"""berth.distribution.registry, the registry protocol client, against real peers on
loopback: Debian's docker-registry (distribution 2.8; plain, with htpasswd Basic auth,
with TLS from a certs.d directory, behind a small Bearer token server), and small
aiohttp servers of this file's own for what a well-behaved registry never does (a
connection dropped mid-blob, Range ignored, a digest that does not match)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp import web

from berth.distribution import manifest as mf
from berth.distribution.manifest import Descriptor, ImageIndex, ImageManifest, Platform
from berth.distribution.registry import (
    Credentials,
    Registry,
    RegistryConfig,
    VerificationError,
)
from berth.errors import NotFound, Unauthorized, Unavailable
from berth.images.reference import parse

REGISTRY = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(not os.path.exists(REGISTRY), reason="docker-registry is not installed")

FAST = RegistryConfig(retries=5, retry_delay=0.01, certs_dirs=())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


@dataclass
class Served:
    host: str  # "127.0.0.1:PORT"
    root: Path


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="berth-regcli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_registry(workdir: Path, *, htpasswd: str = "", tls: tuple[str, str] | None = None,
                   token: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Served]:
    """docker-registry serving on a free loopback port, until its process is ended."""
    port = free_port()
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "berth-test"}
    if tls:
        http["tls"] = {"certificate": tls[0], "key": tls[1]}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": http,
    }
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "berth-test", "path": htpasswd}}
    if token:
        config["auth"] = {"token": token}
    path = workdir / f"config-{port}.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    log = open(workdir / f"registry-{port}.log", "wb")
    proc = subprocess.Popen([REGISTRY, "serve", str(path)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, Served(f"127.0.0.1:{port}", root)
        if proc.poll() is not None:
            raise RuntimeError((workdir / f"registry-{port}.log").read_text())
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def registry(workdir: Path) -> Iterator[Served]:
    proc, served = start_registry(workdir)
    yield served
    stop(proc)


async def chunks_of(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        await asyncio.sleep(0)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_image(client: Registry, name: str, layers: list[bytes], creds: Credentials = Credentials(),
                     tag: str = "latest", chunk_size: int | None = None,
                     arch: str = "amd64") -> tuple[bytes, str]:
    """Push an image of `layers` (any bytes: the registry does not look inside); its
    manifest's bytes and digest."""
    repo = client.repository(parse(name), creds, push=True)
    descs = []
    for layer in layers:
        desc = await repo.upload(chunks_of(layer), chunk_size=chunk_size, media_type=mf.DOCKER_LAYER)
        assert desc.digest == digest_of(layer) and desc.size == len(layer)
        descs.append(desc)
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d.digest for d in descs]}}).encode()
    cdesc = await repo.upload(chunks_of(config), media_type=mf.DOCKER_CONFIG)
    raw = mf.build_manifest(cdesc, descs)
    digest = await repo.put_manifest(tag, mf.DOCKER_MANIFEST, raw)
    assert digest == digest_of(raw)
    return raw, digest


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 1 << 20])
def test_push_then_pull_round_trip(registry: Served, chunk_size: int | None) -> None:
    layers = [os.urandom(3 << 20) + b"x", b"small layer", os.urandom(100)]

    async def scenario() -> None:
        client = Registry(FAST)
        try:
            raw, digest = await push_image(client, f"{registry.host}/round/trip", layers, chunk_size=chunk_size)
            repo = client.repository(parse(f"{registry.host}/round/trip"), Credentials())
            got = await repo.manifest("latest")
            assert isinstance(got, ImageManifest)
            assert (got.digest, got.raw, got.media_type) == (digest, raw, mf.DOCKER_MANIFEST)
            assert [d.digest for d in got.layers] == [digest_of(layer) for layer in layers]
            by_digest = await repo.manifest(digest)
            assert by_digest.raw == raw
            resolved = await repo.resolve("latest")
            assert resolved == Descriptor(mf.DOCKER_MANIFEST, digest, len(raw))
            assert await repo.resolve("nope") is None
            seen: list[int] = []
            for desc, layer in zip(got.layers, layers, strict=True):
                data = b"".join([c async for c in repo.blob_chunks(desc, seen.append)])
                assert data == layer
                assert seen[-1] == len(layer)
                assert await repo.blob_size(desc.digest) == len(layer)
            config = await repo.blob_bytes(got.config)
            assert json.loads(config)["os"] == "linux"
            assert await repo.blob_size(digest_of(b"absent")) is None
        finally:
            await client.close()

    run(scenario())


def test_missing_manifest_and_blob_are_not_found(registry: Served) -> None:
    async def scenario() -> None:
        client = Registry(FAST)
        try:
            await push_image(client, f"{registry.host}/here", [b"layer"])
            repo = client.repository(parse(f"{registry.host}/here"), Credentials())
            with pytest.raises(NotFound) as e:
                await repo.manifest("other")
            assert str(e.value) == (f"manifest for {registry.host}/here:other not found: "
                                    "manifest unknown: manifest unknown")
            missing = Descriptor(mf.DOCKER_LAYER, digest_of(b"absent"), 6)
            with pytest.raises(NotFound) as e:
                b"".join([c async for c in repo.blob_chunks(missing)])
            assert missing.digest in str(e.value)
            absent = client.repository(parse(f"{registry.host}/absent"), Credentials())
            with pytest.raises(NotFound) as e:
                await absent.manifest("latest")
            assert "absent" in str(e.value)
        finally:
            await client.close()

    run(scenario())


def test_mount_between_repositories_and_tags_pagination(registry: Served) -> None:
    async def scenario() -> None:
        client = Registry(FAST)
        try:
            await push_image(client, f"{registry.host}/src/repo", [b"shared layer"])
            dest = client.repository(parse(f"{registry.host}/dest/repo"), Credentials(), push=True)
            assert await dest.mount_blob(digest_of(b"shared layer"), "src/repo")
            assert await dest.blob_size(digest_of(b"shared layer")) == len(b"shared layer")
            assert not await dest.mount_blob(digest_of(b"nowhere"), "src/repo")
            names = [f"t{i:03d}" for i in range(0, 7)]
            raw, _ = await push_image(client, f"{registry.host}/tagged", [b"a"])
            repo = client.repository(parse(f"{registry.host}/tagged"), Credentials(), push=True)
            for name in names:
                await repo.put_manifest(name, mf.DOCKER_MANIFEST, raw)
            assert sorted(await repo.tags()) == sorted(names + ["latest"])
            assert sorted(await repo.tags(page_size=3)) == sorted(names + ["latest"])  # 3 pages
        finally:
            await client.close()

    run(scenario())


def test_index_with_two_platforms_and_select(registry: Served) -> None:
    async def scenario() -> None:
        client = Registry(FAST)
        try:
            name = f"{registry.host}/multi"
            amd_raw, amd = await push_image(client, name, [b"amd64 layer"], tag="amd64")
            arm_raw, arm = await push_image(client, name, [b"arm64 layer"], tag="arm64", arch="arm64")
            index = mf.build_index([
                Descriptor(mf.DOCKER_MANIFEST, amd, len(amd_raw), Platform("linux", "amd64")),
                Descriptor(mf.DOCKER_MANIFEST, arm, len(arm_raw), Platform("linux", "arm64", "v8")),
            ])
            repo = client.repository(parse(name), Credentials(), push=True)
            await repo.put_manifest("latest", mf.OCI_INDEX, index)
            got = await repo.manifest("latest")
            assert isinstance(got, ImageIndex) and got.media_type == mf.OCI_INDEX
            assert mf.select(got, Platform.parse("linux/amd64")).digest == amd
            assert mf.select(got, Platform.parse("linux/arm64")).digest == arm
            with pytest.raises(NotFound, match="no matching manifest for linux/s390x in the manifest list"):
                mf.select(got, Platform.parse("linux/s390x"))
            picked = await repo.manifest(mf.select(got, Platform.parse("arm64")).digest)
            assert isinstance(picked, ImageManifest) and picked.raw == arm_raw
        finally:
            await client.close()

    run(scenario())


# -- refusals ----------------------------------------------------------------------------


def test_connection_refused_is_one_line_naming_the_url() -> None:
    port = free_port()

    async def scenario() -> None:
        client = Registry(FAST)
        try:
            repo = client.repository(parse(f"127.0.0.1:{port}/nothing"), Credentials())
            with pytest.raises(Unavailable) as e:
                await repo.manifest("latest")
            text = str(e.value)
            assert "\n" not in text
            assert text.startswith(f'Get "http://127.0.0.1:{port}/v2/nothing/manifests/latest"')
            assert text.endswith(f"dial tcp 127.0.0.1:{port}: connect: connection refused")
        finally:
            await client.close()

    run(scenario())
