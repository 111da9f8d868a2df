"""How berthd's answers (and what it takes from a request) differ with the client's API
version: one table, applied at the edge.

A handler builds its answer once, with what every supported version may show (fields a
newer version dropped included), and passes it through `shape(kind, doc, version)` on its
way out; the table then makes it the answer dockerd gives a client of that version.
Behaviour that changed with a version (not a document's shape: a request field taken or
refused, a default, a stream's type) is asked with `at_least`.
A few clients read a field the version they negotiate has dropped: `QUIRKS` names them
(by User-Agent) and the change they get in its older form.

The table holds what dockerd itself versions (its routers' `versions.LessThan` checks,
moby v28.5.2, API 1.51, read with the Engine API's version history). Fields the version
history lists as "added" but dockerd sends to every client whatever its version
(`DNSNames`, `GwPriority`, network `EnableIPv4`, …) are not here: older clients get them
from dockerd too. Versioned fields berth never sends (container `ImageManifestDescriptor`
and `HostConfig.Annotations`, image `Descriptor`, `/info`'s `Containerd`,
`FirewallBackend`, `DiscoveredDevices`, runtime `status`) need no entry.

Must not: look up objects or call services; an entry is a pure change of a JSON document
or a version test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from berth.api.server import api_version, json_response

Version = tuple[int, int]
Doc = dict[str, Any]

# The answers the table shapes (`kind`), each named for the route that gives it.
CONTAINER_INSPECT = "GET /containers/{id}/json"
IMAGE_INSPECT = "GET /images/{name}/json"
IMAGE_LIST = "GET /images/json"
SYSTEM_DF = "GET /system/df"
INFO = "GET /info"

# Behaviour that changed with a version, asked with `at_least(version, NAME)`.
WAIT_CONDITION = "POST /containers/{id}/wait takes ?condition="
MULTIPLEXED_STREAM_TYPE = "a stream without a tty is typed application/vnd.docker.multiplexed-stream"
VOLUME_PRUNE_ANONYMOUS_ONLY = "POST /volumes/prune removes anonymous volumes only unless all=true"
IMAGE_CREATE_EVENTS = "GET /events sends image create events"
NETWORK_LIST_WITHOUT_CONTAINERS = "GET /networks leaves out each network's containers"
IPC_PRIVATE_BY_DEFAULT = "a container created without IpcMode gets the daemon's default (private)"
MOUNT_OPTIONS_OF_ITS_TYPE = "a mount's Bind/Volume/TmpfsOptions must match its Type"
MOUNT_READ_ONLY_FORCE_RECURSIVE = "BindOptions.ReadOnlyForceRecursive"
MOUNT_VOLUME_SUBPATH = "VolumeOptions.Subpath"
MOUNT_TYPE_IMAGE = "mounts of type image"
CREATE_CONSOLE_SIZE = "POST /containers/create takes HostConfig.ConsoleSize"
EXEC_CONSOLE_SIZE = "POST /containers/{id}/exec and /exec/{id}/start take ConsoleSize"
HEALTH_START_INTERVAL = "POST /containers/create takes Healthcheck.StartInterval"
CREATE_WITH_MANY_NETWORKS = "POST /containers/create connects to more than one network"
WEBSOCKET_BINARY = "GET /containers/{id}/attach/ws sends binary messages"
WEBSOCKET_CHOSEN_STREAMS = "GET /containers/{id}/attach/ws takes stdin, stdout and stderr"


@dataclass(frozen=True)
class Change:
    """What API `since` changed in answer `kind` (or in behaviour, with no functions):
    `older` makes a document what clients before `since` get, `newer` what clients at
    `since` and later get. Both change the document in place."""

    since: Version
    kind: str
    what: str
    older: Callable[[Doc], None] | None = None
    newer: Callable[[Doc], None] | None = None


# -- the changes to documents ---------------------------------------------------------------

_BUILTIN_NETWORKS = {"bridge", "host", "none", "default"}


def _aliases_hold_short_id_and_hostname(doc: Doc) -> None:
    short_id, hostname = doc["Id"][:12], (doc.get("Config") or {}).get("Hostname", "")
    for name, ep in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
        if name in _BUILTIN_NETWORKS or name.startswith("container:") or ep is None:
            continue
        ep["Aliases"] = list(dict.fromkeys([*(ep.get("Aliases") or []), short_id, hostname]))


def _virtual_size(doc: Doc) -> None:
    doc["VirtualSize"] = doc["Size"]


def _no_virtual_size(doc: Doc) -> None:
    doc.pop("VirtualSize", None)


def _zero_created(doc: Doc) -> None:
    if not doc.get("Created"):
        doc["Created"] = "0001-01-01T00:00:00Z"


def _no_builder_container(doc: Doc) -> None:
    doc.pop("Container", None)
    doc.pop("ContainerConfig", None)


# Config keys of an image that are a container's, not an image's: shown (always empty)
# before API 1.50, and gone after.
_CONTAINER_ONLY_CONFIG = {"Hostname": "", "Domainname": "", "AttachStdin": False, "AttachStdout": False,
                          "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
                          "Image": ""}


def _image_config_with_container_fields(doc: Doc) -> None:
    config = doc.get("Config")
    if isinstance(config, dict):
        doc["Config"] = {**_CONTAINER_ONLY_CONFIG, **config}


def _untagged_as_none(doc: Doc) -> None:
    if not doc.get("RepoTags") and not doc.get("RepoDigests"):
        doc["RepoTags"], doc["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]


def _containers_not_counted(doc: Doc) -> None:
    doc["Containers"] = -1


def _df_images_virtual_size(doc: Doc) -> None:
    for image in doc.get("Images") or []:
        image["VirtualSize"] = image["Size"]


def _registry_nondistributable_fields(doc: Doc) -> None:
    registry = doc.get("RegistryConfig")
    if isinstance(registry, dict):
        registry.setdefault("AllowNondistributableArtifactsCIDRs", None)
        registry.setdefault("AllowNondistributableArtifactsHostnames", None)


def _bridge_nf_fields(doc: Doc) -> None:
    doc["BridgeNfIptables"] = False
    doc["BridgeNfIp6tables"] = False


def _unknown_kernel_and_os(doc: Doc) -> None:
    for key in ("KernelVersion", "OperatingSystem"):
        if not doc.get(key):
            doc[key] = "<unknown>"


def _security_option_names(doc: Doc) -> None:
    names = []
    for option in doc.get("SecurityOptions") or []:
        fields = dict(f.partition("=")[::2] for f in option.split(","))
        names.append(fields.get("name", option))
    doc["SecurityOptions"] = names


_BUILDER_CONTAINER = Change((1, 45), IMAGE_INSPECT, "Container and ContainerConfig (the builder's "
                            "or committed container's) are gone", newer=_no_builder_container)

CHANGES: tuple[Change, ...] = (
    # containers
    Change((1, 30), WAIT_CONDITION, "wait takes a condition (not-running, next-exit, removed); "
           "before, it is ignored and the wait is for not-running"),
    Change((1, 42), MULTIPLEXED_STREAM_TYPE, "logs, attach and exec without a tty say "
           "application/vnd.docker.multiplexed-stream; before, application/vnd.docker.raw-stream"),
    Change((1, 40), IPC_PRIVATE_BY_DEFAULT, "create without an IpcMode takes the daemon's default "
           "(private); before, shareable"),
    Change((1, 42), CREATE_CONSOLE_SIZE, "create sizes the tty from HostConfig.ConsoleSize; "
           "before, it is ignored"),
    Change((1, 42), EXEC_CONSOLE_SIZE, "exec create and start size the tty from ConsoleSize; "
           "before, it is ignored"),
    Change((1, 42), MOUNT_OPTIONS_OF_ITS_TYPE, "a mount with options of another type is refused; "
           "before, its VolumeOptions or TmpfsOptions are dropped"),
    Change((1, 44), MOUNT_READ_ONLY_FORCE_RECURSIVE, "BindOptions.ReadOnlyForceRecursive is taken; "
           "before, it is refused"),
    Change((1, 45), MOUNT_VOLUME_SUBPATH, "VolumeOptions.Subpath is taken; before, it is refused"),
    Change((1, 48), MOUNT_TYPE_IMAGE, "a mount of type image is taken; before, it is refused"),
    Change((1, 44), HEALTH_START_INTERVAL, "a health check's StartInterval is used; before, it is "
           "ignored"),
    Change((1, 44), CREATE_WITH_MANY_NETWORKS, "a container can be created on several networks; "
           "before, EndpointsConfig with more than one entry is refused"),
    Change((1, 28), WEBSOCKET_BINARY, "the websocket attach sends binary messages; before, text"),
    Change((1, 42), WEBSOCKET_CHOSEN_STREAMS, "the websocket attach takes ?stdin, ?stdout and "
           "?stderr; before, it attaches all three"),
    Change((1, 45), CONTAINER_INSPECT, "Aliases are as sent at create and connect; before, they "
           "also hold the short container ID and the hostname on user-defined networks",
           older=_aliases_hold_short_id_and_hostname),
    # images
    Change((1, 43), IMAGE_LIST, 'untagged images list RepoTags and RepoDigests []; before, '
           '["<none>:<none>"] and ["<none>@<none>"]', older=_untagged_as_none),
    Change((1, 44), IMAGE_LIST, "VirtualSize is gone (use Size)", older=_virtual_size, newer=_no_virtual_size),
    Change((1, 44), IMAGE_INSPECT, "VirtualSize is gone (use Size)", older=_virtual_size, newer=_no_virtual_size),
    Change((1, 44), IMAGE_INSPECT, "an image without a creation time has no Created; before, "
           "0001-01-01T00:00:00Z", older=_zero_created),
    Change((1, 44), SYSTEM_DF, "Images[].VirtualSize is gone (use Size)", older=_df_images_virtual_size),
    _BUILDER_CONTAINER,
    Change((1, 50), IMAGE_INSPECT, "Config no longer holds the container-only Hostname, Domainname, "
           "AttachStd*, Tty, OpenStdin, StdinOnce, Image", older=_image_config_with_container_fields),
    Change((1, 51), IMAGE_LIST, "Containers counts the image's containers; before, -1",
           older=_containers_not_counted),
    Change((1, 46), IMAGE_CREATE_EVENTS, "an image create event is sent when an image is made "
           "(built, committed), tagged or not; before, none"),
    # networks
    Change((1, 28), NETWORK_LIST_WITHOUT_CONTAINERS, "the list no longer holds each network's "
           "containers (inspect the network); before, it does"),
    # volumes
    Change((1, 42), VOLUME_PRUNE_ANONYMOUS_ONLY, "prune removes anonymous volumes only unless "
           "filtered all=true; before, every unused volume"),
    # system
    Change((1, 25), INFO, "SecurityOptions are key=value lists; before, names only",
           older=_security_option_names),
    Change((1, 39), INFO, 'an unknown KernelVersion or OperatingSystem is ""; before, "<unknown>"',
           older=_unknown_kernel_and_os),
    Change((1, 47), INFO, "RegistryConfig no longer shows AllowNondistributableArtifactsCIDRs and "
           "AllowNondistributableArtifactsHostnames (null before)", older=_registry_nondistributable_fields),
    Change((1, 50), INFO, "BridgeNfIptables and BridgeNfIp6tables are gone (false before)",
           older=_bridge_nf_fields),
)


@dataclass(frozen=True)
class Quirk:
    """A client that negotiates a version but reads a field that version dropped: it gets
    `change` as clients before it do. Found by its User-Agent."""

    user_agent: re.Pattern[str]
    change: Change
    why: str


QUIRKS: tuple[Quirk, ...] = (
    Quirk(re.compile(r"docker-compose/1\."), _BUILDER_CONTAINER,
          "docker-compose 1.x as Debian ships it (python3-docker 5 asks the daemon's version) speaks "
          "API 1.51 yet reads ContainerConfig.Volumes of the image whenever it recreates a container; "
          "against dockerd 25+ that is a KeyError, so a rebuilt service can never be brought up again"),
)


def shape(kind: str, doc: Doc, version: Version, user_agent: str = "") -> Doc:
    """`doc`, an answer of `kind` as built for every version, as a client of `version` gets it."""
    kept = {q.change for q in QUIRKS if q.change.kind == kind and q.user_agent.match(user_agent)}
    for change in CHANGES:
        if change.kind != kind:
            continue
        apply = change.older if version < change.since or change in kept else change.newer
        if apply is not None:
            apply(doc)
    return doc


def at_least(version: Version, behaviour: str) -> bool:
    """Whether a client of `version` gets `behaviour` (a name of the table's)."""
    for change in CHANGES:
        if change.kind == behaviour:
            return version >= change.since
    raise KeyError(behaviour)


def respond(request: web.Request, kind: str, doc: Any, status: int = 200) -> web.Response:
    """The JSON answer `doc` (one document of `kind`, or a list of them) for this request's
    API version."""
    version, agent = api_version(request), request.headers.get("User-Agent", "")
    if isinstance(doc, list):
        doc = [shape(kind, d, version, agent) for d in doc]
    else:
        doc = shape(kind, doc, version, agent)
    return json_response(doc, status)


def client_at_least(request: web.Request, behaviour: str) -> bool:
    """`at_least` for this request's API version."""
    return at_least(api_version(request), behaviour)
