"""The OCI runtime-spec bundle, read into typed records.

`load_bundle(dir)` parses `config.json` into `Spec`; errors name the field that was
wrong. Only the parts berth's runtime acts on are modelled; unknown fields are
ignored, as runc ignores them.
"""

from __future__ import annotations

import os

from berth.runtime import leanjson, linux
from berth.runtime.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_FLAGS = {
    "pid": linux.CLONE_NEWPID,
    "network": linux.CLONE_NEWNET,
    "mount": linux.CLONE_NEWNS,
    "ipc": linux.CLONE_NEWIPC,
    "uts": linux.CLONE_NEWUTS,
    "user": linux.CLONE_NEWUSER,
    "cgroup": linux.CLONE_NEWCGROUP,
}


class SpecError(ValueError):
    """config.json is malformed; the message names the field."""


@record
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    umask: int | None = None


@record
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int | None = None


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@record
class Process:
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    no_new_privileges: bool = False
    console_height: int = 0
    console_width: int = 0
    capabilities: Any = None  # capabilities.CapabilitySets
    rlimits: list[Any] = field(default_factory=list)  # rlimits.Rlimit
    oom_score_adj: int | None = None
    apparmor_profile: str = ""


@record
class Mount:
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = field(default_factory=list)


@record
class Namespace:
    type: str
    path: str | None = None


@record
class Device:
    path: str
    type: str
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@record
class Spec:
    root_path: str
    root_readonly: bool
    process: Process
    hostname: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: dict[str, Any] | None = None  # compiled in the init, so errors stop the start
    resources: Any = None  # cgroups.resources.Resources
    cgroups_path: str = ""
    id_mappings: Any = None  # userns.IdMappings
    hooks: dict[str, list[Hook]] = field(default_factory=dict)
    root_propagation: str = ""

    def namespace(self, kind: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.type == kind), None)


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise SpecError(f"config.json: {where}{key} must be a {getattr(kind, '__name__', kind)}")
    return value


def _parse_hooks(doc: Any) -> dict[str, list[Hook]]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SpecError("config.json: hooks must be an object")
    out: dict[str, list[Hook]] = {}
    for kind in HOOK_KINDS:
        entries = doc.get(kind) or []
        if not isinstance(entries, list):
            raise SpecError(f"config.json: hooks.{kind} must be an array")
        for i, h in enumerate(entries):
            where = f"config.json: hooks.{kind}[{i}]"
            if not isinstance(h, dict) or not isinstance(h.get("path"), str) or not os.path.isabs(h["path"]):
                raise SpecError(f"{where}.path must be an absolute path")
            timeout = h.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
                raise SpecError(f"{where}.timeout must be a positive integer")
            out.setdefault(kind, []).append(Hook(h["path"], list(h.get("args") or [h["path"]]),
                                                 list(h.get("env") or []), timeout))
    return out


def parse_spec(doc: Any, bundle: str) -> Spec:
    from berth.runtime import capabilities, rlimits, userns
    from berth.runtime.cgroups.resources import parse_resources

    if not isinstance(doc, dict):
        raise SpecError("config.json: the document must be an object")
    root = _get(doc, "root", dict, "")
    if not root or not root.get("path"):
        raise SpecError("config.json: root.path is required")
    root_path = root["path"]
    if not os.path.isabs(root_path):
        root_path = os.path.join(bundle, root_path)
    proc = _get(doc, "process", dict, "")
    if not proc:
        raise SpecError("config.json: process is required")
    args = _get(proc, "args", list, "process.")
    if not args or not all(isinstance(a, str) for a in args):
        raise SpecError("config.json: process.args must be a non-empty list of strings")
    user = _get(proc, "user", dict, "process.", {})
    console = _get(proc, "consoleSize", dict, "process.", {})
    process = Process(
        args=args,
        env=[e for e in _get(proc, "env", list, "process.", []) if isinstance(e, str)],
        cwd=_get(proc, "cwd", str, "process.", "/"),
        user=User(
            uid=_get(user, "uid", int, "process.user.", 0),
            gid=_get(user, "gid", int, "process.user.", 0),
            additional_gids=_get(user, "additionalGids", list, "process.user.", []),
            umask=_get(user, "umask", int, "process.user.", None),
        ),
        terminal=_get(proc, "terminal", bool, "process.", False),
        no_new_privileges=_get(proc, "noNewPrivileges", bool, "process.", False),
        console_height=_get(console, "height", int, "process.consoleSize.", 0),
        console_width=_get(console, "width", int, "process.consoleSize.", 0),
        capabilities=capabilities.parse_capabilities(proc.get("capabilities")),
        rlimits=rlimits.parse_rlimits(proc.get("rlimits")),
        oom_score_adj=_get(proc, "oomScoreAdj", int, "process.", None),
        apparmor_profile=_get(proc, "apparmorProfile", str, "process.", ""),
    )
    if not os.path.isabs(process.cwd):
        raise SpecError("config.json: process.cwd must be an absolute path")
    mounts = []
    for i, m in enumerate(_get(doc, "mounts", list, "", [])):
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
            raise SpecError(f"config.json: mounts[{i}].destination is required")
        mounts.append(Mount(m["destination"], m.get("type"), m.get("source"), list(m.get("options") or [])))
    lin = _get(doc, "linux", dict, "", {})
    if lin.get("intelRdt") is not None:  # cache and memory-bandwidth allocation (resctrl)
        raise SpecError("config.json: linux.intelRdt: Intel RDT (resctrl) is not supported by berth-runtime")
    namespaces = []
    for i, ns in enumerate(_get(lin, "namespaces", list, "linux.", [])):
        if not isinstance(ns, dict) or ns.get("type") not in NAMESPACE_FLAGS:
            raise SpecError(f"config.json: linux.namespaces[{i}].type is not a known namespace")
        namespaces.append(Namespace(ns["type"], ns.get("path") or None))
    devices = []
    for i, d in enumerate(_get(lin, "devices", list, "linux.", [])):
        try:
            devices.append(Device(d["path"], d.get("type", "c"), int(d["major"]), int(d["minor"]),
                                  int(d.get("fileMode", 0o666)), int(d.get("uid", 0)), int(d.get("gid", 0))))
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"config.json: linux.devices[{i}] is malformed ({e})") from None
    seccomp = _get(lin, "seccomp", dict, "linux.", None)
    has_userns = any(ns.type == "user" for ns in namespaces)
    id_mappings = userns.parse_mappings(lin, user_namespace=has_userns)
    if any(ns.type == "user" and not ns.path for ns in namespaces):
        userns.check_new_namespace(id_mappings)
    return Spec(
        root_path=root_path,
        root_readonly=bool(root.get("readonly", False)),
        process=process,
        hostname=_get(doc, "hostname", str, "", None),
        mounts=mounts,
        namespaces=namespaces,
        masked_paths=list(_get(lin, "maskedPaths", list, "linux.", [])),
        readonly_paths=list(_get(lin, "readonlyPaths", list, "linux.", [])),
        devices=devices,
        sysctl=dict(_get(lin, "sysctl", dict, "linux.", {})),
        seccomp=seccomp,
        resources=parse_resources(lin.get("resources")),
        cgroups_path=_get(lin, "cgroupsPath", str, "linux.", ""),
        id_mappings=id_mappings,
        hooks=_parse_hooks(doc.get("hooks")),
        root_propagation=_get(lin, "rootfsPropagation", str, "linux.", ""),
    )


def load_bundle(bundle: str) -> Spec:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            doc = leanjson.load(f)
    except FileNotFoundError:
        raise SpecError(f"bundle {bundle}: no config.json") from None
    except ValueError as e:
        raise SpecError(f"config.json does not parse: {e}") from None
    return parse_spec(doc, bundle)
