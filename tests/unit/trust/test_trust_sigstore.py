"""berth.trust.sigstore and .keys: cosign's payload and signature, and cosign's
encrypted private key envelope (scrypt + nacl/secretbox)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from berth.errors import InvalidParameter
from berth.trust import keys, sigstore

DIGEST = "sha256:" + "ab" * 32


def test_signature_tag() -> None:
    assert sigstore.signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"


def test_payload_is_what_containers_image_writes() -> None:
    doc = json.loads(sigstore.make_payload("127.0.0.1:5000/signed/app:1", DIGEST))
    assert doc["critical"] == {"identity": {"docker-reference": "127.0.0.1:5000/signed/app:1"},
                               "image": {"docker-manifest-digest": DIGEST},
                               "type": "cosign container image signature"}
    assert set(doc["optional"]) == {"creator", "timestamp"}


def test_sign_and_verify_and_a_wrong_key() -> None:
    key = keys.generate()
    payload = sigstore.make_payload("reg.example.com/app:1", DIGEST)
    sig = sigstore.Signature(payload, sigstore.sign(key, payload))
    assert sigstore.verify([key.public_key()], sig) == sigstore.Payload("reg.example.com/app:1", DIGEST)
    with pytest.raises(sigstore.InvalidSignatureError, match="cryptographic signature verification failed"):
        sigstore.verify([keys.generate().public_key()], sig)
    with pytest.raises(sigstore.InvalidSignatureError, match="base64"):
        sigstore.verify([key.public_key()], sigstore.Signature(payload, "not base64!"))


@pytest.mark.parametrize("doc", [
    {"critical": {"identity": {"docker-reference": "a"}, "image": {"docker-manifest-digest": DIGEST},
                  "type": "atomic container signature"}, "optional": {}},
    {"critical": {"identity": {"docker-reference": "a"}, "image": {"docker-manifest-digest": DIGEST},
                  "type": "cosign container image signature", "extra": 1}, "optional": {}},
    {"critical": {"identity": {"docker-reference": "a"}, "image": {"docker-manifest-digest": "md5:x"},
                  "type": "cosign container image signature"}, "optional": {}},
    {"critical": {"identity": {}, "image": {"docker-manifest-digest": DIGEST},
                  "type": "cosign container image signature"}, "optional": {}},
    {"critical": {}},
    [],
])
def test_a_payload_is_parsed_strictly(doc: object) -> None:
    with pytest.raises(sigstore.InvalidSignatureError):
        sigstore.parse_payload(json.dumps(doc).encode())


def test_signature_manifest_layout() -> None:
    doc = json.loads(sigstore.signature_manifest((DIGEST, 10), [(DIGEST, 20, "c2ln")]))
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["layers"] == [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                              "digest": DIGEST, "size": 20,
                              "annotations": {"dev.cosignproject.cosign/signature": "c2ln"}}]


def test_secretbox_matches_nacl() -> None:
    # the answer PyNaCl's SecretBox(key).encrypt(msg, nonce).ciphertext gives
    key, nonce = bytes(range(32)), bytes(range(100, 124))
    message = b"berth secretbox known answer" * 3
    expected = bytes.fromhex(
        "aec44af758c6200dae237cfffcbb969560dcebbd5296bd8cd38f46e055ebdb3855c457d08a862a75d57b27e668eebbfcc04f"
        "877d2c45fe9097796f426b7db212afb0cf7661f15c2d61842170b392ed0120f92919aa5330aad2e170852ee38cfd27e0e875")
    assert keys.secretbox_seal(message, nonce, key) == expected
    assert keys.secretbox_open(expected, nonce, key) == message
    assert keys.secretbox_open(expected[:-1] + bytes([expected[-1] ^ 1]), nonce, key) is None
    assert keys.secretbox_open(expected, nonce, bytes(32)) is None


def test_the_encrypted_private_key_round_trips_and_a_wrong_password_fails() -> None:
    key = keys.generate()
    pem = keys.encrypted_pem(key, b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt" and body["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert body["cipher"]["name"] == "nacl/secretbox"
    loaded = keys.load_private(pem, b"s3cret")
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert keys.public_pem(loaded) == keys.public_pem(key)
    with pytest.raises(InvalidParameter, match="wrong password"):
        keys.load_private(pem, b"wrong")


def test_plain_pem_keys_load() -> None:
    from cryptography.hazmat.primitives import serialization

    key = keys.generate()
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    assert keys.public_pem(keys.load_private(plain, b"")) == keys.public_pem(key)
    with pytest.raises(InvalidParameter):
        keys.load_public(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
