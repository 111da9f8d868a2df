"""What a container's configuration means: the defaults filled in at create, and its
translation into the OCI runtime's terms at start.

At create, the image's config supplies what the container's own leaves out (command,
environment, working directory, user, labels, stop signal, health check, ports,
volumes), and the daemon's defaults supply the runtime and the log driver, as dockerd
does. At start, the record becomes a bundle request: the process's environment, the
resource limits (`limits_of`), the security settings (`security_of`, with
`--security-opt` parsed by `security_options`) and the rest of `spec.BundleRequest`.
Pure functions of the record (and a few host facts: which binaries exist, whether
AppArmor is on); nothing here starts, stores or mounts anything.
"""

from __future__ import annotations

import os
import shutil
import signal as signals
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth.containers import health
from berth.containers.model import Container, HostConfig, LogConfig, RunConfig
from berth.containers.users import ResolvedUser
from berth.errors import InvalidParameter
from berth.images.model import RunConfig as ImageRunConfig
from berth.runtime import rlimits, spec
from berth.runtime.userns import IdMappings

DEFAULT_SHM_SIZE = spec.DEFAULT_SHM_SIZE
MASKED_PATHS = spec.MASKED_PATHS
READONLY_PATHS = spec.READONLY_PATHS
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10
_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signals.NSIG:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        try:
            return int(signals.Signals[name])
        except KeyError:
            pass
    raise InvalidParameter(f"Invalid signal: {value}")


def cgroup_version() -> str:
    """"v1" or "v2": which cgroup hierarchy the host mounts (dockerd's defaults differ)."""
    from berth.runtime import cgroups

    return cgroups.detect()


def runtime_path(name: str, default: str, runtimes: dict[str, str]) -> str:
    """'' for berth's own runtime inside the shim; else the OCI runtime binary.

    Known: berth, the daemon.json `runtimes`, and runc when it is installed (as in Docker).
    """
    name = name or default
    if name == "berth":
        return ""
    if name in runtimes:
        return runtimes[name]
    if name == "runc":
        path = shutil.which("runc", path=_SBIN_PATH)
        if path:
            return path
    raise InvalidParameter(f"unknown or invalid runtime name: {name}")


def known_runtimes(runtimes: dict[str, str]) -> dict[str, str]:
    known = {"berth": "berth-runtime"}
    runc = shutil.which("runc", path=_SBIN_PATH)
    if runc:
        known["runc"] = runc
    known.update(runtimes)
    return known


def default_log_config(lc: LogConfig, daemon: LogConfig) -> None:
    """As dockerd: no driver named means the daemon's, and a container of the daemon's
    driver gets the daemon's options it does not set itself."""
    if not lc.type:
        lc.type = daemon.type
    if lc.type == daemon.type:
        for key, value in daemon.config.items():
            lc.config.setdefault(key, value)


def apply_image_defaults(config: RunConfig, defaults: ImageRunConfig) -> list[str]:
    """Fill in what `config` leaves to the image's config, as dockerd does at create, and
    refuse what it refuses; the command line the container runs."""
    if config.cmd is None and config.entrypoint is None:
        config.cmd = defaults.cmd
    if config.entrypoint is None:
        config.entrypoint = defaults.entrypoint
    elif config.entrypoint == [""] or config.entrypoint == []:
        config.entrypoint = None
    argv = (config.entrypoint or []) + (config.cmd or [])
    if not argv:
        raise InvalidParameter("no command specified")
    env = merge_env(defaults.env, config.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    config.env = env
    config.working_dir = config.working_dir or defaults.working_dir
    if config.working_dir and not config.working_dir.startswith("/"):
        raise InvalidParameter(f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path")
    config.user = config.user or defaults.user
    config.labels = {**defaults.labels, **config.labels}
    config.stop_signal = config.stop_signal or defaults.stop_signal
    health.validate(config.healthcheck)
    config.healthcheck = health.merge(config.healthcheck, defaults.healthcheck)
    config.exposed_ports = sorted(set(config.exposed_ports) | set(defaults.exposed_ports))
    config.volumes = sorted(set(config.volumes) | set(defaults.volumes))
    if config.stop_signal:
        parse_signal(config.stop_signal)
    return argv


def process_env(config: RunConfig, home: str, linked: Sequence[str] = ()) -> list[str]:
    """The init's environment: the container's, with HOME, TERM and HOSTNAME as Docker adds
    them, and the variables of its legacy links (after HOSTNAME; the container's own win)."""
    env = list(config.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    if config.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    at = 1 if env and env[0].startswith("PATH=") else 0
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.insert(at, f"HOSTNAME={config.hostname}")
        at += 1
    own = {e.partition("=")[0] for e in env}
    env[at:at] = [e for e in linked if e.partition("=")[0] not in own]
    return env


def cgroups_path(c: Container) -> str:
    """The container's cgroup in every hierarchy: below its --cgroup-parent, else below
    berth's parent group."""
    return f"/{(c.host_config.cgroup_parent or 'berth').strip('/')}/{c.id}"


@dataclass(frozen=True)
class DaemonDefaults:
    """What the daemon's configuration adds to every container, as dockerd's
    `--no-new-privileges`, `--default-ulimit` and `--seccomp-profile` do: the container's
    own settings win.
    As dockerd 20.10, the default ulimits are written into HostConfig.Ulimits at create
    (after the container's own) and merged again at start; no-new-privileges is applied
    at start only, and inspect's SecurityOpt does not show it."""

    no_new_privileges: bool = False
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name, soft, hard), -1 unlimited
    seccomp: str = ""  # --seccomp-profile: "" berth's default, "unconfined", else the profile's JSON text


def ulimits_of(h: HostConfig, daemon: DaemonDefaults) -> list[tuple[str, int, int]]:
    """The container's ulimits, then the daemon's defaults for the names it leaves out."""
    own = {name for name, _, _ in h.ulimits}
    return list(h.ulimits) + [u for u in daemon.ulimits if u[0] not in own]


@dataclass
class SharedNamespaces:
    """Where `c`'s pid, IPC and UTS namespaces come from, resolved at start: "" a new one,
    "host" the host's, else the path of another container's to join; and what is its
    /dev/shm ("" a private tmpfs, "none" no /dev/shm, else a directory to bind)."""

    pid: str = ""
    ipc: str = ""
    uts: str = ""
    shm_source: str = ""


def oci_config(c: Container, root: str, user: ResolvedUser, netns: str | None,
               user_mounts: list[dict[str, Any]], shared: SharedNamespaces | None = None,
               linked_env: Sequence[str] = (), daemon: DaemonDefaults | None = None,
               id_maps: IdMappings | None = None) -> dict[str, Any]:
    """The bundle's config.json for starting `c` on the mounted `root` (in a user
    namespace of `id_maps`, when given); InvalidParameter naming what the runtime cannot
    do. `daemon` holds what the daemon's configuration adds (see DaemonDefaults)."""
    h = c.host_config
    daemon = daemon or DaemonDefaults()
    shared = shared or SharedNamespaces()
    try:
        return spec.build_config(spec.BundleRequest(
            root=root, args=[c.path, *c.args], env=process_env(c.config, user.home, linked_env), cwd=c.config.working_dir or "/",
            uid=user.uid, gid=user.gid, additional_gids=user.additional_gids,
            network_namespace=netns, host_network=h.network_mode == "host",
            hostname=c.config.hostname, terminal=c.config.tty, console_size=h.console_size,
            files={"/etc/resolv.conf": c.resolv_conf_path, "/etc/hostname": c.hostname_path,
                   "/etc/hosts": c.hosts_path},
            cgroups_path=cgroups_path(c),
            limits=limits_of(h),
            security=security_of(h, daemon.seccomp, daemon.no_new_privileges),
            rlimits=[rlimits.from_docker(n, soft, hard).to_oci() for n, soft, hard in ulimits_of(h, daemon)],
            sysctl=h.sysctls, devices=h.devices, tmpfs=h.tmpfs, shm_size=h.shm_size, mounts=user_mounts,
            oom_score_adj=h.oom_score_adj, init=init_binary() if h.init else "",
            pid_namespace=shared.pid, ipc_namespace=shared.ipc, uts_namespace=shared.uts,
            cgroup_namespace="" if h.cgroupns_mode == "private" else "host", shm_source=shared.shm_source,
            device_cgroup_rules=list(h.device_cgroup_rules), id_maps=id_maps,
        ))
    except (spec.SpecBuildError, rlimits.UlimitError) as e:
        raise InvalidParameter(str(e)) from None


def limits_of(h: HostConfig) -> spec.Limits:
    return spec.Limits(
        memory=h.memory, memory_swap=h.memory_swap, memory_reservation=h.memory_reservation,
        memory_swappiness=h.memory_swappiness, oom_kill_disable=h.oom_kill_disable,
        nano_cpus=h.nano_cpus, cpu_shares=h.cpu_shares, cpu_period=h.cpu_period, cpu_quota=h.cpu_quota,
        cpuset_cpus=h.cpuset_cpus, cpuset_mems=h.cpuset_mems, pids_limit=h.pids_limit,
        blkio_weight=h.blkio_weight,
        blkio_devices={key: [(d.path, d.rate) for d in devices or []] for key, devices in (
            ("weightDevice", h.blkio_weight_device), ("throttleReadBpsDevice", h.blkio_device_read_bps),
            ("throttleWriteBpsDevice", h.blkio_device_write_bps),
            ("throttleReadIOPSDevice", h.blkio_device_read_iops),
            ("throttleWriteIOPSDevice", h.blkio_device_write_iops))})


def security_options(opts: list[str]) -> list[tuple[str, str]]:
    """`--security-opt` values as (key, value): KEY=VALUE, or Docker's older KEY:VALUE."""
    pairs = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        pairs.append((key, value))
    return pairs


def security_of(h: HostConfig, daemon_seccomp: str = "", no_new_privileges: bool = False) -> spec.Security:
    """`h`'s security settings; a container naming no seccomp profile gets the daemon's
    (`daemon_seccomp`: "" berth's default, "unconfined", or a profile's JSON text), as
    with dockerd; `--security-opt seccomp=builtin` asks for the default whatever it is.
    `no_new_privileges` is the daemon's default, which `--security-opt
    no-new-privileges=false` turns off as with dockerd."""
    sec = spec.Security(privileged=h.privileged, cap_add=list(h.cap_add), cap_drop=list(h.cap_drop),
                        readonly_root=h.readonly_rootfs, masked_paths=h.masked_paths,
                        readonly_paths=h.readonly_paths, seccomp=daemon_seccomp,
                        no_new_privileges=no_new_privileges)
    for key, value in security_options(h.security_opt):
        if key == "seccomp":
            sec.seccomp = value
        elif key == "no-new-privileges":
            sec.no_new_privileges = value.lower() in ("", "true", "1")
        elif key == "systempaths" and value == "unconfined":
            sec.masked_paths, sec.readonly_paths = [], []
    sec.apparmor = apparmor_profile_of(h)
    return sec


def apparmor_profile_of(h: HostConfig) -> str:
    """The AppArmor profile the container's processes run under, as dockerd picks it on a
    host with AppArmor: `--security-opt apparmor=NAME`, else "unconfined" when privileged;
    "" without AppArmor (the option is ignored, as dockerd ignores it). berth loads no
    docker-default profile of its own: other containers run unconfined."""
    from berth.runtime import apparmor

    profile = ""
    for key, value in security_options(h.security_opt):
        if key == "apparmor":
            profile = value
    if not profile and h.privileged:
        profile = apparmor.UNCONFINED
    return profile if profile and apparmor.enabled() else ""


def init_binary() -> str:
    for path in ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini"):
        if os.path.exists(path):
            return path
    raise InvalidParameter("docker-init binary not found: install Debian's tini package for --init")


def merge_env(base: list[str], override: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for e in base + override:
        key, sep, value = e.partition("=")
        out[key] = e if sep else key
    return list(out.values())
