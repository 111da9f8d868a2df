"""What compose does to a project's existing containers: stop, kill, pause, unpause,
restart, rm, and `down` (containers, then networks, then volumes and images if asked).

Owns: the order (dependents stop before what they depend on; restart follows
dependencies), the progress events compose v2 shows for each, and what `down` removes
(found by compose's labels, so a project needs no file to be taken down).
Must not: create anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from berth.client.engine import APIError, Client, path_escape
from berth.compose.engine import convert, graph
from berth.compose.engine import labels as L
from berth.compose.engine.observed import (
    ProjectContainer,
    list_containers,
    list_networks,
    list_volumes,
)
from berth.compose.engine.progress import Progress, Status
from berth.compose.engine.up import ComposeError
from berth.compose.model import Project


@dataclass
class Target:
    """The project a command works on: its name, and its model when there is a file."""

    client: Client
    name: str
    project: Project | None
    progress: Progress

    def containers(self, services: list[str] | None = None, *, stopped: bool = True,
                   oneoff: bool | None = False) -> list[ProjectContainer]:
        if services and self.project is not None:
            for s in services:
                if s not in self.project.services and s not in self.project.disabled_services:
                    raise ComposeError(f"no such service: {s}")
        return list_containers(self.client, self.name, services=services or None, stopped=stopped, oneoff=oneoff)


def _ordered(target: Target, containers: list[ProjectContainer], fn: Callable[[ProjectContainer], None], *,
             reverse: bool) -> None:
    """fn on each container, service by service in dependency order (reversed for
    stopping); without a project file, all at once."""
    by_service: dict[str, list[ProjectContainer]] = {}
    for c in containers:
        by_service.setdefault(c.service, []).append(c)

    def per_service(name: str) -> None:
        graph.each([c.id for c in by_service.get(name, [])],
                   lambda cid: fn(next(c for c in containers if c.id == cid)))

    services = target.project.services if target.project is not None else {}
    known = [s for s in by_service if s in services]
    graph.in_order(services, known, per_service, reverse=reverse)
    graph.each([name for name in by_service if name not in services], per_service)


def _call(target: Target, c: ProjectContainer, working: str, done: str, path: str,
          params: dict[str, str] | None = None) -> None:
    event = f"Container {c.name}"
    target.progress.working(event, working)
    try:
        target.client.post(f"/containers/{c.id}/{path}", params)
    except APIError as exc:
        target.progress.error(event, "Error", str(exc))
        raise ComposeError(f"Error response from daemon: {exc.message}") from None
    target.progress.done(event, done)


def _timeout(timeout: int | None) -> dict[str, str] | None:
    return None if timeout is None else {"t": str(timeout)}


def stop(target: Target, services: list[str], timeout: int | None = None) -> None:
    running = [c for c in target.containers(services) if c.state in ("running", "paused", "restarting")]
    _ordered(target, running, lambda c: _call(target, c, "Stopping", "Stopped", "stop", _timeout(timeout)),
             reverse=True)


def start(target: Target, services: list[str]) -> None:
    """`compose start` on a project without its file: start what exists."""
    stopped = [c for c in target.containers(services) if c.state != "running"]
    if not stopped and not target.containers(services):
        raise ComposeError("service(s) not found" if services else "no containers to start")
    _ordered(target, stopped, lambda c: _call(target, c, "Starting", "Started", "start"), reverse=False)


def restart(target: Target, services: list[str], timeout: int | None = None) -> None:
    every = target.containers(services)
    _ordered(target, every, lambda c: _call(target, c, "Restarting", "Started", "restart", _timeout(timeout)),
             reverse=False)


def kill(target: Target, services: list[str], signal: str = "SIGKILL") -> None:
    running = [c for c in target.containers(services, stopped=False)]
    if not running:
        raise ComposeError("no container to kill")
    graph.each([c.id for c in running], lambda cid: _call(
        target, next(c for c in running if c.id == cid), "Killing", "Killed", "kill", {"signal": signal}))


def pause(target: Target, services: list[str]) -> None:
    running = [c for c in target.containers(services, stopped=False) if c.state == "running"]
    graph.each([c.id for c in running], lambda cid: _call(
        target, next(c for c in running if c.id == cid), "Pausing", "Paused", "pause"))


def unpause(target: Target, services: list[str]) -> None:
    paused = [c for c in target.containers(services, stopped=False) if c.state == "paused"]
    graph.each([c.id for c in paused], lambda cid: _call(
        target, next(c for c in paused if c.id == cid), "Unpausing", "Unpaused", "unpause"))


def remove_container(target: Target, c: ProjectContainer, *, volumes: bool, force: bool = True) -> None:
    event = f"Container {c.name}"
    target.progress.working(event, "Removing")
    try:
        target.client.request("DELETE", f"/containers/{c.id}",
                              {"force": "1" if force else None, "v": "1" if volumes else None}).read()
    except APIError as exc:
        if exc.http_status != 404:
            target.progress.error(event, "Error", str(exc))
            raise ComposeError(f"Error response from daemon: {exc.message}") from None
    target.progress.done(event, "Removed")


def stop_and_remove(target: Target, c: ProjectContainer, timeout: int | None, volumes: bool) -> None:
    if c.state in ("running", "paused", "restarting"):
        _call(target, c, "Stopping", "Stopped", "stop", _timeout(timeout))
    remove_container(target, c, volumes=volumes)


def down(target: Target, *, volumes: bool = False, remove_orphans: bool = False, rmi: str = "",
         timeout: int | None = None, services: list[str] | None = None) -> None:
    """Stop and remove the project's containers (one-off ones too), then its networks,
    and its volumes (-v) and images (--rmi local|all)."""
    every = target.containers(services, oneoff=None)
    project = target.project
    known = set(project.services) | set(project.disabled_services) if project is not None else None
    orphans = [c for c in every if known is not None and c.service not in known]
    if orphans and not remove_orphans:
        every = [c for c in every if c not in orphans]
        names = ", ".join(c.name for c in orphans)
        target.progress.message(
            f"WARN[0000] Found orphan containers ([{names}]) for this project. If you removed or renamed this "
            "service in your compose file, you can run this command with the --remove-orphans flag to clean it up.")
    _ordered(target, every, lambda c: stop_and_remove(target, c, timeout, volumes), reverse=True)
    if services:
        return
    networks = {}
    for net in list_networks(target.client, target.name):
        key = (net.get("Labels") or {}).get(L.NETWORK, "")
        if project is None or key not in project.networks or not project.networks[key].external:
            networks[net["Name"]] = net["Id"]
    removals = {f"Network {name}": (f"/networks/{nid}", "network") for name, nid in networks.items()}
    if volumes:
        removals.update({f"Volume {v['Name']}": (f"/volumes/{path_escape(v['Name'])}", "volume")
                         for v in list_volumes(target.client, target.name)})
    graph.each(sorted(removals), lambda event: _remove(target, event, *removals[event]))
    if rmi:
        for image in sorted(_images_to_remove(target, every, rmi)):
            _remove(target, f"Image {image}", f"/images/{path_escape(image)}", "image")


def _images_to_remove(target: Target, containers: list[ProjectContainer], rmi: str) -> set[str]:
    if rmi not in ("local", "all"):
        raise ComposeError(f"invalid --rmi value {rmi!r}: local or all")
    images: set[str] = set()
    if target.project is not None:
        for svc in target.project.services.values():
            if rmi == "all" or not svc.image:
                images.add(convert.image_name(target.project, svc))
    else:
        for c in containers:
            if rmi == "all" or c.image == f"{target.name}-{c.service}":
                images.add(c.image)
    return images


def _remove(target: Target, event: str, path: str, kind: str) -> None:
    target.progress.working(event, "Removing")
    try:
        target.client.request("DELETE", path).read()
    except APIError as exc:
        if exc.http_status == 404:
            target.progress.done(event, "Removed")
            return
        if exc.http_status == 409 and kind in ("network", "volume", "image"):
            target.progress.event(event, "Resource is still in use", status=Status.WARNING)
            return
        target.progress.error(event, "Error", str(exc))
        raise ComposeError(f"Error response from daemon: {exc.message}") from None
    target.progress.done(event, "Removed")

