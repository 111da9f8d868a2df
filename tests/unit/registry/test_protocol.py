"""The pure protocol parts: names, references, Content-Range, pagination, manifests."""

from __future__ import annotations

import json

import pytest

from berth.registry.protocol import (
    ByteRange,
    RegistryError,
    check_digest,
    check_name,
    check_reference,
    paginate,
    parse_content_range,
    parse_manifest,
    upload_range,
)

GOOD = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", ["a", "library/busybox", "a-b/c_d/e.f", "a__b", "a--b",
                                  "x" * 255, "0/1/2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "library/Busybox", "a/../b", "..", "a//b", "/a",
                                  "a/", "-a", "a-", "a_", "a___b", "a..b", "x" * 256, "a b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as exc:
        check_name(name)
    assert exc.value.code == "NAME_INVALID" and exc.value.status == 400


def test_digests() -> None:
    assert check_digest(GOOD) == "a" * 64
    for bad in ("sha256:" + "A" * 64, "sha256:abc", "nodigest", "sha256:" + "g" * 64):
        with pytest.raises(RegistryError) as exc:
            check_digest(bad)
        assert exc.value.code == "DIGEST_INVALID"
    with pytest.raises(RegistryError) as exc:
        check_digest("sha512:" + "a" * 128)
    assert exc.value.code == "UNSUPPORTED"


def test_references() -> None:
    assert check_reference("latest") == "latest"
    assert check_reference(GOOD) == GOOD
    with pytest.raises(RegistryError) as exc:
        check_reference("-bad")
    assert exc.value.code == "TAG_INVALID"


@pytest.mark.parametrize("text,expected", [("0-99", ByteRange(0, 99)),
                                           ("bytes 100-199/*", ByteRange(100, 199)),
                                           ("bytes=5-5", ByteRange(5, 5))])
def test_content_range(text: str, expected: ByteRange) -> None:
    assert parse_content_range(text) == expected


@pytest.mark.parametrize("text", ["", "5", "a-b", "9-3", "-3", "1-2-3"])
def test_content_range_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_content_range(text)


def test_upload_range() -> None:
    assert upload_range(0) == "0-0"
    assert upload_range(10) == "0-9"


def test_paginate() -> None:
    items = ["c", "a", "b", "d"]
    assert paginate(items, None, None) == (["a", "b", "c", "d"], False)
    assert paginate(items, 2, None) == (["a", "b"], True)
    assert paginate(items, 2, "b") == (["c", "d"], False)
    assert paginate(items, 0, None) == ([], True)


def test_parse_manifest_and_index() -> None:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": GOOD,
             "size": 3}
    foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
               "digest": "sha256:" + "c" * 64, "size": 1, "urls": ["http://x"]}
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": "sha256:" + "b" * 64, "size": 2},
           "layers": [layer, foreign],
           "subject": {"mediaType": "x", "digest": GOOD, "size": 1}}
    m = parse_manifest(json.dumps(doc).encode(), None)
    assert [b.digest for b in m.blobs] == ["sha256:" + "b" * 64, GOOD]
    assert m.subject is not None and m.subject.digest == GOOD
    assert m.artifact_type == "application/vnd.oci.image.config.v1+json"
    index = {"schemaVersion": 2, "manifests": [{"digest": GOOD, "size": 1}]}
    m = parse_manifest(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")
    assert [c.digest for c in m.children] == [GOOD] and m.blobs == ()


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"schemaVersion": 1}',
                                  b'{"schemaVersion": 2, "mediaType": "text/plain"}',
                                  b'{"schemaVersion": 2, "mediaType": '
                                  b'"application/vnd.oci.image.manifest.v1+json"}'])
def test_parse_manifest_invalid(body: bytes) -> None:
    with pytest.raises(RegistryError) as exc:
        parse_manifest(body, None)
    assert exc.value.code == "MANIFEST_INVALID"
