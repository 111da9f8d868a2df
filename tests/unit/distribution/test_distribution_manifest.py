"""berth.distribution.manifest: parsing what registries serve, refusing what Docker
refuses, platform matching and selection, and the bytes written for a push."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.distribution import manifest as mf
from berth.distribution.manifest import Descriptor, ImageIndex, ImageManifest, Platform
from berth.errors import InvalidParameter, NotFound

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def image_manifest(media_type: str | None = mf.DOCKER_MANIFEST) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": mf.DOCKER_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mf.DOCKER_LAYER, "digest": D2, "size": 20},
                   {"mediaType": mf.DOCKER_FOREIGN_LAYER, "digest": D3, "size": 30,
                    "urls": ["https://example.com/layer"]}],
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc


def index(entries: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
        {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": 100,
         "platform": {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}}
        for digest, os_, arch, variant in entries]}


# -- parsing -----------------------------------------------------------------------------


def test_docker_manifest_parses_with_its_layers() -> None:
    raw = dump(image_manifest())
    got = mf.parse(mf.DOCKER_MANIFEST, raw, "sha256:" + hashlib.sha256(raw).hexdigest())
    assert isinstance(got, ImageManifest)
    assert got.config == Descriptor(mf.DOCKER_CONFIG, D1, 10)
    assert [layer.digest for layer in got.layers] == [D2, D3]
    assert got.layers[1].urls == ("https://example.com/layer",)
    assert got.raw == raw


def test_generic_content_type_is_sniffed_from_the_body() -> None:
    got = mf.parse("application/json", dump(image_manifest(mf.OCI_MANIFEST)), D1)
    assert isinstance(got, ImageManifest) and got.media_type == mf.OCI_MANIFEST
    got = mf.parse("", dump(image_manifest(None)), D1)  # no mediaType at all: OCI by shape
    assert got.media_type == mf.OCI_MANIFEST
    got = mf.parse("text/plain; charset=utf-8", dump(index([(D2, "linux", "amd64", "")])), D1)
    assert isinstance(got, ImageIndex) and got.media_type == mf.OCI_INDEX


def test_content_type_with_parameters_is_understood() -> None:
    got = mf.parse(mf.DOCKER_MANIFEST + "; charset=utf-8", dump(image_manifest()), D1)
    assert got.media_type == mf.DOCKER_MANIFEST


@pytest.mark.parametrize("content_type", [mf.DOCKER_SCHEMA1, mf.DOCKER_SCHEMA1_SIGNED, "application/json"])
def test_schema1_is_refused_with_dockers_notice(content_type: str) -> None:
    raw = dump({"schemaVersion": 1, "name": "library/old", "tag": "latest", "fsLayers": []})
    with pytest.raises(mf.Schema1Error) as e:
        mf.parse(content_type, raw, D1, "docker.io/library/old:latest")
    assert str(e.value) == (
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
        "support has been removed. Suggest the author of docker.io/library/old:latest to upgrade the "
        "image to the OCI Format or Docker Image manifest v2, schema 2. More information at "
        "https://docs.docker.com/go/deprecated-image-specs/")
    assert isinstance(e.value, InvalidParameter)


def test_oversized_manifest_is_refused() -> None:
    doc = image_manifest()
    doc["annotations"] = {"pad": "x" * mf.MAX_MANIFEST}
    with pytest.raises(InvalidParameter, match="too large"):
        mf.parse(mf.DOCKER_MANIFEST, dump(doc), D1)


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(schemaVersion=3),
    lambda d: d.pop("config"),
    lambda d: d.update(layers={}),
    lambda d: d["layers"][0].update(digest="sha256:short"),
    lambda d: d["layers"][0].update(digest="md5:" + "a" * 32),
    lambda d: d["layers"][0].update(size=-1),
    lambda d: d["layers"][0].update(size="20"),
    lambda d: d["layers"][0].update(size=True),
    lambda d: d["layers"][0].update(urls="http://x"),
    lambda d: d["layers"][0].update(annotations={"a": 1}),
    lambda d: d["config"].update(platform="linux"),
    lambda d: d.update(mediaType=mf.OCI_MANIFEST),  # says one thing, served as another
])
def test_malformed_manifests_are_invalid_parameter(mutate: Any) -> None:
    doc = image_manifest()
    mutate(doc)
    with pytest.raises(InvalidParameter):
        mf.parse(mf.DOCKER_MANIFEST, dump(doc), D1)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"\xff\xfe", b'"text"', b"null"])
def test_non_objects_are_invalid_parameter(raw: bytes) -> None:
    with pytest.raises(InvalidParameter):
        mf.parse(mf.DOCKER_MANIFEST, raw, D1)


def test_unknown_media_type_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="unsupported manifest media type"):
        mf.parse("application/vnd.example+json", dump(image_manifest(None)), D1)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_hostile_bytes_only_ever_raise_invalid_parameter(raw: bytes) -> None:
    for content_type in ("", mf.DOCKER_MANIFEST, mf.OCI_INDEX):
        try:
            mf.parse(content_type, raw, D1)
        except InvalidParameter:
            pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests",
                                         "digest", "size", "platform", "os", "architecture", "urls"]),
                        inner, max_size=5), max_leaves=20))
def test_hostile_json_only_ever_raises_invalid_parameter(doc: Any) -> None:
    try:
        mf.parse("", dump(doc), D1)
    except InvalidParameter:
        pass


# -- platforms ---------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("arm64", Platform("linux", "arm64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_platform_parse_normalizes_as_containerd(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["", "/", "linux/", "linux/amd64/v1/x", "plan10/amd64", "linux/am d64", "linux//"])
def test_platform_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidParameter):
        Platform.parse(text)


def test_platform_str_and_host() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    host = Platform.host()
    assert host.os == "linux" and host.architecture in ("amd64", "arm64", "386", "arm", "ppc64le", "s390x",
                                                        "riscv64")


def test_platform_matching() -> None:
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert Platform("linux", "arm64", "v8").matches(Platform("linux", "arm64"))
    assert Platform("linux", "arm", "v7").matches(Platform("linux", "arm", "v6"))
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))
    assert not Platform("linux", "amd64").matches(Platform("linux", "arm64"))
    assert not Platform("linux", "amd64").matches(Platform("windows", "amd64"))


# -- selection ---------------------------------------------------------------------------


def parsed_index(entries: list[tuple[str, str, str, str]]) -> ImageIndex:
    got = mf.parse(mf.OCI_INDEX, dump(index(entries)), D1)
    assert isinstance(got, ImageIndex)
    return got


def test_select_picks_the_platform_or_says_what_is_missing() -> None:
    idx = parsed_index([(D1, "linux", "amd64", ""), (D2, "linux", "arm64", "v8"), (D3, "linux", "arm", "v7")])
    assert mf.select(idx, Platform.parse("linux/amd64")).digest == D1
    assert mf.select(idx, Platform.parse("linux/arm64")).digest == D2
    assert mf.select(idx, Platform.parse("linux/arm64/v8")).digest == D2
    assert mf.select(idx, Platform.parse("linux/arm/v7")).digest == D3
    with pytest.raises(NotFound) as e:
        mf.select(idx, Platform.parse("linux/arm/v6"))
    assert str(e.value) == "no matching manifest for linux/arm/v6 in the manifest list entries"
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64/v8 in the manifest list"):
        mf.select(parsed_index([(D1, "linux", "amd64", "")]), Platform("linux", "arm64", "v8"))


def test_select_prefers_an_exact_variant_and_skips_attestations() -> None:
    doc = index([(D1, "linux", "arm", "v6"), (D2, "linux", "arm", "v7")])
    doc["manifests"].insert(0, {"mediaType": "application/vnd.in-toto+json", "digest": D3, "size": 1,
                                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}})
    idx = mf.parse(mf.OCI_INDEX, dump(doc), D1)
    assert isinstance(idx, ImageIndex)
    assert mf.select(idx, Platform("linux", "arm", "v7")).digest == D2


# -- building ----------------------------------------------------------------------------


def test_build_manifest_round_trips() -> None:
    config = Descriptor(mf.DOCKER_CONFIG, D1, 10)
    layers = [Descriptor(mf.DOCKER_LAYER, D2, 20), Descriptor(mf.DOCKER_LAYER, D3, 30)]
    raw = mf.build_manifest(config, layers)
    doc = json.loads(raw)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert doc["config"] == {"mediaType": mf.DOCKER_CONFIG, "digest": D1, "size": 10}
    got = mf.parse(mf.DOCKER_MANIFEST, raw, D1)
    assert isinstance(got, ImageManifest) and got.config == config and list(got.layers) == layers
    oci = mf.parse(mf.OCI_MANIFEST, mf.build_manifest(config, layers, mf.OCI_MANIFEST), D1)
    assert oci.media_type == mf.OCI_MANIFEST
    with pytest.raises(InvalidParameter):
        mf.build_manifest(config, layers, mf.OCI_INDEX)


def test_descriptor_json_has_only_what_is_set() -> None:
    plain = Descriptor(mf.OCI_LAYER_GZIP, D1, 5)
    assert plain.to_json() == {"mediaType": mf.OCI_LAYER_GZIP, "digest": D1, "size": 5}
    full = Descriptor(mf.OCI_MANIFEST, D1, 5, Platform("linux", "arm64", "v8"), ("u",), {"k": "v"}, "x/y")
    assert full.to_json() == {"mediaType": mf.OCI_MANIFEST, "digest": D1, "size": 5, "urls": ["u"],
                              "annotations": {"k": "v"},
                              "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                              "artifactType": "x/y"}


def test_descriptors_are_hashable_even_with_annotations() -> None:
    a = Descriptor(mf.OCI_LAYER_GZIP, D1, 5, annotations={"k": "v"})
    assert len({a, Descriptor(mf.OCI_LAYER_GZIP, D1, 5, annotations={"k": "v"}), Descriptor(mf.OCI_LAYER, D1, 5)}) == 2
