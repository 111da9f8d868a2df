"""The requests and results the network controller works on, and the network store."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from berth.network.model import (
    Endpoint,
    EndpointRequest,
    EndpointResult,
    EndpointSpec,
    Network,
    PortRequest,
    PublishedPort,
    Sandbox,
    SandboxRequest,
    SubnetConfig,
)
from berth.network.store import SqliteNetworkStore

RESULT = EndpointResult("n" * 64, "e" * 64, "eth0", "veth1234567", "02:42:0a:00:00:02",
                        "10.0.0.2", 24, "10.0.0.1", "fd00::2", 64, "fd00::1")


def test_an_endpoint_record_keeps_the_result_and_gives_it_back() -> None:
    ep = Endpoint("n" * 64, EndpointRequest(aliases=["web"]))
    assert ep.result() is None  # nothing made while the container does not run
    ep.assign(RESULT)
    assert ep.result() == RESULT
    assert (ep.ipv4, ep.gateway, ep.ifname, ep.host_ifname) == ("10.0.0.2", "10.0.0.1", "eth0", "veth1234567")
    assert ep.request.aliases == ["web"]  # what was asked stays
    ep.clear()
    assert ep.result() is None
    assert ep.network_id == "n" * 64


def test_an_endpoint_record_keeps_its_json_fields() -> None:
    """Container records written by older berthd hold these fields: names stay."""
    ep = Endpoint("n" * 64)
    ep.assign(RESULT)
    assert set(dataclasses.asdict(ep)) == {
        "network_id", "request", "endpoint_id", "ipv4", "ipv4_prefixlen", "gateway", "ipv6", "ipv6_prefixlen",
        "ipv6_gateway", "mac", "host_ifname", "ifname"}


def test_requests_are_values() -> None:
    req = SandboxRequest("c" * 64, "web", "web", "bridge", (EndpointSpec("bridge", "n" * 64),), PortRequest())
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(req, name="other").name == "other"
    assert req.endpoints[0].request == EndpointRequest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        RESULT.ipv4 = "10.0.0.3"  # type: ignore[misc]


def test_a_sandbox_holds_endpoints_by_network_name() -> None:
    sb = Sandbox("c" * 64, "/run/netns/x", {"bridge": RESULT}, [PublishedPort("tcp", 80, "", 8080)])
    assert sb.networks["bridge"].ipv4 == "10.0.0.2"
    assert sb.ports[0].host_port == 8080


OLD_SCHEMA = """CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);"""


def test_the_store_reads_a_row_written_by_older_berthd() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)  # as open_db makes it
    db.execute(OLD_SCHEMA)  # as metadata.py made it
    doc = {"id": "a" * 64, "name": "mynet", "driver": "bridge", "created": "2026-01-01T00:00:00Z",
           "internal": False, "attachable": False, "enable_ipv6": False, "ingress": False,
           "options": {"com.docker.network.bridge.name": "br-aaaaaaaaaaaa"}, "labels": {"a": "b"},
           "ipam_driver": "default", "ipam_options": {}, "ipam_state": {},
           "subnets": [{"subnet": "10.5.0.0/16", "gateway": "10.5.0.1", "ip_range": "", "aux_addresses": {}}],
           "interface": "br-aaaaaaaaaaaa", "a_field_from_the_future": 1}
    db.execute("INSERT INTO networks VALUES (?,?,?)", (doc["id"], doc["name"], json.dumps(doc)))
    store = SqliteNetworkStore(db)
    [n] = store.load()
    assert (n.name, n.interface, n.labels) == ("mynet", "br-aaaaaaaaaaaa", {"a": "b"})
    assert n.subnets == [SubnetConfig("10.5.0.0/16", "10.5.0.1")]


def test_the_store_saves_replaces_and_deletes() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)  # as open_db makes it
    store = SqliteNetworkStore(db)
    n = Network("b" * 64, "net", "macvlan", options={"parent": "eth0"}, subnets=[SubnetConfig("10.6.0.0/24")])
    store.save(n)
    n.labels = {"x": "y"}
    store.save(n)
    assert store.load() == [n]
    assert [r[0] for r in db.execute("SELECT name FROM networks")] == ["net"]
    store.delete(n.id)
    store.delete(n.id)
    assert store.load() == []
