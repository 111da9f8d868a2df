"""berth-registry as a program: started with `berth-registry serve` on a free loopback
port and driven by real clients — skopeo for whole images, raw HTTP for the spec's error
cases — then `berth-registry garbage-collect` on its store."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers.processes import terminate

urllib3.disable_warnings()

REGISTRY = [str(Path(sys.executable).with_name("berth-registry"))]
SKOPEO = shutil.which("skopeo")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Server:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    scheme: str = "http"
    auth: tuple[str, str] | None = None
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("verify", False)
        if self.auth is not None:
            kwargs.setdefault("auth", self.auth)
        return self.session.request(method, self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> int:
        return terminate(self.proc)

    def log(self) -> str:
        return (self.root.parent / "registry.log").read_text()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    servers: list[Server] = []

    def _start(*flags: str, scheme: str = "http", wait: bool = True) -> Server:
        port = _free_port()
        root = tmp_path / f"root{len(servers)}"
        log = open(tmp_path / "registry.log", "ab")
        proc = subprocess.Popen([*REGISTRY, "serve", "--addr", f"127.0.0.1:{port}",
                                 "--root", str(root), *flags], stdout=log, stderr=log)
        log.close()
        server = Server(root, port, proc, scheme)
        servers.append(server)
        if wait:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"berth-registry did not start:\n"
                                           f"{(tmp_path / 'registry.log').read_text()}") from None
                    time.sleep(0.05)
        return server

    yield _start
    for server in servers:
        server.stop()


def build_oci_layout(dest: Path, layers: int = 3, tag: str = "latest", seed: str = "") -> str:
    """A multi-layer image as an OCI layout (gzip'd tar layers); its manifest digest."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict[str, object]:
        (blobs / sha(data)[7:]).write_bytes(data)
        return {"digest": sha(data), "size": len(data)}

    layer_descs, diff_ids = [], []
    for i in range(layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = f"{seed} layer {i}\n".encode() * (1000 * (i + 1))
            info = tarfile.TarInfo(f"file{i}.txt")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        diff_ids.append(sha(raw.getvalue()))
        gz = gzip.compress(raw.getvalue(), mtime=0)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            **put(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": layer_descs}).encode()
    desc = put(manifest)
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, **desc,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return str(desc["digest"])


def skopeo(*args: str) -> str:
    assert SKOPEO is not None
    done = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def push_blob(server: Server, repo: str, data: bytes) -> str:
    digest = sha(data)
    r = server.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
    assert r.status_code == 201, r.text
    return digest


def push_image(server: Server, repo: str, tag: str, seed: bytes = b"x",
               subject: str | None = None, artifact_type: str = "") -> tuple[str, bytes]:
    config = push_blob(server, repo, b'{"config": "' + seed + b'"}')
    layer = push_blob(server, repo, b"layer " + seed)
    doc: dict[str, object] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                   "size": len(b'{"config": "' + seed + b'"}')},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": len(b"layer " + seed)}]}
    if subject:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    if artifact_type:
        doc["artifactType"] = artifact_type
    body = json.dumps(doc).encode()
    r = server.request("PUT", f"/v2/{repo}/manifests/{tag}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(body)
    return sha(body), body


def error_code(r: requests.Response) -> str:
    return str(r.json()["errors"][0]["code"])


def stored_blobs(server: Server) -> set[str]:
    blobs = server.root / "blobs" / "sha256"
    return {"sha256:" + p.name for p in blobs.glob("*/*")} if blobs.is_dir() else set()


# whole images with skopeo ---------------------------------------------------------------

@needs_skopeo
def test_skopeo_copy_in_and_out(start: object, tmp_path: Path) -> None:
    server: Server = start()  # type: ignore[operator]
    digest = build_oci_layout(tmp_path / "layout", layers=3)
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:latest",
           f"docker://{server.host}/test/multi:v1")
    inspect = json.loads(skopeo("inspect", "--tls-verify=false",
                                f"docker://{server.host}/test/multi:v1"))
    assert inspect["Digest"] == digest
    assert len(inspect["Layers"]) == 3
    skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/test/multi:v1",
           f"dir:{tmp_path / 'out'}")
    out = tmp_path / "out"
    assert sha((out / "manifest.json").read_bytes()) == digest
    for layer in inspect["Layers"]:
        assert sha((out / layer[7:]).read_bytes()) == layer
    # a second repository: the layers are mounted, not uploaded again
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{server.host}/test/multi:v1", f"docker://{server.host}/other/copy:v2")
    mounts = [ln for ln in server.log().splitlines()
              if ln.startswith("POST /v2/other/copy/blobs/uploads/?") and "mount=" in ln]
    assert len(mounts) == 3 and all(" 201 " in ln for ln in mounts)
    r = server.request("GET", "/v2/_catalog")
    assert r.json() == {"repositories": ["other/copy", "test/multi"]}
    skopeo("delete", "--tls-verify=false", f"docker://{server.host}/test/multi:v1")
    assert server.request("GET", f"/v2/test/multi/manifests/{digest}").status_code == 404
    assert server.request("GET", "/v2/other/copy/manifests/v2").status_code == 200


# uploads ---------------------------------------------------------------------------------

def test_chunked_upload_status_and_ranges(start: object) -> None:
    server: Server = start()  # type: ignore[operator]
    data = os.urandom(300_000)
    r = server.request("POST", "/v2/chunks/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Range"] == "0-0"
    location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert location.endswith(upload_id)
    r = server.request("PATCH", location, data=data[:100_000],
                       headers={"Content-Range": "0-99999",
                                "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.headers["Range"] == "0-99999"
    r = server.request("PATCH", location, data=data[200_000:],
                       headers={"Content-Range": "200000-299999"})
    assert r.status_code == 416 and error_code(r) == "BLOB_UPLOAD_INVALID"
    assert r.headers["Range"] == "0-99999"
    r = server.request("PATCH", location, data=data[100_000:200_000])  # streamed, no range
    assert r.status_code == 202 and r.headers["Range"] == "0-199999"
    r = server.request("GET", location)
    assert r.status_code == 204 and r.headers["Range"] == "0-199999"
    digest = sha(data)
    r = server.request("PUT", f"{location}?digest={digest}", data=data[200_000:],
                       headers={"Content-Range": "100000-199999"})
    assert r.status_code == 416 and r.headers["Range"] == "0-199999"
    r = server.request("PUT", f"{location}?digest={digest}", data=data[200_000:],
                       headers={"Content-Range": "200000-299999"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/chunks/blobs/{digest}"
    assert server.request("GET", location).status_code == 404
    r = server.request("HEAD", f"/v2/chunks/blobs/{digest}")
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(data))
    assert r.headers["Docker-Content-Digest"] == digest
    r = server.request("GET", f"/v2/chunks/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["ETag"] == f'"{digest}"'
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert server.request("GET", f"/v2/chunks/blobs/{digest}").content == data
    # another repository does not see it until it is mounted
    assert server.request("HEAD", f"/v2/elsewhere/blobs/{digest}").status_code == 404
    r = server.request("POST", f"/v2/elsewhere/blobs/uploads/?mount={digest}&from=chunks")
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
    r = server.request("POST", f"/v2/elsewhere/blobs/uploads/?mount={sha(b'none')}&from=chunks")
    assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers
    # cancel, then the session is gone
    r = server.request("DELETE", r.headers["Location"])
    assert r.status_code == 204
    # blob delete removes it from the repository
    assert server.request("DELETE", f"/v2/elsewhere/blobs/{digest}").status_code == 202
    r = server.request("GET", f"/v2/elsewhere/blobs/{digest}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_wrong_digest_stores_nothing(start: object) -> None:
    server: Server = start()  # type: ignore[operator]
    data, claimed = b"the real content", sha(b"something else")
    r = server.request("POST", f"/v2/bad/blobs/uploads/?digest={claimed}", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = server.request("POST", "/v2/bad/blobs/uploads/")
    location = r.headers["Location"]
    r = server.request("PUT", f"{location}?digest={claimed}", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert server.request("HEAD", f"/v2/bad/blobs/{claimed}").status_code == 404
    assert server.request("HEAD", f"/v2/bad/blobs/{sha(data)}").status_code == 404
    assert stored_blobs(server) == set()
    assert list((server.root / "uploads").iterdir()) == []
    r = server.request("POST", "/v2/bad/blobs/uploads/?digest=sha512:" + "a" * 128, data=data)
    assert r.status_code == 400 and error_code(r) in ("UNSUPPORTED", "DIGEST_INVALID")
    r = server.request("POST", "/v2/bad/blobs/uploads/?digest=sha256:xyz", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


@pytest.mark.parametrize("path", ["/v2/a/../b/tags/list", "/v2/Upper/tags/list",
                                  "/v2/a//b/manifests/latest", "/v2/-a/blobs/uploads/",
                                  "/v2/a_/manifests/latest"])
def test_invalid_names(start: object, path: str) -> None:
    server: Server = start()  # type: ignore[operator]
    method = "POST" if path.endswith("uploads/") else "GET"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:  # no client rewriting
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply
    assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
    assert not (server.root / "repositories").exists() or not any(
        (server.root / "repositories").iterdir())


def test_upload_too_large(start: object) -> None:
    server: Server = start("--max-upload-size", "1000")  # type: ignore[operator]
    data = os.urandom(5000)
    r = server.request("POST", f"/v2/big/blobs/uploads/?digest={sha(data)}", data=data)
    assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"
    r = server.request("POST", "/v2/big/blobs/uploads/")
    location = r.headers["Location"]
    assert server.request("PATCH", location, data=data[:900]).status_code == 202

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it up front
        yield data[900:]

    r = server.request("PATCH", location, data=body())
    assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"
    assert server.request("GET", location).status_code == 404
    assert stored_blobs(server) == set()
    assert list((server.root / "uploads").iterdir()) == []


def test_stale_upload_session(start: object) -> None:
    server: Server = start("--upload-max-age", "1s",  # type: ignore[operator]
                           "--upload-purge-interval", "0.3s")
    r = server.request("POST", "/v2/slow/blobs/uploads/")
    location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert server.request("PATCH", location, data=b"abc").status_code == 202
    time.sleep(1.5)
    r = server.request("PATCH", location, data=b"def")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    assert not (server.root / "uploads" / upload_id).exists()
    r = server.request("PUT", f"/v2/slow/blobs/uploads/{'0' * 32}?digest={sha(b'x')}", data=b"x")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    r = server.request("GET", "/v2/slow/blobs/uploads/not-an-id")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_concurrent_pushes_of_one_blob(start: object) -> None:
    server: Server = start("--quiet")  # type: ignore[operator]
    data = os.urandom(4 << 20)
    statuses: list[int] = []

    def push(repo: str) -> None:
        r = requests.post(f"{server.url}/v2/{repo}/blobs/uploads/?digest={sha(data)}",
                          data=data, timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=push, args=(f"same/r{i % 3}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 6
    assert stored_blobs(server) == {sha(data)}
    path = server.root / "blobs" / "sha256" / sha(data)[7:9] / sha(data)[7:]
    assert sha(path.read_bytes()) == sha(data)
    assert server.log().count("GET ") == 0  # --quiet: no request lines


# manifests, tags, catalog, referrers ------------------------------------------------------

def test_manifests_tags_catalog_referrers(start: object) -> None:
    server: Server = start()  # type: ignore[operator]
    digest, body = push_image(server, "app", "v1")
    for tag in ("v2", "v3", "v4"):
        server.request("PUT", f"/v2/app/manifests/{tag}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    r = server.request("GET", "/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.content == body and r.headers["Content-Type"] == OCI_MANIFEST
    assert r.headers["Docker-Content-Digest"] == digest and digest in r.headers["ETag"]
    r = server.request("HEAD", f"/v2/app/manifests/{digest}")
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(body))
    r = server.request("GET", "/v2/app/tags/list?n=2")
    assert r.json() == {"name": "app", "tags": ["v1", "v2"]}
    assert r.headers["Link"] == '</v2/app/tags/list?last=v2&n=2>; rel="next"'
    r = server.request("GET", "/v2/app/tags/list?n=2&last=v2")
    assert r.json()["tags"] == ["v3", "v4"] and "Link" not in r.headers
    r = server.request("GET", "/v2/nothing/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"
    # a manifest PUT by digest must match the body
    r = server.request("PUT", f"/v2/app/manifests/{sha(b'other')}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    # blobs it names must be in this repository
    r = server.request("PUT", "/v2/empty/manifests/v1", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    huge = json.dumps({"schemaVersion": 2, "pad": "x" * (4 * 1024 * 1024)}).encode()
    r = server.request("PUT", "/v2/app/manifests/huge", data=huge,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413 and error_code(r) == "MANIFEST_INVALID"
    r = server.request("PUT", "/v2/app/manifests/bad", data=b"{nope",
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    # an index over manifests the repository holds
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    r = server.request("PUT", "/v2/app/manifests/multi", data=index,
                       headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201
    missing = index.replace(digest[7:].encode(), b"f" * 64)
    r = server.request("PUT", "/v2/app/manifests/multi2", data=missing,
                       headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # referrers
    sig_digest, sig_body = _put_referrer(server, digest, "application/vnd.example.sig")
    sbom_digest, _ = _put_referrer(server, digest, "application/vnd.example.sbom")
    r = server.request("GET", f"/v2/app/referrers/{digest}")
    assert r.headers["Content-Type"] == OCI_INDEX
    found = {m["digest"]: m for m in r.json()["manifests"]}
    assert set(found) == {sig_digest, sbom_digest}
    assert found[sig_digest]["artifactType"] == "application/vnd.example.sig"
    assert found[sig_digest]["size"] == len(sig_body)
    r = server.request("GET", f"/v2/app/referrers/{digest}?artifactType=application/vnd.example.sbom")
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom_digest]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    # delete by tag, then by digest (with every tag naming it)
    assert server.request("DELETE", "/v2/app/manifests/v4").status_code == 202
    assert server.request("GET", "/v2/app/manifests/v4").status_code == 404
    assert server.request("DELETE", f"/v2/app/manifests/{digest}").status_code == 202
    r = server.request("GET", "/v2/app/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert server.request("GET", "/v2/app/tags/list").json()["tags"] == ["multi"]
    # catalog pagination
    for repo in ("b/one", "c/two"):
        push_blob(server, repo, b"x")
        server.request("PUT", f"/v2/{repo}/manifests/t", data=b"{}")
    r = server.request("GET", "/v2/_catalog?n=1")
    assert r.json() == {"repositories": ["app"]}
    assert r.headers["Link"] == '</v2/_catalog?last=app&n=1>; rel="next"'


def _put_referrer(server: Server, subject: str, artifact_type: str) -> tuple[str, bytes]:
    empty = push_blob(server, "app", b"{}")
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                   "size": 2},
        "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
        "annotations": {"kind": artifact_type}}).encode()
    r = server.request("PUT", f"/v2/app/manifests/{sha(body)}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == subject
    return sha(body), body


# auth, TLS, read-only ---------------------------------------------------------------------

def _htpasswd(tmp_path: Path) -> Path:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed.replace('$2b$', '$2y$', 1)}\n")
    return path


def test_htpasswd_basic_auth(start: object, tmp_path: Path) -> None:
    server: Server = start("--htpasswd", str(_htpasswd(tmp_path)),  # type: ignore[operator]
                           "--htpasswd-realm", "Registry Realm")
    r = server.request("GET", "/v2/")
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Registry Realm"'
    r = server.request("GET", "/v2/", auth=("alice", "wrong"))
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    r = server.request("POST", f"/v2/a/blobs/uploads/?digest={sha(b'x')}", data=b"x")
    assert r.status_code == 401 and stored_blobs(server) == set()
    assert server.request("GET", "/v2/", auth=("alice", "s3cret")).status_code == 200
    if SKOPEO is not None:
        build_oci_layout(tmp_path / "layout", layers=2)
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret",
               f"oci:{tmp_path / 'layout'}:latest", f"docker://{server.host}/auth/img:v1")
        done = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", "--creds",
                               "alice:wrong", f"docker://{server.host}/auth/img:v1"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and "unauthorized" in done.stderr.lower()


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_token_auth_served_by_itself(start: object, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "token")
    server: Server = start("--htpasswd", str(_htpasswd(tmp_path)),  # type: ignore[operator]
                           "--token-key", str(key), "--token-cert", str(cert),
                           "--token-service", "berth-test", "--token-issuer", "berth-issuer")
    r = server.request("GET", "/v2/app/tags/list")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{server.host}/token",service="berth-test",'
        'scope="repository:app:pull"')
    r = server.request("POST", "/v2/app/blobs/uploads/")
    assert 'scope="repository:app:pull,push"' in r.headers["WWW-Authenticate"]
    r = server.request("GET", "/token?service=berth-test&scope=repository:app:pull",
                       auth=("alice", "wrong"))
    assert r.status_code == 401
    r = server.request("GET", "/token?service=berth-test&scope=repository:app:pull,push",
                       auth=("alice", "s3cret"))
    assert r.status_code == 200
    token = r.json()
    assert token["token"] == token["access_token"] and token["expires_in"] > 0
    assert "issued_at" in token
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert server.request("GET", "/v2/", headers=bearer).status_code == 200
    push = server.request("POST", f"/v2/app/blobs/uploads/?digest={sha(b'x')}", data=b"x",
                          headers=bearer)
    assert push.status_code == 201
    r = server.request("GET", "/v2/_catalog", headers=bearer)
    assert r.status_code == 401 and 'scope="registry:catalog:*"' in r.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    other = server.request("POST", "/v2/other/blobs/uploads/", headers=bearer)
    assert other.status_code == 401
    r = server.request("GET", "/v2/", headers={"Authorization": "Bearer forged.token.here"})
    assert r.status_code == 401
    # OAuth2 password and refresh grants
    r = server.request("POST", "/token", data={
        "grant_type": "password", "username": "alice", "password": "s3cret",
        "service": "berth-test", "scope": "registry:catalog:*", "client_id": "test"})
    assert r.status_code == 200
    refresh = r.json()["refresh_token"]
    catalog = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert server.request("GET", "/v2/_catalog", headers=catalog).json() == {
        "repositories": ["app"]}
    r = server.request("POST", "/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "service": "berth-test",
        "scope": "repository:app:pull", "client_id": "test"})
    assert r.status_code == 200 and r.json()["access_token"]
    if SKOPEO is not None:
        build_oci_layout(tmp_path / "layout", layers=2)
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret",
               f"oci:{tmp_path / 'layout'}:latest", f"docker://{server.host}/tok/img:v1")
        inspect = json.loads(skopeo("inspect", "--tls-verify=false", "--creds", "alice:s3cret",
                                    f"docker://{server.host}/tok/img:v1"))
        assert inspect["Name"].endswith("tok/img")


def test_external_token_server_rs256(start: object, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from berth.registry import auth

    key = rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "bundle.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server: Server = start("--token-cert", str(tmp_path / "bundle.pem"),  # type: ignore[operator]
                           "--token-realm", "https://auth.example/token",
                           "--token-service", "reg", "--token-issuer", "ext")
    r = server.request("GET", "/v2/x/tags/list")
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="https://auth.example/token"')
    assert server.request("GET", "/token").status_code == 404
    token = auth.issue_token(key, "ext", "reg", "bob",
                             [auth.Scope("repository", "x", ("pull",))], 60)
    r = server.request("GET", "/v2/x/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"  # authorised, no repo


def test_tls_and_client_certificates(start: object, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "server")
    server: Server = start("--tls-cert", str(cert), "--tls-key", str(key),  # type: ignore[operator]
                           scheme="https")
    r = requests.get(f"{server.url}/v2/", verify=str(cert), timeout=10)
    assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    if SKOPEO is not None:
        build_oci_layout(tmp_path / "layout", layers=1)
        certs = tmp_path / "certs.d"
        certs.mkdir()
        shutil.copy(cert, certs / "ca.crt")
        skopeo("copy", "--dest-cert-dir", str(certs), f"oci:{tmp_path / 'layout'}:latest",
               f"docker://{server.host}/tls/img:v1")
    client_cert, client_key = _self_signed(tmp_path, "client")
    mtls: Server = start("--tls-cert", str(cert), "--tls-key", str(key),  # type: ignore[operator]
                         "--tls-client-ca", str(client_cert), scheme="https")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{mtls.url}/v2/", verify=str(cert), timeout=10)
    r = requests.get(f"{mtls.url}/v2/", verify=str(cert), timeout=10,
                     cert=(str(client_cert), str(client_key)))
    assert r.status_code == 200


def test_read_only(start: object, tmp_path: Path) -> None:
    writer: Server = start()  # type: ignore[operator]
    digest, _ = push_image(writer, "ro", "v1")
    writer.stop()
    reader: Server = start("--read-only", "--root", str(writer.root))  # type: ignore[operator]
    assert reader.request("GET", "/v2/ro/manifests/v1").status_code == 200
    for method, path in (("POST", "/v2/ro/blobs/uploads/"), ("PUT", "/v2/ro/manifests/v2"),
                         ("DELETE", f"/v2/ro/manifests/{digest}"),
                         ("DELETE", f"/v2/ro/blobs/{digest}")):
        r = reader.request(method, path, data=b"{}")
        assert r.status_code == 405 and error_code(r) == "UNSUPPORTED", (method, path)
    assert reader.request("GET", f"/v2/ro/manifests/{digest}").status_code == 200


# garbage-collect and the command line -------------------------------------------------

def test_garbage_collect(start: object) -> None:
    server: Server = start()  # type: ignore[operator]
    keep, _ = push_image(server, "gc", "v1", b"keep")
    orphan = push_blob(server, "gc", b"orphan blob")
    untagged, _ = push_image(server, "gc", "v2", b"old")
    server.request("DELETE", "/v2/gc/manifests/v2")  # the tag only: v2 is now untagged
    server.stop()
    root = str(server.root)
    dry = subprocess.run([*REGISTRY, "garbage-collect", "--root", root, "--dry-run"],
                         capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    assert f"blob eligible for deletion: {orphan}" in dry.stdout
    assert untagged not in dry.stdout
    assert orphan in stored_blobs(server)
    real = subprocess.run([*REGISTRY, "garbage-collect", "--root", root, "--delete-untagged"],
                          capture_output=True, text=True, timeout=30)
    assert real.returncode == 0, real.stderr
    assert f"manifest eligible for deletion: gc@{untagged}" in real.stdout
    assert f"blob eligible for deletion: {untagged}" in real.stdout
    left = stored_blobs(server)
    assert orphan not in left and untagged not in left and keep in left
    again: Server = start("--root", root)  # type: ignore[operator]
    for blob in json.loads(again.request("GET", "/v2/gc/manifests/v1").content)["layers"]:
        assert again.request("GET", f"/v2/gc/blobs/{blob['digest']}").status_code == 200


def test_command_line(start: object, tmp_path: Path) -> None:
    done = subprocess.run([*REGISTRY, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("berth-registry ")
    done = subprocess.run([*REGISTRY, "serve", "--bogus"], capture_output=True, text=True)
    assert done.returncode == 2
    (tmp_path / "bad.yml").write_text("nonsense: 1\n")
    done = subprocess.run([*REGISTRY, "serve", "--config", str(tmp_path / "bad.yml")],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"berth-registry: {tmp_path / 'bad.yml'}: unknown setting 'nonsense'"]
    port = _free_port()
    (tmp_path / "good.yml").write_text(
        f"version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'cfgroot'}\n")
    server: Server = start("--config", str(tmp_path / "good.yml"), wait=False)  # type: ignore[operator]
    # --addr on the command line overrides the file's
    deadline = time.monotonic() + 10
    while True:
        try:
            r = requests.get(f"{server.url}/v2/", timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
            time.sleep(0.05)
    assert r.status_code == 200
    assert server.stop() == 0
    line = [ln for ln in server.log().splitlines() if ln.startswith("GET /v2/ ")][-1]
    method, path, status, size, ms = line.split()
    assert (status, size) == ("200", "2") and ms.endswith("ms")


def test_kill_9_mid_upload_then_resume(start: object) -> None:
    """A session outlives its server: after kill -9 nothing is visible, the next server
    reports the session's offset, and finishing it re-hashes what is on disk."""
    server: Server = start()  # type: ignore[operator]
    data = os.urandom(2 << 20)
    r = server.request("POST", "/v2/crash/blobs/uploads/")
    location = r.headers["Location"]
    assert server.request("PATCH", location, data=data[:1 << 20]).status_code == 202
    server.proc.kill()
    server.proc.wait()
    again: Server = start("--root", str(server.root))  # type: ignore[operator]
    assert again.request("HEAD", f"/v2/crash/blobs/{sha(data)}").status_code == 404
    assert stored_blobs(again) == set()
    r = again.request("GET", location)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{(1 << 20) - 1}"
    r = again.request("PUT", f"{location}?digest={sha(b'wrong')}", data=data[1 << 20:])
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert stored_blobs(again) == set()
    r = again.request("POST", "/v2/crash/blobs/uploads/")
    location = r.headers["Location"]
    assert again.request("PATCH", location, data=data[:1 << 20]).status_code == 202
    again.proc.kill()
    again.proc.wait()
    third: Server = start("--root", str(server.root))  # type: ignore[operator]
    r = third.request("PUT", f"{location}?digest={sha(data)}", data=data[1 << 20:])
    assert r.status_code == 201
    assert third.request("GET", f"/v2/crash/blobs/{sha(data)}").content == data
