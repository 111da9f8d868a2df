"""Real registries on loopback for the distribution tests, and what the tests measure
about a berthd's store after a pull or push was cut short.

- `DistributionRegistry`: Debian's reference server (`/usr/bin/docker-registry serve
  CONFIG.yml`, distribution 2.8), with optional htpasswd (bcrypt) auth and TLS.
- `BerthRegistry`: `berth-registry serve --addr ... --root ...` from the venv, same options.
- `ThrottledProxy`: a TCP forwarder to a registry that passes at most N bytes a second
  from the registry to the client, so that a test can kill a daemon mid-transfer.
- `leaked_blobs(data_root)`: the content blobs of a stopped (or idle) berthd that nothing
  in its metadata refers to.

Each server binds 127.0.0.1 on a free port, is ready when GET /v2/ answers (200 or 401),
and is stopped by its PID; its directory is removed. A registry on loopback is insecure
by default for Docker (127.0.0.0/8 is), so plain HTTP works for `localhost:PORT/...`
names; with TLS, `certs_d(dir)` writes the CA where a daemon looks for it.
"""

from __future__ import annotations

import datetime
import os
import re
import select
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import bcrypt

from helpers.processes import terminate

from .daemon import VENV_BIN

DOCKER_REGISTRY = "/usr/bin/docker-registry"
BERTH_REGISTRY = VENV_BIN / "berth-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class Tls:
    """A self-signed CA, a server certificate it signed (for localhost and the given
    addresses), and a client certificate it signed (for registries that ask for one)."""

    ca_cert: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path, ips: tuple[str, ...] = ("127.0.0.1",)) -> Tls:
    """A CA, and a server certificate it signed for localhost and `ips`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test client")]))
              .issuer_name(ca_name).public_key(client_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    tls = Tls(directory / "ca.crt", directory / "server.crt", directory / "server.key",
              directory / "client.cert", directory / "client.key")
    tls.ca_cert.write_bytes(ca.public_bytes(pem))
    tls.cert.write_bytes(cert.public_bytes(pem))
    for path, private in ((tls.key, key), (tls.client_key, client_key)):
        path.write_bytes(private.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    tls.client_cert.write_bytes(client.public_bytes(pem))
    return tls


def write_htpasswd(path: Path, users: list[Credentials]) -> None:
    """An htpasswd file of bcrypt hashes ($2y$, as `htpasswd -B` writes)."""
    lines = []
    for user in users:
        hashed = bcrypt.hashpw(user.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        lines.append(f"{user.username}:{'$2y$' + hashed[4:]}")
    path.write_text("\n".join(lines) + "\n")


class Registry:
    """What both servers share: a directory, a port, a process, readiness, cleanup."""

    kind = "registry"

    def __init__(self, *, auth: bool = False, tls: bool = False, read_only: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"breg-{self.kind}-", dir="/tmp"))
        self.root = self.dir / "storage"
        self.root.mkdir()
        self.port = free_port()
        self.credentials = Credentials("berthtest", "s3cret-pass") if auth else None
        self.htpasswd: Path | None = None
        if auth:
            self.htpasswd = self.dir / "htpasswd"
            assert self.credentials is not None
            write_htpasswd(self.htpasswd, [self.credentials])
        self.tls = make_tls(self.dir) if tls else None
        self.read_only = read_only
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "registry.log"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """The registry's part of an image name: `localhost:PORT` (insecure by default in
        Docker since it resolves to loopback; skopeo needs --tls-verify=false for http)."""
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr}"

    @property
    def ca_cert(self) -> Path | None:
        return self.tls.ca_cert if self.tls else None

    def certs_d(self, directory: Path) -> Path:
        """Write the CA as DIRECTORY/HOST:PORT/ca.crt (the certs.d layout); returns that dir."""
        assert self.tls is not None
        target = directory / self.host
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.tls.ca_cert, target / "ca.crt")
        return target

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.v2_status() is not None:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not start: {self.command()}\n{self.log_tail()}")

    def v2_status(self) -> int | None:
        """The status of GET /v2/, or None when nothing answers."""
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=context) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (OSError, ssl.SSLError):
            return None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Registry:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class DistributionRegistry(Registry):
    """Debian's docker-registry (the reference implementation of the distribution spec)."""

    kind = "distribution"

    def config_yaml(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.root}",
            "  delete:",
            "    enabled: true",
        ]
        if self.read_only:
            lines += ["  maintenance:", "    readonly:", "      enabled: true"]
        lines += ["http:", f"  addr: {self.addr}", "  secret: berth-test-secret"]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls.cert}", f"    key: {self.tls.key}"]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: berth-test",
                      f"    path: {self.htpasswd}"]
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        config = self.dir / "config.yml"
        config.write_text(self.config_yaml())
        return [DOCKER_REGISTRY, "serve", str(config)]


class BerthRegistry(Registry):
    """berth's own registry server, `berth-registry serve`."""

    kind = "berth"

    def command(self) -> list[str]:
        cmd = [str(BERTH_REGISTRY), "serve", "--addr", self.addr, "--root", str(self.root)]
        if self.htpasswd:
            cmd += ["--htpasswd", str(self.htpasswd)]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        if self.read_only:
            cmd.append("--read-only")
        return cmd


class ThrottledProxy:
    """A TCP forwarder on 127.0.0.1:PORT to `target` ("HOST:PORT") that passes at most
    `rate` bytes a second each way (per connection): pulls and pushes through it are
    slow. A thread per connection, all stopped with `close()`.

    `bytes_down` and `bytes_up` count what it has passed each way, so a test can wait
    until a transfer is under way before it kills something.
    """

    def __init__(self, target: str, rate: int) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.rate = rate
        self.bytes_down = 0
        self.bytes_up = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._pump, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        chunk = max(1, self.rate // 20)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for s in ready:
                    data = s.recv(chunk)
                    if not data:
                        return
                    if s is client:
                        upstream.sendall(data)
                        self.bytes_up += len(data)
                    else:
                        client.sendall(data)
                        self.bytes_down += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accept.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> ThrottledProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


REGISTRY_VAR = "BERTH_TEST_REGISTRY"


def berth_registry_class() -> type[Registry]:
    """BerthRegistry, or DistributionRegistry in its place when BERTH_TEST_REGISTRY=
    distribution (to check a test's expectations against Docker's own pair of peers)."""
    if os.environ.get(REGISTRY_VAR, "berth") == "distribution":
        return DistributionRegistry
    return BerthRegistry


# The store of a berthd, read from its files.

_DIGEST = re.compile(rb"sha256:[0-9a-f]{64}")
_LEASE_TABLES = {"leases", "lease_resources"}


def leaked_blobs(data_root: Path) -> list[str]:
    """What a cut-short pull or push may leave in a berthd's data root, that nothing wants.

    Counts, for a daemon that is stopped or idle:
    - each blob `content/sha256/<hex>` whose digest `sha256:<hex>` appears in no row of
      any table of `berth.db` other than the lease tables (the layer store names each
      layer's tar by diff_id, an image's ID is its config's digest; whatever the
      distribution code records about manifests and compressed blobs is a reference too);
    - each half-written blob `content/sha256/.ingest-*` and each file in `content/spool/`;
    - each extracted layer directory `overlay/layers/<hex>` no `layers` row has as its
      chain ID (a dangling layer), and anything left in `overlay/tmp/`.
    Returns them as paths relative to data_root, sorted; empty means nothing leaked.
    """
    referenced: set[str] = set()
    chain_ids: set[str] = set()
    db_path = data_root / "berth.db"
    if db_path.exists():
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                if table in _LEASE_TABLES or table.startswith("sqlite_"):
                    continue
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, str):
                            value = value.encode()
                        if isinstance(value, bytes):
                            referenced.update(m.decode() for m in _DIGEST.findall(value))
            if "layers" in tables:
                chain_ids = {r[0] for r in db.execute("SELECT chain_id FROM layers")}
        finally:
            db.close()
    leaked: list[str] = []
    blobs = data_root / "content" / "sha256"
    if blobs.is_dir():
        for entry in os.listdir(blobs):
            if entry.startswith(".") or f"sha256:{entry}" not in referenced:
                leaked.append(f"content/sha256/{entry}")
    spool = data_root / "content" / "spool"
    if spool.is_dir():
        leaked += [f"content/spool/{e}" for e in os.listdir(spool)]
    layers = data_root / "overlay" / "layers"
    if layers.is_dir():
        leaked += [f"overlay/layers/{e}" for e in os.listdir(layers)
                   if f"sha256:{e}" not in chain_ids]
    tmp = data_root / "overlay" / "tmp"
    if tmp.is_dir():
        leaked += [f"overlay/tmp/{e}" for e in os.listdir(tmp)]
    return sorted(leaked)
