"""What the engine holds of a project: its containers, networks and volumes, found by
compose's labels (so a project made by compose v2 or docker-compose 1.29 is found too).

Owns: the `ProjectContainer` record read from `GET /containers/json`, the listing of a
project's containers (one service, several, one-offs or not), and the ordering compose
uses (by service, then container number).
Must not: change anything on the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from berth.client.engine import Client
from berth.compose.engine import labels as L


@dataclass
class ProjectContainer:
    id: str
    name: str
    service: str
    number: int
    state: str  # created, running, paused, restarting, exited, dead
    status: str  # "Up 3 seconds (healthy)"
    image: str
    command: str
    created: int
    labels: dict[str, str]
    ports: list[dict[str, Any]] = field(default_factory=list)
    networks: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def oneoff(self) -> bool:
        return self.labels.get(L.ONEOFF) == "True"

    @property
    def config_hash(self) -> str:
        return self.labels.get(L.CONFIG_HASH, "")

    @classmethod
    def from_summary(cls, s: dict[str, Any]) -> ProjectContainer:
        labels = s.get("Labels") or {}
        names = s.get("Names") or [""]
        try:
            number = int(labels.get(L.NUMBER, "0"))
        except ValueError:
            number = 0
        return cls(
            id=s["Id"], name=names[0].lstrip("/"), service=labels.get(L.SERVICE, ""),
            number=number, state=s.get("State", ""), status=s.get("Status", ""),
            image=s.get("Image", ""), command=s.get("Command", ""), created=s.get("Created", 0),
            labels=labels, ports=s.get("Ports") or [],
            networks=(s.get("NetworkSettings") or {}).get("Networks") or {},
            mounts=s.get("Mounts") or [],
        )


def list_containers(client: Client, project: str, *, services: list[str] | None = None,
                    stopped: bool = True, oneoff: bool | None = False) -> list[ProjectContainer]:
    """The project's containers, sorted by service and number. `oneoff`: False leaves
    `run` containers out, True keeps only them, None keeps both."""
    filters = [f"{L.PROJECT}={project}", L.CONFIG_HASH]  # as compose v2 lists them
    if oneoff is not None:
        filters.append(f"{L.ONEOFF}={'True' if oneoff else 'False'}")
    if services and len(services) == 1:
        filters.append(f"{L.SERVICE}={services[0]}")
    params = {"all": "1" if stopped else "0", "filters": json.dumps({"label": filters})}
    found = [ProjectContainer.from_summary(s) for s in client.get_json("/containers/json", params)]
    if services:
        found = [c for c in found if c.service in services]
    return sorted(found, key=lambda c: (c.service, c.number, c.name))


def list_networks(client: Client, project: str) -> list[dict[str, Any]]:
    params = {"filters": json.dumps({"label": [f"{L.PROJECT}={project}"]})}
    return list(client.get_json("/networks", params))


def list_volumes(client: Client, project: str) -> list[dict[str, Any]]:
    params = {"filters": json.dumps({"label": [f"{L.PROJECT}={project}"]})}
    return list(client.get_json("/volumes", params).get("Volumes") or [])


def list_projects(client: Client, *, stopped: bool = False) -> dict[str, list[ProjectContainer]]:
    """Every project that has containers, by name (what `compose ls` lists)."""
    params = {"all": "1" if stopped else "0", "filters": json.dumps({"label": [L.PROJECT, L.CONFIG_HASH]})}
    projects: dict[str, list[ProjectContainer]] = {}
    for s in client.get_json("/containers/json", params):
        c = ProjectContainer.from_summary(s)
        projects.setdefault(c.labels.get(L.PROJECT, ""), []).append(c)
    return dict(sorted(projects.items()))
