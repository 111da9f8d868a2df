"""Credentials and the registry's auth challenge, in pure functions.

It decodes the credentials a client sends (X-Registry-Auth, POST /auth), parses a
401's WWW-Authenticate challenges, builds the token request of the Bearer scheme
(GET with Basic credentials, or a POST of a refresh token as Docker does), reads the
token server's answer, and keeps tokens per scope until they expire. It sends no
requests: berth.distribution.registry does, with what these functions build.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidParameter

CLIENT_ID = "docker"  # what Docker sends as client_id to token servers
DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token server does not say (the spec's default)


@dataclass(frozen=True)
class Credentials:
    """What a client gave to reach a registry (Docker's AuthConfig)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server: str = ""

    @classmethod
    def from_header(cls, value: str | None) -> Credentials:
        """X-Registry-Auth: base64url of an AuthConfig JSON, padded or not (moby's
        DecodeAuthConfig). Absent or empty is anonymous; anything that does not
        decode is InvalidParameter "invalid X-Registry-Auth header: ..." (moby's pull
        route ignores that error and pulls anonymously; its push route returns it)."""
        if not value or not value.strip():
            return cls()
        text = value.strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as e:
            raise InvalidParameter(f"invalid X-Registry-Auth header: {e}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidParameter(f"invalid X-Registry-Auth header: {e}") from None
        if not isinstance(doc, dict):
            raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
        return cls.from_json(doc)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Credentials:
        """An AuthConfig (POST /auth's body, X-Registry-Auth's JSON): username,
        password, serveraddress, identitytoken, registrytoken, or `auth` (base64 of
        user:password) filling in what username and password leave empty. Keys match
        whatever their case, as Go's JSON decoder matches them."""
        fields = {str(k).lower(): v for k, v in doc.items()}

        def text(key: str) -> str:
            value = fields.get(key) or ""
            if not isinstance(value, str):
                raise InvalidParameter(f"invalid auth configuration: {key} is not a string")
            return value

        username, password = text("username"), text("password")
        encoded = text("auth")
        if encoded and not (username and password):
            try:
                user, _, secret = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise InvalidParameter("invalid auth configuration file") from None
            username, password = username or user, password or secret
        return cls(username, password, text("identitytoken"), text("registrytoken"), text("serveraddress"))

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic(self) -> str:
        """The Authorization value of Basic auth with these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def key(self) -> tuple[str, ...]:
        """What tells two callers' credentials apart in the token cache."""
        return (self.username, self.password, self.identity_token, self.registry_token)


# -- challenges -----------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lower case) and params."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a WWW-Authenticate value (RFC 9110 §11.6.1), as
    distribution's challenge package reads them: `Bearer realm="..",service="..",
    scope=".."`, `Basic realm=".."`, several separated by commas. Malformed parts are
    skipped, never raised."""
    found: list[Challenge] = []
    i, n = 0, len(header)
    scheme = ""
    params: dict[str, str] = {}

    def skip_space(j: int) -> int:
        while j < n and header[j] in " \t":
            j += 1
        return j

    def token(j: int) -> tuple[str, int]:
        start = j
        while j < n and header[j] not in ' \t,="':
            j += 1
        return header[start:j], j

    while i < n:
        i = skip_space(i)
        if i < n and header[i] == ",":
            i += 1
            continue
        word, j = token(i)
        if not word:
            i = j + 1
            continue
        k = skip_space(j)
        if k < n and header[k] == "=" and scheme:
            # a parameter of the current challenge (or a token68's padding: skipped)
            k = skip_space(k + 1)
            if k < n and header[k] == '"':
                value_chars: list[str] = []
                k += 1
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    value_chars.append(header[k])
                    k += 1
                value = "".join(value_chars)
                k += 1
            else:
                value, k = token(k)
            params[word.lower()] = value
            i = k
            continue
        if scheme:
            found.append(Challenge(scheme, params))
        scheme, params = word.lower(), {}
        i = j
    if scheme:
        found.append(Challenge(scheme, params))
    return found


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The challenge a client answers: Bearer before Basic, others ignored."""
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


# -- tokens ---------------------------------------------------------------------------


def repository_scope(path: str, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


@dataclass(frozen=True)
class TokenRequest:
    """An HTTP request for a token: method, URL, form body (for POST), headers."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]


def token_request(challenge: Challenge, scopes: list[str], creds: Credentials,
                  offline: bool = False) -> TokenRequest:
    """What Docker sends to the Bearer challenge's realm: a POST of the identity token
    as an OAuth2 refresh token when there is one, else a GET with the credentials as
    Basic auth (none when anonymous); `offline` asks for a refresh token (login)."""
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise InvalidParameter(f"invalid auth challenge: realm {realm!r} is not an http(s) URL")
    service = challenge.params.get("service", "")
    if creds.identity_token:
        form: list[tuple[str, str]] = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                                       ("client_id", CLIENT_ID)]
        if service:
            form.append(("service", service))
        if scopes:
            form.append(("scope", " ".join(scopes)))
        if offline:
            form.append(("access_type", "offline"))
        return TokenRequest("POST", realm, urllib.parse.urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query.extend(("scope", scope) for scope in scopes)
    if offline:
        query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
    if creds.username:
        query.append(("account", creds.username))
    sep = "&" if "?" in realm else "?"
    url = realm + (sep + urllib.parse.urlencode(query) if query else "")
    headers = {} if not (creds.username or creds.password) else {"Authorization": creds.basic()}
    return TokenRequest("GET", url, b"", headers)


@dataclass(frozen=True)
class Token:
    """A token server's answer: the bearer token, when it stops being good (monotonic
    seconds), and the refresh token (login's identity token) if one was given."""

    token: str
    expires: float
    refresh_token: str = ""


def parse_token(body: bytes, now: float | None = None) -> Token:
    """The token server's JSON ({"token"|"access_token", "expires_in", "refresh_token"});
    InvalidParameter when it carries no token."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise InvalidParameter("the token server's answer is not a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise InvalidParameter("the token server's answer has no token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    refresh = doc.get("refresh_token")
    start = time.monotonic() if now is None else now
    return Token(token, start + float(lifetime), refresh if isinstance(refresh, str) else "")


class TokenCache:
    """Tokens by (realm, service, scopes, credentials), dropped a little before they
    expire. Shared by all of one Registry's repositories."""

    MARGIN = 5.0  # seconds before expiry a token stops being handed out

    def __init__(self) -> None:
        self._tokens: dict[tuple[Any, ...], Token] = {}

    @staticmethod
    def key(challenge: Challenge, scopes: list[str], creds: Credentials) -> tuple[Any, ...]:
        return (challenge.params.get("realm", ""), challenge.params.get("service", ""),
                tuple(sorted(scopes)), creds.key())

    def get(self, key: tuple[Any, ...], now: float | None = None) -> Token | None:
        token = self._tokens.get(key)
        moment = time.monotonic() if now is None else now
        if token is None or token.expires - self.MARGIN <= moment:
            self._tokens.pop(key, None)
            return None
        return token

    def put(self, key: tuple[Any, ...], token: Token) -> None:
        self._tokens[key] = token

    def drop(self, key: tuple[Any, ...]) -> None:
        self._tokens.pop(key, None)
