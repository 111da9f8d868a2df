"""The managed plugin's records: its config (Docker's plugin config.json), its settings,
and the rules for names and `docker plugin set`.

A plugin's config.json is a file format of its own, written by the plugin's author, so
it is kept as the document it is (`PluginConfig.doc`, with Docker's defaults filled in)
beside the typed fields berthd acts on. This module does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidParameter, NotFound, SystemError_
from berth.images import reference

VOLUME_DRIVER = "volumedriver"
LOG_DRIVER = "logdriver"
AUTHZ = "authz"
AUTHZ_REQUEST = "AuthZPlugin.AuthZReq"
AUTHZ_RESPONSE = "AuthZPlugin.AuthZRes"
RUNTIME_DIR = "/run/docker/plugins"  # where a plugin makes its socket, inside its rootfs
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FULL_ID = re.compile(r"^[a-f0-9]{64}$")
_CAPABILITY = re.compile(r"^([a-z0-9.]+)\.([a-z0-9]+)/([0-9.]+)$")


class ConfigError(SystemError_):
    """config.json cannot be used; the message says which field."""


@dataclass(frozen=True)
class Capability:
    """One entry of Interface.Types: "docker.volumedriver/1.0"."""

    prefix: str
    capability: str
    version: str

    def __str__(self) -> str:
        return f"{self.prefix}.{self.capability}/{self.version}"


@dataclass(frozen=True)
class PluginMount:
    name: str
    source: str | None
    destination: str
    type: str
    options: list[str]
    settable: list[str]


@dataclass(frozen=True)
class PluginEnv:
    name: str
    value: str | None
    settable: list[str]


@dataclass
class PluginConfig:
    """The parts of config.json berthd acts on, and the whole document for inspect."""

    doc: dict[str, Any]
    description: str
    types: list[Capability]
    socket: str
    entrypoint: list[str]
    workdir: str
    network: str
    capabilities: list[str]
    mounts: list[PluginMount]
    env: list[PluginEnv]
    args_name: str
    args_value: list[str]
    args_settable: list[str]
    propagated_mount: str
    ipc_host: bool
    pid_host: bool

    def implements(self, capability: str) -> bool:
        return any(t.capability == capability for t in self.types)


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "value"


def _unmarshal_error(value: object, where: str, key: str, go_type: str) -> ConfigError:
    """encoding/json's words, as dockerd's "failed to parse config: …" carries them."""
    return ConfigError(f"failed to parse config: json: cannot unmarshal {_go_type(value)} into Go struct "
                       f"field {where}{key} of type {go_type}")


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _unmarshal_error(value, where, key, "string")
    return value


def _strs(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _unmarshal_error(value, where, key, "[]string")
    for x in value:
        if not isinstance(x, str):
            raise _unmarshal_error(x, where, key, "string")
    return list(value)


def _obj(doc: dict[str, Any], key: str, where: str = "PluginConfig.") -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _unmarshal_error(value, where, key, f"types.Plugin{key}")
    return value


def parse_config(doc: object) -> PluginConfig:
    """Check config.json the way Docker decodes it, and fill in its defaults."""
    if not isinstance(doc, dict):
        raise ConfigError(f"failed to parse config: json: cannot unmarshal {_go_type(doc)} into Go value "
                          "of type types.PluginConfig")
    iface = _obj(doc, "Interface")
    types: list[Capability] = []
    for t in _strs(iface, "Types", "PluginConfig.Interface."):
        m = _CAPABILITY.match(t)
        if m is None:
            raise ConfigError(f"failed to parse config: invalid capability {t!r}: want PREFIX.CAPABILITY/VERSION")
        types.append(Capability(m.group(1), m.group(2), m.group(3)))
    socket = _str(iface, "Socket", "PluginConfig.Interface.")
    if "/" in socket or socket in (".", ".."):
        raise ConfigError(f"failed to parse config: invalid Interface.Socket {socket!r}: want a file name")
    linux = _obj(doc, "Linux")
    network = _obj(doc, "Network")
    args = _obj(doc, "Args")
    mounts: list[PluginMount] = []
    raw_mounts = doc.get("Mounts") or []
    if not isinstance(raw_mounts, list):
        raise ConfigError("failed to parse config: json: cannot unmarshal Mounts: want an array")
    for m in raw_mounts:
        if not isinstance(m, dict):
            raise ConfigError("failed to parse config: json: cannot unmarshal Mounts: want an array of objects")
        source = m.get("Source")
        if source is not None and not isinstance(source, str):
            raise ConfigError("failed to parse config: json: cannot unmarshal Mounts.Source: want a string")
        mounts.append(PluginMount(_str(m, "Name", "PluginConfig.Mounts."), source, _str(m, "Destination", "PluginConfig.Mounts."),
                                  _str(m, "Type", "PluginConfig.Mounts.") or "bind", _strs(m, "Options", "PluginConfig.Mounts."),
                                  _strs(m, "Settable", "PluginConfig.Mounts.")))
    env: list[PluginEnv] = []
    raw_env = doc.get("Env") or []
    if not isinstance(raw_env, list):
        raise ConfigError("failed to parse config: json: cannot unmarshal Env: want an array")
    for e in raw_env:
        if not isinstance(e, dict):
            raise ConfigError("failed to parse config: json: cannot unmarshal Env: want an array of objects")
        value = e.get("Value")
        if value is not None and not isinstance(value, str):
            raise ConfigError("failed to parse config: json: cannot unmarshal Env.Value: want a string")
        env.append(PluginEnv(_str(e, "Name", "PluginConfig.Env."), value, _strs(e, "Settable", "PluginConfig.Env.")))
    cfg = PluginConfig(
        doc={}, description=_str(doc, "Description", "PluginConfig."), types=types, socket=socket,
        entrypoint=_strs(doc, "Entrypoint", "PluginConfig."), workdir=_str(doc, "WorkDir", "PluginConfig."),
        network=_str(network, "Type", "PluginConfig.Network."),
        capabilities=_strs(linux, "Capabilities", "PluginConfig.Linux."), mounts=mounts, env=env,
        args_name=_str(args, "Name", "PluginConfig.Args."), args_value=_strs(args, "Value", "PluginConfig.Args."),
        args_settable=_strs(args, "Settable", "PluginConfig.Args."),
        propagated_mount=_str(doc, "PropagatedMount", "PluginConfig."),
        ipc_host=bool(doc.get("IpcHost")), pid_host=bool(doc.get("PidHost")))
    cfg.doc = _normalized(doc)
    return cfg


def _normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """config.json with every field Docker's PluginConfig has, as inspect shows it."""
    args = dict(doc.get("Args") or {})
    linux = dict(doc.get("Linux") or {})
    iface = dict(doc.get("Interface") or {})
    out: dict[str, Any] = {
        "Args": {"Description": args.get("Description", ""), "Name": args.get("Name", ""),
                 "Settable": args.get("Settable"), "Value": args.get("Value")},
        "Description": doc.get("Description", ""),
        "DockerVersion": doc.get("DockerVersion", ""),
        "Documentation": doc.get("Documentation", ""),
        "Entrypoint": doc.get("Entrypoint"),
        "Env": doc.get("Env"),
        "Interface": {"Socket": iface.get("Socket", ""), "Types": iface.get("Types")},
        "IpcHost": bool(doc.get("IpcHost")),
        "Linux": {"AllowAllDevices": bool(linux.get("AllowAllDevices")),
                  "Capabilities": linux.get("Capabilities"), "Devices": linux.get("Devices")},
        "Mounts": doc.get("Mounts"),
        "Network": {"Type": (doc.get("Network") or {}).get("Type", "")},
        "PidHost": bool(doc.get("PidHost")),
        "PropagatedMount": doc.get("PropagatedMount", ""),
        "User": doc.get("User") or {},
        "WorkDir": doc.get("WorkDir", ""),
    }
    if iface.get("ProtocolScheme"):
        out["Interface"]["ProtocolScheme"] = iface["ProtocolScheme"]
    if doc.get("rootfs") is not None:
        out["rootfs"] = doc["rootfs"]
    return out


@dataclass
class PluginSettings:
    """What `docker plugin set` changes: env, args, mount sources, device paths."""

    env: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def initial(cls, config: PluginConfig) -> PluginSettings:
        """Docker's InitEmptySettings: the config's defaults."""
        linux = config.doc.get("Linux") or {}
        return cls(env=[f"{e.name}={e.value}" for e in config.env if e.value is not None],
                   args=list(config.args_value), mounts=[dict(m) for m in config.doc.get("Mounts") or []],
                   devices=[dict(d) for d in linux.get("Devices") or []])

    def to_doc(self) -> dict[str, Any]:
        return {"Mounts": self.mounts, "Env": self.env, "Args": self.args, "Devices": self.devices}

    @classmethod
    def of(cls, doc: dict[str, Any]) -> PluginSettings:
        return cls(env=list(doc.get("Env") or []), args=list(doc.get("Args") or []),
                   mounts=list(doc.get("Mounts") or []), devices=list(doc.get("Devices") or []))


@dataclass
class Plugin:
    """One installed plugin: `id` (64 hex), `name` ("vendor/name:tag"), its state."""

    id: str
    name: str
    enabled: bool
    config: PluginConfig
    settings: PluginSettings
    reference: str = ""  # where it came from ("localhost:5000/x:latest"), as PluginReference
    config_digest: str = ""  # the digest of its config blob and layer, kept for push
    layer_digests: list[str] = field(default_factory=list)


def normalize_name(name: str) -> str:
    """The plugin's name as Docker keeps it: familiar form, with ":latest" when untagged."""
    ref = reference.parse(name)
    if ref.digest:
        raise InvalidParameter("canonical references are not permitted")
    return ref.familiar_string()


def lookup_name(text: str) -> str | None:
    """`text` as a plugin name to look up ("x" finds "x:latest"); None when it cannot be one."""
    try:
        ref = reference.parse_normalized(text)
    except reference.ReferenceError:
        return None
    if ref.digest:
        return None
    return ref.with_default_tag().familiar_string()


# -- docker plugin set -----------------------------------------------------------------

_SETTABLE_ENV = ("value",)
_SETTABLE_MOUNT = ("source",)
_SETTABLE_ARGS = ("value",)


@dataclass(frozen=True)
class _Setting:
    name: str
    field: str
    value: str

    def pretty(self) -> str:
        return f"{self.name}.{self.field}" if self.field else self.name


def _parse_settings(args: list[str]) -> list[_Setting]:
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not key:
            raise SystemError_("invalid format, must be <name>[.<field>][=<value>]")
        name, dot, fld = key.partition(".")
        if dot and not fld:
            raise SystemError_("invalid format, must be <name>[.<field>][=<value>]")
        out.append(_Setting(name, fld, value))
    return out


def _settable(s: _Setting, allowed: tuple[str, ...], settable: list[str]) -> bool:
    if not s.field:
        if len(settable) > 1:
            raise SystemError_("multiple fields are settable, one must be specified")
        return len(settable) == 1 and settable[0] in allowed
    return s.field in allowed and s.field in settable


def apply_settings(p: Plugin, args: list[str]) -> None:
    """`docker plugin set NAME KEY=VALUE…`, Docker's rules and words."""
    if p.enabled:
        raise SystemError_("cannot set on an active plugin, disable plugin before setting")
    settings = PluginSettings(list(p.settings.env), list(p.settings.args),
                              [dict(m) for m in p.settings.mounts], list(p.settings.devices))
    for s in _parse_settings(args):
        env = next((e for e in p.config.env if e.name == s.name), None)
        if env is not None:
            if not _settable(s, _SETTABLE_ENV, env.settable):
                raise SystemError_(f'"{s.pretty()}" is not settable')
            settings.env = [e for e in settings.env if e.partition("=")[0] != s.name] + [f"{s.name}={s.value}"]
            continue
        mount = next((i for i, m in enumerate(p.config.mounts) if m.name == s.name), None)
        if mount is not None:
            if not _settable(s, _SETTABLE_MOUNT, p.config.mounts[mount].settable):
                raise SystemError_(f'"{s.pretty()}" is not settable')
            if p.config.mounts[mount].source is None:
                raise SystemError_("plugin config has no mount source")
            settings.mounts[mount]["Source"] = s.value
            continue
        if p.config.args_name and p.config.args_name == s.name:
            if not _settable(s, _SETTABLE_ARGS, p.config.args_settable):
                raise SystemError_(f'"{s.pretty()}" is not settable')
            settings.args = s.value.split(" ")
            continue
        raise SystemError_(f'setting "{s.name}" not found in the plugin configuration')
    p.settings = settings


def not_found(ref: str) -> NotFound:
    return NotFound(f'plugin "{ref}" not found')


# -- privileges: what installing a plugin grants it -------------------------------------


@dataclass(frozen=True)
class Privilege:
    name: str
    description: str
    value: list[str]


def privileges_of(config: PluginConfig) -> list[Privilege]:
    """Docker's computePrivileges: what the plugin's config asks of the host."""
    out: list[Privilege] = []
    if config.network not in ("", "null", "bridge"):
        out.append(Privilege("network", "permissions to access a network", [config.network]))
    if config.ipc_host:
        out.append(Privilege("host ipc namespace", "allow access to host ipc namespace", ["true"]))
    if config.pid_host:
        out.append(Privilege("host pid namespace", "allow access to host pid namespace", ["true"]))
    for m in config.mounts:
        if m.source is not None:
            out.append(Privilege("mount", "host path to mount", [m.source]))
    linux = config.doc.get("Linux") or {}
    for d in linux.get("Devices") or []:
        if isinstance(d, dict) and d.get("Path") is not None:
            out.append(Privilege("device", "host device to access", [str(d["Path"])]))
    if linux.get("AllowAllDevices"):
        out.append(Privilege("allow-all-devices", "allow 'rwm' access to all devices", ["true"]))
    if config.capabilities:
        out.append(Privilege("capabilities", "list of additional capabilities required", list(config.capabilities)))
    return out


def same_privileges(required: list[Privilege], granted: list[Privilege]) -> bool:
    """Docker's validatePrivileges: the same names with the same values, in any order."""
    def norm(ps: list[Privilege]) -> list[tuple[str, list[str]]]:
        return sorted((p.name, sorted(p.value)) for p in ps)

    return len(required) == len(granted) and norm(required) == norm(granted)


@dataclass
class AuthzRequest:
    """One API request as the authorization plugins are asked about it (Docker's
    authorization.Request): the request side for AuthZReq, the response side filled in
    for AuthZRes. Bodies are None when they are not sent (not JSON, an /auth request)."""

    method: str
    uri: str  # the request target as the client sent it, query included
    headers: dict[str, str]
    body: bytes | None = None
    user: str = ""  # a TLS client certificate's common name
    authn_method: str = ""  # "TLS" when `user` comes from one
    response_status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes | None = None
