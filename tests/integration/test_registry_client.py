"""berth.distribution.registry, the registry protocol client, against real peers on
loopback: Debian's docker-registry (distribution 2.8; plain, with htpasswd Basic auth,
with TLS from a certs.d directory, behind a small Bearer token server), and small
aiohttp servers of this file's own for what a well-behaved registry never does (a
connection dropped mid-blob, Range ignored, a digest that does not match)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import gzip
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
from berth.distribution.auth import Token, repository_scope
from berth.distribution.manifest import Descriptor, ImageIndex, ImageManifest, Platform
from berth.distribution.registry import (
    Credentials,
    Registry,
    RegistryConfig,
    VerificationError,
)
from berth.errors import InvalidParameter, NotFound, Unauthorized, Unavailable
from berth.images.reference import parse

REGISTRY = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(not os.path.exists(REGISTRY), reason="docker-registry is not installed")

FAST = RegistryConfig(retries=5, retry_delay=0.01, certs_dirs=())
ANONYMOUS = Credentials()


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
                   client_cas: str = "", token: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Served]:
    """docker-registry serving on a free loopback port, until its process is ended."""
    port = free_port()
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "berth-test"}
    if tls:
        http["tls"] = {"certificate": tls[0], "key": tls[1]}
        if client_cas:
            http["tls"]["clientcas"] = [client_cas]
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


async def push_image(client: Registry, name: str, layers: list[bytes], creds: Credentials = ANONYMOUS,
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
    cdesc = await repo.upload_bytes(config, media_type=mf.DOCKER_CONFIG)
    assert cdesc == Descriptor(mf.DOCKER_CONFIG, digest_of(config), len(config))
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


# -- a registry that misbehaves ------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port; its host:port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # stalled handlers are cut
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class FlakyBlobs:
    """Serves one blob at /v2/flaky/blobs/<digest>: the first `drops` GETs break off
    after `cut` bytes; Range is honoured unless `ignore_range`; `served` replaces the
    bytes sent (a digest mismatch, a truncation). Records every request's headers."""

    def __init__(self, data: bytes, *, drops: int = 0, cut: int = 0, ignore_range: bool = False,
                 served: bytes | None = None, redirect_to: str = "", password: str = "") -> None:
        self.data, self.drops, self.cut, self.ignore_range = data, drops, cut, ignore_range
        self.served = data if served is None else served
        self.redirect_to, self.password = redirect_to, password
        self.seen: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/v2/{name:.*}/blobs/{digest}", self.blob)
        self.app.router.add_get("/storage/{digest}", self.blob)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        if self.password and request.path.startswith("/v2/"):
            expected = "Basic " + base64.b64encode(f"joe:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                         status=401, headers={"WWW-Authenticate": 'Basic realm="flaky"'})
        if request.match_info["digest"] != digest_of(self.data):
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]},
                                     status=404)
        if self.redirect_to and request.path.startswith("/v2/"):
            raise web.HTTPTemporaryRedirect(f"http://{self.redirect_to}/storage/{request.match_info['digest']}")
        body = self.served
        start = 0
        rng = request.headers.get("Range", "")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(body) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        if self.drops > 0 and len(body) - start > self.cut:
            self.drops -= 1
            await resp.write(body[start:start + self.cut])
            assert request.transport is not None
            request.transport.abort()  # the connection breaks mid-body
            return resp
        for i in range(start, len(body), 1 << 16):
            await resp.write(body[i:i + (1 << 16)])
        await resp.write_eof()
        return resp


def blob_desc(data: bytes) -> Descriptor:
    return Descriptor(mf.DOCKER_LAYER, digest_of(data), len(data))


async def read_blob(host: str, desc: Descriptor, creds: Credentials = ANONYMOUS) -> tuple[bytes, list[int]]:
    client = Registry(FAST)
    try:
        repo = client.repository(parse(f"{host}/flaky"), creds)
        seen: list[int] = []
        data = b"".join([c async for c in repo.blob_chunks(desc, seen.append)])
        return data, seen
    finally:
        await client.close()


@pytest.mark.parametrize("ignore_range", [False, True])
def test_a_broken_download_resumes_and_the_stream_is_whole(ignore_range: bool) -> None:
    data = os.urandom(5 << 20)
    flaky = FlakyBlobs(data, drops=2, cut=(1 << 20) + 123, ignore_range=ignore_range)

    async def scenario() -> None:
        async with serve(flaky.app) as host:
            got, progress = await read_blob(host, blob_desc(data))
            assert got == data
            assert progress == sorted(progress) and progress[-1] == len(data)
            cut = (1 << 20) + 123
            # ignored, the Range asks again from where the first break left the stream
            second = cut if ignore_range else 2 * cut
            assert [h.get("Range") for h in flaky.seen[-3:]] == [None, f"bytes={cut}-", f"bytes={second}-"]

    run(scenario())


def test_too_many_breaks_give_up_with_one_line() -> None:
    data = os.urandom(1 << 20)
    flaky = FlakyBlobs(data, drops=100, cut=10)

    async def scenario() -> None:
        async with serve(flaky.app) as host:
            with pytest.raises(Unavailable) as e:
                await read_blob(host, blob_desc(data))
            assert "\n" not in str(e.value) and f"/v2/flaky/blobs/{digest_of(data)}" in str(e.value)
            assert len([h for h in flaky.seen]) == 1 + FAST.retries  # a HEAD, then the attempts

    run(scenario())


def test_a_digest_mismatch_names_the_digest() -> None:
    data = os.urandom(300000)
    flaky = FlakyBlobs(data, served=os.urandom(len(data)))

    async def scenario() -> None:
        async with serve(flaky.app) as host:
            with pytest.raises(VerificationError) as e:
                await read_blob(host, blob_desc(data))
            assert str(e.value) == f"filesystem layer verification failed for digest {digest_of(data)}"

    run(scenario())


@pytest.mark.parametrize("served", [b"short", b"x" * 100])
def test_a_truncated_or_overlong_blob_names_the_digest(served: bytes) -> None:
    data = b"y" * 50
    flaky = FlakyBlobs(data, served=served)

    async def scenario() -> None:
        async with serve(flaky.app) as host:
            with pytest.raises(VerificationError, match=f"verification failed for digest {digest_of(data)}"):
                await read_blob(host, blob_desc(data))
        # the HEAD that picks the endpoint, and one GET: a whole short answer is not asked for again
        assert len(flaky.seen) == 2

    run(scenario())


def test_blob_redirects_are_followed_without_credentials() -> None:
    data = os.urandom(200000)
    storage = FlakyBlobs(data)

    async def scenario() -> None:
        async with serve(storage.app) as storage_host:
            front = FlakyBlobs(data, redirect_to=storage_host, password="pw")
            async with serve(front.app) as host:
                got, _ = await read_blob(host, blob_desc(data), Credentials("joe", "pw"))
                assert got == data
                assert any(h.get("Authorization", "").startswith("Basic ") for h in front.seen)
                assert storage.seen and not any("Authorization" in h for h in storage.seen)

    run(scenario())


# -- auth and TLS against docker-registry ----------------------------------------------------


def write_htpasswd(path: Path, user: str, password: str) -> str:
    path.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}\n")
    return str(path)


def test_basic_auth_login_push_and_pull(workdir: Path) -> None:
    proc, served = start_registry(workdir, htpasswd=write_htpasswd(workdir / "htpasswd", "joe", "right"))

    async def scenario() -> None:
        client = Registry(FAST)
        try:
            good = Credentials("joe", "right")
            assert await client.login(served.host, good) == ""
            assert await client.login(f"http://{served.host}/", good) == ""
            with pytest.raises(Unauthorized) as e:
                await client.login(served.host, Credentials("joe", "wrong"))
            assert str(e.value) == (f"login attempt to http://{served.host}/v2/ failed with status: "
                                    "401 Unauthorized")
            raw, digest = await push_image(client, f"{served.host}/private/img", [b"secret layer"], good)
            repo = client.repository(parse(f"{served.host}/private/img"), good)
            got = await repo.manifest("latest")
            assert got.digest == digest
            assert isinstance(got, ImageManifest)
            assert b"".join([c async for c in repo.blob_chunks(got.layers[0])]) == b"secret layer"
            for creds in (Credentials(), Credentials("joe", "wrong")):
                anonymous = client.repository(parse(f"{served.host}/private/img"), creds)
                with pytest.raises(Unauthorized) as e:
                    await anonymous.manifest("latest")
                assert str(e.value) == (
                    f"pull access denied for {served.host}/private/img, repository does not exist or may "
                    "require 'docker login': unauthorized: authentication required")
        finally:
            await client.close()

    try:
        run(scenario())
    finally:
        stop(proc)


@dataclass
class Pki:
    ca: str  # PEM file
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(path: Path, data: bytes) -> str:
        path.write_bytes(data)
        return str(path)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("berth test CA")).issuer_name(name("berth test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                                   [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client_cert, client_key = leaf("berth client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return Pki(write(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
               write(directory / "server.pem", server_cert), write(directory / "server.key", server_key),
               write(directory / "client.pem", client_cert), write(directory / "client.key.pem", client_key))


def test_tls_verified_with_certs_d_and_a_client_certificate(workdir: Path) -> None:
    pki_dir = workdir / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    proc, served = start_registry(workdir, tls=(pki.server_cert, pki.server_key))
    certs = workdir / "certs.d"
    host_dir = certs / served.host
    host_dir.mkdir(parents=True)
    shutil.copy(pki.ca, host_dir / "ca.crt")
    shutil.copy(pki.client_cert, host_dir / "client.cert")
    shutil.copy(pki.client_key, host_dir / "client.key")

    async def scenario() -> None:
        verified = Registry(RegistryConfig(retry_delay=0.01, certs_dirs=(str(certs),), loopback_insecure=False))
        unknown_ca = Registry(RegistryConfig(retry_delay=0.01, certs_dirs=(), loopback_insecure=False))
        insecure = Registry(RegistryConfig(retry_delay=0.01, certs_dirs=()))
        try:
            _, digest = await push_image(verified, f"{served.host}/tls/img", [b"over tls"])
            repo = verified.repository(parse(f"{served.host}/tls/img"), Credentials())
            assert repo.endpoints[0].base == f"https://{served.host}" and len(repo.endpoints) == 1
            assert (await repo.manifest("latest")).digest == digest
            with pytest.raises(Unavailable) as e:
                await unknown_ca.repository(parse(f"{served.host}/tls/img"), Credentials()).manifest("latest")
            assert f'"https://{served.host}/v2/tls/img/manifests/latest"' in str(e.value)
            assert str(e.value).endswith(": tls: failed to verify certificate: unable to get local issuer certificate")
            # loopback is insecure as in Docker: https without verification comes first
            plain = insecure.repository(parse(f"{served.host}/tls/img"), Credentials())
            assert (await plain.manifest("latest")).digest == digest
            assert plain._pinned is not None and plain._pinned.base.startswith("https://")
        finally:
            for client in (verified, unknown_ca, insecure):
                await client.close()

    try:
        run(scenario())
    finally:
        stop(proc)


def test_client_certificate_required_by_the_registry(workdir: Path) -> None:
    pki_dir = workdir / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    proc, served = start_registry(workdir, tls=(pki.server_cert, pki.server_key), client_cas=pki.ca)
    certs = workdir / "certs.d"
    host_dir = certs / served.host
    host_dir.mkdir(parents=True)
    shutil.copy(pki.ca, host_dir / "ca.crt")

    async def scenario() -> None:
        config = RegistryConfig(retry_delay=0.01, certs_dirs=(str(certs),), loopback_insecure=False)
        without = Registry(config)
        try:
            with pytest.raises(Unavailable):
                await without.repository(parse(f"{served.host}/mtls"), Credentials()).resolve("latest")
        finally:
            await without.close()
        shutil.copy(pki.client_cert, host_dir / "client.cert")
        shutil.copy(pki.client_key, host_dir / "client.key")
        with_cert = Registry(config)
        try:
            _, digest = await push_image(with_cert, f"{served.host}/mtls", [b"mutual"])
            resolved = await with_cert.repository(parse(f"{served.host}/mtls"), Credentials()).resolve("latest")
            assert resolved is not None and resolved.digest == digest
        finally:
            await with_cert.close()

    try:
        run(scenario())
    finally:
        stop(proc)


class TokenServer:
    """A Bearer token server for docker-registry's token auth: ES256 JWTs whose x5c
    names a self-signed certificate that the registry's rootcertbundle trusts. joe's
    password is "right"; his refresh token "refresh-joe". Records every request."""

    SERVICE = "berth-test-registry"
    ISSUER = "berth-test-issuer"

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth token signer")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(self.key, hashes.SHA256()))
        self.bundle = directory / "token-bundle.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.requests: list[tuple[str, dict[str, str], str]] = []  # method, query or form, Authorization
        self.app = web.Application()
        self.app.router.add_route("*", "/token", self.token)

    @staticmethod
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def jwt(self, subject: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]}
        claims = {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{self.b64(json.dumps(header).encode())}.{self.b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{self.b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else {}
        params = {k: str(v) for k, v in form.items()}
        scopes = params.get("scope", "")
        if request.method == "POST":
            self.requests.append(("POST", params, ""))
            if params.get("grant_type") != "refresh_token" or params.get("refresh_token") != "refresh-joe":
                return web.json_response({"details": "invalid refresh token"}, status=401)
            return web.json_response({"access_token": self.jwt("joe", scopes.split()), "expires_in": 300})
        authorization = request.headers.get("Authorization", "")
        self.requests.append(("GET", dict(request.query), authorization))
        subject = ""
        if authorization:
            if authorization != "Basic " + base64.b64encode(b"joe:right").decode():
                return web.json_response({"details": "incorrect username or password"}, status=401)
            subject = "joe"
        scope_list = request.query.getall("scope", [])
        if not subject:
            scope_list = [s.rsplit(":", 1)[0] + ":pull" for s in scope_list if s.startswith("repository:public/")]
        doc: dict[str, Any] = {"token": self.jwt(subject, scope_list), "expires_in": 300}
        if subject and request.query.get("offline_token") == "true":
            doc["refresh_token"] = "refresh-joe"
        return web.json_response(doc)


def test_bearer_token_auth(workdir: Path) -> None:
    tokens = TokenServer(workdir)

    async def scenario() -> None:
        async with serve(tokens.app) as token_host:
            proc, served = start_registry(workdir, token={
                "realm": f"http://{token_host}/token", "service": TokenServer.SERVICE,
                "issuer": TokenServer.ISSUER, "rootcertbundle": str(tokens.bundle)})
            client = Registry(FAST)
            try:
                good = Credentials("joe", "right")
                assert await client.login(served.host, good) == "refresh-joe"
                with pytest.raises(Unauthorized) as e:
                    await client.login(served.host, Credentials("joe", "wrong"))
                assert str(e.value) == (f'Get "http://{served.host}/v2/": unauthorized: '
                                        "incorrect username or password")
                raw, digest = await push_image(client, f"{served.host}/public/img", [b"layer " * 1000], good)
                before = len(tokens.requests)
                anonymous = client.repository(parse(f"{served.host}/public/img"), ANONYMOUS)
                got = await anonymous.manifest("latest")
                assert got.digest == digest and isinstance(got, ImageManifest)
                assert b"".join([c async for c in anonymous.blob_chunks(got.layers[0])]) == b"layer " * 1000
                assert len(tokens.requests) == before + 1  # one token, cached for the blob
                assert tokens.requests[-1][1]["scope"] == "repository:public/img:pull"
                # an identity token (docker login's) is posted as a refresh token
                refreshed = client.repository(parse(f"{served.host}/private/img"),
                                              Credentials(identity_token="refresh-joe"), push=True)
                await push_image(client, f"{served.host}/private/img", [b"p"], Credentials(identity_token="refresh-joe"))
                assert any(m == "POST" and q.get("scope") == "repository:private/img:pull,push"
                           for m, q, _ in tokens.requests)
                assert (await refreshed.resolve("latest")) is not None
                # a cached token the registry refuses (revoked, expired early) is fetched afresh
                stale = client.repository(parse(f"{served.host}/public/img"), ANONYMOUS)
                challenge = client.challenges[f"http://{served.host}"]
                key = client.tokens.key(challenge, [repository_scope("public/img")], ANONYMOUS)
                client.tokens.put(key, Token("not-a-jwt", time.monotonic() + 3600))
                asked = len(tokens.requests)
                assert (await stale.resolve("latest")) is not None
                assert len(tokens.requests) == asked + 1
                fresh = client.tokens.get(key)
                assert fresh is not None and fresh.token != "not-a-jwt"
                # a registry token (X-Registry-Auth's registrytoken) goes straight to the registry
                token = tokens.jwt("joe", ["repository:private/img:pull"])
                asked = len(tokens.requests)
                direct = client.repository(parse(f"{served.host}/private/img"), Credentials(registry_token=token))
                assert (await direct.resolve("latest")) is not None
                assert len(tokens.requests) == asked
                denied = client.repository(parse(f"{served.host}/private/img"), ANONYMOUS)
                with pytest.raises(Unauthorized) as e:
                    await denied.manifest("latest")
                assert str(e.value).startswith(
                    f"pull access denied for {served.host}/private/img, repository does not exist or may "
                    "require 'docker login': unauthorized: ")
                wrong = client.repository(parse(f"{served.host}/private/img"), Credentials("joe", "wrong"))
                with pytest.raises(Unauthorized) as e:
                    await wrong.manifest("latest")
                assert str(e.value) == (f'Get "http://{served.host}/v2/private/img/manifests/latest": '
                                        "unauthorized: incorrect username or password")
            finally:
                await client.close()
                stop(proc)

    run(scenario())


# -- mirrors, stalls and bad manifests -------------------------------------------------------


def test_docker_io_pulls_go_through_the_mirrors_in_order(registry: Served) -> None:
    dead = free_port()

    async def scenario() -> None:
        client = Registry(FAST)
        try:
            _, digest = await push_image(client, f"{registry.host}/library/busybox", [b"from the mirror"])
            await push_image(client, f"{registry.host}/library/partial", [b"x"], tag="other")
            config = RegistryConfig(mirrors=(f"http://127.0.0.1:{dead}", f"http://{registry.host}/"),
                                    retry_delay=0.01)
            mirrored = Registry(config)
            try:
                repo = mirrored.repository(parse("busybox"), ANONYMOUS)
                assert [e.base for e in repo.endpoints] == [
                    f"http://127.0.0.1:{dead}", f"http://{registry.host}", "https://registry-1.docker.io"]
                got = await repo.manifest("latest")
                assert got.digest == digest and isinstance(got, ImageManifest)
                assert b"".join([c async for c in repo.blob_chunks(got.layers[0])]) == b"from the mirror"
            finally:
                await mirrored.close()
        finally:
            await client.close()

    run(scenario())


class ManifestServer:
    """Serves /v2/bad/manifests/<ref>: `body` with `content_type`; stalls for ever
    after the head when `stall`."""

    def __init__(self, body: bytes, content_type: str = mf.DOCKER_MANIFEST, stall: bool = False,
                 header_digest: str = "") -> None:
        self.body, self.content_type, self.stall, self.header_digest = body, content_type, stall, header_digest
        self.app = web.Application()
        self.app.router.add_route("*", "/v2/bad/manifests/{ref}", self.manifest)
        self.app.router.add_get("/v2/bad/blobs/{digest}", self.manifest)

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": self.content_type})
        resp.content_length = len(self.body)
        if self.header_digest:
            resp.headers["Docker-Content-Digest"] = self.header_digest
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        if self.stall:
            await resp.write(self.body[:10])
            await asyncio.sleep(3600)
        await resp.write(self.body)
        return resp


async def fetch_manifest(host: str, reference: str = "latest", config: RegistryConfig = FAST) -> Any:
    client = Registry(config)
    try:
        return await client.repository(parse(f"{host}/bad"), ANONYMOUS).manifest(reference)
    finally:
        await client.close()


def test_a_manifest_over_4_mib_is_refused() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
                      "annotations": {"pad": "x" * (4 << 20)}}).encode()

    async def scenario() -> None:
        async with serve(ManifestServer(raw).app) as host:
            with pytest.raises(InvalidParameter, match="over the limit of 4194304 bytes"):
                await fetch_manifest(host)

    run(scenario())


def test_a_manifest_by_digest_must_hash_to_it() -> None:
    raw = mf.build_manifest(Descriptor(mf.DOCKER_CONFIG, digest_of(b"c"), 1), [])
    wrong = digest_of(b"something else")

    async def scenario() -> None:
        async with serve(ManifestServer(raw).app) as host:
            with pytest.raises(VerificationError, match=f"manifest verification failed for digest {wrong}"):
                await fetch_manifest(host, wrong)
            got = await fetch_manifest(host, digest_of(raw))
            assert got.digest == digest_of(raw)

    run(scenario())


def test_schema1_from_a_registry_is_refused_naming_the_image() -> None:
    raw = json.dumps({"schemaVersion": 1, "name": "bad", "tag": "latest", "fsLayers": []}).encode()

    async def scenario() -> None:
        async with serve(ManifestServer(raw, mf.DOCKER_SCHEMA1_SIGNED).app) as host:
            with pytest.raises(InvalidParameter) as e:
                await fetch_manifest(host)
            assert f"Suggest the author of {host}/bad:latest to upgrade" in str(e.value)

    run(scenario())


def test_a_stalled_registry_is_given_up() -> None:
    raw = mf.build_manifest(Descriptor(mf.DOCKER_CONFIG, digest_of(b"c"), 1), [])
    config = RegistryConfig(retries=2, retry_delay=0.01, read_timeout=0.5, certs_dirs=())

    async def scenario() -> None:
        async with serve(ManifestServer(raw, stall=True).app) as host:
            started = time.monotonic()
            with pytest.raises(Unavailable) as e:
                await fetch_manifest(host, config=config)
            assert str(e.value) == (f'Get "http://{host}/v2/bad/manifests/latest": '
                                    "timeout waiting for the answer after 0.5 s")
            client = Registry(config)
            try:
                repo = client.repository(parse(f"{host}/bad"), ANONYMOUS)
                with pytest.raises(Unavailable, match="timeout waiting for the answer after 0.5 s"):
                    b"".join([c async for c in repo.blob_chunks(blob_desc(raw))])
            finally:
                await client.close()
            assert time.monotonic() - started < 10

    run(scenario())


@pytest.mark.parametrize("chunk_size", [None, 1 << 20])
def test_a_failing_source_fails_the_upload_with_its_own_error(registry: Served, chunk_size: int | None) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (3 << 20)
        raise OSError(5, "Input/output error")

    async def scenario() -> None:
        client = Registry(FAST)
        try:
            repo = client.repository(parse(f"{registry.host}/broken"), ANONYMOUS, push=True)
            with pytest.raises(OSError, match="Input/output error"):
                await repo.upload(broken(), chunk_size=chunk_size)
            assert await repo.blob_size(digest_of(b"x" * (3 << 20))) is None
        finally:
            await client.close()

    run(scenario())


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
def test_what_berth_pushes_skopeo_reads_and_what_skopeo_pushes_berth_reads(registry: Served) -> None:
    async def scenario() -> None:
        client = Registry(FAST)
        try:
            layer = gzip.compress(os.urandom(100000))  # skopeo compresses what is not compressed
            _, digest = await push_image(client, f"{registry.host}/ours", [layer])
            out = await asyncio.to_thread(subprocess.run, [
                "skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/ours:latest"],
                capture_output=True, check=True)
            assert digest_of(out.stdout) == digest
            await asyncio.to_thread(subprocess.run, [
                "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{registry.host}/ours:latest", f"docker://{registry.host}/theirs:copied"],
                capture_output=True, check=True)
            repo = client.repository(parse(f"{registry.host}/theirs:copied"), ANONYMOUS)
            got = await repo.manifest("copied")
            assert isinstance(got, ImageManifest)
            assert b"".join([c async for c in repo.blob_chunks(got.layers[0])]) == layer
        finally:
            await client.close()

    run(scenario())
