"""The registry's HTTP API over aiohttp: routes of the distribution spec, auth checks,
streaming uploads, and the token endpoint it may serve itself.

It translates HTTP to calls on `Storage` (run in threads: disk and hashing never block
the loop) and the spec's errors back to JSON. It must not hold a blob in memory: bodies
stream to disk in large chunks, and blob GETs are sent with sendfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, unquote

from aiohttp import web

from berth.registry import auth
from berth.registry.config import Settings
from berth.registry.protocol import (
    MAX_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryError,
    check_digest,
    check_name,
    check_reference,
    check_upload_id,
    digest_invalid,
    is_digest,
    paginate,
    parse_content_range,
    parse_manifest,
    parse_page_size,
    upload_range,
)
from berth.registry.storage import Storage, hash_file

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
READ_CHUNK = 1 << 20
WRITE_BATCH = 8 << 20

_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/v2/?"), "base"),
    (re.compile(r"/v2/_catalog"), "catalog"),
    (re.compile(r"/v2/(?P<name>.+)/tags/list"), "tags"),
    (re.compile(r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)"), "manifest"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/uploads/?"), "uploads"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)"), "upload"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)"), "referrers"),
]

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass
class _Hashing:
    """The running sha256 of an upload whose every byte went through this process."""

    sha: Any
    offset: int


def _unauthorized(message: str, challenge: str) -> RegistryError:
    return RegistryError("UNAUTHORIZED", 401, message, None, {"WWW-Authenticate": challenge})


class Registry:
    def __init__(self, settings: Settings, storage: Storage, log: TextIO | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.log = log
        self.htpasswd = auth.Htpasswd.load(Path(settings.htpasswd)) if settings.htpasswd else None
        self.token_key = (auth.load_private_key(Path(settings.token_key))
                          if settings.token_key else None)
        keys: list[auth.PublicKey] = []
        if settings.token_cert:
            keys += auth.load_public_keys(Path(settings.token_cert))
        if self.token_key is not None:
            keys.append(self.token_key.public_key())
        self.token_keys = keys
        self.issuer = settings.token_issuer or "berth-registry"
        self.service = settings.token_service or "berth-registry"
        self.hashes: dict[str, _Hashing] = {}
        self.upload_locks: dict[str, asyncio.Lock] = {}

    # app ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_middleware, self._error_middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(self._add_version)
        app.cleanup_ctx.append(self._purger)
        return app

    async def _purger(self, app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.settings.upload_purge_interval)
                await self.purge()

        await self.purge()
        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def purge(self) -> None:
        purged = await asyncio.to_thread(self.storage.purge_uploads, self.settings.upload_max_age)
        for upload_id in purged:
            self.hashes.pop(upload_id, None)
            self._say(f"purged stale upload {upload_id}")

    def _say(self, line: str) -> None:
        if self.log is not None and not self.settings.quiet:
            print(line, file=self.log, flush=True)

    @staticmethod
    async def _add_version(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[API_VERSION[0]] = API_VERSION[1]
        digest = response.headers.get("Docker-Content-Digest")
        if digest and isinstance(response, web.FileResponse):
            response.headers["ETag"] = f'"{digest}"'  # not aiohttp's mtime-size tag

    @web.middleware
    async def _log_middleware(self, request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                              ) -> web.StreamResponse:
        start = time.monotonic()
        status, size = 500, 0
        try:
            response = await handler(request)
            status = response.status
            size = (response.body_length if response.prepared else 0) or (
                response.content_length or 0)
            return response
        finally:
            ms = (time.monotonic() - start) * 1000
            self._say(f"{request.method} {request.raw_path} {status} {size} {ms:.1f}ms")

    @web.middleware
    async def _error_middleware(self, request: web.Request,
                                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                ) -> web.StreamResponse:
        try:
            return await handler(request)
        except RegistryError as err:
            return _error_response(request, err)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # one line to the log, the spec's UNKNOWN to the client
            self._say(f"error: {request.method} {request.raw_path}: {exc!r}")
            return _error_response(request, RegistryError("UNKNOWN", 500, "unknown error"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.raw_path.split("?", 1)[0])
        if path in ("/token", "/token/") and self.token_key is not None:
            return await self._token(request)
        for pattern, kind in _ROUTES:
            match = pattern.fullmatch(path)
            if match is not None:
                params = match.groupdict()
                if "name" in params:
                    check_name(params["name"])
                handler: Handler = getattr(self, f"_{kind}")
                return await handler(request, params)
        raise web.HTTPNotFound()

    # auth --------------------------------------------------------------------------
    def _realm(self, request: web.Request) -> str:
        if self.settings.token_realm:
            return self.settings.token_realm
        return f"{request.scheme}://{request.host}/token"

    async def _grants(self, request: web.Request) -> auth.Grants | None:
        """Who is asking: None when the request carries no usable credentials."""
        header = request.headers.get("Authorization", "")
        if self.token_keys:
            if not header.lower().startswith("bearer "):
                return None
            try:
                claims = auth.verify_jwt(header[7:].strip(), self.token_keys, self.issuer,
                                         self.service)
            except auth.AuthError:
                return None
            return auth.grants_of_claims(claims)
        if self.htpasswd is not None:
            creds = auth.parse_basic(header)
            if creds is None or not await asyncio.to_thread(self.htpasswd.check, *creds):
                return None
            return auth.Grants(everything=True, subject=creds[0])
        return auth.Grants(everything=True)

    async def _require(self, request: web.Request, kind: str, name: str,
                       actions: tuple[str, ...]) -> auth.Grants:
        grants = await self._grants(request)
        scope = f"{kind}:{name}:{','.join(actions)}" if kind else None
        if self.token_keys:
            if grants is None:
                raise _unauthorized("authentication required", auth.bearer_challenge(
                    self._realm(request), self.service, scope))
            if kind and not all(grants.allows(kind, name, a) for a in actions):
                raise _unauthorized("authentication required", auth.bearer_challenge(
                    self._realm(request), self.service, scope, "insufficient_scope"))
        elif grants is None:
            message = ("authentication required" if "Authorization" not in request.headers
                       else "invalid username or password")
            raise _unauthorized(message, f'Basic realm="{self.settings.htpasswd_realm}"')
        if self.settings.read_only and any(a in ("push", "delete") for a in actions):
            raise RegistryError("UNSUPPORTED", 405,
                                "the operation is unsupported: the registry is read-only")
        return grants

    async def _pull(self, request: web.Request, name: str) -> auth.Grants:
        return await self._require(request, "repository", name, ("pull",))

    async def _push(self, request: web.Request, name: str) -> auth.Grants:
        return await self._require(request, "repository", name, ("pull", "push"))

    async def _delete_access(self, request: web.Request, name: str) -> auth.Grants:
        actions: tuple[str, ...] = ("delete",)
        if self.token_keys:
            grants = await self._grants(request)
            if grants is not None and grants.allows("repository", name, "push"):
                actions = ("push",)  # as distribution's token servers grant: push may delete
        return await self._require(request, "repository", name, actions)

    async def _token(self, request: web.Request) -> web.Response:
        assert self.token_key is not None
        form: dict[str, str] = dict(request.query)
        if request.method == "POST":
            form.update({k: str(v) for k, v in (await request.post()).items()})
        elif request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        scopes = []
        for text in " ".join(request.query.getall("scope", []) + (
                [form["scope"]] if request.method == "POST" and "scope" in form else [])).split():
            with contextlib.suppress(ValueError):
                scopes.append(auth.Scope.parse(text))
        subject = ""
        grant_type = form.get("grant_type", "")
        if grant_type == "refresh_token":
            try:
                claims = auth.verify_jwt(form.get("refresh_token", ""), self.token_keys,
                                         self.issuer, self.service + "#refresh")
            except auth.AuthError as exc:
                return _token_error(401, str(exc))
            subject = str(claims.get("sub", ""))
        else:
            if grant_type == "password":
                creds: tuple[str, str] | None = (form.get("username", ""),
                                                 form.get("password", ""))
            else:
                creds = auth.parse_basic(request.headers.get("Authorization"))
            if creds is not None:
                if self.htpasswd is not None and not await asyncio.to_thread(
                        self.htpasswd.check, *creds):
                    return _token_error(401, "invalid username or password",
                                        f'Basic realm="{self.settings.htpasswd_realm}"')
                subject = creds[0]
            elif self.htpasswd is None:
                subject = "anonymous"
        granted = auth.granted_scopes(scopes, bool(subject))
        now = int(time.time())
        ttl = self.settings.token_ttl
        token = auth.issue_token(self.token_key, self.issuer, self.service, subject, granted,
                                 ttl, now)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        body: dict[str, Any] = {"token": token, "access_token": token, "expires_in": ttl,
                                "issued_at": issued}
        if subject and subject != "anonymous" and (
                form.get("offline_token") == "true" or form.get("access_type") == "offline"
                or grant_type in ("password", "refresh_token")):
            body["refresh_token"] = auth.issue_token(
                self.token_key, self.issuer, self.service + "#refresh", subject, [], 86400 * 30,
                now)
        if granted:
            body["scope"] = " ".join(str(s) for s in granted)
        return web.json_response(body)

    # base, catalog, tags, referrers ------------------------------------------------
    async def _base(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        await self._require(request, "", "", ())
        return web.json_response({})

    async def _catalog(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        await self._require(request, "registry", "catalog", ("*",))
        n = parse_page_size(request.query.get("n"))
        last = request.query.get("last")
        names = await asyncio.to_thread(self.storage.catalog)
        page, more = paginate(names, n, last)
        headers = {}
        if more and page:
            headers["Link"] = f'</v2/_catalog?last={quote(page[-1])}&n={n}>; rel="next"'
        return web.json_response({"repositories": page}, headers=headers)

    async def _tags(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        name = params["name"]
        await self._pull(request, name)
        n = parse_page_size(request.query.get("n"))
        last = request.query.get("last")
        if not await asyncio.to_thread(self.storage.repo_exists, name):
            raise RegistryError("NAME_UNKNOWN", 404, "repository name not known to registry",
                                {"name": name})
        tags = await asyncio.to_thread(self.storage.tags, name)
        page, more = paginate(tags, n, last)
        headers = {}
        if more and page:
            headers["Link"] = f'</v2/{name}/tags/list?last={quote(page[-1])}&n={n}>; rel="next"'
        return web.json_response({"name": name, "tags": page}, headers=headers)

    async def _referrers(self, request: web.Request, params: dict[str, str]
                         ) -> web.StreamResponse:
        name, subject = params["name"], params["digest"]
        await self._pull(request, name)
        check_digest(subject)
        wanted = request.query.get("artifactType")

        def collect() -> list[dict[str, Any]]:
            out = []
            for digest in self.storage.referrers(name, subject):
                body = self.storage.read_blob(digest)
                m = parse_manifest(body, None)
                if wanted and m.artifact_type != wanted:
                    continue
                desc: dict[str, Any] = {"mediaType": m.media_type, "digest": digest,
                                        "size": len(body)}
                if m.artifact_type:
                    desc["artifactType"] = m.artifact_type
                if m.annotations:
                    desc["annotations"] = m.annotations
                out.append(desc)
            return out

        manifests = await asyncio.to_thread(collect)
        headers = {"Content-Type": OCI_INDEX}
        if wanted:
            headers["OCI-Filters-Applied"] = "artifactType"
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        return web.Response(body=body.encode(), headers=headers)

    # blobs -------------------------------------------------------------------------
    async def _blob(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        name, digest = params["name"], params["digest"]
        check_digest(digest)
        if request.method == "DELETE":
            await self._delete_access(request, name)
            await asyncio.to_thread(self.storage.unlink_blob, name, digest)
            return web.Response(status=202, headers={"Docker-Content-Digest": digest})
        if request.method not in ("GET", "HEAD"):
            raise _method_unknown(request)
        await self._pull(request, name)
        size = await asyncio.to_thread(self.storage.repo_blob_size, name, digest)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000",
                   "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return web.Response(status=200, headers=headers)
        return web.FileResponse(self.storage.blob_path(digest), chunk_size=READ_CHUNK,
                                headers=headers)

    # uploads -----------------------------------------------------------------------
    def _upload_headers(self, name: str, upload_id: str, offset: int) -> dict[str, str]:
        return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}",
                "Docker-Upload-UUID": upload_id, "Range": upload_range(offset),
                "Content-Length": "0"}

    async def _uploads(self, request: web.Request, params: dict[str, str]
                       ) -> web.StreamResponse:
        name = params["name"]
        if request.method != "POST":
            raise _method_unknown(request)
        grants = await self._push(request, name)
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source:
            check_digest(mount)
            with contextlib.suppress(RegistryError):
                check_name(source)
                if (grants.allows("repository", source, "pull")
                        and await asyncio.to_thread(self.storage.has_blob, source, mount)):
                    await asyncio.to_thread(self.storage.link_blob, name, mount)
                    return web.Response(status=201, headers={
                        "Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount,
                        "Content-Length": "0"})
        self._check_declared_size(request, 0)
        digest = request.query.get("digest")
        if digest is not None:
            check_digest(digest)
        info = await asyncio.to_thread(self.storage.start_upload, name)
        self.hashes[info.id] = _Hashing(hashlib.sha256(), 0)
        if digest is not None:
            async with self._lock(info.id):
                await self._receive(request, info.id, 0)
                return await self._finish(name, info.id, digest)
        return web.Response(status=202, headers=self._upload_headers(name, info.id, 0))

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self.upload_locks.setdefault(upload_id, asyncio.Lock())

    def _check_declared_size(self, request: web.Request, offset: int) -> None:
        limit = self.settings.max_upload_size
        if limit and request.content_length is not None and offset + request.content_length > limit:
            raise _too_large(limit)

    async def _upload(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        name, upload_id = params["name"], params["upload"]
        check_upload_id(upload_id)
        await self._push(request, name)
        async with self._lock(upload_id):
            info = await asyncio.to_thread(self.storage.get_upload, name, upload_id,
                                           self.settings.upload_max_age)
            if request.method in ("GET", "HEAD"):
                headers = self._upload_headers(name, upload_id, info.size)
                del headers["Content-Length"]
                return web.Response(status=204, headers=headers)
            if request.method == "DELETE":
                await asyncio.to_thread(self.storage.cancel_upload, upload_id)
                self._forget(upload_id)
                return web.Response(status=204)
            if request.method in ("PATCH", "PUT"):
                _check_range(request, name, upload_id, info.size)
            if request.method == "PATCH":
                try:
                    self._check_declared_size(request, info.size)
                except RegistryError:
                    await self._abort(upload_id)
                    raise
                offset = await self._receive(request, upload_id, info.size)
                return web.Response(status=202,
                                    headers=self._upload_headers(name, upload_id, offset))
            if request.method == "PUT":
                digest = request.query.get("digest")
                if digest is None:
                    raise digest_invalid("a digest is required to finish an upload")
                check_digest(digest)
                try:
                    self._check_declared_size(request, info.size)
                except RegistryError:
                    await self._abort(upload_id)
                    raise
                await self._receive(request, upload_id, info.size)
                return await self._finish(name, upload_id, digest)
        raise _method_unknown(request)

    def _forget(self, upload_id: str) -> None:
        self.hashes.pop(upload_id, None)
        self.upload_locks.pop(upload_id, None)

    async def _abort(self, upload_id: str) -> None:
        await asyncio.to_thread(self.storage.cancel_upload, upload_id)
        self._forget(upload_id)

    async def _receive(self, request: web.Request, upload_id: str, offset: int) -> int:
        """Append the request body to the session's data, hashing it as it goes; the new
        size. Writes run in a thread while the next batch is read."""
        path = self.storage.upload_data(upload_id)
        state = self.hashes.get(upload_id)
        if state is not None and state.offset != offset:
            self.hashes.pop(upload_id, None)
            state = None
        limit = self.settings.max_upload_size
        f = await asyncio.to_thread(open, path, "r+b")
        pending: asyncio.Future[None] | None = None

        def write(data: bytes) -> None:
            f.seek(0, os.SEEK_END)
            f.write(data)
            if state is not None:
                state.sha.update(data)

        try:
            batch: list[bytes] = []
            batched = 0
            total = offset
            while True:
                chunk = await request.content.read(READ_CHUNK)
                if chunk:
                    batch.append(chunk)
                    batched += len(chunk)
                    total += len(chunk)
                    if limit and total > limit:
                        raise _too_large(limit)
                if batch and (not chunk or batched >= WRITE_BATCH):
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(write, b"".join(batch)))
                    batch, batched = [], 0
                if not chunk:
                    break
            if pending is not None:
                await pending
                pending = None
        except RegistryError:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
            await asyncio.to_thread(f.close)
            await self._abort(upload_id)
            raise
        except BaseException:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
            self.hashes.pop(upload_id, None)
            await asyncio.to_thread(f.close)
            raise
        await asyncio.to_thread(f.close)
        if state is not None:
            state.offset = total
        return total

    async def _finish(self, name: str, upload_id: str, digest: str) -> web.Response:
        path = self.storage.upload_data(upload_id)
        state = self.hashes.get(upload_id)

        def commit() -> str | None:
            size = path.stat().st_size
            if state is not None and state.offset == size:
                actual = "sha256:" + state.sha.hexdigest()
            else:
                actual, size = hash_file(path)
            if actual != digest:
                return actual
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            self.storage.put_blob_file(path, digest)
            self.storage.link_blob(name, digest)
            self.storage.cancel_upload(upload_id)
            return None

        try:
            mismatch = await asyncio.to_thread(commit)
        except BaseException:
            await self._abort(upload_id)
            raise
        self._forget(upload_id)
        if mismatch is not None:
            await asyncio.to_thread(self.storage.cancel_upload, upload_id)
            raise digest_invalid(f"provided digest did not match uploaded content: "
                                 f"the content is {mismatch}", digest)
        return web.Response(status=201, headers={
            "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest,
            "Content-Length": "0"})

    # manifests ---------------------------------------------------------------------
    async def _manifest(self, request: web.Request, params: dict[str, str]
                        ) -> web.StreamResponse:
        name, ref = params["name"], params["ref"]
        check_reference(ref)
        if request.method in ("GET", "HEAD"):
            await self._pull(request, name)
            digest = await asyncio.to_thread(self.storage.resolve, name, ref)
            body = await asyncio.to_thread(self.storage.read_blob, digest)
            media_type = _media_type_of(body)
            headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"',
                       "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return web.Response(status=200, headers=headers)
            return web.Response(body=body, headers=headers)
        if request.method == "DELETE":
            await self._delete_access(request, name)
            await asyncio.to_thread(self.storage.delete_manifest, name, ref)
            return web.Response(status=202)
        if request.method != "PUT":
            raise _method_unknown(request)
        await self._push(request, name)
        if request.content_length is not None and request.content_length > MAX_MANIFEST:
            raise _manifest_too_large()
        received = bytearray()
        while part := await request.content.read(READ_CHUNK):
            received += part
            if len(received) > MAX_MANIFEST:
                raise _manifest_too_large()
        data = bytes(received)
        manifest = parse_manifest(data, request.headers.get("Content-Type"))
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if is_digest(ref) and ref != actual:
            raise digest_invalid(f"manifest digest {actual} does not match {ref}", ref)

        def store() -> str:
            for blob in manifest.blobs:
                if not self.storage.has_blob(name, blob.digest):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", 400,
                                        "manifest references a blob unknown to the repository",
                                        {"digest": blob.digest})
            for child in manifest.children:
                if not self.storage.has_manifest(name, child.digest):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", 400,
                                        "index references a manifest unknown to the repository",
                                        {"digest": child.digest})
            subject = manifest.subject.digest if manifest.subject else None
            return self.storage.put_manifest(name, data, None if is_digest(ref) else ref, subject)

        digest = await asyncio.to_thread(store)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest,
                   "Content-Length": "0"}
        if manifest.subject is not None:
            headers["OCI-Subject"] = manifest.subject.digest
        return web.Response(status=201, headers=headers)


def _media_type_of(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return OCI_MANIFEST
    if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
        return str(doc["mediaType"])
    return OCI_INDEX if isinstance(doc, dict) and "manifests" in doc else OCI_MANIFEST


def _error_response(request: web.Request, err: RegistryError) -> web.Response:
    headers = dict(err.headers)
    if request.method == "HEAD":
        return web.Response(status=err.status, headers=headers)
    return web.json_response(err.body(), status=err.status, headers=headers)


def _token_error(status: int, message: str, challenge: str = "") -> web.Response:
    headers = {"WWW-Authenticate": challenge} if challenge else {}
    body = {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]}
    return web.json_response(body, status=status, headers=headers)


def _method_unknown(request: web.Request) -> RegistryError:
    return RegistryError("UNSUPPORTED", 405, f"method {request.method} is not supported here")


def _too_large(limit: int) -> RegistryError:
    return RegistryError("SIZE_INVALID", 413, f"upload exceeds the registry's maximum of "
                         f"{limit} bytes", {"max": limit})


def _manifest_too_large() -> RegistryError:
    return RegistryError("MANIFEST_INVALID", 413,
                         f"manifest exceeds the maximum of {MAX_MANIFEST} bytes",
                         {"max": MAX_MANIFEST})


def _check_range(request: web.Request, name: str, upload_id: str, offset: int) -> None:
    """416 when a chunk's Content-Range does not start where the upload ends."""
    value = request.headers.get("Content-Range")
    if value is None or (request.method == "PUT" and not request.content_length):
        return
    try:
        byte_range = parse_content_range(value)
    except ValueError:
        raise _range_invalid(name, upload_id, offset) from None
    if byte_range.start != offset:
        raise _range_invalid(name, upload_id, offset)


def _range_invalid(name: str, upload_id: str, offset: int) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", 416, "invalid Content-Range for this upload",
                         {"offset": offset}, {
                             "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
                             "Range": upload_range(offset), "Docker-Upload-UUID": upload_id})
