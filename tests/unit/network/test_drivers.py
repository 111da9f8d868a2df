"""Driver selection (berth.network.drivers) and the controller over a driver it does not
know by name: a fake one, registered like overlay will be."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from berth.errors import Forbidden, InvalidParameter, NotFound
from berth.network import controller as controller_module
from berth.network import ipam
from berth.network.controller import NetworkController
from berth.network.drivers import Drivers, HostNetworking, NetworkDriver, local_drivers
from berth.network.drivers.bridge import BridgeDriver
from berth.network.drivers.host import HostDriver
from berth.network.drivers.macvlan import MacvlanDriver
from berth.network.drivers.null import NullDriver
from berth.network.model import (
    EndpointRequest,
    EndpointResult,
    EndpointSpec,
    Network,
    PortBinding,
    PortRequest,
    PublishedPort,
    SandboxRequest,
    SubnetConfig,
)

PROTOCOL_METHODS = [name for name, value in vars(NetworkDriver).items()
                    if inspect.isfunction(value) and not name.startswith("_")]


@pytest.fixture
def drivers() -> Drivers:
    return local_drivers(HostNetworking(), lambda: [])


@pytest.mark.parametrize(("name", "cls"), [("bridge", BridgeDriver), ("macvlan", MacvlanDriver),
                                           ("host", HostDriver), ("null", NullDriver)])
def test_each_driver_is_picked_by_its_name(drivers: Drivers, name: str, cls: type) -> None:
    d = drivers.get(name)
    assert isinstance(d, cls)
    assert d.name == name
    assert d.scope == "local"


@pytest.mark.parametrize("cls", [BridgeDriver, MacvlanDriver, HostDriver, NullDriver])
def test_every_driver_has_the_whole_interface(cls: type) -> None:
    for method in PROTOCOL_METHODS:
        ours = getattr(cls, method, None)
        assert callable(ours), f"{cls.__name__} has no {method}"
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(getattr(NetworkDriver, method)), method


def test_an_unknown_driver_is_dockers_plugin_not_found(drivers: Drivers) -> None:
    with pytest.raises(NotFound) as e:
        drivers.get("weave")
    assert str(e.value) == "could not find plugin weave in v1 plugin registry: plugin not found"
    assert e.value.status == 404


@pytest.mark.parametrize("name", ["overlay", "ipvlan"])
def test_dockers_drivers_berth_lacks_are_unsupported(drivers: Drivers, name: str) -> None:
    with pytest.raises(InvalidParameter, match=f"the {name} driver is not supported by berth"):
        drivers.get(name)


@pytest.mark.parametrize("name", ["host", "null"])
def test_host_and_null_make_no_second_network(drivers: Drivers, name: str) -> None:
    with pytest.raises(Forbidden, match=f'only one instance of "{name}" network is allowed'):
        drivers.get(name).check_create({})


def test_a_registered_driver_of_cluster_scope_is_picked_too(drivers: Drivers) -> None:
    fake = FakeDriver("overlay", scope="swarm")
    drivers.register(fake)
    assert drivers.get("overlay") is fake
    assert "overlay" in drivers.names()


# -- the controller over a fake driver -------------------------------------------------------------


class FakeDriver:
    """Makes nothing; remembers what it was asked."""

    def __init__(self, name: str = "fake", scope: str = "local") -> None:
        self.name = name
        self.scope = scope
        self.calls: list[tuple[str, Any]] = []

    def check_create(self, options: dict[str, str]) -> None:
        self.calls.append(("check_create", options))

    async def create_network(self, n: Network) -> None:
        n.interface = "fk0"
        self.calls.append(("create_network", n.name))

    async def restore_network(self, n: Network) -> None:
        self.calls.append(("restore_network", n.name))

    async def delete_network(self, n: Network) -> None:
        self.calls.append(("delete_network", n.name))

    def firewall_rules(self, n: Network) -> None:
        return None

    async def create_endpoint(self, n: Network, ep: EndpointResult) -> EndpointResult:
        self.calls.append(("create_endpoint", ep.ifname))
        return dataclasses.replace(ep, host_ifname="fkhost")

    async def join(self, n: Network, sandbox: str, ep: EndpointResult, default_route: bool) -> None:
        self.calls.append(("join", (sandbox, ep.ifname, ep.host_ifname, default_route)))

    async def leave(self, n: Network, sandbox: str, ep: EndpointResult) -> None:
        self.calls.append(("leave", ep.ifname))

    async def delete_endpoint(self, n: Network, ep: EndpointResult, *, sandbox_gone: bool = False) -> None:
        self.calls.append(("delete_endpoint", ep.host_ifname))

    async def program_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: PortRequest) -> list[PublishedPort]:
        self.calls.append(("program", ep.ipv4))
        return [PublishedPort("tcp", 80, "", 8080)] if ports.bindings else []

    async def adopt_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        self.calls.append(("adopt", [p.host_port for p in ports]))

    async def restore_external_connectivity(self, n: Network, ep: EndpointResult,
                                            ports: list[PublishedPort]) -> None:
        self.calls.append(("restore", [p.host_port for p in ports]))

    async def revoke_external_connectivity(self, n: Network, ep: EndpointResult, ports: list[PublishedPort]) -> None:
        self.calls.append(("revoke", [p.host_port for p in ports]))


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, Network] = {}

    def load(self) -> list[Network]:
        return list(self.docs.values())

    def save(self, n: Network) -> None:
        self.docs[n.id] = n

    def delete(self, network_id: str) -> None:
        self.docs.pop(network_id, None)


@pytest.fixture
def ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NetworkController:
    c = NetworkController(MemoryStore(), str(tmp_path), firewall=False)

    async def no_routes() -> list[Any]:
        return []

    monkeypatch.setattr(c, "_host_routes", no_routes)
    monkeypatch.setattr(controller_module.netlink, "create_netns", lambda path: None)
    monkeypatch.setattr(controller_module.netlink, "delete_netns", lambda path: None)
    return c


def _request(n: Network, *, aliases: tuple[str, ...] = (), ports: bool = False) -> SandboxRequest:
    bindings = {"80/tcp": [PortBinding("", "8080")]} if ports else {}
    return SandboxRequest("c" * 64, "web", "webhost", n.name,
                          (EndpointSpec(n.name, n.id, EndpointRequest(aliases=list(aliases))),),
                          PortRequest(bindings))


def test_the_controller_works_through_the_driver_the_record_names(ctl: NetworkController) -> None:
    fake = FakeDriver()
    ctl.drivers.register(fake)

    async def run() -> None:
        n = await ctl.create("mine", "fake", subnets=[SubnetConfig("10.99.0.0/24")])
        assert (n.driver, n.interface) == ("fake", "fk0")
        assert ctl.store.load() == [n]  # type: ignore[attr-defined]

        sb = await ctl.setup(_request(n, aliases=("w",), ports=True))
        assert sb is not None
        ep = sb.networks["mine"]
        assert (ep.ifname, ep.host_ifname, ep.network_id) == ("eth0", "fkhost", n.id)
        assert ep.ipv4 in ipam.Allocator.from_doc(n.ipam_state).allocated()
        assert ep.gateway and ep.ipv4_prefixlen == 24 and ep.mac.startswith("02:42:")
        assert sb.ports == [PublishedPort("tcp", 80, "", 8080)]
        assert fake.calls.index(("create_endpoint", "eth0")) < fake.calls.index(("join", (sb.key, "eth0", "fkhost", True)))
        assert ("program", ep.ipv4) in fake.calls

        # what the embedded DNS answers comes from the live sandboxes
        for name in ("web", "w", "webhost", sb.container_id[:12]):
            assert ctl._dns_lookup(sb.container_id, name, 1) == [ep.ipv4]
        ctl.rename(sb.container_id, "site")
        assert ctl._dns_lookup(sb.container_id, "site", 1) == [ep.ipv4]
        assert ctl._dns_lookup(sb.container_id, "web", 1) is None
        assert [live.id for live in ctl.attached(n)] == [sb.container_id]

        with pytest.raises(Forbidden, match="has active endpoints"):
            await ctl.remove("mine")
        await ctl.release(sb)
        assert ("revoke", [8080]) in fake.calls and ("delete_endpoint", "fkhost") in fake.calls
        assert ipam.Allocator.from_doc(n.ipam_state).allocated() == []
        assert ctl.attached(n) == []
        await ctl.remove("mine")
        assert ("delete_network", "mine") in fake.calls
        assert ctl.store.load() == []  # type: ignore[attr-defined]

    asyncio.run(run())


def test_connect_and_disconnect_return_what_the_container_keeps(ctl: NetworkController) -> None:
    ctl.drivers.register(FakeDriver())

    async def run() -> None:
        a = await ctl.create("a", "fake", subnets=[SubnetConfig("10.98.0.0/24")])
        b = await ctl.create("b", "fake", subnets=[SubnetConfig("10.97.0.0/24")])
        req = _request(a)
        # not running: an endpoint with nothing made yet
        name, ep = await ctl.connect(req, "b", EndpointRequest(aliases=["x"]))
        assert (name, ep.network_id, ep.ipv4, ep.request.aliases) == ("b", b.id, "", ["x"])
        with pytest.raises(Forbidden, match="already exists in network a"):
            await ctl.connect(req, "a", EndpointRequest())
        # running: joined at once, as eth1, without the default route
        sb = await ctl.setup(req)
        assert sb is not None
        name, ep = await ctl.connect(req, "b", EndpointRequest())
        assert (name, ep.ifname) == ("b", "eth1") and ep.ipv4.startswith("10.97.0.")
        joined = dataclasses.replace(req, endpoints=(*req.endpoints, EndpointSpec("b", b.id)))
        assert await ctl.disconnect(joined, "b") == "b"
        assert ipam.Allocator.from_doc(b.ipam_state).allocated() == []
        with pytest.raises(Forbidden, match="is not connected to network b"):
            await ctl.disconnect(req, "b")
        await ctl.release(sb)

    asyncio.run(run())


def test_create_refuses_an_unknown_driver_before_making_anything(ctl: NetworkController) -> None:
    with pytest.raises(NotFound, match="could not find plugin nosuch"):
        asyncio.run(ctl.create("x", "nosuch"))
    assert ctl.networks == {}
