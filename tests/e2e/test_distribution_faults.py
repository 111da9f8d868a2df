"""Distribution when things go wrong (issue 16, "Bad input" and Must show 4): a registry
that lies (a fake: a real registry cannot be made to serve a blob that does not match
its digest), refuses credentials, or cannot be reached; a daemon killed with SIGKILL in
the middle of a pull and of a push. Each failure is a non-zero exit with one clear line
naming the image or the digest, leaves no image behind, and the next good pull works.

Runs against berthd, or a private dockerd with BERTH_TEST_ENGINE=dockerd (the oracle).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.cli import describe
from helpers.daemon import private_daemon
from helpers.dockerd import Dockerd, Engine, oracle_mode
from helpers.images import data_layers, image_config, sha256, write_load_archive
from helpers.registries import Registry, ThrottledProxy, free_port, leaked_blobs

from . import test_distribution as shared
from .test_distribution import assert_pull_fails_cleanly, image_listed, login, skopeo, skopeo_creds

# The shared fixtures, found by pytest by their names in this module.
engine = shared.engine
registry = shared.registry
plain_registry = shared.plain_registry
repo = shared.repo
seed = shared.seed
cleanup_images = shared.cleanup_images

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# A registry that lies.


@dataclass
class FakeImage:
    manifest: bytes
    digest: str  # the manifest's
    config_digest: str
    layer_digest: str
    blobs: dict[str, bytes]


def fake_image(padding: int = 0) -> FakeImage:
    """A small image (one 200 kB layer) as a Docker schema 2 manifest; `padding` bytes of
    annotation make the manifest that much larger (a legal field, just big)."""
    layer = data_layers([200_000], seed=77)[0]
    gz = gzip.compress(layer, compresslevel=1, mtime=0)
    config = image_config([sha256(layer)], label="fake")
    manifest: dict[str, object] = {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256(gz), "size": len(gz)}],
    }
    if padding:
        manifest["annotations"] = {"padding": "x" * padding}
    data = json.dumps(manifest).encode()
    return FakeImage(data, sha256(data), sha256(config), sha256(gz),
                     {sha256(config): config, sha256(gz): gz})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on a bad answer is what these tests provoke


class FakeRegistry:
    """One repository, "fake/img", whose answers a test chooses with `fault`:
      None            a good image
      "bad-digest"    the layer's bytes do not match its digest (same length)
      "truncated"     the layer is served cut to half, with a matching Content-Length
      "huge-manifest" a manifest of 5 MiB (its digest right)
      "missing-blob"  the layer is unknown (404 BLOB_UNKNOWN)
    """

    def __init__(self) -> None:
        self.fault: str | None = None
        self.good = fake_image()
        self.huge = fake_image(padding=5 << 20)
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(head=True)

            def do_GET(self) -> None:
                self.answer(head=False)

            def send(self, status: int, body: bytes, head: bool,
                     headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def answer(self, head: bool) -> None:
                fake.requests.append(f"{self.command} {self.path}")
                path = self.path.split("?", 1)[0]
                image = fake.huge if fake.fault == "huge-manifest" else fake.good
                if path == "/v2/":
                    return self.send(200, b"{}", head, {"Content-Type": "application/json"})
                prefix = "/v2/fake/img/"
                if path.startswith(prefix + "manifests/"):
                    ref = path.rsplit("/", 1)[1]
                    if ref not in ("latest", image.digest):
                        return self.error(404, "MANIFEST_UNKNOWN", head)
                    return self.send(200, image.manifest, head, {
                        "Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": image.digest})
                if path.startswith(prefix + "blobs/"):
                    digest = path.rsplit("/", 1)[1]
                    blob = image.blobs.get(digest)
                    if blob is None:
                        return self.error(404, "BLOB_UNKNOWN", head)
                    if digest == image.layer_digest:
                        if fake.fault == "missing-blob":
                            return self.error(404, "BLOB_UNKNOWN", head)
                        if fake.fault == "bad-digest":
                            blob = blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:]
                        if fake.fault == "truncated":
                            blob = blob[: len(blob) // 2]
                    return self.send(200, blob, head, {
                        "Content-Type": "application/octet-stream", "Docker-Content-Digest": digest})
                return self.error(404, "NAME_UNKNOWN", head)

            def error(self, status: int, code: str, head: bool) -> None:
                body = json.dumps({"errors": [{"code": code, "message": code.lower().replace(
                    "_", " "), "detail": None}]}).encode()
                self.send(status, body, head, {"Content-Type": "application/json"})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ref(self) -> str:
        return f"localhost:{self.port}/fake/img:latest"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    yield fake
    fake.close()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("fault", ["bad-digest", "truncated"])
def test_a_layer_that_does_not_match_its_digest_is_refused(
        engine: Engine, fake_registry: FakeRegistry, fault: str,
        cleanup_images: list[str]) -> None:
    cleanup_images.append(fake_registry.ref)
    fake_registry.fault = fault
    try:
        err = assert_pull_fails_cleanly(engine.cli, fake_registry.ref,
                                        fake_registry.good.layer_digest)
    finally:
        fake_registry.fault = None
    assert len(err.strip().splitlines()) == 1, err
    out = engine.cli.ok("pull", fake_registry.ref, timeout=120)
    assert f"Digest: {fake_registry.good.digest}" in out


@pytest.mark.timeout(300)
def test_a_manifest_over_4_mib_is_refused(engine: Engine, fake_registry: FakeRegistry,
                                          cleanup_images: list[str]) -> None:
    if engine.kind == "dockerd":
        pytest.skip("dockerd 20.10 reads manifests of any size; the 4 MiB limit is "
                    "distribution 2.8.2's and containerd's, and issue 16's")
    cleanup_images.append(fake_registry.ref)
    fake_registry.fault = "huge-manifest"
    try:
        err = assert_pull_fails_cleanly(engine.cli, fake_registry.ref, "fake/img")
    finally:
        fake_registry.fault = None
    assert len(err.strip().splitlines()) == 1, err
    engine.cli.ok("pull", fake_registry.ref, timeout=120)


@pytest.mark.timeout(400)
def test_a_manifest_naming_a_missing_blob_is_refused(
        engine: Engine, fake_registry: FakeRegistry, cleanup_images: list[str]) -> None:
    cleanup_images.append(fake_registry.ref)
    fake_registry.fault = "missing-blob"
    try:
        err = assert_pull_fails_cleanly(engine.cli, fake_registry.ref)
    finally:
        fake_registry.fault = None
    assert len(err.strip().splitlines()) == 1, err
    # dockerd says only "Error response from daemon: unknown blob"; berth must name the blob
    assert "unknown blob" in err.lower() or "blob unknown" in err.lower(), err
    if engine.kind == "berthd":
        assert fake_registry.good.layer_digest in err, err
    engine.cli.ok("pull", fake_registry.ref, timeout=120)


@pytest.mark.timeout(300)
def test_without_credentials_and_with_wrong_ones_the_registry_says_401(
        engine: Engine, registry: Registry, repo: str, seed: Callable[..., str],
        tmp_path: Path, cleanup_images: list[str]) -> None:
    assert registry.credentials is not None
    ref = f"{registry.host}/private/{repo}:1"
    cleanup_images.append(ref)
    seed(registry, f"private/{repo}:1")
    cli = engine.cli_with_config(tmp_path / "cfg")
    # dockerd: "Error response from daemon: unauthorized: authentication required" (with
    # Debian's registry); berth must also name the image
    named = (f"private/{repo}",) if engine.kind == "berthd" else ()
    err = assert_pull_fails_cleanly(cli, ref, *named)
    assert "no basic auth credentials" in err or "unauthorized" in err.lower(), err
    res = cli("login", registry.host, "-u", registry.credentials.username, "--password-stdin",
              input="not-the-password")
    assert res.returncode != 0, describe(res)
    assert "401" in res.stderr or "unauthorized" in res.stderr.lower(), describe(res)
    assert not (tmp_path / "cfg" / "config.json").exists() or registry.host not in \
        json.loads((tmp_path / "cfg" / "config.json").read_text()).get("auths", {})
    # wrong credentials stored in the CLI's config reach the daemon as X-Registry-Auth
    wrong = base64.b64encode(f"{registry.credentials.username}:wrong".encode()).decode()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(
        {"auths": {registry.host: {"auth": wrong}}}))
    err = assert_pull_fails_cleanly(cli, ref, *named)
    assert "unauthorized" in err.lower() or "401" in err, err
    login(cli, registry)
    cli.ok("pull", ref, timeout=120)


@pytest.mark.timeout(120)
def test_an_unreachable_registry(engine: Engine, plain_registry: Registry, repo: str,
                                 seed: Callable[..., str], cleanup_images: list[str]) -> None:
    closed = f"localhost:{free_port()}"
    err = assert_pull_fails_cleanly(engine.cli, f"{closed}/gone/{repo}:1", closed)
    assert "connection refused" in err, err
    assert len(err.strip().splitlines()) == 1, err
    ref = f"{plain_registry.host}/after/{repo}:1"
    cleanup_images.append(ref)
    seed(plain_registry, f"after/{repo}:1")
    engine.cli.ok("pull", ref, timeout=120)


# Must show 4: SIGKILL of the daemon in the middle of a pull and of a push.


@dataclass
class Killable:
    """A daemon of the test's own: its CLI, how to SIGKILL it, how to start it again."""

    engine: Engine
    kill9: Callable[[], None]
    restart: Callable[[], None]


@contextmanager
def killable_daemon(request: pytest.FixtureRequest) -> Iterator[Killable]:
    if oracle_mode():
        d = Dockerd()
        try:
            d.start()
            yield Killable(Engine("dockerd", d.cli, d.host), d.kill9, d.start)
        finally:
            d.stop()
        return
    session = request.getfixturevalue("berthd")
    with private_daemon(request.getfixturevalue("berth_root"), session,
                        request.getfixturevalue("busybox_tar"), prefix="dk") as (daemon, cli):
        def kill9() -> None:
            assert daemon.proc is not None
            os.kill(daemon.proc.pid, signal.SIGKILL)
            daemon.proc.wait(timeout=10)

        yield Killable(Engine("berthd", cli, daemon.host, daemon.data_root), kill9, daemon.start)


def wait_for_transfer(proc: subprocess.Popen[str], moved: Callable[[], int], what: str,
                      timeout: float = 60) -> None:
    """Until `moved()` bytes passed 1 MB while the client `proc` still runs."""
    deadline = time.monotonic() + timeout
    while moved() < 1_000_000:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the {what} ended (status {proc.returncode}) before the kill; "
                        f"stdout {out[-500:]!r} stderr {err[-500:]!r}")
        assert time.monotonic() < deadline, f"timed out waiting for the {what} to be under way"
        time.sleep(0.05)


def assert_no_leaks(engine: Engine) -> None:
    if engine.data_root is not None:
        assert leaked_blobs(engine.data_root) == []


SLOW = 400_000  # bytes a second through the proxy: the 2 x 3 MB image takes ~10 s


@pytest.mark.timeout(300)
def test_sigkill_in_the_middle_of_a_pull_leaves_no_image_and_the_pull_then_completes(
        request: pytest.FixtureRequest, plain_registry: Registry, repo: str,
        seed: Callable[..., str]) -> None:
    digest = seed(plain_registry, f"killpull/{repo}:1", layer_sizes=[3_000_000, 3_000_000],
                  seed_value=91)
    with ThrottledProxy(plain_registry.addr, SLOW) as proxy, killable_daemon(request) as k:
        ref = f"{proxy.host}/killpull/{repo}:1"
        cli = k.engine.cli
        pull = subprocess.Popen([cli.program, "pull", ref], env=cli.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_transfer(pull, lambda: proxy.bytes_down, "pull")
            k.kill9()
            pull.communicate(timeout=60)
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.wait()
        assert pull.returncode != 0
        k.restart()
        assert not image_listed(cli, ref.rsplit(":", 1)[0]), cli.ok("images")
        res = cli("image", "inspect", ref)
        assert res.returncode != 0 and "No such image" in res.stderr, describe(res)
        assert_no_leaks(k.engine)
        proxy.rate = 1 << 30
        out = cli.ok("pull", ref, timeout=120)
        assert f"Digest: {digest}" in out
        assert cli.ok("run", "--rm", ref, "sh", "-c", "wc -c < /data/layer1.bin").strip() \
            == "3000000"
        cli.ok("rmi", ref)
        assert_no_leaks(k.engine)


@pytest.mark.timeout(300)
def test_sigkill_in_the_middle_of_a_push_leaves_no_manifest_and_the_push_then_completes(
        request: pytest.FixtureRequest, plain_registry: Registry, repo: str,
        tmp_path: Path) -> None:
    with ThrottledProxy(plain_registry.addr, SLOW) as proxy, killable_daemon(request) as k:
        ref = f"{proxy.host}/killpush/{repo}:1"
        cli = k.engine.cli
        archive = write_load_archive(tmp_path / "img.tar", ref, [3_000_000, 3_000_000], seed=92)
        cli.ok("load", "-i", str(archive.path), timeout=120)
        push = subprocess.Popen([cli.program, "push", ref], env=cli.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_transfer(push, lambda: proxy.bytes_up, "push")
            k.kill9()
            push.communicate(timeout=60)
        finally:
            if push.poll() is None:
                push.kill()
                push.wait()
        assert push.returncode != 0
        k.restart()
        res = skopeo("inspect", *skopeo_creds(plain_registry),
                     f"docker://{plain_registry.host}/killpush/{repo}:1")
        assert res.returncode != 0, "a manifest was pushed although the push was killed"
        assert cli.ok("image", "inspect", "-f", "{{.Id}}", ref).strip() == archive.image_id
        assert_no_leaks(k.engine)
        proxy.rate = 1 << 30
        out = cli.ok("push", ref, timeout=120)
        assert "1: digest: sha256:" in out
        res = skopeo("inspect", *skopeo_creds(plain_registry), "--format", "{{.Digest}}",
                     f"docker://{plain_registry.host}/killpush/{repo}:1")
        assert res.returncode == 0 and res.stdout.strip() in out, res.stderr
        cli.ok("rmi", ref)
        assert_no_leaks(k.engine)
