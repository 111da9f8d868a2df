"""htpasswd, JWT signing and verifying (ES256, RS256), scopes, challenges."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from berth.registry import auth


def _htpasswd(tmp_path: Path) -> Path:
    # `htpasswd -B` writes $2y$ hashes; bcrypt's library writes $2b$: both must work
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\nalice:{hashed.replace('$2b$', '$2y$', 1)}\n"
                    f"bob:{hashed}\nmallory:{{SHA}}plain\n")
    return path


def test_htpasswd(tmp_path: Path) -> None:
    users = auth.Htpasswd.load(_htpasswd(tmp_path))
    assert users.check("alice", "s3cret")
    assert users.check("alice", "s3cret")  # cached
    assert users.check("bob", "s3cret")
    assert not users.check("alice", "wrong")
    assert not users.check("mallory", "plain")
    assert not users.check("nobody", "s3cret")


def test_parse_basic() -> None:
    header = "Basic " + base64.b64encode(b"alice:pa:ss").decode()
    assert auth.parse_basic(header) == ("alice", "pa:ss")
    assert auth.parse_basic("Basic !!!") is None
    assert auth.parse_basic("Bearer x") is None
    assert auth.parse_basic(None) is None


def test_scope_parse() -> None:
    s = auth.Scope.parse("repository:library/busybox:pull,push")
    assert (s.type, s.name, s.actions) == ("repository", "library/busybox", ("pull", "push"))
    assert str(s) == "repository:library/busybox:pull,push"
    # a name with a port keeps its colons
    assert auth.Scope.parse("repository:localhost:5000/a:pull").name == "localhost:5000/a"
    assert auth.Scope.parse("registry:catalog:*").actions == ("*",)


def _cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> Path:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("make_key", [lambda: ec.generate_private_key(ec.SECP256R1()),
                                      lambda: rsa.generate_private_key(65537, 2048)],
                         ids=["ES256", "RS256"])
def test_jwt_round_trip(tmp_path: Path, make_key: object) -> None:
    key = make_key()  # type: ignore[operator]
    keys = auth.load_public_keys(_cert(key, tmp_path / "cert.pem"))
    scopes = [auth.Scope("repository", "a/b", ("pull", "push"))]
    token = auth.issue_token(key, "issuer", "svc", "alice", scopes, 300, now=1000)
    claims = auth.verify_jwt(token, keys, "issuer", "svc", now=1100)
    grants = auth.grants_of_claims(claims)
    assert grants.subject == "alice"
    assert grants.allows("repository", "a/b", "push")
    assert not grants.allows("repository", "a/c", "pull")
    with pytest.raises(auth.AuthError, match="expired"):
        auth.verify_jwt(token, keys, "issuer", "svc", now=1000 + 300 + auth.LEEWAY + 1)
    with pytest.raises(auth.AuthError, match="issuer"):
        auth.verify_jwt(token, keys, "other", "svc", now=1100)
    with pytest.raises(auth.AuthError, match="audience"):
        auth.verify_jwt(token, keys, "issuer", "other", now=1100)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(auth.AuthError, match="signature"):
        auth.verify_jwt(token, [other.public_key()], "issuer", "svc", now=1100)
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["access"][0]["name"] = "c/d"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(auth.AuthError, match="signature"):
        auth.verify_jwt(f"{head}.{forged_body}.{sig}", keys, "issuer", "svc", now=1100)


def test_jwt_refuses_none_algorithm() -> None:
    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"iss":"i","aud":"s","exp":9e9}').rstrip(b"=").decode()
    with pytest.raises(auth.AuthError, match="unsupported algorithm"):
        auth.verify_jwt(f"{head}.{body}.", [], "i", "s")
    with pytest.raises(auth.AuthError, match="malformed"):
        auth.verify_jwt("garbage", [], "i", "s")


def test_granted_scopes() -> None:
    asked = [auth.Scope("repository", "a", ("pull", "push", "bogus")),
             auth.Scope("registry", "catalog", ("*",))]
    assert auth.granted_scopes(asked, False) == []
    assert auth.granted_scopes(asked, True) == [auth.Scope("repository", "a", ("pull", "push")),
                                                auth.Scope("registry", "catalog", ("*",))]


def test_bearer_challenge() -> None:
    assert auth.bearer_challenge("https://h/token", "svc", "repository:a:pull") == (
        'Bearer realm="https://h/token",service="svc",scope="repository:a:pull"')
