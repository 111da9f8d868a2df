"""A service of the model as the Engine API requests compose v2 sends for it.

Owns: the body of `POST /containers/create` for one container of a service (Config,
HostConfig, NetworkingConfig, as compose v2's getCreateConfigs builds them: its labels,
binds and mounts, endpoints with their aliases, ports, resources, restart policy,
health check), and the bodies of `POST /networks/create` and `POST /volumes/create`.
Must not: send requests or decide what to create (up.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.compose.engine import labels as L
from berth.compose.model import Network, Project, Service, ServiceNetwork, ServiceVolume, Volume
from berth.compose.normalize import parse_bytes

SECRETS_DIR = "/run/secrets/"


@dataclass
class CreateOptions:
    """What differs between containers of one service: its number, the links to the
    containers that exist, run's one-off settings, and what a replaced container hands
    on (its anonymous volumes)."""

    number: int
    links: list[str] = field(default_factory=list)
    oneoff: bool = False
    auto_remove: bool = False
    attach_stdin: bool = False
    use_aliases: bool = True
    env_files: list[str] = field(default_factory=list)
    image_id: str | None = None
    replace: str | None = None
    inherited_volumes: dict[str, str] = field(default_factory=dict)  # target -> volume name


def image_name(project: Project, service: Service) -> str:
    """The image a service runs: its `image`, else the one `build` makes (PROJECT-SERVICE)."""
    return service.image or f"{project.name}-{service.name}"


def capabilities(names: list[str]) -> list[str] | None:
    """As the Engine API client sends them: upper case, with the CAP_ prefix (but ALL)."""
    out = []
    for name in names:
        name = name.upper()
        out.append(name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name)
    return out or None


def networks_by_priority(service: Service) -> list[str]:
    """compose-go's NetworksByPriority: highest priority first, then by name."""
    def priority(key: str) -> int:
        cfg = service.networks[key]
        return cfg.priority if cfg is not None and cfg.priority is not None else 0
    return sorted(service.networks, key=lambda k: (-priority(k), k))


def _seconds(ns: int | None) -> int | None:
    return None if ns is None else ns // 1_000_000_000


def _healthcheck(service: Service) -> dict[str, Any] | None:
    h = service.healthcheck
    if h is None:
        return None
    if h.disable:
        return {"Test": ["NONE"]}
    body: dict[str, Any] = {}
    if h.test is not None:
        body["Test"] = h.test
    for key, value in (("Interval", h.interval), ("Timeout", h.timeout),
                       ("StartPeriod", h.start_period), ("StartInterval", h.start_interval)):
        if value:
            body[key] = value
    if h.retries:
        body["Retries"] = h.retries
    return body


def _env(service: Service) -> list[str]:
    return [f"{k}={v}" if v is not None else k for k, v in service.environment.items()]


def _exposed_ports(service: Service) -> dict[str, dict[str, Any]]:
    ports: dict[str, dict[str, Any]] = {}
    for spec in service.expose:
        ports[spec] = {}  # as written: "9000" stays "9000", as compose v2 sends it
    for p in service.ports:
        ports[f"{p.target}/{p.protocol}"] = {}
    return ports


def _port_bindings(service: Service) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in service.ports:
        bindings.setdefault(f"{p.target}/{p.protocol}", []).append(
            {"HostIp": p.host_ip or "", "HostPort": p.published or ""})
    return bindings


def _restart_policy(service: Service) -> dict[str, Any]:
    name, attempts = "", 0
    if service.restart:
        mode, _, count = service.restart.partition(":")
        name, attempts = _restart_mode(mode), int(count) if count.isdigit() else 0
    if service.deploy is not None and service.deploy.restart_policy is not None:
        policy = service.deploy.restart_policy
        name = _restart_mode(policy.condition or "")
        attempts = policy.max_attempts or 0
    return {"Name": name, "MaximumRetryCount": attempts}


def _restart_mode(condition: str) -> str:
    return {"none": "no", "any": "always"}.get(condition, condition)


def _bytes(value: Any) -> int:
    return parse_bytes(value) if value not in (None, "") else 0


def _resources(service: Service) -> dict[str, Any]:
    """HostConfig's resources: the service's own keys, then deploy.resources over them."""
    o = service.other
    res: dict[str, Any] = {
        "Memory": _bytes(o.get("mem_limit")),
        "MemorySwap": _bytes(o.get("memswap_limit")),
        "MemoryReservation": _bytes(o.get("mem_reservation")),
        "CpuShares": int(o.get("cpu_shares") or 0),
        "CpuQuota": int(o.get("cpu_quota") or 0),
        "CpuPeriod": int(o.get("cpu_period") or 0),
        "CpusetCpus": str(o.get("cpuset") or ""),
        "NanoCpus": int(float(o.get("cpus") or 0) * 1e9),
        "OomKillDisable": bool(o.get("oom_kill_disable") or False),
    }
    if o.get("cgroup_parent"):
        res["CgroupParent"] = str(o["cgroup_parent"])
    if o.get("mem_swappiness") not in (None, 0, "0"):
        res["MemorySwappiness"] = int(o["mem_swappiness"])
    if o.get("pids_limit"):
        res["PidsLimit"] = int(o["pids_limit"])
    if o.get("device_cgroup_rules"):
        res["DeviceCgroupRules"] = list(o["device_cgroup_rules"])
    deploy = service.deploy
    if deploy is not None and deploy.resources is not None:
        limits, reservations = deploy.resources.limits, deploy.resources.reservations
        if limits is not None:
            if limits.memory:
                res["Memory"] = limits.memory
            if limits.cpus:
                res["NanoCpus"] = int(limits.cpus * 1e9)
            if limits.pids and limits.pids > 0:
                res["PidsLimit"] = limits.pids
        if reservations is not None and reservations.memory:
            res["MemoryReservation"] = reservations.memory
    if service.devices:
        res["Devices"] = [{"PathOnHost": d.source, "PathInContainer": d.target,
                           "CgroupPermissions": d.permissions or ""} for d in service.devices]
    if service.ulimits:
        res["Ulimits"] = [{"Name": name, "Soft": u.soft, "Hard": u.hard}
                          for name, u in service.ulimits.items()]
    return res


def _bind_string(source: str, v: ServiceVolume) -> str:
    options = ["ro" if v.read_only else "rw"]
    if v.bind is not None and v.bind.selinux:
        options.append(v.bind.selinux)
    if v.bind is not None and v.bind.propagation:
        options.append(v.bind.propagation)
    if v.volume is not None and v.volume.nocopy:
        options.append("nocopy")
    return f"{source}:{v.target}:{','.join(options)}"


def _mount(project: Project, v: ServiceVolume) -> dict[str, Any]:
    source = v.source or ""
    if v.type == "volume" and v.source in project.volumes:
        source = project.volumes[v.source].name
    mount: dict[str, Any] = {"Type": v.type, "Source": source, "Target": v.target}
    if v.read_only:
        mount["ReadOnly"] = True
    if v.consistency:
        mount["Consistency"] = v.consistency
    if v.type == "bind" and v.bind is not None:
        mount["BindOptions"] = {"Propagation": v.bind.propagation or "",
                                "CreateMountpoint": bool(v.bind.create_host_path)}
    if v.type == "volume" and v.volume is not None:
        options: dict[str, Any] = {"NoCopy": v.volume.nocopy}
        if v.volume.subpath:
            options["Subpath"] = v.volume.subpath
        mount["VolumeOptions"] = options
    if v.type == "tmpfs" and v.tmpfs is not None:
        tmpfs: dict[str, Any] = {}
        if v.tmpfs.size:
            tmpfs["SizeBytes"] = v.tmpfs.size
        if v.tmpfs.mode:
            tmpfs["Mode"] = v.tmpfs.mode
        mount["TmpfsOptions"] = tmpfs
    return mount


def _file_mounts(project: Project, service: Service) -> list[dict[str, Any]]:
    """Secrets under /run/secrets and configs at their targets: read-only binds of the
    files (secrets and configs from the environment or inline content are not files)."""
    mounts: dict[str, dict[str, Any]] = {}
    for ref in service.secrets:
        target = ref.target or ref.source
        if not target.startswith("/"):
            target = SECRETS_DIR + target
        obj = project.secrets.get(ref.source)
        if obj is None or obj.file is None:
            continue
        mounts.setdefault(target, {"Type": "bind", "Source": obj.file, "Target": target,
                                   "ReadOnly": True,
                                   "BindOptions": {"Propagation": "", "CreateMountpoint": False}})
    for ref in service.configs:
        target = ref.target or ref.source
        if not target.startswith("/"):
            target = "/" + target
        obj = project.configs.get(ref.source)
        if obj is None or obj.file is None:
            continue
        mounts.setdefault(target, {"Type": "bind", "Source": obj.file, "Target": target,
                                   "ReadOnly": True})
    return list(mounts.values())


def _volumes(project: Project, service: Service,
             inherited: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """compose v2's split: plain binds and project volumes as `Binds` strings, the rest
    (anonymous volumes, tmpfs, binds that must not create their source…) as `Mounts`."""
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    taken: set[str] = set()
    for v in service.volumes:
        taken.add(v.target)
        if v.type == "volume" and not v.source and v.target in inherited:
            mounts.append({"Type": "volume", "Source": inherited[v.target], "Target": v.target,
                           **({"ReadOnly": True} if v.read_only else {})})
            continue
        if v.type == "bind" and (v.bind is None or (v.bind.create_host_path and not v.bind.propagation)):
            binds.append(_bind_string(v.source or "", v))
            continue
        if (v.type == "volume" and v.source in project.volumes
                and (v.volume is None or (not v.volume.subpath and not v.volume.nocopy))):
            binds.append(_bind_string(project.volumes[v.source].name, v))
            continue
        mounts.append(_mount(project, v))
    for target, name in inherited.items():
        if target not in taken:  # an image's VOLUME the old container had
            mounts.append({"Type": "volume", "Source": name, "Target": target})
            taken.add(target)
    mounts += [m for m in _file_mounts(project, service) if m["Target"] not in taken]
    return binds, mounts


def _tmpfs(service: Service) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in service.tmpfs:
        path, _, options = spec.partition(":")
        out[path] = options
    return out


def _endpoint(project: Project, service: Service, key: str, opts: CreateOptions) -> dict[str, Any]:
    cfg: ServiceNetwork | None = service.networks.get(key)
    aliases = [L.container_name(project.name, service, opts.number)]
    if opts.use_aliases:
        aliases.append(service.name)
        if cfg is not None:
            aliases += cfg.aliases
    endpoint: dict[str, Any] = {"Aliases": aliases}
    if opts.links:
        endpoint["Links"] = opts.links
    if cfg is not None:
        ipam: dict[str, Any] = {}
        if cfg.ipv4_address:
            ipam["IPv4Address"] = cfg.ipv4_address
            endpoint["IPAddress"] = cfg.ipv4_address
        if cfg.ipv6_address:
            ipam["IPv6Address"] = cfg.ipv6_address
        if cfg.link_local_ips:
            ipam["LinkLocalIPs"] = cfg.link_local_ips
        endpoint["IPAMConfig"] = ipam
        if cfg.mac_address:
            endpoint["MacAddress"] = cfg.mac_address
        if cfg.priority:
            endpoint["GwPriority"] = cfg.priority
    return endpoint


def _networking(project: Project, service: Service,
                opts: CreateOptions) -> tuple[str, dict[str, Any] | None]:
    """HostConfig.NetworkMode and every endpoint at create time (API 1.44 and later)."""
    if service.network_mode:
        return service.network_mode, None
    if not project.networks or not service.networks:
        return "none", None
    keys = networks_by_priority(service)
    endpoints = {project.networks[key].name: _endpoint(project, service, key, opts) for key in keys}
    primary = project.networks[keys[0]].name
    mac = service.other.get("mac_address")
    if mac and "MacAddress" not in endpoints[primary]:
        endpoints[primary]["MacAddress"] = str(mac)
    return primary, {"EndpointsConfig": endpoints}


def container_body(project: Project, service: Service, opts: CreateOptions) -> dict[str, Any]:
    """The body of `POST /containers/create` for container number `opts.number`."""
    labels = L.service_labels(project, service, env_files=opts.env_files, oneoff=opts.oneoff)
    labels[L.CONFIG_HASH] = L.service_hash(service)
    if opts.number > 0:  # one-off containers (`run`, number -1) are not numbered
        labels[L.NUMBER] = str(opts.number)
    labels[L.DEPENDS_ON] = L.depends_on_label(service)
    if opts.image_id:
        labels[L.IMAGE] = opts.image_id
    if opts.replace:
        labels[L.REPLACE] = opts.replace
    network_mode, networking = _networking(project, service, opts)
    binds, mounts = _volumes(project, service, opts.inherited_volumes)
    o = service.other
    host: dict[str, Any] = {
        "Binds": binds or None,
        "Mounts": mounts or None,
        "NetworkMode": network_mode,
        "PortBindings": _port_bindings(service),
        "RestartPolicy": _restart_policy(service),
        "AutoRemove": opts.auto_remove,
        "VolumesFrom": service.volumes_from or None,
        "CapAdd": capabilities(service.cap_add),
        "CapDrop": capabilities(service.cap_drop),
        "Dns": service.dns or None,
        "DnsOptions": service.dns_opt or None,
        "DnsSearch": service.dns_search or None,
        "ExtraHosts": [h.replace("=", ":", 1) for h in service.extra_hosts] or None,
        "GroupAdd": list(o.get("group_add") or []) or None,
        "IpcMode": service.ipc or "",
        "PidMode": service.pid or "",
        "UTSMode": str(o.get("uts") or ""),
        "UsernsMode": str(o.get("userns_mode") or ""),
        "Privileged": service.privileged,
        "ReadonlyRootfs": service.read_only,
        "SecurityOpt": service.security_opt or None,
        "Tmpfs": _tmpfs(service) or None,
        "ShmSize": service.shm_size or 0,
        "Sysctls": service.sysctls or None,
        "Runtime": str(o.get("runtime") or ""),
        "Isolation": str(o.get("isolation") or ""),
        "OomScoreAdj": int(o.get("oom_score_adj") or 0),
        "Links": opts.links or None,
        **_resources(service),
    }
    if service.init is not None:
        host["Init"] = service.init
    if o.get("storage_opt"):
        host["StorageOpt"] = dict(o["storage_opt"])
    if service.logging is not None:
        host["LogConfig"] = {"Type": service.logging.driver or "",
                             "Config": dict(service.logging.options)}
    if o.get("cgroup"):
        host["CgroupnsMode"] = str(o["cgroup"])
    body: dict[str, Any] = {
        "Hostname": service.hostname or "",
        "Domainname": service.domainname or "",
        "User": service.user or "",
        "ExposedPorts": _exposed_ports(service),
        "Tty": service.tty,
        "OpenStdin": service.stdin_open,
        "StdinOnce": opts.attach_stdin and service.stdin_open,
        "AttachStdin": opts.attach_stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "Cmd": service.command,
        "Image": image_name(project, service),
        "WorkingDir": service.working_dir or "",
        "Entrypoint": service.entrypoint,
        "NetworkDisabled": service.network_mode == "disabled",
        "Labels": labels,
        "Env": _env(service),
        "HostConfig": host,
    }
    health = _healthcheck(service)
    if health is not None:
        body["Healthcheck"] = health
    if service.stop_signal:
        body["StopSignal"] = service.stop_signal
    if service.stop_grace_period is not None:
        body["StopTimeout"] = _seconds(service.stop_grace_period)
    if networking is not None:
        body["NetworkingConfig"] = networking
    return body


def network_body(project: Project, key: str, network: Network) -> dict[str, Any]:
    """The body of `POST /networks/create` for the project's network `key`."""
    labels = dict(network.labels)
    labels.update({L.NETWORK: key, L.PROJECT: project.name, L.VERSION: L.COMPOSE_VERSION,
                   L.CONFIG_HASH: L.network_hash(network)})
    body: dict[str, Any] = {
        "Name": network.name,
        "Driver": network.driver or "",
        "Options": dict(network.driver_opts),
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Labels": labels,
    }
    if network.enable_ipv6 is not None:
        body["EnableIPv6"] = network.enable_ipv6
    ipam = network.ipam or {}
    if ipam.get("driver") or ipam.get("config"):
        body["IPAM"] = {
            "Driver": ipam.get("driver") or "",
            "Config": [{"Subnet": c.get("subnet", ""), "IPRange": c.get("ip_range", ""),
                        "Gateway": c.get("gateway", ""),
                        "AuxiliaryAddresses": c.get("aux_addresses") or {}}
                       for c in ipam.get("config") or []],
        }
    return body


def volume_body(project: Project, key: str, volume: Volume) -> dict[str, Any]:
    """The body of `POST /volumes/create` for the project's volume `key`."""
    labels = dict(volume.labels)
    labels.update({L.VOLUME: key, L.PROJECT: project.name, L.VERSION: L.COMPOSE_VERSION,
                   L.CONFIG_HASH: L.volume_hash(volume)})
    return {"Name": volume.name, "Driver": volume.driver or "local",
            "DriverOpts": dict(volume.driver_opts) or None, "Labels": labels}
