"""Turning a merged, interpolated, validated compose document into the typed model.

Owns: every short form to its long form as compose-go normalizes it — ports
(`"127.0.0.1:8080-8081:80-81/udp"`), volumes (`./data:/data:ro`, named, anonymous),
command/entrypoint strings (split as a shell would), environment lists, env_file
contents, depends_on lists, build strings, secrets/configs references, durations
(`1m30s` → nanoseconds), byte sizes (`50M`), ulimits, extra_hosts — and relative paths
resolved against the directory they were written relative to.
Must not: read compose files (env_file contents aside) or check cross references.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from berth.compose.interpolation import read_dotenv
from berth.compose.merge import key_value_map
from berth.compose.model import (
    BindOptions,
    BuildConfig,
    Dependency,
    Deploy,
    DeviceMapping,
    FileReference,
    Healthcheck,
    Hook,
    Logging,
    PortConfig,
    Resources,
    ResourceSpec,
    RestartPolicy,
    Service,
    ServiceNetwork,
    ServiceVolume,
    TmpfsOptions,
    Ulimit,
    VolumeOptions,
)
from berth.errors import InvalidParameter

_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: Any, *, where: str = "duration") -> int:
    """A Go duration ("1m30s", "500ms") or a number of seconds, in nanoseconds."""
    if isinstance(value, bool):
        raise InvalidParameter(f"{where}: invalid duration {value!r}")
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    if text in ("0", ""):
        return 0
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            raise InvalidParameter(f'{where}: time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * int(round(total))


def format_duration(ns: int) -> str:
    """Go's time.Duration.String: "1m30s", "10s", "1h0m0s", "1.5s", "500ms"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)


def parse_bytes(value: Any, *, where: str = "size") -> int:
    """`50M`, `1g`, `1024`, `512k`, `1.5gb` in bytes (binary multiples, as docker's units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if m is None:
        raise InvalidParameter(f"{where}: invalid size: '{value}'")
    factor = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * factor)


def scalar_string(value: Any) -> str:
    """A YAML scalar as the string compose-go makes of it (`true`, `1`, `1.5`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "+Inf" if value > 0 else "-Inf"
        if value.is_integer():
            return str(int(value))
    return str(value)


def split_command(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [scalar_string(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError as e:
        raise InvalidParameter(f"invalid command line {value!r}: {e}") from None


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [scalar_string(v) for v in value]
    return [scalar_string(value)]


def _string_map(value: Any) -> dict[str, str]:
    return {
        k: "" if v is None else scalar_string(v) for k, v in key_value_map(value).items()
    }


def _optional_map(value: Any) -> dict[str, str | None]:
    return {
        k: None if v is None else scalar_string(v) for k, v in key_value_map(value).items()
    }


def expand_path(path: str, base: Path) -> str:
    """`~` expanded, relative paths made absolute against `base`."""
    if path.startswith("~"):
        path = os.path.expanduser(path)
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base, path))


def _is_remote_context(context: str) -> bool:
    return "://" in context or context.startswith("git@") or context.startswith("github.com/")


# --- ports -------------------------------------------------------------------------

def _port_range(text: str, where: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        low = int(start)
        high = int(end) if sep else low
    except ValueError:
        raise InvalidParameter(f"{where}: invalid port '{text}'") from None
    if not (0 <= low <= 65535 and 0 <= high <= 65535) or high < low:
        raise InvalidParameter(f"{where}: invalid port '{text}'")
    return low, high


def parse_port(spec: Any, *, where: str = "ports") -> list[PortConfig]:
    """One `ports` entry (short string, number, or long mapping) in long form."""
    if isinstance(spec, dict):
        if spec.get("target") is None:
            raise InvalidParameter(f"service ports {where} is missing a target port")
        published = spec.get("published")
        return [
            PortConfig(
                target=int(spec["target"]),
                published=None if published in (None, "") else scalar_string(published),
                host_ip=spec.get("host_ip"),
                protocol=spec.get("protocol") or "tcp",
                mode=spec.get("mode") or "ingress",
                name=spec.get("name"),
                app_protocol=spec.get("app_protocol"),
            )
        ]
    text = scalar_string(spec)
    protocol = "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
    host_ip: str | None = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise InvalidParameter(f"{where}: invalid IP address in '{spec}'")
        host_ip, text = text[1:close], text[close + 2 :]
        parts = text.split(":")
        parts = ["", *parts] if len(parts) == 1 else parts
        if len(parts) != 2:
            raise InvalidParameter(f"{where}: invalid port '{spec}'")
        published, container = parts
    else:
        parts = text.split(":")
        if len(parts) == 1:
            published, container = "", parts[0]
        elif len(parts) == 2:
            published, container = parts
        elif len(parts) == 3:
            host_ip, published, container = parts
        else:
            raise InvalidParameter(f"{where}: invalid port '{spec}'")
    low, high = _port_range(container, where)
    if not published:
        return [
            PortConfig(target=p, host_ip=host_ip or None, protocol=protocol)
            for p in range(low, high + 1)
        ]
    plow, phigh = _port_range(published, where)
    if high == low and phigh != plow:
        return [PortConfig(target=low, published=published, host_ip=host_ip or None,
                           protocol=protocol)]
    if phigh - plow != high - low:
        raise InvalidParameter(
            f"{where}: invalid ranges specified for container and host ports: '{spec}'"
        )
    return [
        PortConfig(target=low + i, published=str(plow + i), host_ip=host_ip or None,
                   protocol=protocol)
        for i in range(high - low + 1)
    ]


# --- volumes -----------------------------------------------------------------------

_PROPAGATIONS = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def parse_volume(spec: Any, base: Path, *, where: str = "volumes") -> ServiceVolume:
    """One service `volumes` entry in long form; bind sources made absolute."""
    if isinstance(spec, dict):
        if not spec.get("target"):
            raise InvalidParameter(f"service volume {where} is missing a mount target")
        vol_type = spec.get("type") or "volume"
        bind = spec.get("bind")
        volume = spec.get("volume")
        tmpfs = spec.get("tmpfs")
        source = spec.get("source")
        if vol_type == "bind" and source:
            source = expand_path(str(source), base)
        return ServiceVolume(
            type=vol_type,
            target=str(spec.get("target", "")),
            source=source,
            read_only=bool(spec.get("read_only", False)),
            consistency=spec.get("consistency"),
            bind=BindOptions(
                propagation=bind.get("propagation"),
                create_host_path=bind.get("create_host_path"),
                selinux=bind.get("selinux"),
            ) if isinstance(bind, dict) else None,
            volume=VolumeOptions(
                nocopy=bool(volume.get("nocopy", False)), subpath=volume.get("subpath")
            ) if isinstance(volume, dict) else None,
            tmpfs=TmpfsOptions(
                size=parse_bytes(tmpfs["size"], where=where) if "size" in tmpfs else None,
                mode=tmpfs.get("mode"),
            ) if isinstance(tmpfs, dict) else None,
        )
    text = str(spec)
    parts = text.split(":")
    if len(parts) == 1:
        return ServiceVolume(type="volume", target=parts[0], volume=VolumeOptions())
    if len(parts) > 3:
        raise InvalidParameter(f"{where}: invalid spec: {text}: too many colons")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if not target:
        raise InvalidParameter(f"{where}: invalid spec: {text}: empty container path")
    read_only = "ro" in options
    is_bind = source.startswith((".", "/", "~")) or source == ""
    if is_bind:
        propagation = next((o for o in options if o in _PROPAGATIONS), None)
        selinux = next((o for o in options if o in ("z", "Z")), None)
        return ServiceVolume(
            type="bind",
            source=expand_path(source, base),
            target=target,
            read_only=read_only,
            bind=BindOptions(propagation=propagation, create_host_path=True, selinux=selinux),
        )
    return ServiceVolume(
        type="volume",
        source=source,
        target=target,
        read_only=read_only,
        volume=VolumeOptions(nocopy="nocopy" in options),
    )


# --- the service -------------------------------------------------------------------

def _healthcheck(raw: Any, where: str) -> Healthcheck | None:
    if raw is None:
        return None
    test = raw.get("test")
    if isinstance(test, str):
        test_list: list[str] | None = ["CMD-SHELL", test]
    else:
        test_list = [str(t) for t in test] if test is not None else None

    def dur(key: str) -> int | None:
        return parse_duration(raw[key], where=f"{where}.{key}") if key in raw else None

    return Healthcheck(
        test=test_list,
        interval=dur("interval"),
        timeout=dur("timeout"),
        retries=raw.get("retries"),
        start_period=dur("start_period"),
        start_interval=dur("start_interval"),
        disable=bool(raw.get("disable", False)),
    )


def _resource_spec(raw: Any, where: str) -> ResourceSpec | None:
    if not isinstance(raw, dict):
        return None
    return ResourceSpec(
        cpus=float(raw["cpus"]) if raw.get("cpus") is not None else None,
        memory=parse_bytes(raw["memory"], where=f"{where}.memory") if "memory" in raw else None,
        pids=raw.get("pids"),
    )


def _deploy(raw: Any, where: str) -> Deploy | None:
    if raw is None:
        return None
    resources = raw.get("resources")
    policy = raw.get("restart_policy")
    if raw.get("replicas") is not None and raw["replicas"] < 0:
        raise InvalidParameter(f"{where}.replicas: must be greater than or equal to 0")
    return Deploy(
        mode=raw.get("mode"),
        replicas=raw.get("replicas"),
        labels=_string_map(raw.get("labels")),
        resources=Resources(
            limits=_resource_spec(resources.get("limits"), f"{where}.resources.limits"),
            reservations=_resource_spec(
                resources.get("reservations"), f"{where}.resources.reservations"
            ),
        ) if isinstance(resources, dict) else None,
        restart_policy=RestartPolicy(
            condition=policy.get("condition"),
            delay=parse_duration(policy["delay"], where=f"{where}.restart_policy.delay")
            if "delay" in policy else None,
            max_attempts=policy.get("max_attempts"),
            window=parse_duration(policy["window"], where=f"{where}.restart_policy.window")
            if "window" in policy else None,
        ) if isinstance(policy, dict) else None,
    )


def _build(raw: Any, base: Path, env: Mapping[str, str]) -> BuildConfig | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"context": raw}
    context = str(raw.get("context") or ".")
    if not _is_remote_context(context):
        context = expand_path(context, base)
    args = _optional_map(raw.get("args"))
    for k, v in args.items():
        if v is None and k in env:
            args[k] = env[k]
    return BuildConfig(
        context=context,
        dockerfile=raw.get("dockerfile") or "Dockerfile",
        dockerfile_inline=raw.get("dockerfile_inline"),
        args=args,
        target=raw.get("target"),
        labels=_string_map(raw.get("labels")),
        cache_from=_string_list(raw.get("cache_from")),
        network=raw.get("network"),
        shm_size=parse_bytes(raw["shm_size"]) if "shm_size" in raw else None,
        extra_hosts=_extra_hosts(raw.get("extra_hosts")),
        tags=_string_list(raw.get("tags")),
        platforms=_string_list(raw.get("platforms")),
        no_cache=bool(raw.get("no_cache", False)),
        pull=bool(raw.get("pull", False)),
    )


def _extra_hosts(raw: Any) -> list[str]:
    if raw is None:
        return []
    entries: list[str] = []
    if isinstance(raw, dict):
        for host, ips in raw.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                entries.append(f"{host}={ip}")
    else:
        for item in raw:
            text = str(item)
            sep = "=" if "=" in text else ":"
            host, _, ip = text.partition(sep)
            entries.append(f"{host}={ip}")
    return sorted(entries)


def _file_references(raw: Any, default_dir: str | None, where: str) -> list[FileReference]:
    refs: list[FileReference] = []
    for i, item in enumerate(raw or []):
        if isinstance(item, str):
            item = {"source": item}
        if not item.get("source"):
            raise InvalidParameter(f"{where}.[{i}] is missing a source")
        target = item.get("target")
        if default_dir is not None and not target:
            target = f"{default_dir}/{item['source']}"
        refs.append(
            FileReference(
                source=item["source"],
                target=target,
                uid=None if item.get("uid") is None else str(item["uid"]),
                gid=None if item.get("gid") is None else str(item["gid"]),
                mode=item.get("mode"),
            )
        )
    return refs


def _devices(raw: Any, where: str) -> list[DeviceMapping]:
    devices: list[DeviceMapping] = []
    for i, item in enumerate(raw or []):
        if isinstance(item, dict):
            if not item.get("source"):
                raise InvalidParameter(f"{where}.[{i}] is missing a source")
            devices.append(DeviceMapping(
                source=str(item["source"]), target=str(item.get("target") or item["source"]),
                permissions=item.get("permissions"),
            ))
            continue
        parts = str(item).split(":")
        if len(parts) > 3 or not parts[0]:
            raise InvalidParameter(f"{where}.[{i}]: invalid device specification: {item}")
        devices.append(DeviceMapping(
            source=parts[0],
            target=parts[1] if len(parts) > 1 and parts[1] else parts[0],
            permissions=parts[2] if len(parts) > 2 else "rwm",
        ))
    return devices


def _ulimits(raw: Any) -> dict[str, Ulimit]:
    result: dict[str, Ulimit] = {}
    for name, value in (raw or {}).items():
        if name.startswith("x-"):
            continue
        if not isinstance(value, int | dict) or isinstance(value, bool):
            raise InvalidParameter(f"ulimits.{name} must be a integer or a mapping")
        if isinstance(value, dict):
            result[name] = Ulimit(soft=int(value["soft"]), hard=int(value["hard"]))
        else:
            result[name] = Ulimit(soft=int(value), hard=int(value), single=True)
    return result


def _hooks(raw: Any) -> list[Hook]:
    return [
        Hook(
            command=split_command(h.get("command")) or [],
            user=h.get("user"),
            privileged=bool(h.get("privileged", False)),
            working_dir=h.get("working_dir"),
            environment=_optional_map(h.get("environment")),
        )
        for h in raw or []
    ]


def _environment(
    raw: dict[str, Any], base: Path, env: Mapping[str, str], warnings: list[str]
) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    env_files = raw.get("env_file")
    if env_files is not None:
        for entry in env_files if isinstance(env_files, list) else [env_files]:
            path = entry.get("path") if isinstance(entry, dict) else entry
            required = entry.get("required", True) if isinstance(entry, dict) else True
            file = Path(expand_path(str(path), base))
            if not required and not file.exists():
                continue
            result.update(read_dotenv(file, env, warnings))
    result.update(_optional_map(raw.get("environment")))
    for k, v in result.items():
        if v is None and k in env:
            result[k] = env[k]
    return result


_TYPED = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "volumes_from", "networks", "network_mode", "depends_on", "healthcheck",
    "restart", "deploy", "labels", "profiles", "secrets", "configs", "logging", "ulimits",
    "cap_add", "cap_drop", "user", "working_dir", "hostname", "domainname", "container_name",
    "extra_hosts", "dns", "dns_search", "dns_opt", "tmpfs", "init", "privileged", "read_only",
    "stdin_open", "tty", "stop_signal", "stop_grace_period", "pull_policy", "platform",
    "links", "external_links", "sysctls", "security_opt", "devices", "ipc", "pid", "shm_size",
    "scale", "post_start", "pre_stop", "extends",
}


def build_service(
    name: str, raw: dict[str, Any], base: Path, env: Mapping[str, str], warnings: list[str]
) -> Service:
    """The typed Service for one raw (merged, interpolated, validated) service mapping."""
    where = f"services.{name}"
    depends: dict[str, Dependency] = {}
    raw_depends = raw.get("depends_on") or {}
    if isinstance(raw_depends, list):
        raw_depends = {d: None for d in raw_depends}
    for dep, cfg in raw_depends.items():
        cfg = cfg or {}
        depends[dep] = Dependency(
            condition=cfg.get("condition", "service_started"),
            required=bool(cfg.get("required", True)),
            restart=bool(cfg.get("restart", False)),
        )
    networks: dict[str, ServiceNetwork | None] = {}
    raw_networks = raw.get("networks")
    if isinstance(raw_networks, list):
        raw_networks = {n: None for n in raw_networks}
    for net, cfg in (raw_networks or {}).items():
        networks[net] = None if cfg is None else ServiceNetwork(
            aliases=_string_list(cfg.get("aliases")),
            ipv4_address=cfg.get("ipv4_address"),
            ipv6_address=cfg.get("ipv6_address"),
            link_local_ips=_string_list(cfg.get("link_local_ips")),
            priority=cfg.get("priority"),
            mac_address=cfg.get("mac_address"),
        )
    if not networks and raw.get("network_mode") is None:
        networks["default"] = None
    ports: list[PortConfig] = []
    for i, spec in enumerate(raw.get("ports") or []):
        ports.extend(parse_port(spec, where=f"{where}.ports.[{i}]"))
    logging = raw.get("logging")
    return Service(
        name=name,
        image=raw.get("image"),
        build=_build(raw.get("build"), base, env),
        command=split_command(raw.get("command")),
        entrypoint=split_command(raw.get("entrypoint")),
        environment=_environment(raw, base, env, warnings),
        ports=ports,
        expose=_string_list(raw.get("expose")),
        volumes=[
            parse_volume(v, base, where=f"{where}.volumes.[{i}]")
            for i, v in enumerate(raw.get("volumes") or [])
        ],
        volumes_from=_string_list(raw.get("volumes_from")),
        networks=networks,
        network_mode=raw.get("network_mode"),
        depends_on=depends,
        healthcheck=_healthcheck(raw.get("healthcheck"), f"{where}.healthcheck"),
        restart=raw.get("restart"),
        deploy=_deploy(raw.get("deploy"), f"{where}.deploy"),
        labels=_string_map(raw.get("labels")),
        profiles=_string_list(raw.get("profiles")),
        secrets=_file_references(raw.get("secrets"), "/run/secrets", f"{where}.secrets"),
        configs=_file_references(raw.get("configs"), None, f"{where}.configs"),
        logging=Logging(
            driver=logging.get("driver"), options=_string_map(logging.get("options"))
        ) if isinstance(logging, dict) else None,
        ulimits=_ulimits(raw.get("ulimits")),
        cap_add=_string_list(raw.get("cap_add")),
        cap_drop=_string_list(raw.get("cap_drop")),
        user=None if raw.get("user") is None else scalar_string(raw["user"]),
        working_dir=raw.get("working_dir"),
        hostname=raw.get("hostname"),
        domainname=raw.get("domainname"),
        container_name=raw.get("container_name"),
        extra_hosts=_extra_hosts(raw.get("extra_hosts")),
        dns=_string_list(raw.get("dns")),
        dns_search=_string_list(raw.get("dns_search")),
        dns_opt=_string_list(raw.get("dns_opt")),
        tmpfs=_string_list(raw.get("tmpfs")),
        init=raw.get("init"),
        privileged=bool(raw.get("privileged", False)),
        read_only=bool(raw.get("read_only", False)),
        stdin_open=bool(raw.get("stdin_open", False)),
        tty=bool(raw.get("tty", False)),
        stop_signal=raw.get("stop_signal"),
        stop_grace_period=parse_duration(
            raw["stop_grace_period"], where=f"{where}.stop_grace_period"
        ) if raw.get("stop_grace_period") is not None else None,
        pull_policy=raw.get("pull_policy"),
        platform=raw.get("platform"),
        links=_string_list(raw.get("links")),
        external_links=_string_list(raw.get("external_links")),
        sysctls=_string_map(raw.get("sysctls")),
        security_opt=_string_list(raw.get("security_opt")),
        devices=_devices(raw.get("devices"), f"{where}.devices"),
        ipc=raw.get("ipc"),
        pid=raw.get("pid"),
        shm_size=parse_bytes(raw["shm_size"]) if raw.get("shm_size") is not None else None,
        scale=raw.get("scale"),
        post_start=_hooks(raw.get("post_start")),
        pre_stop=_hooks(raw.get("pre_stop")),
        other={k: v for k, v in raw.items() if k not in _TYPED},
    )
