"""Signing keys as cosign and skopeo keep them.

A public key is a PEM "PUBLIC KEY" (PKIX). A private key is cosign's envelope: a PEM
"ENCRYPTED SIGSTORE PRIVATE KEY" (or the older "ENCRYPTED COSIGN PRIVATE KEY") whose
body is go-securesystemslib's `encrypted` JSON: the PKCS#8 key sealed with
nacl/secretbox (XSalsa20-Poly1305) under a key that scrypt derives from the
password. That is what cosign writes and what containers/image (skopeo's
`--sign-by-sigstore-private-key`) reads, so `berth trust keygen` writes it. Plain
PKCS#8 PEM private keys are read too.

XSalsa20 is not in `cryptography`; it is small, and the envelope holds a few hundred
bytes, so it is written out here (Poly1305 comes from `cryptography`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.poly1305 import Poly1305

from berth.errors import InvalidParameter

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

ENCRYPTED_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
_WRITTEN_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
# go-securesystemslib's defaults, which cosign uses
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 32768, 8, 1
_SALT_SIZE, _NONCE_SIZE, _KEY_SIZE = 32, 24, 32


def generate() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key, as `cosign generate-key-pair` makes."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise InvalidParameter(f"invalid public key: {e}") from None
    if not isinstance(key, PublicKey):
        raise InvalidParameter(f"unsupported public key type: {type(key).__name__}")
    return key


def encrypted_pem(key: PrivateKey, password: bytes) -> bytes:
    """The private key in cosign's envelope (an empty password is allowed, as cosign's)."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = os.urandom(_SALT_SIZE)
    nonce = os.urandom(_NONCE_SIZE)
    secret = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
                "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(secretbox_seal(der, nonce, secret)),
    }
    return _pem(_WRITTEN_PEM_TYPE, json.dumps(doc, separators=(",", ":")).encode())


def load_private(pem: bytes, password: bytes) -> PrivateKey:
    """A private key from cosign's envelope or a plain PEM; a wrong password or a
    damaged envelope is InvalidParameter."""
    kind, body = _unpem(pem)
    if kind in ENCRYPTED_PEM_TYPES:
        der = _open_envelope(body, password)
        try:
            key = serialization.load_der_private_key(der, None)
        except ValueError as e:
            raise InvalidParameter(f"invalid private key: {e}") from None
    else:
        try:
            key = serialization.load_pem_private_key(pem, password or None)
        except (ValueError, TypeError) as e:
            raise InvalidParameter(f"invalid private key: {e}") from None
    if not isinstance(key, PrivateKey):
        raise InvalidParameter(f"unsupported private key type: {type(key).__name__}")
    return key


def _open_envelope(body: bytes, password: bytes) -> bytes:
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise InvalidParameter(f"unsupported private key encryption: {kdf['name']}, {cipher['name']}")
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(doc["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidParameter(f"invalid encrypted private key: {e}") from None
    if len(nonce) != _NONCE_SIZE or n > 1 << 20 or r > 32 or p > 16 or n < 2:
        raise InvalidParameter("invalid encrypted private key: unsupported parameters")
    secret = _scrypt(password, salt, n, r, p)
    opened = secretbox_open(sealed, nonce, secret)
    if opened is None:
        raise InvalidParameter("decrypting the private key failed: wrong password?")
    return opened


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=_KEY_SIZE, maxmem=256 * r * n * p + (1 << 20))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem(kind: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode()


def _unpem(pem: bytes) -> tuple[str, bytes]:
    text = pem.decode("ascii", "replace").strip()
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith("-----BEGIN ") or not lines[-1].startswith("-----END "):
        raise InvalidParameter("invalid private key: not a PEM block")
    kind = lines[0][len("-----BEGIN "):].rstrip("-")
    try:
        return kind, base64.b64decode("".join(lines[1:-1]), validate=False)
    except ValueError as e:
        raise InvalidParameter(f"invalid private key: {e}") from None


# -- nacl/secretbox: XSalsa20-Poly1305 ---------------------------------------------------

_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_MASK = 0xFFFFFFFF


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK) | (v >> (32 - c))


def _rounds(x: list[int]) -> list[int]:
    x = list(x)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),   # columns
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):  # rows
            x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
            x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
            x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
            x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)
    return x


def _state(key: bytes, sixteen: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [_SIGMA[0], *k[:4], _SIGMA[1], *n, _SIGMA[2], *k[4:], _SIGMA[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        state = _state(key, nonce8 + struct.pack("<Q", counter))
        mixed = _rounds(state)
        out += struct.pack("<16I", *((a + b) & _MASK for a, b in zip(mixed, state, strict=True)))
        counter += 1
    return bytes(out[:length])


def _xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    return _salsa20_stream(_hsalsa20(key, nonce[:16]), nonce[16:], length)


def secretbox_seal(message: bytes, nonce: bytes, key: bytes) -> bytes:
    """NaCl's crypto_secretbox (Go's secretbox.Seal): the Poly1305 tag, then the ciphertext."""
    stream = _xsalsa20_stream(key, nonce, 32 + len(message))
    cipher = bytes(a ^ b for a, b in zip(message, stream[32:], strict=True))
    return Poly1305.generate_tag(stream[:32], cipher) + cipher


def secretbox_open(sealed: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """The message, or None when the tag does not verify (a wrong key or damage)."""
    if len(sealed) < 16:
        return None
    tag, cipher = sealed[:16], sealed[16:]
    stream = _xsalsa20_stream(key, nonce, 32 + len(cipher))
    try:
        Poly1305.verify_tag(stream[:32], cipher, tag)
    except InvalidSignature:
        return None
    return bytes(a ^ b for a, b in zip(cipher, stream[32:], strict=True))
