"""Dependency order with parallelism, and compose v2's plain progress lines."""

from __future__ import annotations

import io
import threading

import pytest

from berth.compose.engine import graph
from berth.compose.engine.progress import PlainProgress
from berth.compose.model import Dependency, Service


def _services(edges: dict[str, list[str]]) -> dict[str, Service]:
    return {name: Service(name=name, image="x", depends_on={d: Dependency() for d in deps})
            for name, deps in edges.items()}


EDGES = {"web": ["api"], "api": ["db", "cache"], "db": [], "cache": [], "lone": []}


def test_dependencies_run_first_and_independent_services_together() -> None:
    services = _services(EDGES)
    order: list[str] = []
    lock = threading.Lock()
    both_leaves_running = threading.Barrier(3, timeout=5)  # db, cache and lone at once

    def visit(name: str) -> None:
        if name in ("db", "cache", "lone"):
            both_leaves_running.wait()
        with lock:
            order.append(name)

    graph.in_order(services, list(services), visit)
    assert order.index("api") > max(order.index("db"), order.index("cache"))
    assert order.index("web") > order.index("api")


def test_reverse_order_stops_dependents_first() -> None:
    services = _services(EDGES)
    order: list[str] = []
    graph.in_order(services, ["web", "api", "db"], order.append, reverse=True)
    assert order == ["web", "api", "db"]


def test_with_dependencies_is_transitive() -> None:
    assert graph.with_dependencies(_services(EDGES), ["web"]) == {"web", "api", "db", "cache"}


def test_a_failure_stops_what_depends_on_it() -> None:
    services = _services(EDGES)
    ran: list[str] = []

    def visit(name: str) -> None:
        if name == "db":
            raise RuntimeError("db failed")
        ran.append(name)

    with pytest.raises(RuntimeError, match="db failed"):
        graph.in_order(services, list(services), visit)
    assert "api" not in ran and "web" not in ran


def test_plain_progress_lines_are_compose_v2s() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.working("Container p-web-1", "Creating")
    progress.done("Container p-web-1", "Created")
    progress.error("Container p-web-1", "Error", "port is already allocated")
    assert out.getvalue() == (" Container p-web-1  Creating\n Container p-web-1  Created\n"
                              " Container p-web-1  port is already allocated\n")
