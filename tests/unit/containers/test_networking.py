"""A container's network requests built from its record, and the controller's results
written back into it (berth.containers.networking)."""

from __future__ import annotations

from berth.containers import networking
from berth.containers.model import Container, HostConfig, RunConfig
from berth.network.model import (
    Endpoint,
    EndpointRequest,
    EndpointResult,
    PortBinding,
    PublishedPort,
    Sandbox,
)


def _container() -> Container:
    c = Container("c" * 64, "web", "2026-01-01T00:00:00Z", "sha256:" + "i" * 64,
                  RunConfig("busybox", hostname="webhost", exposed_ports=["80/tcp"]),
                  HostConfig(network_mode="mynet", port_bindings={"80/tcp": [PortBinding("", "8080")]}))
    c.networks = {"mynet": Endpoint("n" * 64, EndpointRequest(aliases=["w"])),
                  "other": Endpoint("o" * 64, EndpointRequest(ipv4="10.1.0.9"))}
    return c


def test_the_request_says_what_the_record_asks() -> None:
    req = networking.sandbox_request(_container())
    assert (req.container_id, req.name, req.hostname, req.network_mode) == ("c" * 64, "web", "webhost", "mynet")
    assert [(s.network, s.network_id) for s in req.endpoints] == [("mynet", "n" * 64), ("other", "o" * 64)]
    assert req.endpoints[0].request.aliases == ["w"] and req.endpoints[1].request.ipv4 == "10.1.0.9"
    assert req.ports.bindings == {"80/tcp": [PortBinding("", "8080")]}
    assert req.ports.exposed == ("80/tcp",) and not req.ports.publish_all


def test_the_request_is_a_copy() -> None:
    c = _container()
    req = networking.sandbox_request(c)
    req.endpoints[0].request.aliases.append("changed")
    assert c.networks["mynet"].request.aliases == ["w"]


def test_a_result_kept_in_the_record_comes_back_and_is_forgotten() -> None:
    c = _container()
    result = EndpointResult("n" * 64, "e" * 64, "eth0", "veth0000001", "02:42:0a:00:00:02", "10.0.0.2", 24, "10.0.0.1")
    sb = Sandbox(c.id, "/run/berth/netns/x", {"mynet": result}, [PublishedPort("tcp", 80, "", 8080)])
    assert networking.keep_sandbox(c, sb) == "/run/berth/netns/x"
    assert c.sandbox_key == "/run/berth/netns/x" and c.ports == sb.ports
    assert c.networks["mynet"].ipv4 == "10.0.0.2" and c.networks["other"].ipv4 == ""
    assert networking.sandbox_of(c) == sb  # the endpoints made, not those only asked for
    doc = Container.from_doc(c.to_doc())
    assert networking.sandbox_of(doc) == sb  # as saved and loaded again
    networking.forget_sandbox(c)
    assert (c.sandbox_key, c.ports, c.networks["mynet"].ipv4) == ("", [], "")
    assert c.networks["mynet"].request.aliases == ["w"]
    assert networking.keep_sandbox(c, None) is None
