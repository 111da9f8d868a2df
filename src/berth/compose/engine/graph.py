"""Services in dependency order, independent ones in parallel.

Owns: running one function per service once every service it depends on (within the
set) has finished — or, in reverse, once every service that depends on it has — with
threads, so independent services converge, start and stop at the same time. The first
error stops new work; what is running finishes; the error is raised.
Must not: know what the function does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from berth.compose.model import Service

MAX_PARALLEL = 16


def dependencies(services: dict[str, Service], name: str) -> set[str]:
    return {dep for dep in services[name].depends_on if dep in services}


def with_dependencies(services: dict[str, Service], names: Iterable[str]) -> set[str]:
    """`names` and every service they depend on, transitively."""
    found: set[str] = set()
    todo = [n for n in names if n in services]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += dependencies(services, name)
    return found


def in_order(services: dict[str, Service], names: Iterable[str], fn: Callable[[str], None], *,
             reverse: bool = False) -> None:
    """fn(name) for each of `names`, dependencies first (dependents first if `reverse`)."""
    selected = set(names)
    waits_for: dict[str, set[str]] = {name: set() for name in selected}
    for name in selected:
        for dep in dependencies(services, name) & selected:
            if reverse:
                waits_for[dep].add(name)
            else:
                waits_for[name].add(dep)
    finished: set[str] = set()
    running: dict[Future[None], str] = {}
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        while True:
            if error is None:
                for name in sorted(waits_for):
                    if name not in finished and name not in running.values() and waits_for[name] <= finished:
                        running[pool.submit(fn, name)] = name
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                exc = future.exception()
                if exc is not None and error is None:
                    error = exc
                finished.add(name)
    if error is not None:
        raise error


def each(items: Iterable[str], fn: Callable[[str], None]) -> None:
    """fn(item) for every item in parallel; the first error is raised after all end."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise exc
