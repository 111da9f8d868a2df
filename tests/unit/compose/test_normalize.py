"""Short forms to long forms, durations and sizes (cases checked against compose v2 are
also in projects/shortforms), and fuzzing the whole loader with arbitrary documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.compose import ProjectOptions, dump_json, dump_yaml, load_project, to_dict
from berth.compose.model import BindOptions, PortConfig, ServiceVolume, VolumeOptions
from berth.compose.normalize import (
    format_duration,
    parse_bytes,
    parse_duration,
    parse_port,
    parse_volume,
    split_command,
)
from berth.errors import InvalidParameter


@pytest.mark.parametrize(("spec", "ports"), [
    ("80", [PortConfig(target=80)]),
    (80, [PortConfig(target=80)]),
    ("8080:80", [PortConfig(target=80, published="8080")]),
    ("127.0.0.1:8080:80/udp", [PortConfig(target=80, published="8080", host_ip="127.0.0.1", protocol="udp")]),
    ("127.0.0.1::80", [PortConfig(target=80, host_ip="127.0.0.1")]),
    ("[::1]:8080:81", [PortConfig(target=81, published="8080", host_ip="::1")]),
    ("8000-8001:82", [PortConfig(target=82, published="8000-8001")]),
    ("83-84", [PortConfig(target=83), PortConfig(target=84)]),
    ("9000-9001:90-91", [PortConfig(target=90, published="9000"), PortConfig(target=91, published="9001")]),
    ({"target": 80, "published": 8080, "protocol": "udp", "mode": "host"},
     [PortConfig(target=80, published="8080", protocol="udp", mode="host")]),
])
def test_ports(spec: object, ports: list[PortConfig]) -> None:
    assert parse_port(spec) == ports


@pytest.mark.parametrize("spec", ["a:80", "80-79", "1:2:3:4", "9000-9002:90-91", "70000", "[::1"])
def test_bad_ports(spec: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_port(spec)


def test_volumes(tmp_path: Path) -> None:
    base = tmp_path
    assert parse_volume("./data:/data:ro", base) == ServiceVolume(
        type="bind", source=str(base / "data"), target="/data", read_only=True,
        bind=BindOptions(create_host_path=True))
    assert parse_volume("../up:/u", base).source == str(base.parent / "up")
    assert parse_volume("/h:/c:z,rshared", base).bind == BindOptions(
        propagation="rshared", create_host_path=True, selinux="z")
    assert parse_volume("~/x:/x", base).source == str(Path.home() / "x")
    assert parse_volume("named:/n:nocopy", base) == ServiceVolume(
        type="volume", source="named", target="/n", volume=VolumeOptions(nocopy=True))
    assert parse_volume("/anon", base) == ServiceVolume(type="volume", target="/anon", volume=VolumeOptions())
    long = parse_volume({"type": "tmpfs", "target": "/t", "tmpfs": {"size": "64m", "mode": 0o1777}}, base)
    assert long.tmpfs is not None and long.tmpfs.size == 64 << 20 and long.tmpfs.mode == 0o1777
    assert parse_volume({"type": "bind", "source": "rel", "target": "/r"}, base).source == str(base / "rel")
    with pytest.raises(InvalidParameter, match="too many colons"):
        parse_volume("a:b:c:d", base)


@pytest.mark.parametrize(("text", "ns", "go"), [
    ("1m30s", 90_000_000_000, "1m30s"),
    ("1m", 60_000_000_000, "1m0s"),
    ("90s", 90_000_000_000, "1m30s"),
    ("1h2m3.5s", 3_723_500_000_000, "1h2m3.5s"),
    ("1.5s", 1_500_000_000, "1.5s"),
    ("500ms", 500_000_000, "500ms"),
    ("10us", 10_000, "10µs"),
    ("0s", 0, "0s"),
    ("2h", 7_200_000_000_000, "2h0m0s"),
    (30, 30_000_000_000, "30s"),
])
def test_durations(text: object, ns: int, go: str) -> None:
    assert parse_duration(text) == ns
    assert format_duration(ns) == go


@pytest.mark.parametrize("text", ["1x", "s", "1m 2s", "abc", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidParameter):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [
    ("50M", 50 << 20), ("1gb", 1 << 30), ("512k", 512 << 10), (1024, 1024), ("1024", 1024),
    ("1.5g", 3 << 29), ("10b", 10),
])
def test_sizes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


def test_commands() -> None:
    assert split_command('/bin/sh -c "echo hi"') == ["/bin/sh", "-c", "echo hi"]
    assert split_command(["a", 1, True]) == ["a", "1", "true"]
    assert split_command(None) is None
    with pytest.raises(InvalidParameter):
        split_command('echo "open')


_KEYS = ["services", "networks", "volumes", "secrets", "configs", "name", "include", "x-a",
         "web", "image", "build", "ports", "volumes", "depends_on", "environment", "extends",
         "networks", "deploy", "healthcheck", "command", "profiles", "env_file", "ulimits",
         "condition", "service", "target", "source", "type", "file", "external", "aliases",
         "test", "interval", "replicas", "resources", "limits", "memory", "links", "secrets"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(
        ["x", "80:80", "./a:/b", "web", "${X}", "${X:?m}", "$$", "1m", "a=b", "service:web",
         "/abs", "~", "", "service_healthy", "bind", "volume", "1.5", "-1"]))
_DOCS = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.sampled_from(["services", "volumes", "networks", "name", "x-y"]),
                           _DOCS, max_size=4))
def test_any_document_loads_or_fails_cleanly(tmp_path: Path, doc: dict[str, object]) -> None:
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(doc))
    try:
        project = load_project(ProjectOptions(working_directory=str(tmp_path)))
    except InvalidParameter:
        return
    dump_yaml(to_dict(project))
    dump_json(to_dict(project))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(service=st.dictionaries(st.sampled_from(_KEYS), _DOCS, max_size=6))
def test_any_service_loads_or_fails_cleanly(tmp_path: Path, service: dict[str, object]) -> None:
    doc = {"services": {"web": {"image": "x", **service}}, "volumes": {"web": None},
           "networks": {"web": None}}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(doc))
    try:
        project = load_project(ProjectOptions(working_directory=str(tmp_path)))
    except InvalidParameter:
        return
    dump_yaml(to_dict(project))
