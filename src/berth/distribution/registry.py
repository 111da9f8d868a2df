"""The registry protocol client: one repository on one registry, over the OCI
distribution spec (Docker's Registry HTTP API v2), through berth.httpclient.

`Registry` (one per berthd) owns the HTTP sessions (one per TLS set-up) and the token
cache; `Repository` speaks to one repository with one caller's credentials: manifests
(GET, HEAD, PUT), blobs (streamed with retries and Range resume, verified against
their digest; uploads streamed or in chunks; cross-repository mounts), tags, and the
auth challenge (Bearer tokens, Basic). Endpoint fallback (mirrors for a docker.io pull,
https then http for an insecure registry) happens inside. Registry errors come out as
berth.errors, one line, worded as Docker words them.

It decides nothing about images: which layers to fetch, the stores, progress
messages, events are the pull and push code's (berth.distribution.pull, .push).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any

from berth import httpclient
from berth.content.digest import is_digest
from berth.distribution.auth import (
    Challenge,
    Credentials,
    Token,
    TokenCache,
    parse_challenges,
    parse_token,
    pick_challenge,
    repository_scope,
    token_request,
)
from berth.distribution.endpoints import (
    DEFAULT_DOMAIN,
    Endpoint,
    RegistryConfig,
    certs_stamp,
    endpoints,
    registry_host,
    server_host,
    tls_context,
)
from berth.distribution.manifest import (
    ACCEPT,
    MAX_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    parse,
)
from berth.errors import (
    BerthError,
    Forbidden,
    InvalidParameter,
    NotFound,
    Unauthorized,
    Unavailable,
)
from berth.images.reference import Reference

__all__ = ["Credentials", "Registry", "RegistryConfig", "Repository", "VerificationError",
           "registry_host"]

HASH_BATCH = 4 << 20  # bytes hashed per trip to a thread
UPLOAD_CHUNK = 4 << 20  # PATCH body pieces handed to aiohttp at once
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class VerificationError(InvalidParameter):
    """A blob whose bytes are not what its descriptor says."""


class RegistryError(BerthError):
    """A registry's answer that is none of the specific errors; status 500."""

    status = 500


class _TooLarge(InvalidParameter):
    """An answer over the size its caller accepts."""


class _Retryable(Exception):
    """A failed blob read that another attempt may get through."""


# -- error answers -------------------------------------------------------------------------


def error_text(status: int, reason: str, body: bytes) -> tuple[str, str]:
    """The registry's error answer as (first error's code, one line): distribution's
    errcode wording "manifest unknown: manifest unknown", several joined by "; "; a body
    that is not error JSON words the status."""
    try:
        doc = json.loads(body)
        errors = doc.get("errors") if isinstance(doc, dict) else None
    except (ValueError, UnicodeDecodeError):
        errors = None
    lines: list[str] = []
    first = ""
    if isinstance(errors, list):
        for err in errors:
            if not isinstance(err, dict):
                continue
            code = str(err.get("code") or "UNKNOWN")
            first = first or code
            message = str(err.get("message") or "")
            words = code.replace("_", " ").lower()
            lines.append(f"{words}: {message}" if message else words)
    if lines:
        return first, "; ".join(lines)
    code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 429: "TOOMANYREQUESTS"}.get(status, "")
    if status == 401:
        return code, "unauthorized: authentication required"
    if status == 403:
        return code, "denied: requested access to the resource is denied"
    return code, f"unexpected status code {status} {reason}".rstrip()


def _token_error(resp: httpclient.Response) -> str:
    """A token server's refusal in one line: registry errcode JSON, its "details"
    (Docker Hub's form), or the status."""
    code, text = error_text(resp.status, resp.reason, resp.body)
    if code and text != error_text(resp.status, resp.reason, b"")[1]:
        return text
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
        doc = json.loads(resp.body)
        detail = doc.get("details") or doc.get("detail") or doc.get("error_description") or doc.get("error")
        if isinstance(detail, str) and detail:
            prefix = "unauthorized: " if resp.status == 401 else ""
            return prefix + detail.splitlines()[0]
    if resp.status == 401:
        return "unauthorized: authentication required"
    return f"unexpected status code {resp.status} {resp.reason}".rstrip()


def _is_digest_ref(reference: str) -> bool:
    return ":" in reference and is_digest(reference)


def _update(hasher: Any, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


async def _sha256(data: bytes) -> str:
    """The digest of `data`, hashed in a thread when it is big enough to hold the loop."""
    if len(data) < 256 << 10:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "sha256:" + (await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest()))


def _next_link(header: str | None, base: str) -> str | None:
    """The rel="next" target of a Link header, resolved against `base`."""
    if not header:
        return None
    for part in header.split(","):
        m = re.match(r'\s*<([^>]*)>\s*;(.*)', part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return urllib.parse.urljoin(base, m.group(1))
    return None


# -- the registry -------------------------------------------------------------------------


class Registry:
    """The client side of every registry berthd talks to: HTTP sessions by TLS set-up,
    tokens by scope. One per berthd; close() at shutdown."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.tokens = TokenCache()
        self.challenges: dict[str, Challenge] = {}  # the last 401's challenge, by endpoint base
        # blobs: no bound on the whole, only on each wait; API calls: bounded as a whole too
        self.limits = httpclient.Limits(connect=config.connect_timeout, read=config.read_timeout, total=None)
        self.api_limits = replace(self.limits, total=config.api_timeout)
        self._sessions: dict[tuple[str, str, bool], tuple[tuple[tuple[str, int, int], ...],
                                                          httpclient.Session]] = {}
        self._stale: list[httpclient.Session] = []
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        sessions = [s for _, s in self._sessions.values()] + self._stale
        self._sessions, self._stale = {}, []
        for session in sessions:
            await session.close()

    async def session(self, endpoint: Endpoint) -> httpclient.Session:
        """The session for `endpoint`'s TLS set-up, made again when its certs.d
        directory has changed (files read in a thread). Repositories ask once per
        endpoint, so certs.d is looked at once per pull, push or login, as Docker does."""
        key = (endpoint.host, endpoint.base.split("://", 1)[0], endpoint.verify)
        stamp = await asyncio.to_thread(certs_stamp, endpoint, self.config) if endpoint.secure else ()
        held = self._sessions.get(key)
        if held is not None and held[0] == stamp:
            return held[1]
        async with self._lock:
            held = self._sessions.get(key)
            if held is not None and held[0] == stamp:
                return held[1]
            try:
                tls = await asyncio.to_thread(tls_context, endpoint, self.config)
            except (OSError, ValueError) as e:
                raise InvalidParameter(f"invalid TLS configuration for {endpoint.host}: {e}") from None
            session = httpclient.Session(limits=self.limits, tls=tls)
            self._sessions[key] = (stamp, session)
            if held is not None:
                self._stale.append(held[1])  # requests may still be on it: closed at close()
            return session

    def repository(self, ref: Reference, creds: Credentials, push: bool = False) -> Repository:
        return Repository(self, ref.domain, ref.path, creds, push, ref)

    async def login(self, server: str, creds: Credentials) -> str:
        """Check `creds` against `server`'s /v2/ (and its token server), as `docker
        login` has the daemon do; the identity token the token server handed out, or
        "". Unauthorized in Docker's words when the registry refuses them."""
        host = server_host(server)
        domain = DEFAULT_DOMAIN if host == registry_host(DEFAULT_DOMAIN) else host
        repo = Repository(self, domain, "", creds, True, None)
        return await repo.login()


# -- one repository -----------------------------------------------------------------------


class Repository:
    """One repository on one registry with one caller's credentials."""

    def __init__(self, registry: Registry, domain: str, path: str, creds: Credentials, push: bool,
                 ref: Reference | None) -> None:
        self.registry = registry
        self.domain = domain
        self.path = path
        self.creds = creds
        self.push = push
        self.ref = ref
        self.endpoints = endpoints(domain, registry.config, push)
        self._pinned: Endpoint | None = None  # the endpoint that answered first
        # the sessions this repository's requests use, looked up (certs.d checked) once
        # per endpoint: a Repository lives for one pull, push or login
        self._sessions: dict[str, httpclient.Session] = {}

    async def _session(self, endpoint: Endpoint) -> httpclient.Session:
        session = self._sessions.get(endpoint.base)
        if session is None:
            session = self._sessions[endpoint.base] = await self.registry.session(endpoint)
        return session

    # -- naming ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The familiar name, as Docker's messages print it."""
        if self.ref is not None:
            return self.ref.familiar_name
        return f"{self.domain}/{self.path}"

    def _ref_text(self, reference: str) -> str:
        """The familiar reference for `reference` (a tag or digest) of this repository."""
        sep = "@" if _is_digest_ref(reference) else ":"
        return f"{self.name}{sep}{reference}"

    def _scopes(self, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        if not self.path:
            return extra
        return (repository_scope(self.path, self.push),) + extra

    # -- endpoints --------------------------------------------------------------------------

    async def _each_endpoint(self, attempt: Callable[[Endpoint], Any]) -> Any:
        """Run `attempt` on the pinned endpoint, or on each in turn until one answers:
        a connection that fails falls through to the next endpoint (https to http for
        an insecure registry); on a mirror any error does, as in Docker."""
        if self._pinned is not None:
            try:
                return await attempt(self._pinned)
            except httpclient.HTTPClientError as e:
                raise Unavailable(str(e)) from None
        last: BaseException | None = None
        for i, endpoint in enumerate(self.endpoints):
            final = i == len(self.endpoints) - 1
            try:
                result = await attempt(endpoint)
            except httpclient.HTTPClientError as e:
                if final:
                    raise Unavailable(str(e)) from None
                last = e
                continue
            except BerthError as e:
                if endpoint.mirror and not final:
                    last = e
                    continue
                raise
            self._pinned = endpoint
            return result
        raise Unavailable(str(last))

    # -- requests with auth -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _open(self, endpoint: Endpoint, method: str, url: str, *,
                    headers: Mapping[str, str] | None = None, body: Any = b"",
                    scopes: tuple[str, ...] | None = None,
                    limits: httpclient.Limits | None = None) -> AsyncIterator[httpclient.StreamedResponse]:
        """One request to `endpoint` with this caller's auth; a 401 is answered (a
        token fetched for the challenge, or Basic) and the request sent again once,
        when its body can be sent again."""
        session = await self._session(endpoint)
        wanted = self._scopes() if scopes is None else scopes
        request = f'{method.capitalize()} "{url}"'
        for attempt in range(2):
            sent = dict(headers or {})
            auth = await self._authorization(endpoint, wanted, False, request)
            if auth:
                sent["Authorization"] = auth
            async with session.stream(method, url, body=body, headers=sent,
                                      limits=limits or self.registry.limits) as resp:
                challenge = pick_challenge(parse_challenges(resp.headers.get("WWW-Authenticate", "")))
                if resp.status == 401 and attempt == 0 and isinstance(body, bytes) and challenge is not None:
                    known = self.registry.challenges.get(endpoint.base)
                    self.registry.challenges[endpoint.base] = challenge
                    if challenge.scheme == "bearer" and auth and known is not None:
                        # the token was refused (expired, revoked): ask for a fresh one
                        self.registry.tokens.drop(self.registry.tokens.key(challenge, list(wanted), self.creds))
                    retry = await self._authorization(endpoint, wanted, True, request)
                    if retry and retry != auth:
                        continue
                yield resp
                return

    async def _authorization(self, endpoint: Endpoint, scopes: tuple[str, ...], fetch: bool, request: str) -> str:
        """The Authorization header for `scopes` on `endpoint`: Basic, a cached token,
        or (when `fetch`) one asked of the token server for `request` ('Get "URL"')."""
        if self.creds.registry_token:
            return "Bearer " + self.creds.registry_token
        challenge = self.registry.challenges.get(endpoint.base)
        if challenge is None:
            return ""
        if challenge.scheme == "basic":
            return "" if self.creds.anonymous else self.creds.basic()
        cache = self.registry.tokens
        key = cache.key(challenge, list(scopes), self.creds)
        token = cache.get(key)
        if token is None and fetch:
            token = await self._fetch_token(endpoint, challenge, list(scopes), False, request)
            cache.put(key, token)
        return "" if token is None else "Bearer " + token.token

    async def _fetch_token(self, endpoint: Endpoint, challenge: Challenge, scopes: list[str], offline: bool,
                           request: str) -> Token:
        """A token from the challenge's realm, over `endpoint`'s TLS set-up as Docker's
        auth transport does; a refusal is Unauthorized naming the `request` it was for
        ('Get "URL"'), as Docker's transport reports it."""
        req = token_request(challenge, scopes, self.creds, offline)
        session = await self._session(endpoint)
        try:
            resp = await session.request(req.method, req.url, body=req.body, headers=req.headers,
                                         limits=self.registry.api_limits)
            if req.method == "POST" and resp.status in (404, 405) and (self.creds.username or self.creds.password):
                # a token server without OAuth2 POST: GET with Basic, as Docker falls back
                plain = Credentials(self.creds.username, self.creds.password)
                req = token_request(challenge, scopes, plain, offline)
                resp = await session.request(req.method, req.url, body=req.body, headers=req.headers,
                                             limits=self.registry.api_limits)
        except httpclient.HTTPClientError as e:
            raise Unavailable(str(e)) from None
        if resp.status != 200:
            error = Unauthorized if resp.status in (401, 403) else RegistryError
            raise error(f"{request}: {_token_error(resp)}")
        return parse_token(resp.body)

    async def _call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                    body: bytes = b"", scopes: tuple[str, ...] | None = None, limit: int = 1 << 20,
                    url: str = "") -> tuple[Endpoint, httpclient.Response]:
        """A request whose answer is read whole (capped at `limit`), on the first
        endpoint that answers; `path` is under the endpoint's base (or `url` whole)."""
        async def attempt(endpoint: Endpoint) -> tuple[Endpoint, httpclient.Response]:
            target = url or endpoint.base + path
            async with self._open(endpoint, method, target, headers=headers, body=body, scopes=scopes,
                                  limits=self.registry.api_limits) as resp:
                try:
                    data = b"" if method == "HEAD" else await resp.read(limit)
                except httpclient.BodyTooLarge:
                    raise _TooLarge(f'{method.capitalize()} "{target}": the answer is over the limit of '
                                    f"{limit} bytes") from None
                return endpoint, httpclient.Response(resp.url, resp.status, resp.reason, resp.headers, data)
        result: tuple[Endpoint, httpclient.Response] = await self._each_endpoint(attempt)
        return result

    # -- errors -----------------------------------------------------------------------------

    def _pull_error(self, reference: str, resp: httpclient.Response) -> BerthError:
        """A failed pull-side answer in Docker's words (moby's TranslatePullError)."""
        code, text = error_text(resp.status, resp.reason, resp.body)
        if code == "MANIFEST_UNKNOWN" or (resp.status == 404 and code in ("", "NOT_FOUND")):
            if code != "MANIFEST_UNKNOWN":  # a HEAD's empty 404, or a body that is not errcode JSON
                text = "manifest unknown: manifest unknown"
            return NotFound(f"manifest for {self._ref_text(reference)} not found: {text}")
        if code == "NAME_UNKNOWN":
            return NotFound(f"repository {self.name} not found: {text}")
        if code in ("DENIED", "UNAUTHORIZED") or resp.status in (401, 403):
            message = (f"pull access denied for {self.name}, repository does not exist or may require "
                       f"'docker login': {text}")
            return Unauthorized(message) if resp.status == 401 else NotFound(message)
        if code == "TOOMANYREQUESTS" or resp.status == 429:
            return Unavailable(text)
        if code == "BLOB_UNKNOWN":
            return NotFound(text)
        return RegistryError(text)

    def _push_error(self, resp: httpclient.Response) -> BerthError:
        code, text = error_text(resp.status, resp.reason, resp.body)
        if resp.status == 401 or code == "UNAUTHORIZED":
            return Unauthorized(text)
        if resp.status == 403 or code == "DENIED":
            return Forbidden(text)
        if resp.status == 404 or code.endswith("_UNKNOWN"):
            return NotFound(text)
        if resp.status in (400, 413) or code.endswith("_INVALID") or code == "SIZE_INVALID":
            return InvalidParameter(text)
        if resp.status == 429:
            return Unavailable(text)
        return RegistryError(text)

    # -- manifests --------------------------------------------------------------------------

    def _manifest_path(self, reference: str) -> str:
        return f"/v2/{self.path}/manifests/{reference}"

    async def manifest(self, reference: str) -> ImageManifest | ImageIndex:
        """The manifest or index `reference` (a tag or a digest) names; by digest, its
        bytes are checked against it. Schema 1, an oversized or malformed document:
        InvalidParameter."""
        try:
            _, resp = await self._call("GET", self._manifest_path(reference),
                                       headers={"Accept": ", ".join(ACCEPT)}, limit=MAX_MANIFEST)
        except _TooLarge:
            raise InvalidParameter(f"manifest for {self._ref_text(reference)} is over the limit of "
                                   f"{MAX_MANIFEST} bytes") from None
        if resp.status != 200:
            raise self._pull_error(reference, resp)
        digest = await _sha256(resp.body)
        if _is_digest_ref(reference) and digest != reference:
            raise VerificationError(f"manifest verification failed for digest {reference}")
        name = self.ref.name if self.ref is not None else f"{self.domain}/{self.path}"
        if self.ref is not None:
            name += ("@" if _is_digest_ref(reference) else ":") + reference
        return parse(resp.headers.get("Content-Type", ""), resp.body, digest, name)

    async def resolve(self, reference: str) -> Descriptor | None:
        """The descriptor of the manifest `reference` names (HEAD; a GET when the
        registry gives no Docker-Content-Digest); None when the registry has none."""
        _, resp = await self._call("HEAD", self._manifest_path(reference), headers={"Accept": ", ".join(ACCEPT)})
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._pull_error(reference, resp)
        digest = resp.headers.get("Docker-Content-Digest", "")
        media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
        size = resp.headers.get("Content-Length", "")
        if not is_digest(digest) or not size.isdigit() or _is_digest_ref(reference) and digest != reference:
            try:
                doc = await self.manifest(reference)
            except NotFound:
                return None
            return Descriptor(doc.media_type, doc.digest, len(doc.raw))
        return Descriptor(media_type, digest, int(size))

    async def put_manifest(self, reference: str, media_type: str, raw: bytes) -> str:
        """PUT a manifest (or index) under a tag or its digest; its digest."""
        _, resp = await self._call("PUT", self._manifest_path(reference), headers={"Content-Type": media_type},
                                   body=raw)
        if resp.status not in (200, 201, 202):
            raise self._push_error(resp)
        digest = await _sha256(raw)
        told = resp.headers.get("Docker-Content-Digest", "")
        if told and told != digest and told.startswith("sha256:"):
            raise VerificationError(f"the registry stored manifest {told}, expected {digest}")
        return digest

    async def tags(self, page_size: int | None = None) -> list[str]:
        """Every tag of the repository, following the Link header's pages (of
        `page_size` tags, or the registry's choice)."""
        found: list[str] = []
        url = ""
        path = f"/v2/{self.path}/tags/list" + (f"?n={page_size}" if page_size else "")
        for _ in range(10000):
            endpoint, resp = await self._call("GET", path, url=url)
            if resp.status != 200:
                raise self._pull_error("latest", resp) if resp.status != 404 else \
                    NotFound(f"repository {self.name} not found: {error_text(resp.status, resp.reason, resp.body)[1]}")
            try:
                doc = json.loads(resp.body)
                page = doc.get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"invalid tag list from {self.domain} for {self.path}") from None
            found.extend(t for t in page if isinstance(t, str))
            nxt = _next_link(resp.headers.get("Link"), resp.url)
            if nxt is None:
                return found
            url = nxt
        return found

    # -- blobs ------------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        return f"/v2/{self.path}/blobs/{digest}"

    async def blob_size(self, digest: str) -> int | None:
        """The size of blob `digest` in this repository (HEAD); None when absent."""
        _, resp = await self._call("HEAD", self._blob_path(digest))
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._push_error(resp) if self.push else self._pull_error(digest, resp)
        size = resp.headers.get("Content-Length", "")
        return int(size) if size.isdigit() else None

    async def blob_bytes(self, desc: Descriptor, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) whole, verified."""
        if desc.size > limit:
            raise InvalidParameter(f"blob {desc.digest} is {desc.size} bytes, over the limit of {limit}")
        return b"".join([chunk async for chunk in self.blob_chunks(desc)])

    async def blob_chunks(self, desc: Descriptor, progress: Callable[[int], None] | None = None,
                          verify: bool = True) -> AsyncGenerator[bytes, None]:
        """Blob `desc` as one stream of pieces, verified at the end against its size
        and digest (VerificationError naming the digest instead of the stream's end).
        A broken connection or a 5xx is retried, config.retries attempts in all with
        growing pauses, resuming at the byte reached (Range; a registry that ignores
        Range is read past what was already delivered). `progress(bytes so far)`.
        `verify` False leaves the digest to a consumer that hashes anyway (the content
        store's ingest), as hashing twice halves the throughput; the size is still
        checked."""
        config = self.registry.config
        hasher = hashlib.sha256()
        got = 0
        pending: list[bytes] = []
        pending_size = 0
        hashing: asyncio.Future[None] | None = None  # the previous batch, hashed in a thread meanwhile
        failures = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with contextlib.aclosing(self._blob_attempt(desc, got)) as attempt:
                        async for chunk in attempt:
                            if got + len(chunk) > desc.size:
                                raise VerificationError(
                                    f"filesystem layer verification failed for digest {desc.digest}")
                            got += len(chunk)
                            if verify:
                                pending.append(chunk)
                                pending_size += len(chunk)
                            if pending_size >= HASH_BATCH:
                                if hashing is not None:
                                    await hashing
                                hashing = loop.run_in_executor(None, _update, hasher, pending)
                                pending, pending_size = [], 0
                            yield chunk
                            if progress is not None:
                                progress(got)
                    if got < desc.size:
                        # the answer ended cleanly, short of the size: the registry has no more
                        # to give, and a retry would get the same (dockerd fails at once too);
                        # a connection that breaks off is an HTTPClientError, and retried
                        raise VerificationError(f"filesystem layer verification failed for digest {desc.digest}")
                    break
                except (_Retryable, httpclient.HTTPClientError) as e:
                    failures += 1
                    if failures >= max(config.retries, 1):
                        if isinstance(e, _Retryable) and got < desc.size:
                            raise VerificationError(
                                f"filesystem layer verification failed for digest {desc.digest}") from None
                        raise Unavailable(str(e)) from None
                    await asyncio.sleep(config.retry_delay * (2 ** (failures - 1)))
            if hashing is not None:
                await hashing
                hashing = None
            if pending and verify:
                await asyncio.to_thread(_update, hasher, pending)
        finally:
            if hashing is not None:  # abandoned: let the thread finish, nobody reads the hash
                hashing.add_done_callback(lambda f: f.exception())
        if verify and "sha256:" + hasher.hexdigest() != desc.digest:
            raise VerificationError(f"filesystem layer verification failed for digest {desc.digest}")

    async def _blob_attempt(self, desc: Descriptor, offset: int) -> AsyncGenerator[bytes, None]:
        """One GET of the blob from `offset` on; retryable failures as _Retryable."""
        endpoint = self._pinned
        if endpoint is None:
            # no request has pinned an endpoint yet: a HEAD finds the one that answers
            await self.blob_size(desc.digest)
            endpoint = self._pinned
            assert endpoint is not None
        # identity: a blob's bytes are what its digest names, never re-encoded on the way
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        async with self._open(endpoint, "GET", endpoint.base + self._blob_path(desc.digest),
                              headers=headers) as resp:
            if resp.status in _RETRY_STATUS:
                raise _Retryable(f'Get "{resp.url}": status {resp.status} {resp.reason}')
            if resp.status == 416 and offset >= desc.size:
                return
            if resp.status not in (200, 206):
                body = await resp.read(1 << 16)
                answer = httpclient.Response(resp.url, resp.status, resp.reason, resp.headers, body)
                if resp.status == 404:
                    _, text = error_text(resp.status, resp.reason, body)
                    raise NotFound(f"blob {desc.digest} not found in {self.name}: {text}")
                raise self._pull_error(desc.digest, answer)
            skip = offset
            if resp.status == 206:
                m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
                start = int(m.group(1)) if m else offset
                if start > offset:
                    raise _Retryable(f"the registry resumed {desc.digest} at {start}, not {offset}")
                skip = offset - start
            async for chunk in resp.chunks():
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                yield chunk

    async def mount_blob(self, digest: str, from_repo: str) -> bool:
        """Mount blob `digest` from repository `from_repo` of the same registry; False
        when the registry started an upload instead (that session is cancelled)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        scopes = self._scopes((repository_scope(from_repo, False),))
        endpoint, resp = await self._call("POST", f"/v2/{self.path}/blobs/uploads/?{query}", scopes=scopes)
        if resp.status == 201:
            return True
        if resp.status == 202:
            location = resp.headers.get("Location")
            if location:
                with contextlib.suppress(BerthError, httpclient.HTTPClientError):
                    await self._call("DELETE", "", url=urllib.parse.urljoin(resp.url, location))
            return False
        raise self._push_error(resp)

    async def upload(self, chunks: AsyncIterator[bytes], progress: Callable[[int], None] | None = None,
                     chunk_size: int | None = None,
                     media_type: str = "application/octet-stream") -> Descriptor:
        """Upload a blob from `chunks`: a session (POST), its bytes (one streamed PATCH,
        as Docker; or PATCHes of `chunk_size` with Content-Range), then PUT ?digest= of
        what was sent, hashed on the way. The descriptor of what was stored."""
        endpoint, resp = await self._call("POST", f"/v2/{self.path}/blobs/uploads/")
        if resp.status != 202:
            raise self._push_error(resp)
        location = self._location(resp)
        hasher = hashlib.sha256()
        sent = 0

        source_error: BaseException | None = None  # the caller's iterator failed, not the registry

        async def counted(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            nonlocal sent, source_error
            pending: list[bytes] = []
            pending_size = 0
            pieces = aiter(source)
            while True:
                try:
                    piece = await anext(pieces)
                except StopAsyncIteration:
                    break
                except BaseException as e:
                    source_error = e
                    raise
                if not piece:
                    continue
                pending.append(piece)
                pending_size += len(piece)
                if pending_size >= UPLOAD_CHUNK:
                    await asyncio.to_thread(_update, hasher, pending)
                    data = b"".join(pending)
                    pending, pending_size = [], 0
                    yield data
                    sent += len(data)
                    if progress is not None:
                        progress(sent)
            if pending:
                await asyncio.to_thread(_update, hasher, pending)
                data = b"".join(pending)
                yield data
                sent += len(data)
                if progress is not None:
                    progress(sent)

        try:
            if chunk_size is None:
                location = await self._patch(endpoint, location, counted(chunks), None)
            else:
                offset = 0
                async for piece in _rechunk(counted(chunks), chunk_size):
                    location = await self._patch(endpoint, location, piece, (offset, offset + len(piece) - 1))
                    offset += len(piece)
            digest = "sha256:" + hasher.hexdigest()
            sep = "&" if "?" in location else "?"
            put_url = location + sep + urllib.parse.urlencode({"digest": digest})
            _, resp = await self._call("PUT", "", url=put_url, headers={"Content-Length": "0"})
            if resp.status not in (201, 204):
                raise self._push_error(resp)
        except BaseException as e:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._cancel_upload(location))
            if source_error is not None and e is not source_error:
                raise source_error from None
            raise
        return Descriptor(media_type, digest, sent)

    async def upload_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Upload a small blob (a config) monolithically: a session (POST), then one PUT
        ?digest= carrying the bytes."""
        digest = await _sha256(data)
        endpoint, resp = await self._call("POST", f"/v2/{self.path}/blobs/uploads/")
        if resp.status != 202:
            raise self._push_error(resp)
        location = self._location(resp)
        sep = "&" if "?" in location else "?"
        try:
            _, resp = await self._call("PUT", "", url=location + sep + urllib.parse.urlencode({"digest": digest}),
                                       headers={"Content-Type": "application/octet-stream"}, body=data)
            if resp.status not in (201, 204):
                raise self._push_error(resp)
        except BaseException:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._cancel_upload(location))
            raise
        return Descriptor(media_type, digest, len(data))

    async def _cancel_upload(self, location: str) -> None:
        """Best effort: a session the registry no longer knows (a PATCH broke off
        mid-way) is its own stale-upload purge's to clear."""
        with contextlib.suppress(BerthError, httpclient.HTTPClientError):
            await self._call("DELETE", "", url=location)

    def _location(self, resp: httpclient.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"the registry {self.domain} started an upload without a Location")
        return urllib.parse.urljoin(resp.url, location)

    async def _patch(self, endpoint: Endpoint, location: str, body: Any, span: tuple[int, int] | None) -> str:
        """One PATCH of an upload session; the session's next Location."""
        headers = {"Content-Type": "application/octet-stream"}
        if span is not None:
            headers["Content-Range"] = f"{span[0]}-{span[1]}"
            headers["Content-Length"] = str(span[1] - span[0] + 1)
        try:
            async with self._open(endpoint, "PATCH", location, headers=headers, body=body) as resp:
                data = await resp.read(1 << 16)
                answer = httpclient.Response(resp.url, resp.status, resp.reason, resp.headers, data)
        except httpclient.HTTPClientError as e:
            raise Unavailable(str(e)) from None
        if answer.status != 202:
            raise self._push_error(answer)
        return self._location(answer)

    # -- login ------------------------------------------------------------------------------

    async def login(self) -> str:
        """GET /v2/ with the credentials (a token fetched for a Bearer challenge, with
        offline access); the refresh token handed out, or ""."""
        async def attempt(endpoint: Endpoint) -> str:
            session = await self._session(endpoint)
            url = endpoint.base + "/v2/"
            resp = await session.request("GET", url, limits=self.registry.api_limits)
            if resp.status == 200:
                return ""
            challenge = pick_challenge(parse_challenges(resp.headers.get("WWW-Authenticate", "")))
            if resp.status != 401 or challenge is None:
                raise RegistryError(f"login attempt to {url} failed with status: {resp.status} {resp.reason}")
            headers: dict[str, str] = {}
            refresh = ""
            if challenge.scheme == "basic":
                headers["Authorization"] = self.creds.basic()
            else:
                token = await self._fetch_token(endpoint, challenge, [], True, f'Get "{url}"')
                headers["Authorization"] = "Bearer " + token.token
                refresh = token.refresh_token
            resp = await session.request("GET", url, headers=headers, limits=self.registry.api_limits)
            if resp.status == 401:
                raise Unauthorized(f"login attempt to {url} failed with status: {resp.status} {resp.reason}")
            if resp.status != 200:
                raise RegistryError(f"login attempt to {url} failed with status: {resp.status} {resp.reason}")
            return refresh
        result: str = await self._each_endpoint(attempt)
        return result


async def _rechunk(source: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """`source` re-cut into pieces of exactly `size` bytes (the last may be shorter)."""
    buffer = bytearray()
    async for piece in source:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
