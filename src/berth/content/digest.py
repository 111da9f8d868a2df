"""Digests of content: "sha256:<64 hex>", parsed, checked and computed.

Pure: no files, no stores. Only sha256 is accepted, as everywhere in berth.
"""

from __future__ import annotations

import hashlib

from berth.errors import InvalidParameter

_HEX = frozenset("0123456789abcdef")


def hex_of(digest: str) -> str:
    """The hex part of a valid sha256 digest; InvalidParameter for anything else (so a
    digest from a client can safely become a file name)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise InvalidParameter(f"invalid digest: {digest!r}")
    return hexpart


def is_digest(digest: str) -> bool:
    try:
        hex_of(digest)
    except InvalidParameter:
        return False
    return True


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify(actual: str, expected: str | None) -> None:
    """InvalidParameter when content hashed to `actual` is not the `expected` one."""
    if expected is not None and actual != expected:
        raise InvalidParameter(f"digest mismatch: the content is {actual}, expected {expected}")
