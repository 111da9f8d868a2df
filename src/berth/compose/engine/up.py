"""Bringing a project up: images, networks, volumes, then each service's containers made
to match the file, in dependency order, and started.

Owns: compose v2's convergence — a service's containers are found by label; those whose
config hash (or image) differs are recreated (the new one takes the old one's anonymous
volumes, then its name), missing ones are created numbered after the highest, extra ones
removed; the ones that match are left running — and the start phase (dependencies'
conditions waited for: started, healthy, completed successfully), and `--wait`.
Must not: parse the command line or print other than through its Progress.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth.client import credentials
from berth.client.buildcontext import read_dockerignore, write_context_tar
from berth.client.engine import APIError, Client, iter_json_stream, path_escape
from berth.compose.engine import convert, graph
from berth.compose.engine import labels as L
from berth.compose.engine.observed import ProjectContainer, list_containers
from berth.compose.engine.progress import Progress, Status
from berth.compose.model import Project, Service
from berth.images.reference import ReferenceError, parse_normalized

RECREATE_DIVERGED, RECREATE_FORCE, RECREATE_NEVER = "diverged", "force", "never"
POLL = 0.25


class ComposeError(Exception):
    """A failure compose reports as one line and exit status 1."""


@dataclass
class CreateOptions:
    services: list[str] = field(default_factory=list)  # empty: all
    recreate: str = RECREATE_DIVERGED
    recreate_dependencies: str = RECREATE_DIVERGED
    remove_orphans: bool = False
    ignore_orphans: bool = False
    build: bool | None = None  # True: --build, False: --no-build
    pull: str | None = None  # --pull always|missing|never|build
    quiet_pull: bool = False
    inherit: bool = True  # keep anonymous volumes (--renew-anon-volumes turns it off)
    timeout: int | None = None
    scale: dict[str, int] = field(default_factory=dict)
    no_deps: bool = False


@dataclass
class StartOptions:
    services: list[str] = field(default_factory=list)
    wait: bool = False
    wait_timeout: float | None = None


class Compose:
    """One project on one engine."""

    def __init__(self, client: Client, project: Project, progress: Progress, *,
                 env_files: list[str] | None = None, config_dir: str = "",
                 build_output: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.project = project
        self.progress = progress
        self.env_files = env_files or []
        self.config_dir = config_dir
        self.build_output = build_output or (lambda text: None)
        self.image_ids: dict[str, str] = {}
        self.observed: dict[str, list[ProjectContainer]] = {}
        self.lock = threading.Lock()

    # -- selection
    def selected(self, names: list[str], *, with_deps: bool = True) -> list[str]:
        services = self.project.services
        for name in names:
            if name not in services:
                if name in self.project.disabled_services:
                    raise ComposeError(f"service {name!r} has profiles {self.project.disabled_services[name].profiles} "
                                       "that are not enabled")
                raise ComposeError(f"no such service: {name}")
        chosen = names or list(services)
        return sorted(graph.with_dependencies(services, chosen) if with_deps else set(chosen))

    # -- images
    def image_exists(self, image: str) -> str | None:
        try:
            return str(self.client.get_json(f"/images/{path_escape(image)}/json")["Id"])
        except APIError as exc:
            if exc.http_status == 404:
                return None
            raise

    def ensure_images(self, names: list[str], *, build: bool | None = None, pull: str | None = None,
                      quiet_pull: bool = False) -> None:
        """What compose v2 does before creating: pull what is missing (or what the pull
        policy says), build what has a build section and no image yet (or with --build)."""
        to_pull: list[str] = []
        to_build: list[str] = []
        for name in names:
            svc = self.project.services[name]
            image = convert.image_name(self.project, svc)
            policy = pull or svc.pull_policy or "missing"
            exists = self.image_exists(image)
            if svc.build is not None and (build or policy == "build" or (exists is None and build is not False)):
                to_build.append(name)
            elif policy in ("always", "daily", "weekly") or exists is None:
                if policy == "never" and exists is None:
                    raise ComposeError(f"No such image: {image}")
                if svc.build is not None and build is False and exists is None:
                    raise ComposeError(f"image {image} not found and --no-build given")
                to_pull.append(name)
            if exists is not None:
                self.image_ids[name] = exists
        by_image: dict[str, list[str]] = {}
        for name in to_pull:
            by_image.setdefault(convert.image_name(self.project, self.project.services[name]), []).append(name)
        graph.each(sorted(by_image), lambda image: self.pull_image(image, by_image[image], quiet_pull))
        for name in to_build:
            self.build_service(name)
        for name in names:
            if name not in self.image_ids or name in to_pull:
                image = convert.image_name(self.project, self.project.services[name])
                found = self.image_exists(image)
                if found is not None:
                    self.image_ids[name] = found

    def pull_image(self, image: str, services: list[str], quiet: bool = False) -> None:
        ids = services
        for svc in ids:
            self.progress.working(svc, "Pulling")
        try:
            ref = parse_normalized(image)
        except ReferenceError as exc:
            for svc in ids:
                self.progress.error(svc, "Error", str(exc))
            raise ComposeError(f"invalid reference format: {image}") from None
        params = {"fromImage": ref.name, "tag": ref.digest or ref.tag or "latest"}
        auth = credentials.registry_auth_header(ref.domain, self.config_dir)
        try:
            resp = self.client.request("POST", "/images/create", params, headers={"X-Registry-Auth": auth})
            for message in iter_json_stream(resp.iter_chunks()):
                if isinstance(message, dict) and message.get("error"):
                    raise ComposeError(str(message["error"]))
        except (APIError, ComposeError) as exc:
            for svc in ids:
                self.progress.error(svc, "Error", exc.message if isinstance(exc, APIError) else str(exc))
            raise ComposeError(str(exc)) from None
        for svc in ids:
            self.progress.done(svc, "Pulled")

    def build_service(self, name: str) -> str:
        """`POST /build` with the service's build section; the image is tagged with its
        `image` name (or PROJECT-SERVICE) and its build.tags."""
        svc = self.project.services[name]
        b = svc.build
        assert b is not None
        image = convert.image_name(self.project, svc)
        event = f"Service {name}"
        self.progress.working(event, "Building")
        params: dict[str, Any] = {
            "t": [image, *b.tags], "dockerfile": b.dockerfile,
            "buildargs": json.dumps({k: v for k, v in b.args.items() if v is not None}) if b.args else None,
            "target": b.target or None,
            "labels": json.dumps({**b.labels, L.IMAGE_BUILDER: "classic"}),
            "cachefrom": json.dumps(b.cache_from) if b.cache_from else None,
            "pull": "1" if b.pull else None, "nocache": "1" if b.no_cache else None,
            "networkmode": b.network or None,
            "shmsize": str(b.shm_size) if b.shm_size else None,
            "extrahosts": ",".join(h.replace("=", ":", 1) for h in b.extra_hosts) or None,
            "rm": "1",
        }
        headers = {"Content-Type": "application/x-tar",
                   "X-Registry-Config": credentials.registry_config_header(self.config_dir)}
        with tempfile.TemporaryFile() as spool:
            if b.dockerfile_inline is not None:
                _inline_context(b.context, b.dockerfile_inline, spool)
                params["dockerfile"] = "Dockerfile"
            else:
                ignore = read_dockerignore(b.context, b.dockerfile)
                try:
                    write_context_tar(b.context, ignore, [b.dockerfile, ".dockerignore"], spool)
                except FileNotFoundError:
                    self.progress.error(event, "Error", f"unable to prepare context: path {b.context!r} not found")
                    raise ComposeError(f"unable to prepare context: path {b.context!r} not found") from None
            spool.seek(0)
            image_id = ""
            try:
                resp = self.client.request("POST", "/build", params, headers=headers,
                                           raw_body=iter(lambda: spool.read(65536), b""))
                for message in iter_json_stream(resp.iter_chunks()):
                    if not isinstance(message, dict):
                        continue
                    if message.get("error"):
                        raise ComposeError(str(message["error"]).strip())
                    if message.get("stream"):
                        self.build_output(str(message["stream"]))
                    aux = message.get("aux")
                    if isinstance(aux, dict) and aux.get("ID"):
                        image_id = str(aux["ID"])
            except (APIError, ComposeError) as exc:
                msg = exc.message if isinstance(exc, APIError) else str(exc)
                self.progress.error(event, "Error", msg)
                raise ComposeError(f"failed to solve: {msg}") from None
        self.progress.done(event, "Built")
        if image_id:
            self.image_ids[name] = image_id
        return image_id

    # -- networks and volumes
    def ensure_networks(self) -> None:
        used = {key for svc in self.project.services.values() for key in svc.networks}
        graph.each(sorted(k for k in self.project.networks if k in used), self._ensure_network)

    def _ensure_network(self, key: str) -> None:
        net = self.project.networks[key]
        if net.external:
            try:
                self.client.get_json(f"/networks/{path_escape(net.name)}")
            except APIError as exc:
                if exc.http_status == 404:
                    raise ComposeError(f"network {net.name} declared as external, but could not be found") from None
                raise
            return
        existing = self._network(net.name)
        if existing is not None:
            if existing.get("Labels", {}).get(L.NETWORK, key) != key:
                raise ComposeError(
                    f"network {net.name} was found but has incorrect label {L.NETWORK} set to "
                    f"{existing['Labels'][L.NETWORK]!r} (expected: {key!r})")
            return
        event = f"Network {net.name}"
        self.progress.working(event, "Creating")
        try:
            self.client.post_json("/networks/create", body=convert.network_body(self.project, key, net))
        except APIError as exc:
            if exc.http_status == 409:  # made meanwhile by someone else
                self.progress.done(event, "Created")
                return
            self.progress.error(event, "Error", str(exc))
            raise ComposeError(f"failed to create network {net.name}: {exc.message}") from None
        self.progress.done(event, "Created")

    def _network(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.client.get_json(f"/networks/{path_escape(name)}")
        except APIError as exc:
            if exc.http_status == 404:
                return None
            raise
        return found if found.get("Name") == name else None

    def ensure_volumes(self) -> None:
        used = {v.source for svc in self.project.services.values() for v in svc.volumes if v.type == "volume"}
        graph.each(sorted(k for k in self.project.volumes if k in used), self._ensure_volume)

    def _ensure_volume(self, key: str) -> None:
        vol = self.project.volumes[key]
        try:
            found = self.client.get_json(f"/volumes/{path_escape(vol.name)}")
        except APIError as exc:
            if exc.http_status != 404:
                raise
            found = None
        if vol.external:
            if found is None:
                raise ComposeError(f'external volume "{vol.name}" not found')
            return
        if found is not None:
            if L.PROJECT not in (found.get("Labels") or {}):
                self.progress.message(
                    f'WARN[0000] volume "{vol.name}" already exists but was not created by Docker Compose. '
                    "Use `external: true` to use an existing volume")
            return
        event = f"Volume {vol.name}"
        self.progress.working(event, "Creating")
        try:
            self.client.post_json("/volumes/create", body=convert.volume_body(self.project, key, vol))
        except APIError as exc:
            self.progress.error(event, "Error", str(exc))
            raise ComposeError(f"failed to create volume {vol.name}: {exc.message}") from None
        self.progress.done(event, "Created")

    # -- containers
    def refresh(self) -> list[ProjectContainer]:
        every = list_containers(self.client, self.project.name, oneoff=None)
        with self.lock:
            self.observed = {}
            for c in every:
                if not c.oneoff:
                    self.observed.setdefault(c.service, []).append(c)
        return every

    def containers_of(self, service: str) -> list[ProjectContainer]:
        with self.lock:
            return list(self.observed.get(service, []))

    def remove_orphans(self, every: list[ProjectContainer], remove: bool, timeout: int | None) -> None:
        known = set(self.project.services) | set(self.project.disabled_services)
        orphans = [c for c in every if c.service not in known]
        if not orphans:
            return
        if not remove:
            names = ", ".join(c.name for c in orphans)
            self.progress.message(
                f"WARN[0000] Found orphan containers ([{names}]) for this project. If you removed or renamed "
                "this service in your compose file, you can run this command with the --remove-orphans flag "
                "to clean it up.")
            return
        graph.each([c.id for c in orphans], lambda cid: self.stop_and_remove(
            next(c for c in orphans if c.id == cid), timeout))

    def stop_and_remove(self, c: ProjectContainer, timeout: int | None, *, volumes: bool = False) -> None:
        event = f"Container {c.name}"
        if c.state in ("running", "paused", "restarting"):
            self.progress.working(event, "Stopping")
            self.client.post(f"/containers/{c.id}/stop", _timeout_params(timeout))
            self.progress.done(event, "Stopped")
        self.progress.working(event, "Removing")
        try:
            self.client.request("DELETE", f"/containers/{c.id}",
                                {"force": "1", "v": "1" if volumes else None}).read()
        except APIError as exc:
            if exc.http_status != 404:
                self.progress.error(event, "Error", str(exc))
                raise
        self.progress.done(event, "Removed")

    def create(self, options: CreateOptions) -> list[str]:
        """Converge the selected services (and, unless --no-deps, what they depend on).
        Returns the services converged."""
        names = self.selected(options.services, with_deps=not options.no_deps)
        for name, count in options.scale.items():
            if name not in self.project.services:
                raise ComposeError(f"no such service: {name}")
            self.project.services[name].scale = count
            if self.project.services[name].deploy is not None:
                self.project.services[name].deploy.replicas = None  # type: ignore[union-attr]
        self.ensure_images(names, build=options.build, pull=options.pull, quiet_pull=options.quiet_pull)
        self.ensure_networks()
        self.ensure_volumes()
        every = self.refresh()
        if not options.ignore_orphans:
            self.remove_orphans(every, options.remove_orphans, options.timeout)
        explicit = set(options.services) if options.services else set(names)

        def converge(name: str) -> None:
            policy = options.recreate if name in explicit else options.recreate_dependencies
            self.ensure_service(name, policy, options.inherit, options.timeout)

        graph.in_order(self.project.services, names, converge)
        return names

    def _must_recreate(self, svc: Service, c: ProjectContainer, policy: str, expected_hash: str) -> bool:
        if policy == RECREATE_NEVER:
            return False
        if policy == RECREATE_FORCE:
            return True
        if c.config_hash != expected_hash:
            return True
        image_id = self.image_ids.get(svc.name)
        return bool(image_id and c.labels.get(L.IMAGE) and c.labels[L.IMAGE] != image_id)

    def ensure_service(self, name: str, policy: str, inherit: bool, timeout: int | None) -> None:
        svc = self.resolved(self.project.services[name])
        expected = svc.replicas
        if expected > 1 and svc.container_name:
            raise ComposeError(f'service "{name}" has specified a custom container name "{svc.container_name}" '
                               "and can't be scaled")
        containers = self.containers_of(name)
        want_hash = L.service_hash(svc)  # resolved, as compose v2 hashes it
        obsolete = [c for c in containers if self._must_recreate(svc, c, policy, want_hash)]
        current = sorted((c for c in containers if c not in obsolete), key=lambda c: c.number)
        ordered = current + obsolete  # the ones to keep first; extra ones (obsolete, highest) go
        keep, extra = ordered[:expected], ordered[expected:]
        next_number = max((c.number for c in containers), default=0) + 1
        jobs: list[Callable[[], ProjectContainer | None]] = []
        for c in extra:
            jobs.append(lambda c=c: self.stop_and_remove(c, timeout))  # type: ignore[misc]
        for c in keep:
            if c in obsolete:
                self.stop_dependents(name, timeout)
                jobs.append(lambda c=c: self.recreate(svc, c, inherit, timeout))  # type: ignore[misc]
            elif c.state == "running":
                self.progress.done(f"Container {c.name}", "Running")
        for i in range(expected - len(keep)):
            jobs.append(lambda n=next_number + i: self.create_container(svc, n))  # type: ignore[misc]
        results: list[ProjectContainer | None] = [None] * len(jobs)

        def run(index: str) -> None:
            results[int(index)] = jobs[int(index)]()

        graph.each([str(i) for i in range(len(jobs))], run)
        made = {c.id: c for c in results if isinstance(c, ProjectContainer)}
        replaced = {c.id for c in obsolete} | {c.id for c in extra}
        final = [made.get(c.id, c) for c in keep if c.id not in replaced] + list(made.values())
        with self.lock:
            self.observed[name] = sorted(final, key=lambda c: c.number)

    def stop_dependents(self, name: str, timeout: int | None) -> None:
        dependents = [s.name for s in self.project.services.values()
                      if name in s.depends_on and s.depends_on[name].restart]
        for dep in dependents:
            for c in self.containers_of(dep):
                if c.state == "running":
                    self.progress.working(f"Container {c.name}", "Stopping")
                    self.client.post(f"/containers/{c.id}/stop", _timeout_params(timeout))
                    self.progress.done(f"Container {c.name}", "Stopped")
                    c.state = "exited"

    def resolved(self, svc: Service) -> Service:
        """The service with `service:NAME` references (network_mode, ipc, pid,
        volumes_from) turned into the first container of that service."""
        import copy

        svc = copy.copy(svc)

        def first(of: str, what: str) -> str:
            found = self.containers_of(of)
            if not found:
                raise ComposeError(f"cannot share {what} with service {of}: container missing")
            return found[0].id

        if svc.network_mode and svc.network_mode.startswith("service:"):
            svc.network_mode = "container:" + first(svc.network_mode[8:], "network namespace")
        if svc.ipc and svc.ipc.startswith("service:"):
            svc.ipc = "container:" + first(svc.ipc[8:], "IPC namespace")
        if svc.pid and svc.pid.startswith("service:"):
            svc.pid = "container:" + first(svc.pid[8:], "PID namespace")
        # compose v2 drops an access mode here (`app:ro` shares read-write): so does berth,
        # so that the containers either makes are the same
        volumes_from = []
        for spec in svc.volumes_from:
            parts = spec.split(":")
            volumes_from.append(parts[1] if parts[0] == "container" else first(parts[0], "volume"))
        svc.volumes_from = volumes_from
        return svc

    def links(self, svc: Service, number: int) -> list[str]:
        out: list[str] = []
        for raw in svc.links:
            target, _, alias = raw.partition(":")
            for c in self.containers_of(target):
                out += [f"{c.name}:{alias or target}", f"{c.name}:{target}-{number}",
                        f"{c.name}:{self.project.name}-{target}-{number}"]
        for raw in svc.external_links:
            target, _, alias = raw.partition(":")
            out.append(f"{target}:{alias or target}")
        return out

    def _create(self, svc: Service, name: str, opts: convert.CreateOptions) -> ProjectContainer:
        body = convert.container_body(self.project, svc, opts)
        if svc.platform:
            params: dict[str, Any] = {"name": name, "platform": svc.platform}
        else:
            params = {"name": name}
        created = self.client.post_json("/containers/create", params, body)
        info = self.client.get_json(f"/containers/{created['Id']}/json")
        for warning in created.get("Warnings") or []:
            self.progress.event(svc.name, warning, Status.WARNING)
        return ProjectContainer(
            id=info["Id"], name=info["Name"].lstrip("/"), service=svc.name, number=opts.number,
            state="created", status="Created", image=body["Image"], command="", created=0,
            labels=info["Config"].get("Labels") or {})

    def create_container(self, svc: Service, number: int) -> ProjectContainer:
        name = L.container_name(self.project.name, svc, number)
        event = f"Container {name}"
        self.progress.working(event, "Creating")
        opts = convert.CreateOptions(number=number, links=self.links(svc, number), env_files=self.env_files,
                                     image_id=self.image_ids.get(svc.name))
        try:
            made = self._create(svc, name, opts)
        except APIError as exc:
            self.progress.error(event, "Error", str(exc))
            raise ComposeError(f"Error response from daemon: {exc.message}") from None
        self.progress.done(event, "Created")
        return made

    def recreate(self, svc: Service, old: ProjectContainer, inherit: bool, timeout: int | None) -> ProjectContainer:
        """compose v2's recreate: create the new container under a temporary name (taking
        the old one's anonymous volumes), stop and remove the old one, rename the new."""
        event = f"Container {old.name}"
        self.progress.working(event, "Recreate")
        name = L.container_name(self.project.name, svc, old.number)
        inherited: dict[str, str] = {}
        if inherit:
            info = self.client.get_json(f"/containers/{old.id}/json")
            named = {v.target for v in svc.volumes if v.source}
            for m in info.get("Mounts") or []:
                if m.get("Type") == "volume" and m.get("Name") and m.get("Destination") not in named:
                    inherited[m["Destination"]] = m["Name"]
        opts = convert.CreateOptions(number=old.number, links=self.links(svc, old.number), env_files=self.env_files,
                                     image_id=self.image_ids.get(svc.name), inherited_volumes=inherited,
                                     replace=svc.container_name or f"{svc.name}-{old.number}")
        try:
            made = self._create(svc, f"{old.id[:12]}_{name}", opts)
            self.client.post(f"/containers/{old.id}/stop", _timeout_params(timeout))
            self.client.request("DELETE", f"/containers/{old.id}").read()
            self.client.post(f"/containers/{made.id}/rename", {"name": name})
        except APIError as exc:
            self.progress.error(event, "Error", str(exc))
            raise ComposeError(f"Error response from daemon: {exc.message}") from None
        made.name = name
        self.progress.done(event, "Recreated")
        return made

    # -- start
    def start(self, options: StartOptions) -> None:
        """Start the services' containers in dependency order, each service once its
        dependencies meet their condition."""
        if not self.observed:
            self.refresh()
        names = self.selected(options.services, with_deps=True) if options.services else sorted(self.project.services)
        names = [n for n in names if self.containers_of(n) or self.project.services[n].replicas > 0]

        def start_service(name: str) -> None:
            svc = self.project.services[name]
            self.wait_dependencies(name, svc, options.wait_timeout)
            containers = self.containers_of(name)
            if not containers and svc.replicas > 0:
                raise ComposeError(f"service {name!r} has no container to start")
            for c in containers:
                if c.state == "running":
                    continue
                event = f"Container {c.name}"
                self.progress.working(event, "Starting")
                try:
                    if c.state == "paused":
                        self.client.post(f"/containers/{c.id}/unpause")
                    else:
                        self.client.post(f"/containers/{c.id}/start")
                except APIError as exc:
                    self.progress.error(event, "Error", str(exc))
                    raise ComposeError(f"Error response from daemon: {exc.message}") from None
                c.state = "running"
                self.progress.done(event, "Started")

        graph.in_order(self.project.services, names, start_service)
        if options.wait:
            self.wait_healthy(names, options.wait_timeout)

    def wait_dependencies(self, name: str, svc: Service, timeout: float | None) -> None:
        deadline = None if not timeout else time.monotonic() + timeout
        for dep, cfg in sorted(svc.depends_on.items()):
            if cfg.condition == "service_started" or dep not in self.project.services:
                continue
            if self.project.services[dep].replicas == 0:
                continue
            waiting = self.containers_of(dep)
            if not waiting:
                if cfg.required:
                    raise ComposeError(f"{name} is missing dependency {dep}")
                continue
            for c in waiting:
                self.progress.working(f"Container {c.name}", "Waiting")
            while True:
                try:
                    ok = self._condition_met(waiting, cfg.condition)
                except ComposeError as exc:
                    for c in waiting:
                        self.progress.error(f"Container {c.name}", "Error", str(exc))
                    if not cfg.required:
                        break
                    if cfg.condition == "service_completed_successfully":
                        raise
                    raise ComposeError(f"dependency failed to start: {exc}") from None
                if ok:
                    text = "Exited" if cfg.condition == "service_completed_successfully" else "Healthy"
                    for c in waiting:
                        self.progress.done(f"Container {c.name}", text)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise ComposeError("timeout waiting for dependencies")
                time.sleep(POLL)

    def _condition_met(self, containers: list[ProjectContainer], condition: str) -> bool:
        for c in containers:
            info = self.client.get_json(f"/containers/{c.id}/json")
            state = info.get("State") or {}
            cname = info["Name"].lstrip("/")
            if condition == "service_completed_successfully":
                if state.get("Status") not in ("exited", "dead"):
                    return False
                if state.get("ExitCode", 0) != 0:
                    raise ComposeError(f"service {c.service!r} didn't complete successfully: "
                                       f"exit {state.get('ExitCode')}")
                continue
            if state.get("Status") == "exited":
                raise ComposeError(f"container {cname} exited ({state.get('ExitCode', 0)})")
            health = state.get("Health")
            has_check = bool((info.get("Config") or {}).get("Healthcheck")) and \
                (info["Config"]["Healthcheck"].get("Test") or ["NONE"])[0] != "NONE"
            if condition == "running_or_healthy" and not has_check:
                if state.get("Status") != "running":
                    return False
                continue
            if health is None:
                raise ComposeError(f"container {cname} has no healthcheck configured")
            status = health.get("Status")
            if status == "unhealthy":
                raise ComposeError(f"container {cname} is unhealthy")
            if status != "healthy":
                return False
        return True

    def wait_healthy(self, names: list[str], timeout: float | None) -> None:
        """`up --wait`: every service running, and healthy where it has a health check;
        a service others wait on to complete is waited on to complete."""
        deadline = None if not timeout else time.monotonic() + timeout
        completes = {dep for s in self.project.services.values() for dep, cfg in s.depends_on.items()
                     if cfg.condition == "service_completed_successfully"}
        pending = {n: self.containers_of(n) for n in names if self.containers_of(n)}
        for containers in pending.values():
            for c in containers:
                self.progress.working(f"Container {c.name}", "Waiting")
        while pending:
            for name, containers in list(pending.items()):
                condition = "service_completed_successfully" if name in completes else "running_or_healthy"
                try:
                    ok = self._condition_met(containers, condition)
                except ComposeError as exc:
                    for c in containers:
                        self.progress.error(f"Container {c.name}", "Error", str(exc))
                    raise
                if ok:
                    for c in containers:
                        self.progress.done(f"Container {c.name}",
                                           "Exited" if name in completes else "Healthy")
                    del pending[name]
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    raise ComposeError(f"application not healthy after {_seconds_text(timeout)}")
                time.sleep(POLL)


def _timeout_params(timeout: int | None) -> dict[str, Any] | None:
    return None if timeout is None else {"t": str(timeout)}


def _seconds_text(seconds: float | None) -> str:
    return f"{seconds:g}s" if seconds is not None else "0s"


def _inline_context(context: str, dockerfile: str, out: Any) -> None:
    import tarfile

    data = dockerfile.encode()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))


__all__ = ["Compose", "ComposeError", "CreateOptions", "StartOptions"]
