"""`berth trust keygen|sign|verify`: cosign-format signatures, made and checked by the
client, the way `cosign generate-key-pair|sign|verify` make and check them.

- keygen writes PREFIX.key (cosign's encrypted envelope, which skopeo's
  `--sign-by-sigstore-private-key` reads) and PREFIX.pub (PEM);
- sign resolves IMAGE's manifest digest at its registry, signs a simple-signing payload
  naming IMAGE and that digest, and adds it to the `sha256-<hex>.sig` manifest there;
- verify reads that manifest and prints the payloads that verify with the key and name
  the image (the rule berthd's pulls apply by default: matchRepoDigestOrExact).

The signatures live in the registry, not in the engine, so these commands speak to the
registry directly (as the docker CLI's `docker trust` speaks to a Notary server), with
the credentials `berth login` stored. A loopback registry is tried over HTTPS without
verification, then plain HTTP, as Docker treats 127.0.0.0/8 as insecure.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.client import credentials
from berth.errors import InvalidParameter
from berth.images.reference import Reference, ReferenceError, parse_normalized

# berth.trust (and `cryptography` under it) is imported by the commands that use it:
# every `berth` invocation builds this command tree, and most never sign anything

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
PASSWORD_ENV = "COSIGN_PASSWORD"  # cosign's variable, so scripts made for cosign work


class _Registry:
    """Just enough of the distribution API for signatures: manifests, blobs, uploads."""

    def __init__(self, ref: Reference, config_flag: str) -> None:
        self.ref = ref
        host = ref.domain.rsplit(":", 1)[0].strip("[]")
        self.loopback = host == "localhost" or _is_loopback(host)
        self.base = ""
        self.token = ""
        auth = credentials.auth_config(credentials.key_for_domain(ref.domain), config_flag)
        self.basic = ""
        if auth.get("username"):
            pair = f"{auth['username']}:{auth.get('password', '')}".encode()
            self.basic = "Basic " + base64.b64encode(pair).decode()

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.loopback:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        schemes = [self.base] if self.base else (["https", "http"] if self.loopback else ["https"])
        last: Exception | None = None
        for scheme in schemes:
            url = path if path.startswith(("http://", "https://")) else f"{scheme}://{self.ref.domain}{path}"
            try:
                status, got, data = self._send(method, url, body, headers or {})
            except (urllib.error.URLError, ssl.SSLError, ConnectionError) as e:
                last = e
                continue
            self.base = scheme
            if status == 401 and "www-authenticate" in got:
                if self._authenticate(got["www-authenticate"]):
                    status, got, data = self._send(method, url, body, headers or {})
            return status, got, data
        raise CliExit(f"Error: cannot reach the registry {self.ref.domain}: {last}", 1)

    def _send(self, method: str, url: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        elif self.basic:
            req.add_header("Authorization", self.basic)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self._context()) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def _authenticate(self, challenge: str) -> bool:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            return bool(self.basic) and not self.token
        if scheme.lower() != "bearer" or self.token:
            return False
        params = dict(_challenge_params(rest))
        query = {"service": params.get("service", ""),
                 "scope": f"repository:{self.ref.path}:pull,push"}
        url = params.get("realm", "") + "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url)
        if self.basic:
            req.add_header("Authorization", self.basic)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self._context()) as resp:
                doc = json.loads(resp.read())
        except (urllib.error.URLError, ValueError):
            return False
        self.token = str(doc.get("token") or doc.get("access_token") or "")
        return bool(self.token)

    def manifest(self, reference: str) -> tuple[str, bytes] | None:
        """(digest, bytes) of the manifest `reference` names; None when there is none."""
        status, headers, data = self.request("GET", f"/v2/{self.ref.path}/manifests/{reference}",
                                             headers={"Accept": ACCEPT})
        if status == 404:
            return None
        if status != 200:
            raise CliExit(f"Error: reading manifest {reference} of {self.ref.name}: {_error(status, data)}", 1)
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    def blob(self, digest: str) -> bytes:
        status, _, data = self.request("GET", f"/v2/{self.ref.path}/blobs/{digest}")
        if status != 200:
            raise CliExit(f"Error: reading blob {digest} of {self.ref.name}: {_error(status, data)}", 1)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise CliExit(f"Error: blob {digest} of {self.ref.name} does not match its digest", 1)
        return data

    def upload(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self.request("HEAD", f"/v2/{self.ref.path}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, body = self.request("POST", f"/v2/{self.ref.path}/blobs/uploads/", b"")
        if status != 202 or "location" not in headers:
            raise CliExit(f"Error: uploading to {self.ref.name}: {_error(status, body)}", 1)
        location = urllib.parse.urljoin(f"{self.base}://{self.ref.domain}/", headers["location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, body = self.request("PUT", location, data, {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise CliExit(f"Error: uploading to {self.ref.name}: {_error(status, body)}", 1)
        return digest

    def put_manifest(self, tag: str, media_type: str, data: bytes) -> None:
        status, _, body = self.request("PUT", f"/v2/{self.ref.path}/manifests/{tag}", data,
                                       {"Content-Type": media_type})
        if status != 201:
            raise CliExit(f"Error: writing manifest {tag} of {self.ref.name}: {_error(status, body)}", 1)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _challenge_params(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        out.append((key.strip(), value.strip().strip('"')))
    return out


def _error(status: int, body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors) or f"HTTP {status}"
    except (ValueError, AttributeError):
        return f"HTTP {status}"


def _image(text: str) -> Reference:
    try:
        ref = parse_normalized(text)
    except ReferenceError as e:
        raise CliExit(f"Error: {text}: {e}", 1) from None
    return ref if ref.tag or ref.digest else Reference(ref.domain, ref.path, "latest")


def _password(flags: ParsedFlags) -> bytes:
    path = flags["passphrase-file"] or ""
    if path:
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\r\n")
        except OSError as e:
            raise CliExit(f"Error: reading {path}: {e.strerror}", 1) from None
    return os.environ.get(PASSWORD_ENV, "").encode()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliExit(f"Error: reading {path}: {e.strerror}", 1) from None


def run_keygen(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys

    prefix = flags["output-key-prefix"] or "cosign"
    private, public = f"{prefix}.key", f"{prefix}.pub"
    for path in (private, public):
        if os.path.exists(path):
            raise CliExit(f"Error: {path} already exists: not overwriting it", 1)
    key = keys.generate()
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(keys.encrypted_pem(key, _password(flags)))
        with open(public, "wb") as f:
            f.write(keys.public_pem(key))
    except OSError as e:
        raise CliExit(f"Error: writing {e.filename}: {e.strerror}", 1) from None
    cli.out(f"Private key written to {private}")
    cli.out(f"Public key written to {public}")
    return 0


def run_sign(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys, sigstore

    if not flags["key"]:
        raise CliExit("Error: --key is required", 1)
    try:
        key = keys.load_private(_read(flags["key"]), _password(flags))
    except InvalidParameter as e:
        raise CliExit(f"Error: {flags['key']}: {e}", 1) from None
    ref = _image(flags.args[0])
    registry = _Registry(ref, cli.config)
    found = registry.manifest(ref.digest or ref.tag)
    if found is None:
        raise CliExit(f"Error: manifest for {ref.familiar()} not found", 1)
    digest = found[0]
    if ref.digest and digest != ref.digest:
        raise CliExit(f"Error: manifest of {ref.familiar()} does not match its digest", 1)
    payload = sigstore.make_payload(str(ref), digest)
    signature = sigstore.sign(key, payload)
    tag = sigstore.signature_tag(digest)
    layers: list[tuple[str, int, str]] = []
    existing = registry.manifest(tag)
    if existing is not None:  # cosign adds to the signatures already there
        try:
            for layer in json.loads(existing[1]).get("layers") or []:
                ann = layer.get("annotations") or {}
                if layer.get("mediaType") == sigstore.PAYLOAD_MEDIA_TYPE and sigstore.SIGNATURE_ANNOTATION in ann:
                    layers.append((layer["digest"], int(layer["size"]), ann[sigstore.SIGNATURE_ANNOTATION]))
        except (ValueError, KeyError, TypeError, AttributeError):
            layers = []
    layers.append((registry.upload(payload), len(payload), signature))
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d for d, _, _ in layers]}},
                        separators=(",", ":")).encode()
    registry.put_manifest(tag, sigstore.OCI_MANIFEST,
                          sigstore.signature_manifest((registry.upload(config), len(config)), layers))
    cli.out(f"Pushing signature to: {ref.name}:{tag}")
    return 0


def run_verify(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys, sigstore
    from berth.trust.policy import IdentityRule

    if not flags["key"]:
        raise CliExit("Error: --key is required", 1)
    try:
        public = keys.load_public(_read(flags["key"]))
    except InvalidParameter as e:
        raise CliExit(f"Error: {flags['key']}: {e}", 1) from None
    ref = _image(flags.args[0])
    registry = _Registry(ref, cli.config)
    found = registry.manifest(ref.digest or ref.tag)
    if found is None:
        raise CliExit(f"Error: manifest for {ref.familiar()} not found", 1)
    digest = found[0]
    attached = registry.manifest(sigstore.signature_tag(digest))
    reasons: list[str] = []
    verified: list[Any] = []
    if attached is not None:
        try:
            layers = json.loads(attached[1]).get("layers") or []
        except (ValueError, AttributeError):
            layers = []
        for layer in layers[:sigstore.MAX_SIGNATURES]:
            if not isinstance(layer, dict) or layer.get("mediaType") != sigstore.PAYLOAD_MEDIA_TYPE:
                continue
            data = registry.blob(str(layer.get("digest")))
            sig = sigstore.Signature(data, (layer.get("annotations") or {}).get(sigstore.SIGNATURE_ANNOTATION, ""))
            try:
                payload = sigstore.verify([public], sig)
            except InvalidParameter as e:
                reasons.append(str(e))
                continue
            if payload.manifest_digest != digest:
                reasons.append(f"Signature for digest {payload.manifest_digest} does not match")
            elif not IdentityRule().accepts(ref, payload.docker_reference):
                reasons.append(f'Signature for identity "{payload.docker_reference}" is not accepted')
            else:
                verified.append(json.loads(data))
    if not verified:
        why = "; ".join(reasons) if reasons else "no signatures found"
        raise CliExit(f"Error: no matching signatures for {ref.familiar()}: {why}", 1)
    sys.stderr.write(f"\nVerification for {ref} --\nThe following checks were performed on each of these "
                     "signatures:\n  - The cosign claims were validated\n  - The signatures were verified "
                     "against the specified public key\n\n")
    cli.out(json.dumps(verified))
    return 0


def trust_command() -> Command:
    group = Command("trust", short="Sign images and verify their signatures (cosign format)",
                    category="management")
    keygen = Command("keygen", use="keygen [OPTIONS]", short="Generate a key pair for signing images",
                     run=run_keygen, args=("none", 0, 0))
    keygen.flags.add("output-key-prefix", "", "string", "Write PREFIX.key and PREFIX.pub", "cosign")
    keygen.flags.add("passphrase-file", "", "string",
                     f"Read the private key's passphrase from this file (default: ${PASSWORD_ENV}, or none)")
    sign = Command("sign", use="sign [OPTIONS] IMAGE", short="Sign an image in its registry",
                   run=run_sign, args=("exact", 1, 1))
    sign.flags.add("key", "", "string", "Private key (cosign format or PEM)")
    sign.flags.add("passphrase-file", "", "string",
                   f"Read the private key's passphrase from this file (default: ${PASSWORD_ENV}, or none)")
    verify = Command("verify", use="verify [OPTIONS] IMAGE", short="Verify an image's signatures in its registry",
                     run=run_verify, args=("exact", 1, 1))
    verify.flags.add("key", "", "string", "Public key (PEM)")
    group.add(keygen, sign, verify)
    return group
