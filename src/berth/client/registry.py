"""The CLI's registry client: just enough of the distribution API for `berth trust`
(manifests, blobs, monolithic uploads), with the credentials `berth login` stored and
anonymous or Basic-authenticated bearer tokens. The engine has its own client
(berth.distribution); this one is the client's, a program of its own, as the docker
CLI talks to a Notary server itself.

A loopback registry is tried over HTTPS without verification, then plain HTTP, as
Docker treats 127.0.0.0/8 as insecure.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from berth.client import credentials

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


class RegistryClientError(Exception):
    pass


class RegistryClient:
    """Just enough of the distribution API for signatures: manifests, blobs, uploads."""

    def __init__(self, domain: str, path: str, config_flag: str,
                 fail: Callable[[str], Exception] = RegistryClientError) -> None:
        self.domain = domain
        self.path = path
        self.name = f"{domain}/{path}"
        self.fail = fail  # makes the exception a failure raises (the CLI's exit)
        host = domain.rsplit(":", 1)[0].strip("[]")
        self.loopback = host == "localhost" or _is_loopback(host)
        self.base = ""
        self.token = ""
        auth = credentials.auth_config(credentials.key_for_domain(domain), config_flag)
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
            url = path if path.startswith(("http://", "https://")) else f"{scheme}://{self.domain}{path}"
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
        raise self.fail(f"cannot reach the registry {self.domain}: {last}")

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
                 "scope": f"repository:{self.path}:pull,push"}
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
        status, headers, data = self.request("GET", f"/v2/{self.path}/manifests/{reference}",
                                             headers={"Accept": ACCEPT})
        if status == 404:
            return None
        if status != 200:
            raise self.fail(f"reading manifest {reference} of {self.name}: {_error(status, data)}")
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    def blob(self, digest: str) -> bytes:
        status, _, data = self.request("GET", f"/v2/{self.path}/blobs/{digest}")
        if status != 200:
            raise self.fail(f"reading blob {digest} of {self.name}: {_error(status, data)}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise self.fail(f"blob {digest} of {self.name} does not match its digest")
        return data

    def upload(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self.request("HEAD", f"/v2/{self.path}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, body = self.request("POST", f"/v2/{self.path}/blobs/uploads/", b"")
        if status != 202 or "location" not in headers:
            raise self.fail(f"uploading to {self.name}: {_error(status, body)}")
        location = urllib.parse.urljoin(f"{self.base}://{self.domain}/", headers["location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, body = self.request("PUT", location, data, {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise self.fail(f"uploading to {self.name}: {_error(status, body)}")
        return digest

    def put_manifest(self, tag: str, media_type: str, data: bytes) -> None:
        status, _, body = self.request("PUT", f"/v2/{self.path}/manifests/{tag}", data,
                                       {"Content-Type": media_type})
        if status != 201:
            raise self.fail(f"writing manifest {tag} of {self.name}: {_error(status, body)}")


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


