"""`docker ps`'s filters and `docker container prune`'s, applied to container records:
dockerd's order, its limit counting, regular-expression names, ports, labels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from berth.containers.listing import (
    ContainerFilters,
    PruneFilters,
    labels_match,
    list_containers,
    port_keys,
    prune,
)
from berth.containers.model import Container, HostConfig, RunConfig, State, Status
from berth.errors import NotFound
from berth.network.model import PublishedPort

STARTED = "2026-01-01T00:00:00.000000000Z"


def _container(name: str, status: Status = Status.RUNNING, exit_code: int = 0, labels: dict[str, str] | None = None,
               exposed: list[str] | None = None, ports: list[PublishedPort] | None = None) -> Container:
    started = STARTED if status != Status.CREATED else "0001-01-01T00:00:00Z"
    return Container(name * 8, name, STARTED, "sha256:" + "0" * 64,
                     RunConfig(image="busybox", labels=labels or {}, exposed_ports=exposed or []), HostConfig(),
                     state=State(status=status, exit_code=exit_code, started_at=started), ports=ports or [])


class _Manager:
    """What the listing asks of the container manager: the records, newest first."""

    def __init__(self, containers: list[Container]) -> None:
        self.containers = {c.id: c for c in containers}
        self.network = None
        self.images: Any = None
        self.removed: list[str] = []

    def all(self) -> list[Container]:
        return list(self.containers.values())

    def get(self, ref: str) -> Container:
        for c in self.containers.values():
            if ref in (c.id, c.name):
                return c
        raise NotFound(f"No such container: {ref}")

    async def remove(self, ref: str) -> None:
        self.removed.append(ref)


class _Layers:
    def rw_size(self, container_id: str) -> int:
        return 10


class _Images:
    def lookup(self, name: str) -> None:
        return None


NO_FILTERS = ContainerFilters()


def _names(mgr: _Manager, filters: ContainerFilters = NO_FILTERS, show_all: bool = False,
           limit: int = -1) -> list[str]:
    return [c.name for c in list_containers(mgr, filters, show_all, limit)]  # type: ignore[arg-type]


@pytest.fixture
def mgr() -> _Manager:
    return _Manager([_container("web", labels={"tier": "front"}), _container("db", Status.EXITED, 3),
                     _container("cache", Status.CREATED), _container("worker", labels={"tier": "back"})])


def test_running_only_unless_all(mgr: _Manager) -> None:
    assert _names(mgr) == ["web", "worker"]
    assert _names(mgr, show_all=True) == ["web", "db", "cache", "worker"]


def test_a_status_filter_lists_stopped_containers(mgr: _Manager) -> None:
    assert _names(mgr, ContainerFilters(status=("exited",))) == ["db"]


def test_name_is_exact_or_a_regular_expression(mgr: _Manager) -> None:
    assert _names(mgr, ContainerFilters(name=("^w",)), show_all=True) == ["web", "worker"]
    assert _names(mgr, ContainerFilters(name=("/db",)), show_all=True) == ["db"]
    assert _names(mgr, ContainerFilters(name=()), show_all=True) == []  # given, with no value


def test_labels(mgr: _Manager) -> None:
    assert _names(mgr, ContainerFilters(label=("tier",))) == ["web", "worker"]
    assert _names(mgr, ContainerFilters(label=("tier=back",))) == ["worker"]


def test_exited_needs_a_container_that_ran(mgr: _Manager) -> None:
    assert _names(mgr, ContainerFilters(exited=(3,)), show_all=True) == ["db"]
    assert _names(mgr, ContainerFilters(exited=(0,)), show_all=True) == []


def test_before_and_since_by_position(mgr: _Manager) -> None:
    assert _names(mgr, ContainerFilters(before=("db",)), show_all=True) == ["cache", "worker"]
    assert _names(mgr, ContainerFilters(since=("cache",)), show_all=True) == ["web", "db"]
    with pytest.raises(NotFound):
        _names(mgr, ContainerFilters(before=("nope",)))


def test_a_limit_lists_stopped_containers(mgr: _Manager) -> None:
    # a limit lists stopped containers too; it stops the walk once `limit` have matched
    assert _names(mgr, limit=2) == ["web", "db"]
    assert _names(mgr, ContainerFilters(exited=(3,)), limit=1) == ["db"]


def test_ports() -> None:
    c = _container("p", exposed=["80/tcp", "53/udp"], ports=[PublishedPort("tcp", 80, "", 8080)])
    assert port_keys(c) == ({"8080/tcp", "0/udp"}, {"80/tcp", "53/udp"})
    mgr = _Manager([c, _container("q")])
    assert _names(mgr, ContainerFilters(publish=frozenset({"8080/tcp"}))) == ["p"]
    assert _names(mgr, ContainerFilters(expose=frozenset({"53/udp"}))) == ["p"]
    assert _names(mgr, ContainerFilters(publish=frozenset({"80/tcp"}))) == []


def test_prune_labels() -> None:
    labels = {"a": "1", "b": "2"}
    assert labels_match(PruneFilters(label=("a", "b=2")), labels)
    assert not labels_match(PruneFilters(label=("a=2",)), labels)
    assert labels_match(PruneFilters(label_not=("a", "c")), labels)  # not all of them hold
    assert not labels_match(PruneFilters(label_not=("a", "b")), labels)


def test_prune_removes_what_does_not_run(mgr: _Manager) -> None:
    mgr.layers = _Layers()  # type: ignore[attr-defined]
    mgr.images = _Images()
    result = asyncio.run(prune(mgr, PruneFilters()))  # type: ignore[arg-type]
    assert mgr.removed == ["db" * 8, "cache" * 8]
    assert result.deleted == mgr.removed and result.reclaimed == 20
    mgr.removed.clear()
    asyncio.run(prune(mgr, PruneFilters(until=0)))  # type: ignore[arg-type]
    assert mgr.removed == []  # all were created after it
