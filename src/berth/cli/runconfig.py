"""The flags of ``run`` and ``create``, and the create request they produce.

``add_container_flags`` declares docker's container flags; ``build_create``
turns parsed flags plus ``IMAGE [COMMAND] [ARG...]`` into the body of
``POST /containers/create`` (Config + HostConfig + NetworkingConfig), with the
validation messages the docker CLI gives.  Pure apart from reading the
``--env-file``/``--label-file``/seccomp profile files the user names.
"""

from __future__ import annotations

import os
from typing import Any

from berth.cli.flags import FlagSet, ParsedFlags, parse_int, parse_ram_bytes


class ConfigError(ValueError):
    """Invalid container options; printed as ``berth: <msg>`` with exit 125."""


_CGROUPNS_USAGE = """Cgroup namespace to use (host|private)
'host':    Run the container in the Docker host's cgroup namespace
'private': Run the container in its own private cgroup namespace
'':        Use the cgroup namespace as configured by the
           default-cgroupns-mode option on the daemon (default)"""

# (name, shorthand, kind, usage, default, default shown in help)
_CONTAINER_FLAGS: list[tuple[str, str, str, str, Any, str | None]] = [
    ("add-host", "", "list", "Add a custom host-to-IP mapping (host:ip)", None, None),
    ("annotation", "", "map", "Add an annotation to the container (passed through to the OCI runtime)", None, "map[]"),
    ("attach", "a", "list", "Attach to STDIN, STDOUT or STDERR", None, None),
    ("blkio-weight", "", "uint16", "Block IO (relative weight), between 10 and 1000, or 0 to disable", None, "0"),
    ("blkio-weight-device", "", "list", "Block IO weight (relative device weight)", None, "[]"),
    ("cap-add", "", "list", "Add Linux capabilities", None, None),
    ("cap-drop", "", "list", "Drop Linux capabilities", None, None),
    ("cgroup-parent", "", "string", "Optional parent cgroup for the container", None, None),
    ("cgroupns", "", "string", _CGROUPNS_USAGE, None, None),
    ("cidfile", "", "string", "Write the container ID to the file", None, None),
    ("cpu-count", "", "int", "CPU count (Windows only)", None, None),
    ("cpu-percent", "", "int", "CPU percent (Windows only)", None, None),
    ("cpu-period", "", "int", "Limit CPU CFS (Completely Fair Scheduler) period", None, None),
    ("cpu-quota", "", "int", "Limit CPU CFS (Completely Fair Scheduler) quota", None, None),
    ("cpu-rt-period", "", "int", "Limit CPU real-time period in microseconds", None, None),
    ("cpu-rt-runtime", "", "int", "Limit CPU real-time runtime in microseconds", None, None),
    ("cpu-shares", "c", "int", "CPU shares (relative weight)", None, None),
    ("cpus", "", "decimal", "Number of CPUs", None, None),
    ("cpuset-cpus", "", "string", "CPUs in which to allow execution (0-3, 0,1)", None, None),
    ("cpuset-mems", "", "string", "MEMs in which to allow execution (0-3, 0,1)", None, None),
    ("device", "", "list", "Add a host device to the container", None, None),
    ("device-cgroup-rule", "", "list", "Add a rule to the cgroup allowed devices list", None, None),
    ("device-read-bps", "", "list", "Limit read rate (bytes per second) from a device", None, "[]"),
    ("device-read-iops", "", "list", "Limit read rate (IO per second) from a device", None, "[]"),
    ("device-write-bps", "", "list", "Limit write rate (bytes per second) to a device", None, "[]"),
    ("device-write-iops", "", "list", "Limit write rate (IO per second) to a device", None, "[]"),
    ("disable-content-trust", "", "bool", "Skip image verification", True, "true"),
    ("dns", "", "list", "Set custom DNS servers", None, None),
    ("dns-option", "", "list", "Set DNS options", None, None),
    ("dns-search", "", "list", "Set custom DNS search domains", None, None),
    ("domainname", "", "string", "Container NIS domain name", None, None),
    ("entrypoint", "", "string", "Overwrite the default ENTRYPOINT of the image", None, None),
    ("env", "e", "list", "Set environment variables", None, None),
    ("env-file", "", "list", "Read in a file of environment variables", None, None),
    ("expose", "", "list", "Expose a port or a range of ports", None, None),
    ("gpus", "", "gpu-request", "GPU devices to add to the container ('all' to pass all GPUs)", None, None),
    ("group-add", "", "list", "Add additional groups to join", None, None),
    ("health-cmd", "", "string", "Command to run to check health", None, None),
    ("health-interval", "", "duration", "Time between running the check (ms|s|m|h)", None, "0s"),
    ("health-retries", "", "int", "Consecutive failures needed to report unhealthy", None, None),
    (
        "health-start-interval",
        "",
        "duration",
        "Time between running the check during the start period (ms|s|m|h)",
        None,
        "0s",
    ),
    (
        "health-start-period",
        "",
        "duration",
        "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)",
        None,
        "0s",
    ),
    ("health-timeout", "", "duration", "Maximum time to allow one check to run (ms|s|m|h)", None, "0s"),
    ("help", "", "bool", "Print usage", None, None),
    ("hostname", "h", "string", "Container host name", None, None),
    ("init", "", "bool", "Run an init inside the container that forwards signals and reaps processes", None, None),
    ("interactive", "i", "bool", "Keep STDIN open even if not attached", None, None),
    ("io-maxbandwidth", "", "bytes", "Maximum IO bandwidth limit for the system drive (Windows only)", None, None),
    ("io-maxiops", "", "uint", "Maximum IOps limit for the system drive (Windows only)", None, None),
    ("ip", "", "string", "IPv4 address (e.g., 172.30.100.104)", None, None),
    ("ip6", "", "string", "IPv6 address (e.g., 2001:db8::33)", None, None),
    ("ipc", "", "string", "IPC mode to use", None, None),
    ("isolation", "", "string", "Container isolation technology", None, None),
    ("kernel-memory", "", "bytes", "Kernel memory limit", None, None),
    ("label", "l", "list", "Set meta data on a container", None, None),
    ("label-file", "", "list", "Read in a line delimited file of labels", None, None),
    ("link", "", "list", "Add link to another container", None, None),
    ("link-local-ip", "", "list", "Container IPv4/IPv6 link-local addresses", None, None),
    ("log-driver", "", "string", "Logging driver for the container", None, None),
    ("log-opt", "", "list", "Log driver options", None, None),
    ("mac-address", "", "string", "Container MAC address (e.g., 92:d0:c6:0a:29:33)", None, None),
    ("memory", "m", "bytes", "Memory limit", None, None),
    ("memory-reservation", "", "bytes", "Memory soft limit", None, None),
    ("memory-swap", "", "bytes", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap", None, None),
    ("memory-swappiness", "", "int", "Tune container memory swappiness (0 to 100)", -1, "-1"),
    ("mount", "", "mount", "Attach a filesystem mount to the container", None, None),
    ("name", "", "string", "Assign a name to the container", None, None),
    ("network", "", "network", "Connect a container to a network", None, None),
    ("network-alias", "", "list", "Add network-scoped alias for the container", None, None),
    ("no-healthcheck", "", "bool", "Disable any container-specified HEALTHCHECK", None, None),
    ("oom-kill-disable", "", "bool", "Disable OOM Killer", None, None),
    ("oom-score-adj", "", "int", "Tune host's OOM preferences (-1000 to 1000)", None, None),
    ("pid", "", "string", "PID namespace to use", None, None),
    ("pids-limit", "", "int", "Tune container pids limit (set -1 for unlimited)", None, None),
    ("platform", "", "string", "Set platform if server is multi-platform capable", None, None),
    ("privileged", "", "bool", "Give extended privileges to this container", None, None),
    ("publish", "p", "list", "Publish a container's port(s) to the host", None, None),
    ("publish-all", "P", "bool", "Publish all exposed ports to random ports", None, None),
    ("quiet", "q", "bool", "Suppress the pull output", None, None),
    ("read-only", "", "bool", "Mount the container's root filesystem as read only", None, None),
    ("restart", "", "string", "Restart policy to apply when a container exits", "no", None),
    (
        "rm",
        "",
        "bool",
        "Automatically remove the container and its associated anonymous volumes when it exits",
        None,
        None,
    ),
    ("runtime", "", "string", "Runtime to use for this container", None, None),
    ("security-opt", "", "list", "Security Options", None, None),
    ("shm-size", "", "bytes", "Size of /dev/shm", None, None),
    ("stop-signal", "", "string", "Signal to stop the container", None, None),
    ("stop-timeout", "", "int", "Timeout (in seconds) to stop a container", None, None),
    ("storage-opt", "", "list", "Storage driver options for the container", None, None),
    ("sysctl", "", "map", "Sysctl options", None, "map[]"),
    ("tmpfs", "", "list", "Mount a tmpfs directory", None, None),
    ("tty", "t", "bool", "Allocate a pseudo-TTY", None, None),
    ("ulimit", "", "ulimit", "Ulimit options", None, "[]"),
    ("use-api-socket", "", "bool", "Bind mount Docker API socket and required auth", None, None),
    ("user", "u", "string", "Username or UID (format: <name|uid>[:<group|gid>])", None, None),
    ("userns", "", "string", "User namespace to use", None, None),
    ("uts", "", "string", "UTS namespace to use", None, None),
    ("volume", "v", "list", "Bind mount a volume", None, None),
    ("volume-driver", "", "string", "Optional volume driver for the container", None, None),
    ("volumes-from", "", "list", "Mount volumes from the specified container(s)", None, None),
    ("workdir", "w", "string", "Working directory inside the container", None, None),
]


def _memory_swap(text: str) -> int:
    if text.strip() == "-1":
        return -1
    return parse_ram_bytes(text)


def _validate_attach(value: str) -> str:
    low = value.lower()
    if low not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return low


def _validate_ip(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {value}") from None


def _validate_extra_host(value: str) -> str:
    key, sep, addr = value.partition("=")
    if not sep:
        key, sep, addr = value.partition(":")
    if not sep or not key or ":" in key:
        raise ValueError(f"bad format for add-host: {_go_q(value)}")
    if addr != "host-gateway":
        if len(addr) > 2 and addr[0] == "[" and addr[-1] == "]":
            addr = addr[1:-1]
        try:
            _validate_ip(addr)
        except ValueError:
            raise ValueError(f"invalid IP address in add-host: {_go_q(addr)}") from None
    return f"{key}:{addr}"


def _validate_label(value: str) -> str:
    key = value.partition("=")[0].lstrip(" \t")
    if not key:
        raise ValueError(f"invalid label '{value}': empty name")
    if any(c in key for c in " \t"):
        raise ValueError(f"label '{key}' contains whitespaces")
    return value


def _validate_sysctl(value: str) -> str:
    key, sep, _ = value.partition("=")
    allowed = {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
        "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    }
    if sep and key and (key in allowed or key.startswith(("net.", "fs.mqueue."))):
        return value
    raise ValueError(f"sysctl '{value}' is not allowed")


def _validate_ulimit(value: str) -> dict[str, Any]:
    try:
        return _parse_ulimit(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _validate_mount(value: str) -> dict[str, Any]:
    try:
        return parse_mount(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _go_q(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


_VALIDATORS: dict[str, Any] = {
    "attach": _validate_attach,
    "dns": _validate_ip,
    "add-host": _validate_extra_host,
    "label": _validate_label,
    "sysctl": _validate_sysctl,
    "ulimit": _validate_ulimit,
    "mount": _validate_mount,
    "memory-swap": _memory_swap,
    "memory-swappiness": parse_int,
}


def add_container_flags(flags: FlagSet, run: bool) -> None:
    """Declare the flags shared by ``run`` and ``create`` (plus run's own)."""
    for name, short, kind, usage, default, shown in _CONTAINER_FLAGS:
        convert = _VALIDATORS.get(name)
        # Windows-only flags: docker hides them when the daemon is Linux.
        hidden = name in ("cpu-count", "cpu-percent", "io-maxbandwidth", "io-maxiops")
        flags.add(name, short, kind, usage, default, convert=convert, default_text=shown, hidden=hidden)
    flags.add("dns-opt", "", "list", "Set DNS options", hidden=True, dest="dns-option")
    pull_usage = 'Pull image before running ("always", "missing", "never")'
    if not run:
        pull_usage = 'Pull image before creating ("always", "|missing", "never")'
    flags.add("pull", "", "string", pull_usage, "missing")
    if run:
        flags.add("detach", "d", "bool", "Run container in background and print container ID")
        flags.add("detach-keys", "", "string", "Override the key sequence for detaching a container")
        flags.add("sig-proxy", "", "bool", "Proxy received signals to the process", True, default_text="true")


class CreateRequest:
    """What ``POST /containers/create`` needs, plus the client-side options."""

    def __init__(
        self,
        body: dict[str, Any],
        name: str = "",
        platform: str = "",
        pull: str = "missing",
        quiet: bool = False,
        cidfile: str = "",
        auto_remove: bool = False,
    ) -> None:
        self.body = body
        self.name = name
        self.platform = platform
        self.pull = pull
        self.quiet = quiet
        self.cidfile = cidfile
        self.auto_remove = auto_remove
        self.warnings: list[str] = []

    @property
    def config(self) -> dict[str, Any]:
        return self.body

    @property
    def host_config(self) -> dict[str, Any]:
        hc: dict[str, Any] = self.body["HostConfig"]
        return hc


def build_create(flags: ParsedFlags, image: str, args: list[str]) -> CreateRequest:
    """Build the create request as docker's ``parse()`` does (cli/command/container/opts.go)."""
    v = flags.values
    changed = flags.changed

    pull = v.get("pull", "missing")
    if pull not in ("always", "missing", "never", ""):
        raise ConfigError(
            f"invalid pull option: '{pull}': must be one of \"always\", \"missing\" or \"never\""
        )

    attach = list(v["attach"])
    attach_stdin = "stdin" in attach or bool(v["interactive"])
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach

    mac = v["mac-address"]
    if mac and not _valid_mac(mac):
        raise ConfigError(f"{mac} is not a valid mac address")

    swappiness = v["memory-swappiness"]
    if swappiness != -1 and not 0 <= swappiness <= 100:
        raise ConfigError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")

    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for spec in v["volume"]:
        source, target = _split_volume(spec)
        if source:
            if source.startswith(".") and ":" in spec:
                spec = os.path.abspath(source) + spec[len(source) :]
            binds.append(spec)
        else:
            volumes[target] = {}

    tmpfs: dict[str, str] = {}
    for item in v["tmpfs"]:
        key, _, opts = item.partition(":")
        tmpfs[key] = opts

    cmd = list(args) if args else None
    entrypoint: list[str] | None = None
    if v["entrypoint"]:
        entrypoint = [v["entrypoint"]]
    elif "entrypoint" in changed:
        entrypoint = [""]

    exposed, bindings = parse_port_specs(v["publish"])
    for item in v["expose"]:
        if ":" in item:
            raise ConfigError(f"invalid port format for --expose: {item}")
        port, _, proto = item.partition("/")
        proto = proto or "tcp"
        try:
            start, end = _port_range(port)
        except ValueError as exc:
            raise ConfigError(f"invalid range format for --expose: {item}, error: {exc}") from None
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto}", {})

    devices = [_parse_device(d) for d in v["device"]]

    env = read_kv_files(v["env-file"], lookup_env=True) + [_env_value(e) for e in v["env"]]
    labels_list = read_kv_files(v["label-file"], lookup_env=False) + list(v["label"])
    labels: dict[str, str] = {}
    for item in labels_list:
        key, _, value = item.partition("=")
        labels[key] = value

    for opt, name in (("pid", "PID"), ("uts", "UTS")):
        mode = v[opt]
        if mode and mode != "host" and not mode.startswith("container:"):
            raise ConfigError(f"--{opt}: invalid {name} mode")
    userns = v["userns"]
    if userns and userns != "host":
        raise ConfigError("--userns: invalid USER mode")
    cgroupns = v["cgroupns"]
    if cgroupns and cgroupns not in ("host", "private"):
        raise ConfigError("--cgroupns: invalid CGROUP mode")

    restart = parse_restart_policy(v["restart"])

    log_config: dict[str, Any] = {"Type": v["log-driver"], "Config": {}}
    for opt in v["log-opt"]:
        key, sep, value = opt.partition("=")
        if not sep:
            raise ConfigError(f"invalid key-value pair for log-opt: {opt}")
        log_config["Config"][key] = value
    if log_config["Config"] and v["log-driver"] == "none":
        raise ConfigError("invalid logging opts for driver none")

    security_opts = parse_security_opts(v["security-opt"])
    storage_opts: dict[str, str] = {}
    for opt in v["storage-opt"]:
        key, sep, value = opt.partition("=")
        if not sep:
            raise ConfigError("invalid storage option")
        storage_opts[key] = value

    healthcheck = _healthcheck(v)

    ulimits = list(v["ulimit"])

    def put(target: dict[str, Any], key: str, value: Any, omitempty: bool = False) -> None:
        if omitempty and (value is None or value is False or value == 0 or value in ("", [], {})):
            return
        target[key] = value

    # Field order and omitempty as in docker's container.Config / HostConfig JSON.
    config: dict[str, Any] = {}
    put(config, "Hostname", v["hostname"])
    put(config, "Domainname", v["domainname"])
    put(config, "User", v["user"])
    put(config, "AttachStdin", attach_stdin)
    put(config, "AttachStdout", attach_stdout)
    put(config, "AttachStderr", attach_stderr)
    put(config, "ExposedPorts", exposed, omitempty=True)
    put(config, "Tty", v["tty"])
    put(config, "OpenStdin", v["interactive"])
    put(config, "StdinOnce", False)
    put(config, "Env", env or None)
    put(config, "Cmd", cmd)
    put(config, "Healthcheck", healthcheck, omitempty=True)
    put(config, "Image", image)
    put(config, "Volumes", volumes)
    put(config, "WorkingDir", v["workdir"])
    put(config, "Entrypoint", entrypoint)
    put(config, "MacAddress", mac, omitempty=True)
    put(config, "OnBuild", None)
    put(config, "Labels", labels)
    put(config, "StopSignal", v["stop-signal"], omitempty=True)
    if "stop-timeout" in changed:
        config["StopTimeout"] = v["stop-timeout"]

    network_mode, endpoints = _network_opts(v)

    hc: dict[str, Any] = {}
    put(hc, "Binds", binds or None)
    put(hc, "ContainerIDFile", v["cidfile"])
    put(hc, "LogConfig", log_config)
    put(hc, "NetworkMode", network_mode)
    put(hc, "PortBindings", bindings)
    put(hc, "RestartPolicy", restart)
    put(hc, "AutoRemove", v["rm"])
    put(hc, "VolumeDriver", v["volume-driver"])
    put(hc, "VolumesFrom", list(v["volumes-from"]) or None)
    put(hc, "ConsoleSize", [0, 0])
    put(hc, "Annotations", _kv_map(v["annotation"]), omitempty=True)
    cap_add, cap_drop = effective_caps(v["cap-add"], v["cap-drop"])
    put(hc, "CapAdd", cap_add or None)
    put(hc, "CapDrop", cap_drop or None)
    put(hc, "CgroupnsMode", cgroupns)
    put(hc, "Dns", list(v["dns"]))
    put(hc, "DnsOptions", list(v["dns-option"]))
    put(hc, "DnsSearch", list(v["dns-search"]))
    put(hc, "ExtraHosts", list(v["add-host"]) or None)
    put(hc, "GroupAdd", list(v["group-add"]) or None)
    put(hc, "IpcMode", v["ipc"])
    put(hc, "Cgroup", "")
    put(hc, "Links", list(v["link"]) or None)
    put(hc, "OomScoreAdj", v["oom-score-adj"])
    put(hc, "PidMode", v["pid"])
    put(hc, "Privileged", v["privileged"])
    put(hc, "PublishAllPorts", v["publish-all"])
    put(hc, "ReadonlyRootfs", v["read-only"])
    put(hc, "SecurityOpt", security_opts or None)
    put(hc, "StorageOpt", storage_opts, omitempty=True)
    put(hc, "Tmpfs", tmpfs, omitempty=True)
    put(hc, "UTSMode", v["uts"])
    put(hc, "UsernsMode", userns)
    put(hc, "ShmSize", v["shm-size"] or 0)
    put(hc, "Sysctls", _kv_map(v["sysctl"]), omitempty=True)
    put(hc, "Runtime", v["runtime"], omitempty=True)
    put(hc, "Isolation", v["isolation"])
    # Resources
    put(hc, "CpuShares", v["cpu-shares"])
    put(hc, "Memory", v["memory"] or 0)
    put(hc, "NanoCpus", v["cpus"] or 0)
    put(hc, "CgroupParent", v["cgroup-parent"])
    put(hc, "BlkioWeight", v["blkio-weight"])
    put(hc, "BlkioWeightDevice", [_weight_device(d) for d in v["blkio-weight-device"]])
    put(hc, "BlkioDeviceReadBps", [_throttle_device(d, True) for d in v["device-read-bps"]])
    put(hc, "BlkioDeviceWriteBps", [_throttle_device(d, True) for d in v["device-write-bps"]])
    put(hc, "BlkioDeviceReadIOps", [_throttle_device(d, False) for d in v["device-read-iops"]])
    put(hc, "BlkioDeviceWriteIOps", [_throttle_device(d, False) for d in v["device-write-iops"]])
    put(hc, "CpuPeriod", v["cpu-period"])
    put(hc, "CpuQuota", v["cpu-quota"])
    put(hc, "CpuRealtimePeriod", v["cpu-rt-period"])
    put(hc, "CpuRealtimeRuntime", v["cpu-rt-runtime"])
    put(hc, "CpusetCpus", v["cpuset-cpus"])
    put(hc, "CpusetMems", v["cpuset-mems"])
    put(hc, "Devices", devices)
    put(hc, "DeviceCgroupRules", list(v["device-cgroup-rule"]) or None)
    put(hc, "DeviceRequests", _gpu_requests(v["gpus"]) or None)
    put(hc, "KernelMemory", v["kernel-memory"] or 0, omitempty=True)
    put(hc, "MemoryReservation", v["memory-reservation"] or 0)
    put(hc, "MemorySwap", v["memory-swap"] or 0)
    put(hc, "MemorySwappiness", swappiness)
    put(hc, "OomKillDisable", v["oom-kill-disable"])
    put(hc, "PidsLimit", v["pids-limit"])
    put(hc, "Ulimits", ulimits)
    put(hc, "CpuCount", v["cpu-count"])
    put(hc, "CpuPercent", v["cpu-percent"])
    put(hc, "IOMaximumIOps", v["io-maxiops"])
    put(hc, "IOMaximumBandwidth", v["io-maxbandwidth"] or 0)
    put(hc, "Mounts", list(v["mount"]), omitempty=True)
    masked, readonly, security_opts = _system_paths(security_opts)
    hc["SecurityOpt"] = security_opts or None
    put(hc, "MaskedPaths", masked)
    put(hc, "ReadonlyPaths", readonly)
    if "init" in changed:
        hc["Init"] = v["init"]
    host_config = hc

    if v["rm"] and restart["Name"] not in ("", "no"):
        raise ConfigError("conflicting options: cannot specify both --restart and --rm")

    if config["OpenStdin"] and config["AttachStdin"]:
        config["StdinOnce"] = True

    body = dict(config)
    body["HostConfig"] = host_config
    body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    req = CreateRequest(
        body=body,
        name=v["name"],
        platform=v["platform"],
        pull=pull or "missing",
        quiet=v["quiet"],
        cidfile=v["cidfile"],
        auto_remove=v["rm"],
    )
    for dns in v["dns"]:
        if dns.startswith("127.") or dns == "::1":
            req.warnings.append(f"Localhost DNS ({dns}) may fail in containers.")
    return req


# --------------------------------------------------------------------------
# Pieces


def _valid_mac(mac: str) -> bool:
    parts = mac.replace("-", ":").split(":")
    return len(parts) in (6, 8, 20) and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)


def _split_volume(spec: str) -> tuple[str, str]:
    """(source, target) of a ``-v`` spec; source is "" for an anonymous volume."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2 and parts[1] in ("ro", "rw", "z", "Z") and parts[0].startswith("/"):
        return "", parts[0]
    if len(parts) >= 2:
        return parts[0], parts[1]
    return "", spec


def _env_value(item: str) -> str:
    if "=" in item:
        return item
    value = os.environ.get(item)
    if value is not None:
        return f"{item}={value}"
    return item


def read_kv_files(paths: list[str], lookup_env: bool) -> list[str]:
    """docker's env-file / label-file format: KEY=VAL lines, comments and blanks ignored."""
    out: list[str] = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ConfigError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
        if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig", "replace")
        for line in text.splitlines():
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not key:
                raise ConfigError(f"no variable name on line '{line}'")
            if any(c in key for c in " \t"):
                raise ConfigError(f"variable '{key}' contains whitespaces")
            if sep:
                out.append(f"{key}={value}")
            elif lookup_env:
                found = os.environ.get(key)
                if found is not None:
                    out.append(f"{key}={found}")
            else:
                out.append(line)
    return out


def _port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    start_s, sep, end_s = text.partition("-")
    try:
        start = int(start_s)
        end = int(end_s) if sep else start
    except ValueError:
        raise ValueError(f'invalid port value: "{text}"') from None
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _convert_long_port(spec: str) -> list[str]:
    """``target=80,published=8080,protocol=udp,host_ip=…`` → ``[ip:]published:target/proto``."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip()
    target = fields.get("target", "")
    if not target:
        raise ConfigError("missing mandatory field \"target\"")
    published = fields.get("published", "")
    proto = fields.get("protocol", "tcp")
    host_ip = fields.get("host_ip", "")
    mapping = f"{published}:{target}/{proto}"
    if host_ip:
        mapping = f"{host_ip}:{mapping}"
    return [mapping]


def parse_port_specs(specs: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """nat.ParsePortSpecs: ``-p`` values → (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    expanded: list[str] = []
    for spec in specs:
        if "=" in spec:
            expanded.extend(_convert_long_port(spec))
        else:
            expanded.append(spec)
    for spec in expanded:
        ip = ""
        rest = spec
        if rest.startswith("["):
            end = rest.find("]")
            ip, rest = rest[1:end], rest[end + 2 :]
            host_port, _, container = rest.rpartition(":")
        else:
            parts = rest.split(":")
            if len(parts) == 1:
                host_port, container = "", parts[0]
            elif len(parts) == 2:
                host_port, container = parts
            elif len(parts) == 3:
                ip, host_port, container = parts
            else:
                ip = ":".join(parts[:-2])
                host_port, container = parts[-2], parts[-1]
        port, _, proto = container.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise ConfigError(f"invalid proto: {proto}")
        if not port:
            raise ConfigError(f"no port specified: {spec}<empty>")
        try:
            start, end = _port_range(port)
        except ValueError:
            raise ConfigError(f"invalid containerPort: {port}") from None
        host_start = host_end = 0
        if host_port:
            try:
                host_start, host_end = _port_range(host_port)
            except ValueError:
                raise ConfigError(f"invalid hostPort: {host_port}") from None
        if host_port and (end - start) != (host_end - host_start) and end != start:
            raise ConfigError(f"invalid ranges specified for container and host Ports: {port} and {host_port}")
        for i in range(end - start + 1):
            cport = f"{start + i}/{proto}"
            hport = host_port
            if host_port and end != start:
                hport = str(host_start + i)
            elif host_port and host_end != host_start:
                hport = host_port
            exposed.setdefault(cport, {})
            bindings.setdefault(cport, []).append({"HostIp": ip, "HostPort": hport})
    return exposed, bindings


def _parse_device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    src = parts[0]
    dst = src
    perms = "rwm"
    if len(parts) == 2:
        if all(c in "rwm" for c in parts[1]) and parts[1]:
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) == 3:
        dst, perms = parts[1], parts[2]
        if not all(c in "rwm" for c in perms):
            raise ConfigError(f"bad mode specified: {perms}")
    elif len(parts) > 3:
        raise ConfigError(f"invalid device specification: {spec}")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def parse_restart_policy(policy: str) -> dict[str, Any]:
    if not policy:
        return {"Name": "", "MaximumRetryCount": 0}
    name, sep, count = policy.partition(":")
    if sep and not name:
        raise ConfigError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise ConfigError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def parse_security_opts(opts: list[str]) -> list[str]:
    out: list[str] = []
    for opt in opts:
        if opt == "systempaths=unconfined":
            out.append(opt)
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep and opt != "no-new-privileges":
            raise ConfigError(f"Invalid --security-opt: {opt!r}".replace("'", '"'))
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                with open(value, encoding="utf-8") as fh:
                    import json

                    profile = json.dumps(json.load(fh), separators=(",", ":"))
            except OSError as exc:
                raise ConfigError(f"opening seccomp profile ({value}) failed: {exc}") from None
            except ValueError as exc:
                raise ConfigError(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
            out.append(f"seccomp={profile}")
        elif sep == ":" and key in ("label", "apparmor", "seccomp"):
            out.append(f"{key}={value}")
        else:
            out.append(opt)
    return out


def normalize_capability(cap: str) -> str:
    cap = cap.strip().upper()
    if cap in ("ALL", "RESET") or cap.startswith("CAP_"):
        return cap
    return "CAP_" + cap


def effective_caps(add: list[str], drop: list[str]) -> tuple[list[str], list[str]]:
    """docker's EffectiveCapAddCapDrop: normalized, "ALL" wins, adding beats dropping."""
    add_caps = {normalize_capability(c) for c in add}
    drop_caps = {normalize_capability(c) for c in drop}
    cap_drop = sorted(c for c in drop_caps if c not in add_caps and c != "RESET")
    cap_add = sorted(c for c in add_caps if c != "RESET")
    return cap_add, cap_drop


def _system_paths(opts: list[str]) -> tuple[list[str] | None, list[str] | None, list[str]]:
    """``systempaths=unconfined`` empties the masked and read-only path lists."""
    if "systempaths=unconfined" in opts:
        return [], [], [o for o in opts if o != "systempaths=unconfined"]
    return None, None, opts


def _healthcheck(v: dict[str, Any]) -> dict[str, Any] | None:
    have = bool(
        v["health-cmd"]
        or v["health-interval"]
        or v["health-timeout"]
        or v["health-start-period"]
        or v["health-retries"]
        or v["health-start-interval"]
    )
    if v["no-healthcheck"]:
        if have:
            raise ConfigError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for name in ("health-interval", "health-timeout", "health-retries", "health-start-period", "health-start-interval"):
        if v[name] < 0:
            raise ConfigError(f"--{name} cannot be negative")
    check: dict[str, Any] = {}
    if v["health-cmd"]:
        check["Test"] = ["CMD-SHELL", v["health-cmd"]]
    for key, name in (
        ("Interval", "health-interval"),
        ("Timeout", "health-timeout"),
        ("StartPeriod", "health-start-period"),
        ("StartInterval", "health-start-interval"),
    ):
        if v[name]:
            check[key] = int(round(v[name] * 1e9))
    if v["health-retries"]:
        check["Retries"] = v["health-retries"]
    return check


def _parse_ulimit(spec: str) -> dict[str, Any]:
    name, sep, limits = spec.partition("=")
    if not sep:
        raise ConfigError(f"invalid ulimit argument: {spec}")
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise ConfigError(f"invalid ulimit argument: {spec}") from None
    if soft > hard:
        raise ConfigError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def _weight_device(spec: str) -> dict[str, Any]:
    path, _, weight = spec.rpartition(":")
    try:
        return {"Path": path, "Weight": int(weight)}
    except ValueError:
        raise ConfigError(f"invalid weight for device: {spec}") from None


def _throttle_device(spec: str, as_bytes: bool) -> dict[str, Any]:
    path, _, rate = spec.rpartition(":")
    try:
        value = parse_ram_bytes(rate) if as_bytes else int(rate)
    except ValueError:
        raise ConfigError(f"invalid rate for device: {spec}") from None
    return {"Path": path, "Rate": value}


def _gpu_requests(specs: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in specs:
        req: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}
        if spec == "all":
            req["Count"] = -1
        else:
            for part in spec.split(","):
                key, _, value = part.partition("=")
                if key == "count":
                    req["Count"] = -1 if value == "all" else int(value)
                elif key == "device":
                    req["DeviceIDs"] = value.split(",")
                elif key == "driver":
                    req["Driver"] = value
                elif value == "" and key.isdigit():
                    req["Count"] = int(key)
        out.append(req)
    return out


def _kv_map(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` → a Mount object."""
    mount: dict[str, Any] = {"Type": "volume"}
    bind_opts: dict[str, Any] = {}
    volume_opts: dict[str, Any] = {}
    tmpfs_opts: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep and key not in ("readonly", "ro", "volume-nocopy", "bind-recursive"):
            raise ConfigError(f"invalid field '{part}' must be a key=value pair")
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = (value or "true").lower() in ("1", "true")
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind_opts["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind_opts["NonRecursive"] = value.lower() in ("1", "true")
        elif key == "volume-nocopy":
            volume_opts["NoCopy"] = (value or "true").lower() in ("1", "true")
        elif key == "volume-label":
            lk, _, lv = value.partition("=")
            volume_opts.setdefault("Labels", {})[lk] = lv
        elif key == "volume-driver":
            volume_opts.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            ok, _, ov = value.partition("=")
            volume_opts.setdefault("DriverConfig", {}).setdefault("Options", {})[ok] = ov
        elif key == "volume-subpath":
            volume_opts["Subpath"] = value
        elif key == "tmpfs-size":
            tmpfs_opts["SizeBytes"] = parse_ram_bytes(value)
        elif key == "tmpfs-mode":
            tmpfs_opts["Mode"] = int(value, 8)
        else:
            raise ConfigError(f"unexpected key '{key}' in '{part}'")
    if "Target" not in mount:
        raise ConfigError("target is required")
    if bind_opts:
        mount["BindOptions"] = bind_opts
    if volume_opts:
        volume_opts.setdefault("DriverConfig", {})
        mount["VolumeOptions"] = volume_opts
    if tmpfs_opts:
        mount["TmpfsOptions"] = tmpfs_opts
    return mount


def _network_opts(v: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    networks: list[dict[str, Any]] = []
    for spec in v["network"]:
        if "=" in spec:
            net: dict[str, Any] = {"Target": "", "Aliases": [], "DriverOpts": {}}
            for part in spec.split(","):
                key, _, value = part.partition("=")
                key = key.strip().lower()
                if key == "name":
                    net["Target"] = value
                elif key == "alias":
                    net["Aliases"].append(value)
                elif key == "ip":
                    net["IPv4Address"] = value
                elif key == "ip6":
                    net["IPv6Address"] = value
                elif key == "mac-address":
                    net["MacAddress"] = value
                elif key == "driver-opt":
                    dk, _, dv = value.partition("=")
                    net["DriverOpts"][dk] = dv
                elif key == "gw-priority":
                    net["GwPriority"] = int(value)
                else:
                    raise ConfigError(f"invalid field key {key}")
            networks.append(net)
        else:
            networks.append({"Target": spec, "Aliases": [], "DriverOpts": {}})
    mode = networks[0]["Target"] if networks else "default"
    endpoints: dict[str, Any] = {}
    explicit = bool(networks)
    if not networks:
        networks = [{"Target": "default", "Aliases": [], "DriverOpts": {}}]
    for i, net in enumerate(networks):
        if i == 0:
            if v["network-alias"]:
                if net["Aliases"]:
                    raise ConfigError(
                        "conflicting options: cannot specify both --network-alias and per-network alias"
                    )
                net["Aliases"] = list(v["network-alias"])
            if v["ip"]:
                net["IPv4Address"] = v["ip"]
            if v["ip6"]:
                net["IPv6Address"] = v["ip6"]
            if v["mac-address"]:
                net["MacAddress"] = v["mac-address"]
            if v["link-local-ip"]:
                net["LinkLocalIPs"] = list(v["link-local-ip"])
            user_defined = net["Target"] not in ("default", "bridge", "host", "none") and not net[
                "Target"
            ].startswith("container:")
            if user_defined and v["link"]:
                net["Links"] = list(v["link"])
        ipam: dict[str, Any] | None = None
        if net.get("IPv4Address") or net.get("IPv6Address") or net.get("LinkLocalIPs"):
            ipam = {}
            if net.get("IPv4Address"):
                ipam["IPv4Address"] = net["IPv4Address"]
            if net.get("IPv6Address"):
                ipam["IPv6Address"] = net["IPv6Address"]
            if net.get("LinkLocalIPs"):
                ipam["LinkLocalIPs"] = net["LinkLocalIPs"]
        customized = bool(
            ipam or net["Aliases"] or net.get("Links") or net.get("MacAddress") or net["DriverOpts"]
            or net.get("GwPriority")
        )
        if explicit and i == 0 and len(networks) == 1 and not customized:
            continue
        if net["Target"] in endpoints:
            raise ConfigError(f'network "{net["Target"]}" is specified multiple times')
        endpoints[net["Target"]] = {
            "IPAMConfig": ipam,
            "Links": net.get("Links") or None,
            "Aliases": net["Aliases"] or None,
            "MacAddress": net.get("MacAddress", ""),
            "DriverOpts": net["DriverOpts"] or None,
            "GwPriority": net.get("GwPriority", 0),
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": None,
        }
    return mode, endpoints
