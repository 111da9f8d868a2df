"""berth.trust.policy: the containers-policy.json format, which scope's requirements
apply to a reference, and their verdict over cosign signatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from berth.images.reference import parse_normalized
from berth.trust import keys, policy, sigstore
from berth.trust.policy import IdentityRule, PolicyError, Rejected

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def key() -> keys.PrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory, key: keys.PrivateKey) -> Path:
    path = tmp_path_factory.mktemp("keys") / "cosign.pub"
    path.write_bytes(keys.public_pem(key))
    return path


def make_policy(pub: Path, **extra: object) -> policy.Policy:
    doc = {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker": {
                "127.0.0.1:5000/signed": [{"type": "sigstoreSigned", "keyPath": str(pub), **extra}],
                "127.0.0.1:5000/signed/old": [{"type": "reject"}],
                "127.0.0.1:5000/signed/pinned:v1": [{"type": "insecureAcceptAnything"}],
            },
            "docker-daemon": {"": [{"type": "reject"}]},
        },
    }
    return policy.parse(json.dumps(doc).encode(), "/etc/berth/policy.json")


def signature(key: keys.PrivateKey, ref: str, digest: str = DIGEST) -> sigstore.Signature:
    payload = sigstore.make_payload(ref, digest)
    return sigstore.Signature(payload, sigstore.sign(key, payload))


def test_the_most_specific_scope_applies(pub: Path) -> None:
    rules = make_policy(pub)

    def scope(ref: str) -> str:
        return rules.for_reference(parse_normalized(ref)).scope

    assert scope("127.0.0.1:5000/signed/app:1") == "127.0.0.1:5000/signed"
    assert scope("127.0.0.1:5000/signed/deep/app:1") == "127.0.0.1:5000/signed"
    assert scope("127.0.0.1:5000/signed/old:1") == "127.0.0.1:5000/signed/old"
    assert scope("127.0.0.1:5000/signed/pinned:v1") == "127.0.0.1:5000/signed/pinned:v1"
    assert scope("127.0.0.1:5000/signed/pinned:v2") == "127.0.0.1:5000/signed"
    assert scope("127.0.0.1:5000/unsigned/app:1") == "default"
    assert scope("127.0.0.1:5001/signed/app:1") == "default"
    assert scope("busybox") == "default"


def test_a_host_and_a_wildcard_scope(pub: Path) -> None:
    doc = {"default": [{"type": "reject"}], "transports": {"docker": {
        "registry.example.com": [{"type": "insecureAcceptAnything"}],
        "*.example.org": [{"type": "insecureAcceptAnything"}],
        "": [{"type": "sigstoreSigned", "keyPath": str(pub)}]}}}
    rules = policy.parse(json.dumps(doc).encode(), "p.json")
    assert rules.for_reference(parse_normalized("registry.example.com/a/b:1")).scope == "registry.example.com"
    assert rules.for_reference(parse_normalized("r.mirror.example.org/a:1")).scope == "*.example.org"
    assert rules.for_reference(parse_normalized("quay.io/a:1")).scope == ""


def test_a_good_signature_is_accepted_and_a_missing_one_refused_naming_the_policy(
        pub: Path, key: keys.PrivateKey) -> None:
    rules = make_policy(pub)
    ref = parse_normalized("127.0.0.1:5000/signed/app:1")
    decision = rules.for_reference(ref)
    assert decision.needs_signatures
    rules.check(ref, DIGEST, decision, [signature(key, "127.0.0.1:5000/signed/app:1")])
    with pytest.raises(Rejected) as e:
        rules.check(ref, DIGEST, decision, [])
    assert str(e.value) == ('Source image rejected by the signature policy /etc/berth/policy.json '
                            '(policy for scope "127.0.0.1:5000/signed"): '
                            'A signature was required, but no signature exists')
    assert e.value.status == 403


def test_another_keys_signature_another_digest_or_another_tag_is_refused(pub: Path, key: keys.PrivateKey) -> None:
    rules = make_policy(pub)
    ref = parse_normalized("127.0.0.1:5000/signed/app:1")
    decision = rules.for_reference(ref)
    cases = [
        (signature(keys.generate(), "127.0.0.1:5000/signed/app:1"), "cryptographic signature verification failed"),
        (signature(key, "127.0.0.1:5000/signed/app:1", OTHER_DIGEST), f"Signature for digest {OTHER_DIGEST} does not match"),
        (signature(key, "127.0.0.1:5000/signed/app:2"), 'Signature for identity "127.0.0.1:5000/signed/app:2" is not accepted'),
        (signature(key, "127.0.0.1:5000/signed/other:1"), "is not accepted"),
    ]
    for sig, reason in cases:
        with pytest.raises(Rejected, match=reason):
            rules.check(ref, DIGEST, decision, [sig])
    with pytest.raises(Rejected, match="None of the signatures were accepted, reasons: .*; .*"):
        rules.check(ref, DIGEST, decision, [cases[0][0], cases[1][0]])
    # one good signature among bad ones is enough
    rules.check(ref, DIGEST, decision, [cases[0][0], signature(key, "127.0.0.1:5000/signed/app:1")])


def test_a_tampered_payload_is_refused(pub: Path, key: keys.PrivateKey) -> None:
    rules = make_policy(pub)
    ref = parse_normalized("127.0.0.1:5000/signed/app:1")
    good = signature(key, "127.0.0.1:5000/signed/app:1")
    tampered = sigstore.Signature(good.payload.replace(b"app:1", b"app:9"), good.base64_signature)
    with pytest.raises(Rejected, match="cryptographic signature verification failed"):
        rules.check(ref, DIGEST, rules.for_reference(ref), [tampered])


def test_reject_and_accept_anything(pub: Path) -> None:
    rules = make_policy(pub)
    old = parse_normalized("127.0.0.1:5000/signed/old:1")
    with pytest.raises(Rejected, match=r"Running image docker://127.0.0.1:5000/signed/old:1 is rejected by policy\."):
        rules.check(old, DIGEST, rules.for_reference(old), [])
    pinned = parse_normalized("127.0.0.1:5000/signed/pinned:v1")
    assert not rules.for_reference(pinned).needs_signatures
    rules.check(pinned, DIGEST, rules.for_reference(pinned), [])


def test_identity_rules() -> None:
    by_tag = parse_normalized("reg.example.com/a/app:1")
    by_digest = parse_normalized(f"reg.example.com/a/app@{DIGEST}")
    default = IdentityRule()
    assert default.accepts(by_tag, "reg.example.com/a/app:1")
    assert not default.accepts(by_tag, "reg.example.com/a/app:2")
    assert not default.accepts(by_tag, "reg.example.com/a/app")
    assert default.accepts(by_digest, "reg.example.com/a/app:anything")
    assert not default.accepts(by_digest, "reg.example.com/b/app:1")
    assert not IdentityRule("matchExact").accepts(by_digest, "reg.example.com/a/app:1")
    assert IdentityRule("matchRepository").accepts(by_tag, "reg.example.com/a/app:7")
    assert IdentityRule("exactReference", "reg.example.com/x:1").accepts(by_tag, "reg.example.com/x:1")
    assert IdentityRule("exactRepository", "reg.example.com/x").accepts(by_tag, "reg.example.com/x:5")
    assert not default.accepts(by_tag, "Not A Reference")
    # docker.io names are normalized on both sides
    assert default.accepts(parse_normalized("busybox:1"), "docker.io/library/busybox:1")


def test_key_data_and_signed_identity_in_the_file(pub: Path, key: keys.PrivateKey) -> None:
    data = base64.b64encode(pub.read_bytes()).decode()
    doc = {"default": [{"type": "sigstoreSigned", "keyData": data,
                        "signedIdentity": {"type": "matchRepository"}}]}
    rules = policy.parse(json.dumps(doc).encode(), "p.json")
    ref = parse_normalized("reg.example.com/app:2")
    rules.check(ref, DIGEST, rules.for_reference(ref), [signature(key, "reg.example.com/app:1")])


@pytest.mark.parametrize(("doc", "message"), [
    ({}, "Default policy is missing"),
    ({"default": []}, "Policy requirement list is empty"),
    ({"default": [{"type": "signedBy"}]}, 'Unknown policy requirement type "signedBy"'),
    ({"default": [{"type": "reject", "keyPath": "x"}]}, 'Unknown key "keyPath"'),
    ({"default": [{"type": "sigstoreSigned"}]}, "exactly one of keyPath, keyPaths and keyData"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/nonexistent/cosign.pub"}]},
     "reading the key /nonexistent/cosign.pub: No such file or directory"),
    ({"default": [{"type": "sigstoreSigned", "keyData": base64.b64encode(b"junk").decode()}]}, "invalid public key"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"Bad Scope!": [{"type": "reject"}]}}},
     'Invalid scope "Bad Scope!"'),
    ({"default": [{"type": "insecureAcceptAnything"}], "extra": 1}, 'Unknown key "extra"'),
    ({"default": [{"type": "sigstoreSigned", "keyData": "", "signedIdentity": {"type": "remapIdentity"}}]},
     "keyData"),
])
def test_a_bad_policy_is_refused_naming_the_file(doc: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as e:
        policy.parse(json.dumps(doc).encode(), "/etc/berth/policy.json")
    assert "invalid signature policy /etc/berth/policy.json" in str(e.value)
    assert message in str(e.value)


def test_no_file_means_no_policy(tmp_path: Path) -> None:
    assert policy.load(str(tmp_path / "policy.json")) is None
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(PolicyError, match="invalid signature policy"):
        policy.load(str(tmp_path / "policy.json"))
