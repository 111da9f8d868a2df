"""cosign's signature format, as cosign, skopeo and containers/image write it.

A signature of the manifest `sha256:HEX` lives in the same repository under the tag
`sha256-HEX.sig`: an OCI manifest whose layers each are one signature, a
simple-signing payload (media type `application/vnd.dev.cosign.simplesigning.v1+json`)

    {"critical": {"identity": {"docker-reference": "host/repo:tag"},
                  "image": {"docker-manifest-digest": "sha256:HEX"},
                  "type": "cosign container image signature"},
     "optional": {...}}

with the annotation `dev.cosignproject.cosign/signature`: the base64 signature of the
payload's bytes (ECDSA over SHA-256, ASN.1 DER, for a P-256 key).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from berth import __version__
from berth.errors import InvalidParameter
from berth.trust.keys import PrivateKey, PublicKey

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MAX_PAYLOAD = 4 << 20  # containers/image's limit on a signature's body
MAX_SIGNATURES = 128  # a .sig manifest with more layers is not read


class InvalidSignatureError(InvalidParameter):
    """A signature that is malformed, or does not verify."""


@dataclass(frozen=True)
class Payload:
    docker_reference: str
    manifest_digest: str


@dataclass(frozen=True)
class Signature:
    """One signature as found in a repository: the payload's bytes and the base64
    signature its annotation carries (untrusted until verified)."""

    payload: bytes
    base64_signature: str


def signature_tag(manifest_digest: str) -> str:
    """`sha256:HEX` -> `sha256-HEX.sig`, where cosign keeps the image's signatures."""
    algorithm, _, hex_ = manifest_digest.partition(":")
    return f"{algorithm}-{hex_}.sig"


def make_payload(docker_reference: str, manifest_digest: str) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {"creator": f"berth {__version__}", "timestamp": int(time.time())},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(key: PrivateKey, payload: bytes) -> str:
    """The base64 signature of `payload`, as the annotation carries it."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(payload)
    return base64.b64encode(raw).decode()


def verify(keys: list[PublicKey], signature: Signature) -> Payload:
    """The payload, once its signature verifies with one of `keys` and it parses as a
    cosign payload; else InvalidSignatureError (containers/image's words)."""
    try:
        raw = base64.b64decode(signature.base64_signature, validate=True)
    except ValueError as e:
        raise InvalidSignatureError(f"base64 decoding: {e}") from None
    if not any(_verifies(key, raw, signature.payload) for key in keys):
        raise InvalidSignatureError("cryptographic signature verification failed: "
                                    "invalid signature when validating ASN.1 encoded signature")
    return parse_payload(signature.payload)


def _verifies(key: PublicKey, raw: bytes, payload: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def _object(value: Any, where: str, fields: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSignatureError(f"{where} is not a JSON object")
    if fields is not None and set(value) != fields:
        raise InvalidSignatureError(f"{where} has fields {sorted(value)}, expected {sorted(fields)}")
    return value


def parse_payload(data: bytes) -> Payload:
    """A payload parsed as strictly as containers/image does: exactly the critical
    fields, the known type, a digest and a reference that are strings."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidSignatureError(f"invalid signature payload: {e}") from None
    top = _object(doc, "signature payload", {"critical", "optional"})
    if top["optional"] is not None:
        _object(top["optional"], "optional")
    critical = _object(top["critical"], "critical", {"type", "image", "identity"})
    if critical["type"] != SIGNATURE_TYPE:
        raise InvalidSignatureError(f"Unrecognized signature type {critical['type']}")
    image = _object(critical["image"], "critical.image", {"docker-manifest-digest"})
    identity = _object(critical["identity"], "critical.identity", {"docker-reference"})
    digest, ref = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise InvalidSignatureError(f"invalid docker-manifest-digest value {digest!r}")
    if not isinstance(ref, str):
        raise InvalidSignatureError("critical.identity.docker-reference is not a string")
    return Payload(ref, digest)


def signature_manifest(config: tuple[str, int], layers: list[tuple[str, int, str]]) -> bytes:
    """The `.sig` manifest: `config` is (digest, size); each layer (digest, size, base64 signature)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": PAYLOAD_MEDIA_TYPE, "digest": d, "size": s,
                    "annotations": {SIGNATURE_ANNOTATION: sig}} for d, s, sig in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
