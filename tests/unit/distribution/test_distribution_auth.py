"""berth.distribution.auth and .endpoints: credentials from clients, auth challenges,
token requests and their cache, and which endpoints a registry is tried at."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.distribution import auth
from berth.distribution.auth import Challenge, Credentials, TokenCache
from berth.distribution.endpoints import (
    Endpoint,
    RegistryConfig,
    endpoints,
    is_insecure,
    tls_context,
)
from berth.distribution.registry import error_text, registry_host
from berth.errors import InvalidParameter


def encode(doc: object, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    return text if padded else text.rstrip("=")


# -- credentials -------------------------------------------------------------------------


@pytest.mark.parametrize("padded", [True, False])
def test_x_registry_auth_decodes_padded_or_not(padded: bool) -> None:
    doc = {"username": "joe", "password": "s3cr?t>>", "serveraddress": "localhost:5000"}
    creds = Credentials.from_header(encode(doc, padded))
    assert creds == Credentials("joe", "s3cr?t>>", server="localhost:5000")
    assert not creds.anonymous


@pytest.mark.parametrize("value", [None, "", "  ", encode({})])
def test_x_registry_auth_absent_or_empty_is_anonymous(value: str | None) -> None:
    assert Credentials.from_header(value).anonymous


@pytest.mark.parametrize("value", ["!!!", encode([1, 2]), base64.urlsafe_b64encode(b"not json").decode(),
                                   encode({"username": 5})])
def test_x_registry_auth_garbage_is_invalid_parameter(value: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid X-Registry-Auth header|invalid auth configuration"):
        Credentials.from_header(value)


def test_auth_json_with_tokens_and_the_auth_field() -> None:
    doc = {"auth": base64.b64encode(b"amy:pa:ss").decode(), "serveraddress": "https://index.docker.io/v1/",
           "identitytoken": "refresh", "registrytoken": "bearer"}
    assert Credentials.from_json(doc) == Credentials("amy", "pa:ss", "refresh", "bearer",
                                                     "https://index.docker.io/v1/")
    assert Credentials.from_json({"username": "u", "password": "p", "auth": "xx"}) == Credentials("u", "p")
    assert Credentials.from_json({"Username": "u", "PassWord": "p"}) == Credentials("u", "p")
    assert Credentials("u", "p").basic() == "Basic " + base64.b64encode(b"u:p").decode()


@given(st.text(max_size=200))
def test_x_registry_auth_never_raises_anything_else(value: str) -> None:
    try:
        Credentials.from_header(value)
    except InvalidParameter:
        pass


# -- challenges --------------------------------------------------------------------------


def test_bearer_challenge() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/busybox:pull",error="invalid_token"')
    assert auth.parse_challenges(header) == [Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull", "error": "invalid_token"})]


def test_several_challenges_spaces_and_escapes() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", Bearer  realm = https://t/token , service="s"'
    got = auth.parse_challenges(header)
    assert got == [Challenge("basic", {"realm": 'a "quoted" realm'}),
                   Challenge("bearer", {"realm": "https://t/token", "service": "s"})]
    assert auth.pick_challenge(got) == got[1]
    assert auth.pick_challenge(auth.parse_challenges("Negotiate abc==")) is None
    assert auth.parse_challenges("") == []


@given(st.text(max_size=200))
def test_challenge_parsing_never_raises(header: str) -> None:
    auth.parse_challenges(header)


# -- token requests ----------------------------------------------------------------------


BEARER = Challenge("bearer", {"realm": "https://auth.example/token", "service": "reg"})


def test_token_request_with_password_is_a_get_with_basic() -> None:
    req = auth.token_request(BEARER, ["repository:a/b:pull,push"], Credentials("joe", "pw"))
    assert req.method == "GET"
    url = urllib.parse.urlsplit(req.url)
    assert url.netloc == "auth.example" and url.path == "/token"
    assert urllib.parse.parse_qs(url.query) == {"service": ["reg"], "scope": ["repository:a/b:pull,push"],
                                                "account": ["joe"]}
    assert req.headers == {"Authorization": Credentials("joe", "pw").basic()}


def test_anonymous_token_request_sends_no_credentials() -> None:
    req = auth.token_request(BEARER, ["repository:a/b:pull"], Credentials())
    assert req.headers == {} and "account" not in req.url


def test_login_token_request_asks_for_offline_access() -> None:
    req = auth.token_request(BEARER, [], Credentials("joe", "pw"), offline=True)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.url).query)
    assert query["offline_token"] == ["true"] and query["client_id"] == ["docker"]


def test_identity_token_is_posted_as_a_refresh_token() -> None:
    req = auth.token_request(BEARER, ["repository:a/b:pull", "repository:c:pull"], Credentials(identity_token="r1"))
    assert req.method == "POST" and req.url == "https://auth.example/token"
    assert urllib.parse.parse_qs(req.body.decode()) == {
        "grant_type": ["refresh_token"], "refresh_token": ["r1"], "client_id": ["docker"],
        "service": ["reg"], "scope": ["repository:a/b:pull repository:c:pull"]}


def test_a_realm_that_is_not_http_is_refused() -> None:
    with pytest.raises(InvalidParameter):
        auth.token_request(Challenge("bearer", {"realm": "file:///etc/passwd"}), [], Credentials())


def test_token_answers_and_the_cache() -> None:
    token = auth.parse_token(b'{"access_token": "t", "expires_in": 300, "refresh_token": "r"}', now=100.0)
    assert token == auth.Token("t", 400.0, "r")
    assert auth.parse_token(b'{"token": "t"}', now=0.0).expires == auth.DEFAULT_TOKEN_LIFETIME
    for body in (b"", b"[]", b'{"token": ""}', b'{"token": 5}'):
        with pytest.raises(InvalidParameter):
            auth.parse_token(body)
    cache = TokenCache()
    key = cache.key(BEARER, ["s"], Credentials("u", "p"))
    assert key != cache.key(BEARER, ["s"], Credentials("u", "other"))
    cache.put(key, token)
    assert cache.get(key, now=200.0) == token
    assert cache.get(key, now=399.0) is None  # within the margin: fetch a fresh one
    assert cache.get(key, now=200.0) is None


# -- endpoints ---------------------------------------------------------------------------


def test_registry_host() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("index.docker.io") == "registry-1.docker.io"
    assert registry_host("localhost:5000") == "localhost:5000"


@pytest.mark.parametrize("host,insecure", [
    ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.9.9.9", True), ("[::1]:5000", True),
    ("::1", True), ("10.1.2.3:5000", True), ("myreg:5000", True), ("myreg:5001", False),
    ("10.2.0.1:5000", False), ("registry.example.com", False), ("192.168.0.1", False),
])
def test_insecure_registries(host: str, insecure: bool) -> None:
    config = RegistryConfig(insecure=("10.1.0.0/16", "myreg:5000", "not a cidr"))
    assert is_insecure(host, config) is insecure


def test_loopback_insecurity_can_be_turned_off_for_tests() -> None:
    assert not is_insecure("127.0.0.1:5000", RegistryConfig(loopback_insecure=False))


def test_endpoints_of_a_secure_and_an_insecure_registry() -> None:
    config = RegistryConfig(mirrors=("https://mirror.example/",))
    assert endpoints("registry.example.com", config) == [Endpoint("https://registry.example.com",
                                                                 "registry.example.com")]
    assert endpoints("localhost:5000", config) == [
        Endpoint("https://localhost:5000", "localhost:5000", verify=False),
        Endpoint("http://localhost:5000", "localhost:5000", verify=False)]


def test_mirrors_come_first_for_docker_io_pulls_only() -> None:
    config = RegistryConfig(mirrors=("https://mirror.example/", "http://127.0.0.1:5001"))
    assert endpoints("docker.io", config) == [
        Endpoint("https://mirror.example", "mirror.example", True, True),
        Endpoint("http://127.0.0.1:5001", "127.0.0.1:5001", False, True),
        Endpoint("https://registry-1.docker.io", "registry-1.docker.io")]
    assert endpoints("docker.io", config, push=True) == [
        Endpoint("https://registry-1.docker.io", "registry-1.docker.io")]
    assert endpoints("quay.io", config)[0].base == "https://quay.io"


def test_tls_context_from_certs_d(tmp_path: Path) -> None:
    host_dir = tmp_path / "reg.example:5000"
    host_dir.mkdir()
    config = RegistryConfig(certs_dirs=(str(tmp_path / "absent"), str(tmp_path)))
    ctx = tls_context(Endpoint("https://reg.example:5000", "reg.example:5000"), config)
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    insecure = tls_context(Endpoint("https://reg.example:5000", "reg.example:5000", verify=False), config)
    assert isinstance(insecure, ssl.SSLContext) and insecure.verify_mode == ssl.CERT_NONE
    (host_dir / "client.key").write_text("key without its cert")
    with pytest.raises(ValueError, match="missing client certificate client.cert"):
        tls_context(Endpoint("https://reg.example:5000", "reg.example:5000"), config)


# -- registry error answers --------------------------------------------------------------


def test_error_text_words_errcode_as_distribution_does() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                   "detail": {"Tag": "x"}}]}).encode()
    assert error_text(404, "Not Found", body) == ("MANIFEST_UNKNOWN", "manifest unknown: manifest unknown")
    two = json.dumps({"errors": [{"code": "DENIED", "message": "no"}, {"code": "UNAUTHORIZED"}]}).encode()
    assert error_text(403, "Forbidden", two) == ("DENIED", "denied: no; unauthorized")
    assert error_text(401, "Unauthorized", b"") == ("UNAUTHORIZED", "unauthorized: authentication required")
    assert error_text(502, "Bad Gateway", b"<html>") == ("", "unexpected status code 502 Bad Gateway")
