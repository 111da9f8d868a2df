"""Writing an OCI bundle's config.json for a container, as Docker's daemon does.

The defaults are Docker's: the same mounts, masked and read-only paths, namespaces,
capability set, device rules and a default seccomp profile; `--privileged` lifts them
the way Docker does. Callers give the resolved pieces (root path, user ids,
environment, limits); this module decides no policy beyond Docker's defaults.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.runtime.userns import IdMappings

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
INIT_PATH = "/sbin/docker-init"

# Docker's default device cgroup rules: mknod of anything, use of the standard nodes.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]


class SpecBuildError(ValueError):
    """A container option cannot be turned into a bundle; the message names the option."""


def _device_numbers(path: str) -> dict[str, int]:
    """A block device's numbers, for a per-device limit given by its path (as dockerd stats it)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise SpecBuildError(f"stat {path}: {e.strerror.lower() if e.strerror else e}") from None
    return {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}


@dataclass
class Limits:
    """Docker's resource options, in Docker's units."""

    memory: int = 0
    memory_swap: int = 0  # memory + swap; -1 unlimited; 0: twice the memory
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    # per-device block I/O, by the device's host path: OCI's blockIO field -> [(path, value)]
    blkio_devices: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def to_oci(self) -> dict[str, Any]:
        res: dict[str, Any] = {}
        memory: dict[str, Any] = {}
        if self.memory:
            memory["limit"] = self.memory
            swap = self.memory_swap if self.memory_swap else 2 * self.memory
            memory["swap"] = swap
        if self.memory_reservation:
            memory["reservation"] = self.memory_reservation
        if self.memory_swappiness is not None and self.memory_swappiness >= 0:
            memory["swappiness"] = self.memory_swappiness
        if self.oom_kill_disable:
            memory["disableOOMKiller"] = True
        if memory:
            res["memory"] = memory
        cpu: dict[str, Any] = {}
        if self.nano_cpus:
            cpu["period"] = 100000
            cpu["quota"] = self.nano_cpus * 100000 // 1_000_000_000
        if self.cpu_period:
            cpu["period"] = self.cpu_period
        if self.cpu_quota:
            cpu["quota"] = self.cpu_quota
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if self.cpuset_mems:
            cpu["mems"] = self.cpuset_mems
        if cpu:
            res["cpu"] = cpu
        if self.pids_limit is not None and self.pids_limit > 0:
            res["pids"] = {"limit": self.pids_limit}
        block_io: dict[str, Any] = {}
        if self.blkio_weight:
            block_io["weight"] = self.blkio_weight
        for key, entries in self.blkio_devices.items():
            if entries:
                value = "weight" if key == "weightDevice" else "rate"
                block_io[key] = [{**_device_numbers(path), value: number} for path, number in entries]
        if block_io:
            res["blockIO"] = block_io
        return res


@dataclass
class Security:
    """Docker's security options."""

    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    seccomp: str = ""  # "" or "builtin": berth's default; "unconfined"; else a Docker profile (JSON text)
    no_new_privileges: bool = False
    readonly_root: bool = False
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    apparmor: str = ""  # a loaded AppArmor profile; "" or "unconfined": none


@dataclass
class BundleRequest:
    root: str
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    hostname: str
    terminal: bool
    console_size: tuple[int, int] = (0, 0)
    readonly_root: bool = False
    files: dict[str, str] = field(default_factory=dict)  # container path -> host file
    network_namespace: str | None = None  # a path to join, else a new one
    host_network: bool = False  # no network namespace at all (docker run --network host)
    cgroups_path: str = ""
    limits: Limits = field(default_factory=Limits)
    security: Security | None = None  # None: no capabilities or seccomp section at all
    rlimits: list[dict[str, Any]] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)  # docker --device specs
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> options
    mounts: list[dict[str, Any]] = field(default_factory=list)  # the user's (volumes, binds), OCI-shaped
    shm_size: int = 0
    oom_score_adj: int = 0
    init: str = ""  # host path of an init to run as pid 1 (docker run --init)
    # pid, ipc, uts, cgroup: "" a new one (cgroup: none), "host" the host's, else a path to join
    pid_namespace: str = ""
    ipc_namespace: str = ""
    uts_namespace: str = ""
    cgroup_namespace: str = "host"
    shm_source: str = ""  # a directory to bind on /dev/shm (IPC shared); "none": no /dev/shm
    device_cgroup_rules: list[str] = field(default_factory=list)  # docker --device-cgroup-rule
    # a new user namespace with these maps (berthd --userns-remap); None: the host's
    id_maps: IdMappings | None = None


def build_config(req: BundleRequest) -> dict[str, Any]:
    sec = req.security
    privileged = bool(sec and sec.privileged)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if req.shm_source and req.shm_source != "none":
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": req.shm_source,
                       "options": ["rbind", "nosuid", "noexec", "nodev"]})
    elif not req.shm_source:
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777",
                                   f"size={req.shm_size or DEFAULT_SHM_SIZE}"]})
    # The user's mounts, the /etc files and --tmpfs go parents first (a volume on /etc
    # must not hide /etc/hosts); a user's mount replaces the /etc file at its path.
    extra: list[dict[str, Any]] = list(req.mounts)
    taken = {m["destination"] for m in extra}
    for dest, src in req.files.items():
        if dest not in taken:
            extra.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    for dest, opts in req.tmpfs.items():
        options = [o for o in opts.split(",") if o]
        extra.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "noexec", *options]})
    mounts += sorted(extra, key=lambda m: m["destination"].rstrip("/").count("/"))
    args = list(req.args)
    if req.init:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": req.init, "options": ["rbind", "ro"]})
        args = [INIT_PATH, "--", *args]
    namespaces: list[dict[str, str]] = []
    for kind, mode in (("pid", req.pid_namespace), ("ipc", req.ipc_namespace), ("uts", req.uts_namespace),
                       ("mount", ""), ("cgroup", req.cgroup_namespace)):
        if mode != "host":
            namespaces.append({"type": kind, "path": mode} if mode else {"type": kind})
    if not req.host_network:
        namespaces.append({"type": "network", "path": req.network_namespace} if req.network_namespace
                          else {"type": "network"})
    if req.id_maps is not None:
        namespaces.insert(0, {"type": "user"})
    process: dict[str, Any] = {
        "terminal": req.terminal,
        "user": {"uid": req.uid, "gid": req.gid, "additionalGids": req.additional_gids},
        "args": args,
        "env": req.env,
        "cwd": req.cwd or "/",
    }
    if req.terminal and req.console_size != (0, 0):
        process["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
    if req.rlimits:
        process["rlimits"] = req.rlimits
    if req.oom_score_adj:
        process["oomScoreAdj"] = req.oom_score_adj
    linux: dict[str, Any] = {"namespaces": namespaces}
    if req.id_maps is not None:
        linux["uidMappings"] = [m.to_oci() for m in req.id_maps.uid]
        linux["gidMappings"] = [m.to_oci() for m in req.id_maps.gid]
    if req.cgroups_path:
        linux["cgroupsPath"] = req.cgroups_path
    resources = req.limits.to_oci()
    devices: list[dict[str, Any]] = []
    if sec is not None:
        from berth.runtime import capabilities

        caps = capabilities.docker_caps(sec.cap_add, sec.cap_drop, sec.privileged)
        process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
        process["noNewPrivileges"] = sec.no_new_privileges
        if sec.apparmor and sec.apparmor != "unconfined":
            process["apparmorProfile"] = sec.apparmor
        rules = list(DEFAULT_DEVICE_RULES)
        if privileged:
            rules = [{"allow": True, "access": "rwm"}]
            devices += _host_devices()
        for spec_text in req.devices:
            dev, rule = _device(spec_text)
            devices.append(dev)
            rules.append(rule)
        rules += [device_cgroup_rule(text) for text in req.device_cgroup_rules]
        resources["devices"] = rules
        if not privileged:
            linux["maskedPaths"] = MASKED_PATHS if sec.masked_paths is None else sec.masked_paths
            linux["readonlyPaths"] = READONLY_PATHS if sec.readonly_paths is None else sec.readonly_paths
            if sec.seccomp != "unconfined":
                section = _seccomp_section(sec.seccomp, set(caps))
                if section is not None:
                    linux["seccomp"] = section
    else:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    if resources:
        linux["resources"] = resources
    if devices:
        linux["devices"] = devices
    if req.sysctl:
        linux["sysctl"] = dict(req.sysctl)
    doc: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": req.root, "readonly": req.readonly_root or bool(sec and sec.readonly_root)},
    }
    if req.uts_namespace != "host":  # the host's name is not ours to set
        doc["hostname"] = req.hostname
    doc.update({"mounts": mounts, "linux": linux})
    return doc


def _seccomp_section(profile: str, caps: set[str]) -> dict[str, Any] | None:
    """The OCI section for `profile`: "" or "builtin" berth's default (Docker's), else a
    Docker profile's JSON text resolved for these capabilities on this machine."""
    from berth.runtime import seccomp_default

    if profile in ("", "builtin"):
        return seccomp_default.default_profile(os.uname().machine, caps)
    try:
        doc = json.loads(profile)
    except ValueError as e:
        raise SpecBuildError(f"Decoding seccomp profile failed: {e}") from None
    try:
        return seccomp_default.resolve(doc, os.uname().machine, caps)
    except seccomp_default.ProfileError as e:
        raise SpecBuildError(str(e)) from None


def _host_devices() -> list[dict[str, Any]]:
    out = []
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            if name in ("null", "zero", "full", "random", "urandom", "tty", "console", "ptmx"):
                continue
            out.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": st.st_mode & 0o777, "uid": 0, "gid": 0})
    return out


def _device(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--device /dev/host[:/dev/container[:rwm]]` as a device entry and its cgroup rule."""
    parts = text.split(":")
    host = parts[0]
    dest = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    if len(parts) == 2 and all(c in "rwm" for c in parts[1]) and not parts[1].startswith("/"):
        dest, perms = host, parts[1]
    if not perms or any(c not in "rwm" for c in perms):
        raise SpecBuildError(f"invalid device mode: {perms}")
    try:
        st = os.stat(host)
    except OSError as e:
        raise SpecBuildError(f"error gathering device information while adding custom device \"{host}\": {e.strerror}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise SpecBuildError(f"error gathering device information while adding custom device \"{host}\": not a device node")
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return ({"path": dest, "type": kind, "major": major, "minor": minor, "fileMode": st.st_mode & 0o777,
             "uid": 0, "gid": 0},
            {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms})


_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def device_cgroup_rule(text: str) -> dict[str, Any]:
    """`--device-cgroup-rule 'c 1:3 rwm'` as an OCI device rule ("*": any number)."""
    found = _CGROUP_RULE.match(text)
    if not found:
        raise SpecBuildError(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = found.groups()
    rule: dict[str, Any] = {"allow": True, "type": kind}
    if major != "*":
        rule["major"] = int(major)
    if minor != "*":
        rule["minor"] = int(minor)
    rule["access"] = access
    return rule


def write_bundle(bundle: str, config: dict[str, Any]) -> None:
    os.makedirs(bundle, mode=0o700, exist_ok=True)
    path = os.path.join(bundle, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(config, f)
    os.rename(path + ".tmp", path)
