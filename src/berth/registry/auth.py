"""Who may do what: htpasswd (bcrypt) credentials, JSON Web Tokens as Docker's token
auth uses them (ES256 and RS256), scopes, and the 401 challenges.

Pure apart from reading the key, certificate and htpasswd files at start-up; bcrypt is
slow by design, so the server calls `Htpasswd.check` from a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

LEEWAY = 60


class AuthError(Exception):
    """Credentials or a token that do not hold; the message says why."""


class Htpasswd:
    """`user:hash` lines as `htpasswd -B` writes them; only bcrypt hashes count."""

    def __init__(self, entries: dict[str, bytes]) -> None:
        self.entries = entries
        self._good: set[tuple[str, bytes]] = set()

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        entries: dict[str, bytes] = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            user, _, hashed = line.partition(":")
            entries[user] = hashed.strip().encode()
        return cls(entries)

    def check(self, user: str, password: str) -> bool:
        hashed = self.entries.get(user)
        if hashed is None or not hashed.startswith((b"$2y$", b"$2a$", b"$2b$")):
            return False
        key = (user, hashlib.sha256(hashed + b"\0" + password.encode()).digest())
        if key in self._good:
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed.replace(b"$2y$", b"$2b$", 1))
        except ValueError:
            return False
        if ok:
            self._good.add(key)
        return ok


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


@dataclass(frozen=True)
class Scope:
    """`repository:NAME:pull,push`, `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"malformed scope: {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))


@dataclass
class Grants:
    """What a request may do: everything (no auth configured) or a set of scopes."""

    everything: bool = False
    access: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    subject: str = ""

    def allows(self, kind: str, name: str, action: str) -> bool:
        if self.everything:
            return True
        actions = self.access.get((kind, name), set())
        return action in actions or "*" in actions


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_public_keys(path: Path) -> list[PublicKey]:
    """The public keys of every certificate in a PEM bundle (or a bare public key)."""
    data = path.read_bytes()
    keys: list[PublicKey] = []
    try:
        if b"CERTIFICATE" in data:
            for cert in x509.load_pem_x509_certificates(data):
                key = cert.public_key()
                if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
                    keys.append(key)
        else:
            bare = serialization.load_pem_public_key(data)
            if isinstance(bare, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
                keys.append(bare)
    except ValueError as exc:
        raise ValueError(f"{path}: not a PEM certificate bundle or public key") from exc
    if not keys:
        raise ValueError(f"no EC or RSA public key in {path}")
    return keys


def load_private_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"{path}: only EC (P-256) and RSA keys sign tokens")
    return key


def key_id(key: PublicKey) -> str:
    """libtrust's key id, as Docker's token servers put in "kid"."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


def sign_jwt(claims: dict[str, Any], key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES256"
    else:
        alg = "RS256"
    header = {"typ": "JWT", "alg": alg, "kid": key_id(key.public_key())}
    signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64(json.dumps(claims, separators=(",", ":")).encode()))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(sig)


def _verify_signature(alg: str, key: PublicKey, signed: bytes, sig: bytes) -> bool:
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(sig) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


def verify_jwt(token: str, keys: Iterable[PublicKey], issuer: str, audience: str,
               now: float | None = None) -> dict[str, Any]:
    """The claims of a token signed by one of `keys` for `audience` by `issuer`, still
    valid; AuthError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed token")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("malformed token")
    alg = header.get("alg")
    if alg not in ("ES256", "RS256"):
        raise AuthError(f"token signed with unsupported algorithm {alg!r}")
    signed = (parts[0] + "." + parts[1]).encode()
    if not any(_verify_signature(alg, key, signed, sig) for key in keys):
        raise AuthError("token signature does not verify")
    if claims.get("iss") != issuer:
        raise AuthError(f"token issuer {claims.get('iss')!r} is not {issuer!r}")
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise AuthError(f"token audience {aud!r} is not {audience!r}")
    t = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or t > exp + LEEWAY:
        raise AuthError("token expired")
    if isinstance(nbf, (int, float)) and t < nbf - LEEWAY:
        raise AuthError("token not yet valid")
    return claims


def grants_of_claims(claims: dict[str, Any]) -> Grants:
    grants = Grants(subject=str(claims.get("sub", "")))
    for entry in claims.get("access") or []:
        if isinstance(entry, dict):
            key = (str(entry.get("type", "")), str(entry.get("name", "")))
            grants.access.setdefault(key, set()).update(str(a) for a in entry.get("actions") or [])
    return grants


def issue_token(key: PrivateKey, issuer: str, service: str, subject: str,
                scopes: Iterable[Scope], ttl: int, now: float | None = None) -> str:
    t = int(time.time() if now is None else now)
    claims = {
        "iss": issuer, "sub": subject, "aud": service, "exp": t + ttl, "nbf": t - 1,
        "iat": t, "jti": uuid.uuid4().hex,
        "access": [{"type": s.type, "name": s.name, "actions": list(s.actions)}
                   for s in scopes],
    }
    return sign_jwt(claims, key)


def granted_scopes(requested: Iterable[Scope], allowed: bool) -> list[Scope]:
    """What the token server gives an authenticated (`allowed`) user: every action asked
    for on repositories and the catalog; anonymous users get nothing."""
    if not allowed:
        return []
    out = []
    for s in requested:
        if s.type in ("repository", "registry"):
            actions = tuple(a for a in s.actions if a in ("pull", "push", "delete", "*"))
            if actions:
                out.append(Scope(s.type, s.name, actions))
    return out


def bearer_challenge(realm: str, service: str, scope: str | None, error: str = "") -> str:
    parts = [f'realm="{realm}"', f'service="{service}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)
