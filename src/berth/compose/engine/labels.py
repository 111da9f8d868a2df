"""The names and labels compose puts on what it makes, and its configuration hashes.

Owns: the `com.docker.compose.*` label keys, the names compose v2 gives containers
(`PROJECT-SERVICE-N`), and the config hashes of services, networks and volumes, computed
exactly as compose v2 does (SHA-256 of Go's `json.Marshal` of the normalized record, with
the keys compose leaves out), so that a project brought up by compose v2 and then by
`berth compose` (or the other way round) is seen as unchanged.
Must not: talk to the Engine API.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from berth import __version__
from berth.compose.model import Network, Project, Service, Volume
from berth.compose.output import json_shaped_network, json_shaped_service, json_shaped_volume

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
ENVIRONMENT_FILE = "com.docker.compose.project.environment_file"
DEPENDS_ON = "com.docker.compose.depends_on"
VERSION = "com.docker.compose.version"
IMAGE = "com.docker.compose.image"
IMAGE_BUILDER = "com.docker.compose.image.builder"
REPLACE = "com.docker.compose.replace"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
SLUG = "com.docker.compose.slug"

# What compose writes in com.docker.compose.version: berth's own version, so a reader can
# tell which compose made a container (compose v2 writes its own).
COMPOSE_VERSION = __version__


def container_name(project: str, service: Service, number: int) -> str:
    return service.container_name or f"{project}-{service.name}-{number}"


def _go_json(value: Any) -> bytes:
    """Go's json.Marshal: compact, UTF-8, and <, >, & (and U+2028/9) escaped as Go does."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def _digest(value: Any) -> str:
    return hashlib.sha256(_go_json(value)).hexdigest()


def service_hash(service: Service) -> str:
    """compose v2's ServiceHash: the service without build, pull_policy, scale,
    deploy.replicas, depends_on and profiles (changing those recreates nothing)."""
    shaped = json_shaped_service(service)
    for key in ("build", "pull_policy", "scale", "depends_on", "profiles"):
        shaped.pop(key, None)
    if "deploy" in shaped:
        shaped["deploy"] = {k: v for k, v in shaped["deploy"].items() if k != "replicas"}
    return _digest(shaped)


def network_hash(network: Network) -> str:
    return _digest(json_shaped_network(network))


def volume_hash(volume: Volume) -> str:
    return _digest(json_shaped_volume(volume))


def service_labels(project: Project, service: Service, *, env_files: list[str],
                   oneoff: bool = False) -> dict[str, str]:
    """The labels of every container of `service` but the per-container ones (number,
    config hash, depends_on, image): the service's own labels under compose's."""
    labels = dict(service.labels)
    labels.update({
        PROJECT: project.name,
        SERVICE: service.name,
        VERSION: COMPOSE_VERSION,
        WORKING_DIR: project.working_dir,
        CONFIG_FILES: ",".join(project.config_files),
        ONEOFF: "True" if oneoff else "False",
    })
    if env_files:
        labels[ENVIRONMENT_FILE] = ",".join(env_files)
    return labels


def depends_on_label(service: Service) -> str:
    return ",".join(f"{name}:{dep.condition}:{'true' if dep.restart else 'false'}"
                    for name, dep in service.depends_on.items())
