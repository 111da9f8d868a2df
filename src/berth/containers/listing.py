"""Which containers: `docker ps`'s filters and order, and `docker container prune`.

The API parses the `filters` parameter into typed records (`ContainerFilters`,
`PruneFilters`); this module resolves the names in them (containers, images, host
networks) and applies them, with dockerd's order and counting. It returns container
records; it knows no JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from berth import clock
from berth.containers.manager import ContainerManager
from berth.containers.model import Container
from berth.errors import BerthError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContainerFilters:
    """`docker ps --filter …`, checked. A field that is None does not filter; a value
    given with no items (`{"name": {}}`) matches nothing, as dockerd has it."""

    name: tuple[str, ...] | None = None  # exact, or a regular expression found in the name
    id: tuple[str, ...] | None = None  # exact, or a regular expression found in the ID
    status: tuple[str, ...] | None = None  # states; filtering on one lists stopped containers too
    health: tuple[str, ...] | None = None  # "none", "starting", "healthy", "unhealthy"
    volume: tuple[str, ...] | None = None  # volume names, bind sources, or mount destinations
    network: tuple[str, ...] | None = None  # network names or ID prefixes
    ancestor: tuple[str, ...] | None = None  # image references: the image or one built on it
    label: tuple[str, ...] = ()  # "key" or "key=value"
    exited: tuple[int, ...] = ()  # exit codes
    before: tuple[str, ...] = ()  # containers: those created before it
    since: tuple[str, ...] = ()  # containers: those created after it
    publish: frozenset[str] = frozenset()  # "8080/tcp": a published port (host side)
    expose: frozenset[str] = frozenset()  # "80/tcp": an exposed or published container port
    is_task: bool | None = None  # swarm tasks (none here) or not


@dataclass
class _Resolved:
    """The filters' names resolved once (dockerd's listContext)."""

    before: str | None  # a container ID: skip every container up to and including it
    since: str | None  # a container ID: stop there
    ancestors: set[str] | None  # image IDs; None when not filtering on them
    host_networks: dict[str, str]  # "host"/"none" → network ID, for containers in those modes


def _regex_match(values: tuple[str, ...], source: str) -> bool:
    """dockerd's Args.Match: an exact value, or a regular expression found in source."""
    for value in values:
        if value == source:
            return True
        try:
            if re.search(value, source):
                return True
        except re.error:
            continue
    return False


def _resolve(mgr: ContainerManager, f: ContainerFilters) -> _Resolved:
    before = since = None
    for v in f.before:
        before = mgr.get(v).id
    for v in f.since:
        since = mgr.get(v).id
    ancestors = None
    if f.ancestor is not None:
        ancestors = set()
        images = mgr.images.all()
        for v in f.ancestor:
            base = mgr.images.lookup(v)
            if base is None:
                continue  # dockerd only warns, and the filter then matches nothing
            ancestors.add(base.id)
            # its descendants: images built on all of its layers, and more
            if base.chain_ids:
                depth = len(base.chain_ids)
                ancestors.update(img.id for img in images
                                 if len(img.chain_ids) > depth and img.chain_ids[:depth] == base.chain_ids)
    host_networks = {}
    if mgr.network is not None:
        for mode in ("host", "none"):
            n = mgr.network.get(mode)
            host_networks[mode] = n.id if n else ""
    return _Resolved(before, since, ancestors, host_networks)


def epoch(stamp: str) -> float:
    """An RFC 3339 time as unix seconds; 0 for none (Go's zero time)."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    return clock.parse_time(stamp) / 1e9


def health_status(c: Container) -> str:
    """"none" without a health check, else "starting", "healthy" or "unhealthy"."""
    health = getattr(c, "health", None)
    status = getattr(health, "status", None)
    return status if isinstance(status, str) and status else "none"


def port_keys(c: Container) -> tuple[set[str], set[str]]:
    """The container's ports as `docker ps` lists them, as ("host port/proto" of each
    entry, "container port/proto" of each entry); an exposed port not published has
    host port 0."""
    public: set[str] = set()
    private: set[str] = set()
    published = set()
    for pp in c.ports:
        published.add(f"{pp.container_port}/{pp.proto}")
        public.add(f"{pp.host_port}/{pp.proto}")
        private.add(f"{pp.container_port}/{pp.proto}")
    for p in c.config.exposed_ports:
        key = p if "/" in p else f"{p}/tcp"
        if key not in published:
            port, _, proto = key.partition("/")
            public.add(f"0/{proto}")
            private.add(f"{int(port)}/{proto}")
    return public, private


def _identity_matches(c: Container, f: ContainerFilters) -> bool:
    """The filters dockerd applies before the limit: name, id, is-task, label."""
    if f.name is not None and not (_regex_match(f.name, "/" + c.name) or _regex_match(f.name, c.name)):
        return False
    if f.id is not None and not _regex_match(f.id, c.id):
        return False
    if f.is_task:
        return False  # no container here is a swarm task
    for v in f.label:
        k, sep, want = v.partition("=")
        if k not in c.config.labels or (sep and c.config.labels[k] != want):
            return False
    return True


def _state_matches(c: Container, f: ContainerFilters, r: _Resolved) -> bool:
    """The filters dockerd applies after the limit: exit code, state, health, volume,
    ancestor, network and ports."""
    if f.exited and not (not c.state.running and c.state.exit_code in f.exited
                         and epoch(c.state.started_at)):
        return False
    if f.status is not None and not _regex_match(f.status, c.state.status.value):
        return False
    if f.health is not None and health_status(c) not in f.health:
        return False
    if f.volume is not None:
        names = {mp.name or mp.source for mp in c.mounts}
        destinations = {mp.destination for mp in c.mounts if mp.destination}
        if not any(v in destinations or v in names for v in f.volume):
            return False
    if r.ancestors is not None and c.image_id not in r.ancestors:
        return False
    if f.network is not None:
        networks = {name: ep.network_id for name, ep in c.networks.items()}
        mode = c.host_config.network_mode
        if not networks and mode in r.host_networks:
            networks[mode] = r.host_networks[mode]
        if not any(v in networks or any(nid.startswith(v) for nid in networks.values() if nid)
                   for v in f.network):
            return False
    if f.publish or f.expose:
        public, private = port_keys(c)
        if not (public & f.publish or private & f.expose):
            return False
    return True


def list_containers(mgr: ContainerManager, filters: ContainerFilters, show_all: bool = False,
                    limit: int = -1) -> list[Container]:
    """dockerd's container list: newest first, `before`/`since` by position, the limit
    counted before the state filters (as dockerd counts it)."""
    r = _resolve(mgr, filters)
    show_all = show_all or filters.status is not None
    out: list[Container] = []
    for c in mgr.all():
        if r.before is not None:
            if c.id == r.before:
                r.before = None
            continue
        if r.since is not None and c.id == r.since:
            break
        if not c.state.running and not show_all and limit <= 0:
            continue
        if not _identity_matches(c, filters):
            continue
        if 0 < limit <= len(out):
            break
        if _state_matches(c, filters, r):
            out.append(c)
    return out


async def layer_sizes(mgr: ContainerManager, c: Container) -> tuple[int, int]:
    """SizeRw (the container's own changes) and SizeRootFs (those and its image)."""
    try:
        rw = await asyncio.to_thread(mgr.layers.rw_size, c.id)
    except OSError:
        rw = 0  # removed while we listed
    image = mgr.images.lookup(c.image_id)
    return rw, rw + (image.size if image else 0)


# -- prune -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneFilters:
    """`docker container prune --filter …`, checked."""

    label: tuple[str, ...] = ()  # every one must hold: "key" or "key=value"
    label_not: tuple[str, ...] = ()  # `label!`: not all of these may hold
    until: float | None = None  # unix seconds: keep containers created after it


@dataclass(frozen=True)
class PruneResult:
    deleted: list[str]  # container IDs
    reclaimed: int  # bytes


def labels_match(f: PruneFilters, labels: dict[str, str]) -> bool:
    """dockerd's matchLabels: every `label` holds; and not every `label!` does."""

    def holds(spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in labels and (not eq or labels[key] == value)

    if not all(holds(v) for v in f.label):
        return False
    return not (f.label_not and all(holds(v) for v in f.label_not))


async def prune(mgr: ContainerManager, filters: PruneFilters) -> PruneResult:
    """Remove every container that does not run, but those created after `until` or
    failing the label filters; one that cannot be removed is logged and kept."""
    deleted: list[str] = []
    reclaimed = 0
    for c in mgr.all():
        if c.state.running:
            continue
        if filters.until is not None and epoch(c.created) > filters.until:
            continue
        if not labels_match(filters, c.config.labels):
            continue
        size, _ = await layer_sizes(mgr, c)
        try:
            await mgr.remove(c.id)
        except BerthError as e:
            log.warning("container prune: %s: %s", c.id[:12], e)
            continue
        deleted.append(c.id)
        reclaimed += size
    return PruneResult(deleted, reclaimed)
