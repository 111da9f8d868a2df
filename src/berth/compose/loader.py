"""Loading a compose project: files, environment, name, profiles, into the typed model.

Owns: the order compose v2 loads a project in — find the files (`-f`, COMPOSE_FILE, or
compose.yaml … in the working directory and its parents, with the override file), read
the `.env` file(s) (the process environment winning), parse, interpolate and validate
each file, resolve `extends` and `include`, merge the files, pick the project name,
apply profiles, normalize into the model, and check what refers to what (unknown
services, networks, volumes, secrets; dependency cycles).
Must not: talk to the Engine API, print, or read the process environment itself (the
caller passes it in ProjectOptions).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.compose.interpolation import interpolate_document, read_dotenv
from berth.compose.merge import key_value_map, merge_documents, merge_service
from berth.compose.model import Dependency, FileObject, Network, Project, Service, Volume
from berth.compose.normalize import build_service, expand_path, scalar_string
from berth.compose.validation import validate
from berth.compose.yamlfile import parse_yaml, strip_tags
from berth.errors import InvalidParameter

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = (
    "compose.override.yaml", "compose.override.yml",
    "docker-compose.override.yml", "docker-compose.override.yaml",
)
MAX_INCLUDE_DEPTH = 16
# Stands for `-f -` among the files.
STDIN = Path("-")


@dataclass
class ProjectOptions:
    """What the command line and environment say about the project to load."""

    config_files: list[str] = field(default_factory=list)  # -f, in order; "-" is stdin_content
    project_name: str | None = None  # -p
    project_directory: str | None = None  # --project-directory
    env_files: list[str] = field(default_factory=list)  # --env-file
    profiles: list[str] = field(default_factory=list)  # --profile
    environment: Mapping[str, str] = field(default_factory=dict)  # os.environ, usually
    working_directory: str = "."  # where relative -f paths and the file search start
    stdin_content: bytes | None = None  # the file `-f -` stands for, read by the caller


_NAME_OK = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def normalize_project_name(name: str) -> str:
    """Lowercase, only [a-z0-9_-], starting with a letter or digit (compose v2)."""
    lowered = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return lowered.lstrip("_-")


def _check_project_name(name: str) -> str:
    if not _NAME_OK.match(name):
        raise InvalidParameter(
            f'invalid project name "{name}": must consist only of lowercase alphanumeric '
            "characters, hyphens, and underscores as well as start with a letter or number"
        )
    return name


def find_config_files(start: Path) -> list[Path]:
    """compose.yaml (or its older names) in `start` or a parent, with its override file."""
    directory = start.resolve()
    while True:
        for name in DEFAULT_FILES:
            candidate = directory / name
            if candidate.is_file():
                files = [candidate]
                for override in OVERRIDE_FILES:
                    if (directory / override).is_file():
                        files.append(directory / override)
                        break
                return files
        if directory.parent == directory:
            raise InvalidParameter(
                "no configuration file provided: not found"
            )
        directory = directory.parent


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        from berth.compose.yamlfile import MAX_FILE_SIZE

        if size > MAX_FILE_SIZE:
            raise InvalidParameter(
                f"{path}: file too large ({size} bytes, at most {MAX_FILE_SIZE})"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidParameter(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidParameter(f"read {path}: is a directory") from None
    except OSError as e:
        raise InvalidParameter(f"open {path}: {e.strerror}") from None


def _rebase_service(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths of a service written relative to `base`, made absolute."""
    svc = copy.deepcopy(raw)
    build = svc.get("build")
    if isinstance(build, str):
        if "://" not in build:
            svc["build"] = expand_path(build, base)
    elif isinstance(build, dict) and "://" not in str(build.get("context", "")):
        build["context"] = expand_path(str(build.get("context") or "."), base)
    env_file = svc.get("env_file")
    if env_file is not None:
        entries = env_file if isinstance(env_file, list) else [env_file]
        rebased: list[Any] = []
        for entry in entries:
            if isinstance(entry, dict):
                entry = {**entry, "path": expand_path(str(entry["path"]), base)}
            else:
                entry = expand_path(str(entry), base)
            rebased.append(entry)
        svc["env_file"] = rebased
    volumes = svc.get("volumes")
    if isinstance(volumes, list):
        for i, vol in enumerate(volumes):
            if isinstance(vol, str):
                src, sep, rest = vol.partition(":")
                if sep and src.startswith((".", "~")):
                    volumes[i] = f"{expand_path(src, base)}:{rest}"
            elif isinstance(vol, dict) and vol.get("type") == "bind" and vol.get("source"):
                vol["source"] = expand_path(str(vol["source"]), base)
    extends = svc.get("extends")
    if isinstance(extends, dict) and extends.get("file"):
        extends["file"] = expand_path(str(extends["file"]), base)
    return svc


def _rebase_file_objects(section: Any, base: Path) -> Any:
    if not isinstance(section, dict):
        return section
    result = copy.deepcopy(section)
    for cfg in result.values():
        if isinstance(cfg, dict) and cfg.get("file"):
            cfg["file"] = expand_path(str(cfg["file"]), base)
    return result


class _Loading:
    """One load: the variables, the warnings, the files seen (against include loops)."""

    def __init__(
        self, lookup: Mapping[str, str], warnings: list[str], stdin: bytes | None = None
    ) -> None:
        self.stdin = stdin
        self.stdin_dir = Path(".")
        self.lookup = lookup
        self.warnings = warnings
        self.cache: dict[Path, dict[str, Any]] = {}

    def dir(self, path: Path) -> Path:
        """The directory paths in `path` are relative to."""
        return self.stdin_dir if path == STDIN else path.parent

    def file(self, path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One file parsed, interpolated and validated (not yet extended or included)."""
        if lookup is None and path in self.cache:
            return self.cache[path]
        if path == STDIN:
            if self.stdin is None:
                raise InvalidParameter("-f -: no standard input given")
            data = self.stdin
        else:
            data = _read_file(path)
        try:
            doc = parse_yaml(data, source=str(path))
        except InvalidParameter as e:
            raise InvalidParameter(f"failed to parse {path}: {e}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise InvalidParameter(
                f"failed to parse {path}: top-level object must be a mapping"
            )
        for key in doc:
            if not isinstance(key, str):
                raise InvalidParameter(f"failed to parse {path}: non-string key {key!r}")
        doc = interpolate_document(doc, lookup or self.lookup, self.warnings)
        validate(strip_tags(doc), source=str(path))
        if lookup is None:
            self.cache[path] = doc
        return doc

    def extends(self, doc: dict[str, Any], path: Path, depth: int = 0) -> dict[str, Any]:
        """`doc` with every service's `extends` resolved (recursively, across files)."""
        services = doc.get("services")
        if not isinstance(services, dict):
            return doc
        resolved: dict[str, Any] = {}

        def resolve(name: str, stack: tuple[tuple[Path, str], ...]) -> dict[str, Any]:
            if name in resolved:
                return resolved[name]  # type: ignore[no-any-return]
            if name not in services:
                raise InvalidParameter(
                    f"cannot extend service {name!r} in {path}: service not found"
                )
            svc = services[name] or {}
            ext = svc.get("extends")
            if ext is None:
                resolved[name] = svc
                return svc
            if isinstance(ext, str):
                ext = {"service": ext}
            base_name = ext["service"]
            if ext.get("file"):
                other = Path(expand_path(str(ext["file"]), self.dir(path)))
                key = (other, base_name)
                if key in stack or len(stack) > 32:
                    raise InvalidParameter(
                        f"circular reference with extends in {other}: service {base_name}"
                    )
                other_doc = self.extends(copy.deepcopy(self.file(other)), other, depth + 1)
                other_services = other_doc.get("services") or {}
                if base_name not in other_services:
                    raise InvalidParameter(
                        f"cannot extend service {base_name!r} in {other}: service not found"
                    )
                base = _rebase_service(other_services[base_name] or {}, other.parent)
            else:
                if (path, base_name) in stack:
                    chain = " -> ".join(s for _, s in stack) + f" -> {base_name}"
                    raise InvalidParameter(f"circular reference with extends: {chain}")
                base = resolve(base_name, (*stack, (path, base_name)))
            own = {k: v for k, v in svc.items() if k != "extends"}
            merged = merge_service({k: v for k, v in base.items() if k != "extends"}, own)
            resolved[name] = merged
            return merged

        new_services = {name: resolve(name, ((path, name),)) for name in services}
        return {**doc, "services": new_services}

    def include(
        self, doc: dict[str, Any], path: Path, depth: int = 0
    ) -> dict[str, Any]:
        """`doc` with its `include` entries loaded and their resources added."""
        entries = doc.pop("include", None)
        if not entries:
            return doc
        if depth >= MAX_INCLUDE_DEPTH:
            raise InvalidParameter(f"include: {path}: included too deeply (a loop?)")
        for entry in entries:
            if isinstance(entry, str):
                entry = {"path": entry}
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            files = [Path(expand_path(str(p), self.dir(path))) for p in paths]
            project_dir = (
                Path(expand_path(str(entry["project_directory"]), self.dir(path)))
                if entry.get("project_directory") else files[0].parent
            )
            env_files = entry.get("env_file")
            env_paths = (
                [Path(expand_path(str(e), self.dir(path))) for e in
                 (env_files if isinstance(env_files, list) else [env_files])]
                if env_files else
                ([project_dir / ".env"] if (project_dir / ".env").is_file() else [])
            )
            dotenv: dict[str, str] = {}
            for env_path in env_paths:
                dotenv.update(read_dotenv(env_path, {**dotenv, **self.lookup}, self.warnings))
            lookup = {**dotenv, **self.lookup}
            included: dict[str, Any] = {}
            for file in files:
                sub = self.file(file, lookup)
                sub = self.include(copy.deepcopy(sub), file, depth + 1)
                sub = self.extends(sub, file)
                included = merge_documents(included, sub)
            for name, svc in (included.get("services") or {}).items():
                if name in (doc.get("services") or {}):
                    raise InvalidParameter(
                        f"services.{name} conflicts with imported resource"
                    )
                doc.setdefault("services", {})[name] = _rebase_service(svc or {}, project_dir)
            for section in ("networks", "volumes", "secrets", "configs"):
                for name, cfg in (included.get(section) or {}).items():
                    if name in (doc.get(section) or {}):
                        if doc[section][name] == cfg:
                            continue
                        raise InvalidParameter(
                            f"{section}.{name} conflicts with imported resource"
                        )
                    if section in ("secrets", "configs"):
                        cfg = _rebase_file_objects({name: cfg}, project_dir)[name]
                    if doc.get(section) is None:
                        doc[section] = {}
                    doc[section][name] = cfg
        return doc


def _file_objects(raw: Any, project: str, base: Path) -> dict[str, FileObject]:
    result: dict[str, FileObject] = {}
    for key, cfg in (raw or {}).items():
        cfg = cfg or {}
        external = bool(cfg.get("external", False))
        result[key] = FileObject(
            name=cfg.get("name") or (key if external else f"{project}_{key}"),
            file=expand_path(str(cfg["file"]), base) if cfg.get("file") else None,
            environment=cfg.get("environment"),
            content=cfg.get("content"),
            external=external,
        )
    return result


def _check_references(
    services: dict[str, Service], disabled: dict[str, Service],
    networks: Mapping[str, Any], volumes: Mapping[str, Any],
    secrets: Mapping[str, Any], configs: Mapping[str, Any],
) -> None:
    for name, svc in services.items():
        for dep, cfg in list(svc.depends_on.items()):
            if dep not in services:
                if dep in disabled and not cfg.required:
                    continue  # kept, as compose v2 keeps it; `up` skips it
                raise InvalidParameter(
                    f'service "{name}" depends on undefined service "{dep}": '
                    "invalid compose project"
                )
        refs = [link.split(":")[0] for link in svc.links]
        refs += [
            v.split(":")[0] for v in svc.volumes_from if not v.startswith("container:")
        ]
        if svc.network_mode and svc.network_mode.startswith("service:"):
            refs.append(svc.network_mode.split(":", 1)[1])
        for ref in refs:
            if ref not in services:
                raise InvalidParameter(
                    f'service "{name}" depends on undefined service "{ref}": '
                    "invalid compose project"
                )
        for net in svc.networks:
            if net != "default" and net not in networks:
                raise InvalidParameter(
                    f'service "{name}" refers to undefined network {net}: '
                    "invalid compose project"
                )
        for vol in svc.volumes:
            if vol.type == "volume" and vol.source and vol.source not in volumes:
                raise InvalidParameter(
                    f'service "{name}" refers to undefined volume {vol.source}: '
                    "invalid compose project"
                )
        for kind, refs_, known in (("secret", svc.secrets, secrets),
                                   ("config", svc.configs, configs)):
            for ref_ in refs_:
                if ref_.source not in known:
                    raise InvalidParameter(
                        f'service "{name}" refers to undefined {kind} {ref_.source}: '
                        "invalid compose project"
                    )


def _add_implied_dependencies(svc: Service) -> None:
    """links, network_mode service: and volumes_from are dependencies too; compose v2
    writes them into depends_on (restarting with the first two)."""
    implied: list[tuple[str, bool]] = [(link.split(":")[0], True) for link in svc.links]
    if svc.network_mode and svc.network_mode.startswith("service:"):
        implied.append((svc.network_mode.split(":", 1)[1], True))
    implied += [
        (v.split(":")[0], False) for v in svc.volumes_from if not v.startswith("container:")
    ]
    for name, restart in implied:
        if name not in svc.depends_on:
            svc.depends_on[name] = Dependency(restart=restart)
    svc.depends_on = dict(sorted(svc.depends_on.items()))


def service_dependencies(svc: Service) -> list[str]:
    """The services `svc` must start after: depends_on, links, volumes_from, network_mode."""
    deps = list(svc.depends_on)
    deps += [link.split(":")[0] for link in svc.links]
    deps += [v.split(":")[0] for v in svc.volumes_from if not v.startswith("container:")]
    if svc.network_mode and svc.network_mode.startswith("service:"):
        deps.append(svc.network_mode.split(":", 1)[1])
    return list(dict.fromkeys(deps))


def _check_cycles(services: dict[str, Service]) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in service_dependencies(services[name]):
            if dep not in services:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise InvalidParameter(f"dependency cycle detected: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in sorted(services):
        if name not in state:
            visit(name, [name])


def _resolve_files(options: ProjectOptions, cwd: Path, lookup: Mapping[str, str]) -> list[Path]:
    if options.config_files:
        return [STDIN if f == "-" else Path(expand_path(f, cwd)) for f in options.config_files]
    compose_file = lookup.get("COMPOSE_FILE")
    if compose_file:
        separator = lookup.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [Path(expand_path(f, cwd)) for f in compose_file.split(separator) if f]
    return find_config_files(cwd)


def load_project(options: ProjectOptions) -> Project:
    """Load, merge, interpolate, validate and normalize a compose project."""
    cwd = Path(os.path.abspath(options.working_directory))
    os_env = dict(options.environment)
    warnings: list[str] = []

    # The .env file is looked for in the project directory, which may itself come from
    # the files; COMPOSE_FILE may come from a .env in the working directory.
    early_dir = Path(expand_path(options.project_directory, cwd)) if options.project_directory else cwd
    if not options.config_files and not os_env.get("COMPOSE_FILE") and not options.env_files:
        early_env = early_dir / ".env"
        if early_env.is_file():
            early = read_dotenv(early_env, os_env, [])
            os_env_for_files = {**early, **os_env}
        else:
            os_env_for_files = os_env
    else:
        os_env_for_files = os_env
    files = _resolve_files(options, cwd, os_env_for_files)
    working_dir = (
        Path(expand_path(options.project_directory, cwd)) if options.project_directory
        else cwd if files[0] == STDIN else files[0].parent
    )

    dotenv: dict[str, str] = {}
    env_files = (
        [Path(expand_path(f, cwd)) for f in options.env_files] if options.env_files
        else ([working_dir / ".env"] if (working_dir / ".env").is_file() else [])
    )
    for env_file in env_files:
        dotenv.update(read_dotenv(env_file, {**dotenv, **os_env}, warnings))
    lookup: dict[str, str] = {**dotenv, **os_env}

    loading = _Loading(lookup, warnings, options.stdin_content)
    loading.stdin_dir = working_dir
    merged: dict[str, Any] = {}
    for file in files:
        doc = copy.deepcopy(loading.file(file))
        doc = loading.include(doc, file)
        doc = loading.extends(doc, file)
        merged = merge_documents(merged, doc)
    merged = strip_tags(merged)

    if options.project_name:
        name = _check_project_name(options.project_name)
    elif lookup.get("COMPOSE_PROJECT_NAME"):
        name = _check_project_name(lookup["COMPOSE_PROJECT_NAME"])
    elif merged.get("name"):
        name = normalize_project_name(str(merged["name"]))
    else:
        name = normalize_project_name(working_dir.name)
        if not name:
            raise InvalidParameter(
                f"project name must not be empty (directory {working_dir.name!r}); "
                "use -p or a top-level name:"
            )

    profiles = list(options.profiles)
    if not profiles and lookup.get("COMPOSE_PROFILES"):
        profiles = [p.strip() for p in lookup["COMPOSE_PROFILES"].split(",") if p.strip()]

    services: dict[str, Service] = {}
    disabled: dict[str, Service] = {}
    for svc_name, raw in (merged.get("services") or {}).items():
        svc = build_service(str(svc_name), raw or {}, working_dir, lookup, warnings)
        if svc.image is None and svc.build is None:
            raise InvalidParameter(
                f'service "{svc_name}" has neither an image nor a build context specified: '
                "invalid compose project"
            )
        if (svc.scale is not None and svc.deploy is not None and svc.deploy.replicas is not None
                and svc.scale != svc.deploy.replicas):
            raise InvalidParameter(
                f"services.{svc_name}: can't set distinct values on 'scale' and "
                "'deploy.replicas': invalid compose project"
            )
        if svc.container_name and svc.replicas > 1:
            raise InvalidParameter(
                f"services.{svc_name}: can't set container_name and {svc_name} as container "
                "name must be unique: invalid compose project"
            )
        _add_implied_dependencies(svc)
        active = not svc.profiles or "*" in profiles or bool(set(svc.profiles) & set(profiles))
        (services if active else disabled)[svc.name] = svc

    raw_networks = merged.get("networks") or {}
    raw_volumes = merged.get("volumes") or {}
    secrets = _file_objects(merged.get("secrets"), name, working_dir)
    configs = _file_objects(merged.get("configs"), name, working_dir)
    _check_references(services, disabled, raw_networks, raw_volumes, secrets, configs)
    _check_cycles(services)

    used_networks = {n for s in services.values() for n in s.networks}
    networks: dict[str, Network] = {}
    for key in [*raw_networks, *(["default"] if "default" not in raw_networks else [])]:
        if key not in used_networks:
            continue
        cfg = raw_networks.get(key) or {}
        external = bool(cfg.get("external", False))
        networks[key] = Network(
            name=cfg.get("name") or (key if external else f"{name}_{key}"),
            driver=cfg.get("driver"),
            driver_opts={k: scalar_string(v) for k, v in (cfg.get("driver_opts") or {}).items()},
            external=external,
            internal=bool(cfg.get("internal", False)),
            attachable=bool(cfg.get("attachable", False)),
            enable_ipv6=cfg.get("enable_ipv6"),
            ipam=cfg.get("ipam"),
            labels={k: "" if v is None else scalar_string(v)
                    for k, v in key_value_map(cfg.get("labels")).items()},
        )
    used_volumes = {
        v.source for s in services.values() for v in s.volumes if v.type == "volume" and v.source
    }
    volumes: dict[str, Volume] = {}
    for key, cfg in raw_volumes.items():
        if key not in used_volumes:
            continue
        cfg = cfg or {}
        external = bool(cfg.get("external", False))
        volumes[key] = Volume(
            name=cfg.get("name") or (key if external else f"{name}_{key}"),
            driver=cfg.get("driver"),
            driver_opts={k: scalar_string(v) for k, v in (cfg.get("driver_opts") or {}).items()},
            external=external,
            labels={k: "" if v is None else scalar_string(v)
                    for k, v in key_value_map(cfg.get("labels")).items()},
        )
    used_secrets = {r.source for s in services.values() for r in s.secrets}
    used_configs = {r.source for s in services.values() for r in s.configs}

    return Project(
        name=name,
        working_dir=str(working_dir),
        config_files=[str(f) for f in files],
        services=dict(sorted(services.items())),
        networks=networks,
        volumes=volumes,
        secrets={k: v for k, v in secrets.items() if k in used_secrets},
        configs={k: v for k, v in configs.items() if k in used_configs},
        environment=lookup,
        disabled_services=disabled,
        warnings=warnings,
        extensions={k: v for k, v in merged.items() if k.startswith("x-")},
    )
