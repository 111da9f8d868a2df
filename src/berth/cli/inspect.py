"""``inspect`` for every object type, as docker's cli/command/inspect does it.

Without ``--format`` the daemon's JSON is printed re-indented but otherwise
untouched; with a template, each object is rendered in turn.  Docker first
runs the template on the object decoded into its Go struct, so the JSON is
dressed here to behave like those structs: objects print as ``{…}`` and
reject unknown fields, map-typed fields (labels, port maps …) stay maps, and
nulls of slice/map fields print as ``[]`` / ``map[]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from berth.cli.context import CliContext, CliExit
from berth.cli.formatting import json_compact, json_indent
from berth.client.engine import APIError, ClientError
from berth.template.gotemplate import GoStruct, NilList, NilMap, Template, TemplateError

# Fields whose Go type is a map (their keys are data, not struct fields).
MAP_FIELDS = frozenset(
    {
        "Labels",
        "Volumes",
        "ExposedPorts",
        "PortBindings",
        "Sysctls",
        "Tmpfs",
        "StorageOpt",
        "Annotations",
        "Ports",
        "Networks",
        "DriverOpts",
        "Data",
        "Options",
        "Containers",
        "Status",
        "Metadata",
    }
)

# Fields whose Go type is a slice: a JSON null prints as "[]".
SLICE_FIELDS = frozenset(
    {
        "Args",
        "Cmd",
        "Entrypoint",
        "Env",
        "OnBuild",
        "Shell",
        "Binds",
        "Links",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "CapAdd",
        "CapDrop",
        "SecurityOpt",
        "VolumesFrom",
        "Mounts",
        "Devices",
        "DeviceRequests",
        "DeviceCgroupRules",
        "Ulimits",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "ConsoleSize",
        "MaskedPaths",
        "ReadonlyPaths",
        "Aliases",
        "DNSNames",
        "ExecIDs",
        "RepoTags",
        "RepoDigests",
        "Layers",
        "Log",
        "Subnets",
    }
)

# Struct fields docker's types have even when the JSON omits them (omitempty).
_CONTAINER_DEFAULTS: dict[str, Any] = {"SizeRw": None, "SizeRootFs": None}
_STATE_DEFAULTS: dict[str, Any] = {"Health": None}
_CONFIG_DEFAULTS: dict[str, Any] = {
    "ExposedPorts": NilMap(),
    "Healthcheck": None,
    "Volumes": NilMap(),
    "OnBuild": NilList(),
    "StopSignal": "",
    "Shell": NilList(),
}


def go_value(value: Any, key: str = "", parent: str = "") -> Any:
    """Dress decoded JSON as docker's typed structs behave in templates."""
    if isinstance(value, dict):
        is_map = key in MAP_FIELDS or (key == "Config" and parent in ("LogConfig", "IPAM"))
        if is_map:
            return {k: go_value(v, "", key) for k, v in value.items()}
        return GoStruct((k, go_value(v, k, key)) for k, v in value.items())
    if isinstance(value, list):
        return [go_value(v, "", key) for v in value]
    if value is None:
        if key in MAP_FIELDS:
            return NilMap()
        if key in SLICE_FIELDS or (key == "Config" and parent == "IPAM"):
            return NilList()
        return None
    return value


def typed_container(data: Any) -> Any:
    value = go_value(data)
    if isinstance(value, GoStruct):
        for k, default in _CONTAINER_DEFAULTS.items():
            value.setdefault(k, default)
        state = value.get("State")
        if isinstance(state, GoStruct):
            for k, default in _STATE_DEFAULTS.items():
                state.setdefault(k, default)
        config = value.get("Config")
        if isinstance(config, GoStruct):
            for k, default in _CONFIG_DEFAULTS.items():
                config.setdefault(k, default)
    return value


def typed_image(data: Any) -> Any:
    value = go_value(data)
    if isinstance(value, GoStruct):
        config = value.get("Config")
        if isinstance(config, GoStruct):
            for k, default in _CONFIG_DEFAULTS.items():
                config.setdefault(k, default)
    return value


Getter = Callable[[str], tuple[Any, str]]


def inspect_objects(cli: CliContext, refs: list[str], fmt: str, getter: Getter) -> int:
    """Inspect each reference with ``getter`` (→ typed value, raw JSON text) and print."""
    tmpl: Template | None = None
    if fmt and fmt != "json":
        try:
            tmpl = Template(fmt)
        except TemplateError as exc:
            raise CliExit(f"template parsing error: {exc}", 64) from None
    errors: list[str] = []
    raws: list[str] = []
    rendered: list[str] = []
    for ref in refs:
        try:
            typed, raw = getter(ref)
        except ClientError as exc:
            errors.append(str(exc))
            continue
        if tmpl is None:
            raws.append(raw)
            continue
        try:
            rendered.append(tmpl.execute(typed) + "\n")
        except TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    if tmpl is None:
        if not raws:
            cli.out("[]")
        else:
            joined = "[" + ",".join(raws) + "]"
            cli.out(json_compact(joined) if fmt == "json" else json_indent(joined))
    else:
        cli.out("".join(rendered) if rendered else "\n", end="")
    if errors:
        raise CliExit("\n".join(errors), 1)
    return 0


def fetch(cli: CliContext, path: str, typer: Callable[[Any], Any] = go_value, params: Any = None) -> tuple[Any, str]:
    raw = cli.client.get_raw(path, params).decode("utf-8", "replace").strip()
    try:
        data = json.loads(raw)
    except ValueError:
        raise ClientError(f"unable to read inspect data: {raw[:80]}") from None
    return typer(data), raw


def is_skippable(exc: ClientError) -> bool:
    text = str(exc)
    return (isinstance(exc, APIError) and exc.not_found) or "not supported" in text or "invalid reference format" in text
