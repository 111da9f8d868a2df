"""`/containers/…`: Docker's container routes, translated to and from the container services.

Only this module knows Docker's JSON for containers: `parse_create` reads the create
body into typed records, `render_inspect` and `render_summary` write them back out.
A route parses its request, calls a service (the container manager, or
containers.listing, .logs, .top, .archive, .validate) and renders the typed result;
what a container is, where its files are and how its log is read are theirs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import json
import os
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from berth.api import hijack, versions
from berth.api.server import (
    Routes,
    context,
    filters_param,
    json_body,
    json_response,
    parse_until,
    query_bool,
    query_int,
)
from berth.containers import archive as container_archive
from berth.containers import listing, validate
from berth.containers import logs as container_logs
from berth.containers import stats as container_stats
from berth.containers import top as container_top
from berth.containers.attach import check_attachable
from berth.containers.manager import ContainerManager, apparmor_profile_of
from berth.containers.model import (
    Container,
    DeviceRequest,
    Health,
    HostConfig,
    LogConfig,
    MountSpec,
    RestartPolicy,
    RunConfig,
    Status,
    ThrottleDevice,
)
from berth.containers.stats import BlkioEntry, CgroupStats
from berth.errors import InvalidParameter
from berth.images.model import Healthcheck
from berth.network.model import Endpoint, EndpointRequest, PortBinding
from berth.stdstream import EscapeScanner
from berth.units import human_duration

routes = Routes()
ZERO_TIME = "0001-01-01T00:00:00Z"


def _mgr(request: web.Request) -> ContainerManager:
    return context(request).containers


# -- parsing the create body -----------------------------------------------------------

def _opt(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = {str: "string", int: "number", bool: "bool", list: "array", dict: "object"}
        want = names.get(kind, "value") if isinstance(kind, type) else "value"
        raise InvalidParameter(f"json: cannot unmarshal {type(value).__name__} into Go struct field .{key} of type {want}")
    return value


def _strings(doc: dict[str, Any], key: str) -> list[str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]  # Docker accepts a string for Cmd/Entrypoint (strslice)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"json: cannot unmarshal {key}: it must be an array of strings")
    return list(value)


def _str_map(doc: dict[str, Any], key: str) -> dict[str, str]:
    value = _opt(doc, key, dict, {})
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"json: cannot unmarshal {key}: values must be strings")
    return dict(value)


def parse_create(body: dict[str, Any]) -> tuple[RunConfig, HostConfig]:
    image = _opt(body, "Image", str, "")
    if not image:
        raise InvalidParameter("config cannot be empty in order to create a container" if not body
                               else "no image specified")
    env = _strings(body, "Env") or []
    for e in env:
        if e.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {e}")
    stop_timeout = _opt(body, "StopTimeout", int, None)
    config = RunConfig(
        image=image,
        cmd=_strings(body, "Cmd"),
        entrypoint=_strings(body, "Entrypoint"),
        env=env,
        working_dir=_opt(body, "WorkingDir", str, ""),
        user=_opt(body, "User", str, ""),
        hostname=_opt(body, "Hostname", str, ""),
        domainname=_opt(body, "Domainname", str, ""),
        tty=_opt(body, "Tty", bool, False),
        open_stdin=_opt(body, "OpenStdin", bool, False),
        stdin_once=_opt(body, "StdinOnce", bool, False),
        attach_stdin=_opt(body, "AttachStdin", bool, False),
        attach_stdout=_opt(body, "AttachStdout", bool, False),
        attach_stderr=_opt(body, "AttachStderr", bool, False),
        labels=_str_map(body, "Labels"),
        stop_signal=_opt(body, "StopSignal", str, ""),
        stop_timeout=stop_timeout,
        exposed_ports=sorted(_opt(body, "ExposedPorts", dict, {})),
        volumes=sorted(_opt(body, "Volumes", dict, {})),
        healthcheck=_healthcheck(_opt(body, "Healthcheck", dict, None)),
    )
    if len(config.hostname) > 63:
        raise InvalidParameter("invalid hostname format: hostname is longer than 63 characters")
    hc = _opt(body, "HostConfig", dict, {})
    rp = _opt(hc, "RestartPolicy", dict, {})
    lc = _opt(hc, "LogConfig", dict, {})
    console = _opt(hc, "ConsoleSize", list, [0, 0])
    host = HostConfig(
        auto_remove=_opt(hc, "AutoRemove", bool, False),
        network_mode=_network_mode(_opt(hc, "NetworkMode", str, "")),
        restart_policy=RestartPolicy(_opt(rp, "Name", str, "") or "no", _opt(rp, "MaximumRetryCount", int, 0)),
        log_config=LogConfig(_opt(lc, "Type", str, ""), _str_map(lc, "Config")),  # "": the daemon's
        binds=_strings(hc, "Binds") or [],
        mounts=[_mount_spec(m) for m in _opt(hc, "Mounts", list, [])],
        volumes_from=_strings(hc, "VolumesFrom") or [],
        volume_driver=_opt(hc, "VolumeDriver", str, ""),
        privileged=_opt(hc, "Privileged", bool, False),
        readonly_rootfs=_opt(hc, "ReadonlyRootfs", bool, False),
        init=_opt(hc, "Init", bool, None),
        console_size=(int(console[0] or 0), int(console[1] or 0)) if len(console) == 2 else (0, 0),
        extra_hosts=_strings(hc, "ExtraHosts") or [],
        dns=_strings(hc, "Dns") or [],
        dns_search=_strings(hc, "DnsSearch") or [],
        dns_options=_strings(hc, "DnsOptions") or [],
        port_bindings=_port_bindings(_opt(hc, "PortBindings", dict, {})),
        publish_all_ports=_opt(hc, "PublishAllPorts", bool, False),
        links=_strings(hc, "Links") or [],
        runtime=_opt(hc, "Runtime", str, ""),
        memory=_opt(hc, "Memory", int, 0),
        memory_swap=_opt(hc, "MemorySwap", int, 0),
        memory_reservation=_opt(hc, "MemoryReservation", int, 0),
        memory_swappiness=_opt(hc, "MemorySwappiness", int, None),
        oom_kill_disable=_opt(hc, "OomKillDisable", bool, False),
        nano_cpus=_opt(hc, "NanoCpus", int, 0),
        cpu_shares=_opt(hc, "CpuShares", int, 0),
        cpu_period=_opt(hc, "CpuPeriod", int, 0),
        cpu_quota=_opt(hc, "CpuQuota", int, 0),
        cpuset_cpus=_opt(hc, "CpusetCpus", str, ""),
        cpuset_mems=_opt(hc, "CpusetMems", str, ""),
        pids_limit=_opt(hc, "PidsLimit", int, None),
        blkio_weight=_opt(hc, "BlkioWeight", int, 0),
        cap_add=_strings(hc, "CapAdd") or [],
        cap_drop=_strings(hc, "CapDrop") or [],
        security_opt=_strings(hc, "SecurityOpt") or [],
        group_add=_strings(hc, "GroupAdd") or [],
        devices=[_device_text(d) for d in _opt(hc, "Devices", list, [])],
        ulimits=[_ulimit(u) for u in _opt(hc, "Ulimits", list, [])],
        sysctls=_str_map(hc, "Sysctls"),
        tmpfs=_str_map(hc, "Tmpfs"),
        shm_size=_opt(hc, "ShmSize", int, 0),
        oom_score_adj=_opt(hc, "OomScoreAdj", int, 0),
        pid_mode=_opt(hc, "PidMode", str, ""),
        ipc_mode=_opt(hc, "IpcMode", str, ""),
        uts_mode=_opt(hc, "UTSMode", str, ""),
        userns_mode=_opt(hc, "UsernsMode", str, ""),
        cgroupns_mode=_opt(hc, "CgroupnsMode", str, ""),
        cgroup=_opt(hc, "Cgroup", str, ""),
        cgroup_parent=_opt(hc, "CgroupParent", str, ""),
        isolation=_opt(hc, "Isolation", str, ""),
        device_cgroup_rules=_strings(hc, "DeviceCgroupRules") or [],
        device_requests=_device_requests(hc),
        blkio_weight_device=_throttle_devices(hc, "BlkioWeightDevice", "Weight"),
        blkio_device_read_bps=_throttle_devices(hc, "BlkioDeviceReadBps", "Rate"),
        blkio_device_write_bps=_throttle_devices(hc, "BlkioDeviceWriteBps", "Rate"),
        blkio_device_read_iops=_throttle_devices(hc, "BlkioDeviceReadIOps", "Rate"),
        blkio_device_write_iops=_throttle_devices(hc, "BlkioDeviceWriteIOps", "Rate"),
        cpu_realtime_period=_opt(hc, "CpuRealtimePeriod", int, 0),
        cpu_realtime_runtime=_opt(hc, "CpuRealtimeRuntime", int, 0),
        cpu_count=_opt(hc, "CpuCount", int, 0),
        cpu_percent=_opt(hc, "CpuPercent", int, 0),
        io_maximum_iops=_opt(hc, "IOMaximumIOps", int, 0),
        io_maximum_bandwidth=_opt(hc, "IOMaximumBandwidth", int, 0),
        kernel_memory_tcp=_opt(hc, "KernelMemoryTCP", int, 0),
        annotations=_str_map(hc, "Annotations"),
        storage_opt=_str_map(hc, "StorageOpt"),
        container_id_file=_opt(hc, "ContainerIDFile", str, ""),
        masked_paths=_strings(hc, "MaskedPaths"),
        readonly_paths=_strings(hc, "ReadonlyPaths"),
    )
    validate.check_host_config(host)
    return config, host


def _network_mode(mode: str) -> str:
    """"" and "default" mean the default network, and dockerd records its name."""
    return "bridge" if mode in ("", "default") else mode


def _throttle_devices(hc: dict[str, Any], key: str, value_key: str) -> list[ThrottleDevice] | None:
    """BlkioWeightDevice ({Path, Weight}) and the four throttles ({Path, Rate}); None when
    not given, [] when given empty (inspect echoes which, as Go's JSON does)."""
    items = _opt(hc, key, list, None)
    if items is None:
        return None
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidParameter(f"json: cannot unmarshal HostConfig.{key}: each entry must be an object")
        out.append(ThrottleDevice(_opt(item, "Path", str, ""), _opt(item, value_key, int, 0)))
    return out


def _device_requests(hc: dict[str, Any]) -> list[DeviceRequest] | None:
    items = _opt(hc, "DeviceRequests", list, None)
    if items is None:
        return None
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidParameter("json: cannot unmarshal HostConfig.DeviceRequests: each entry must be an object")
        caps = _opt(item, "Capabilities", list, None)
        if caps is not None and not all(isinstance(c, list) and all(isinstance(x, str) for x in c) for c in caps):
            raise InvalidParameter("json: cannot unmarshal HostConfig.DeviceRequests: Capabilities must be "
                                   "an array of arrays of strings")
        options = item.get("Options")
        out.append(DeviceRequest(driver=_opt(item, "Driver", str, ""), count=_opt(item, "Count", int, 0),
                                 device_ids=_strings(item, "DeviceIDs"), capabilities=caps,
                                 options=None if options is None else _str_map(item, "Options")))
    return out


def _healthcheck(doc: dict[str, Any] | None) -> Healthcheck | None:
    """Config.Healthcheck; durations in nanoseconds, as Docker's JSON has them."""
    if doc is None:
        return None
    return Healthcheck(test=_strings(doc, "Test") or [], interval=_opt(doc, "Interval", int, 0),
                       timeout=_opt(doc, "Timeout", int, 0), start_period=_opt(doc, "StartPeriod", int, 0),
                       start_interval=_opt(doc, "StartInterval", int, 0), retries=_opt(doc, "Retries", int, 0))


def _port_key(key: str) -> str:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid port specification: \"{key}\"")
    return f"{int(port)}/{proto}"


def _port_bindings(doc: dict[str, Any]) -> dict[str, list[PortBinding]]:
    out: dict[str, list[PortBinding]] = {}
    for key, bindings in doc.items():
        items = []
        for b in bindings or []:
            if not isinstance(b, dict):
                raise InvalidParameter("json: cannot unmarshal HostConfig.PortBindings: each binding must be an object")
            host_ip = _opt(b, "HostIp", str, "")
            host_port = _opt(b, "HostPort", str, "")
            if host_ip:
                try:
                    ipaddress.ip_address(host_ip)
                except ValueError:
                    raise InvalidParameter(f"invalid IP address: {host_ip}") from None
            low, _, high = host_port.partition("-")
            if host_port and not (low.isdigit() and (not high or high.isdigit())
                                  and 0 < int(low) < 65536 and (not high or int(low) <= int(high) < 65536)):
                raise InvalidParameter(f"invalid port specification: \"{host_port}\"")
            items.append(PortBinding(host_ip, host_port))
        out[_port_key(key)] = items
    return out


def parse_endpoint_request(ep: Any) -> EndpointRequest:
    """One EndpointSettings object (create's EndpointsConfig, connect's EndpointConfig)."""
    if not isinstance(ep, dict):
        raise InvalidParameter("json: cannot unmarshal EndpointSettings: it must be an object")
    ipam_cfg = _opt(ep, "IPAMConfig", dict, {}) or {}
    return EndpointRequest(
        ipv4=_opt(ipam_cfg, "IPv4Address", str, ""), ipv6=_opt(ipam_cfg, "IPv6Address", str, ""),
        aliases=_strings(ep, "Aliases") or [], links=_strings(ep, "Links") or [],
        mac=_opt(ep, "MacAddress", str, ""), driver_opts=_str_map(ep, "DriverOpts"),
        ipam_config=isinstance(ep.get("IPAMConfig"), dict), link_local_ips=_strings(ipam_cfg, "LinkLocalIPs") or [])


def parse_endpoints(body: dict[str, Any]) -> dict[str, EndpointRequest]:
    """NetworkingConfig.EndpointsConfig: what the container asks of each network."""
    nc = _opt(body, "NetworkingConfig", dict, {})
    out: dict[str, EndpointRequest] = {}
    for name, ep in (_opt(nc, "EndpointsConfig", dict, {}) or {}).items():
        out[name] = parse_endpoint_request(ep or {})
    mac = _opt(body, "MacAddress", str, "")  # deprecated Config.MacAddress: the first network's
    if mac and out:
        first = next(iter(out.values()))
        first.mac = first.mac or mac
    elif mac:
        out["default"] = EndpointRequest(mac=mac)
    return out


def _mount_spec(m: Any) -> MountSpec:
    """One HostConfig.Mounts entry, as Docker's JSON gives it."""
    if not isinstance(m, dict):
        raise InvalidParameter("json: cannot unmarshal HostConfig.Mounts: each entry must be an object")
    bind = _opt(m, "BindOptions", dict, None)
    volume = _opt(m, "VolumeOptions", dict, None)
    tmpfs = _opt(m, "TmpfsOptions", dict, None)
    driver = _opt(volume or {}, "DriverConfig", dict, {})
    return MountSpec(
        type=_opt(m, "Type", str, ""), target=_opt(m, "Target", str, ""), source=_opt(m, "Source", str, ""),
        read_only=_opt(m, "ReadOnly", bool, False), consistency=_opt(m, "Consistency", str, ""),
        bind_propagation=_opt(bind or {}, "Propagation", str, ""),
        bind_create_mountpoint=_opt(bind or {}, "CreateMountpoint", bool, False), has_bind_options=bind is not None,
        volume_no_copy=_opt(volume or {}, "NoCopy", bool, False), volume_labels=_str_map(volume or {}, "Labels"),
        volume_driver=_opt(driver, "Name", str, ""), volume_driver_options=_str_map(driver, "Options"),
        volume_subpath=_opt(volume or {}, "Subpath", str, ""), has_volume_options=volume is not None,
        tmpfs_size=_opt(tmpfs or {}, "SizeBytes", int, 0), tmpfs_mode=_opt(tmpfs or {}, "Mode", int, 0),
        has_tmpfs_options=tmpfs is not None,
    )


def _mount_spec_doc(m: MountSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"Type": m.type}
    if m.source:
        doc["Source"] = m.source
    doc["Target"] = m.target
    if m.read_only:
        doc["ReadOnly"] = True
    if m.consistency:
        doc["Consistency"] = m.consistency
    if m.has_bind_options:
        doc["BindOptions"] = {k: v for k, v in (("Propagation", m.bind_propagation),
                                                ("CreateMountpoint", m.bind_create_mountpoint)) if v}
    if m.has_volume_options:
        vol: dict[str, Any] = {}
        if m.volume_no_copy:
            vol["NoCopy"] = True
        if m.volume_labels:
            vol["Labels"] = m.volume_labels
        if m.volume_driver or m.volume_driver_options:
            vol["DriverConfig"] = {k: v for k, v in (("Name", m.volume_driver),
                                                     ("Options", m.volume_driver_options)) if v}
        if m.volume_subpath:
            vol["Subpath"] = m.volume_subpath
        doc["VolumeOptions"] = vol
    if m.has_tmpfs_options:
        doc["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", m.tmpfs_size), ("Mode", m.tmpfs_mode)) if v}
    return doc


def mount_points_doc(c: Container) -> list[dict[str, Any]]:
    """`Mounts` of inspect and of the list, as Docker shows them."""
    out = []
    for mp in c.mounts:
        doc: dict[str, Any] = {"Type": mp.type}
        if mp.type == "volume":
            doc["Name"] = mp.name
        doc["Source"] = mp.source
        doc["Destination"] = mp.destination
        if mp.type == "volume":
            doc["Driver"] = mp.driver
        doc["Mode"] = mp.mode
        doc["RW"] = mp.rw
        doc["Propagation"] = mp.propagation if mp.type == "bind" else ""
        out.append(doc)
    return out


def _device_text(d: Any) -> str:
    if not isinstance(d, dict) or not isinstance(d.get("PathOnHost"), str):
        raise InvalidParameter("json: cannot unmarshal HostConfig.Devices: each entry needs PathOnHost")
    return f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:{d.get('CgroupPermissions') or 'rwm'}"


def _ulimit(u: Any) -> tuple[str, int, int]:
    if not isinstance(u, dict) or not isinstance(u.get("Name"), str):
        raise InvalidParameter("json: cannot unmarshal HostConfig.Ulimits: each entry needs Name")
    validate.check_ulimit_name(u["Name"])
    soft, hard = u.get("Soft", 0), u.get("Hard", 0)
    if not isinstance(soft, int) or not isinstance(hard, int):
        raise InvalidParameter(f"invalid ulimit {u['Name']}: Soft and Hard must be integers")
    validate.check_ulimit_range(u["Name"], soft, hard)
    return (u["Name"], soft, hard)


# -- rendering -----------------------------------------------------------------------------

def _state_doc(c: Container) -> dict[str, Any]:
    s = c.state
    return {
        "Status": s.status.value,
        "Running": s.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING),
        "Paused": s.status == Status.PAUSED,
        "Restarting": s.status == Status.RESTARTING,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status.DEAD,
        "Pid": s.pid if s.running else 0,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
        **({"Health": _health_doc(c.health)} if c.health is not None else {}),
    }


def _health_doc(h: Health) -> dict[str, Any]:
    return {"Status": h.status, "FailingStreak": h.failing_streak,
            "Log": [{"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output} for p in h.log]}


def config_doc(c: Container) -> dict[str, Any]:
    """The container's Config as inspect (and a commit's ContainerConfig) shows it."""
    cfg = c.config
    doc: dict[str, Any] = {
        "Hostname": cfg.hostname,
        "Domainname": cfg.domainname,
        "User": cfg.user,
        "AttachStdin": cfg.attach_stdin,
        "AttachStdout": cfg.attach_stdout,
        "AttachStderr": cfg.attach_stderr,
        "Tty": cfg.tty,
        "OpenStdin": cfg.open_stdin,
        "StdinOnce": cfg.stdin_once,
        "Env": cfg.env,
        "Cmd": cfg.cmd,
        "Image": cfg.image,
        "Volumes": {v: {} for v in cfg.volumes} or None,
        "WorkingDir": cfg.working_dir,
        "Entrypoint": cfg.entrypoint,
        "OnBuild": None,
        "Labels": cfg.labels,
    }
    if cfg.exposed_ports:
        doc["ExposedPorts"] = {p: {} for p in cfg.exposed_ports}
    if cfg.stop_signal:
        doc["StopSignal"] = cfg.stop_signal
    if cfg.healthcheck is not None:
        doc["Healthcheck"] = cfg.healthcheck.to_oci()
    if cfg.stop_timeout is not None:
        doc["StopTimeout"] = cfg.stop_timeout
    return doc


def _throttle_doc(items: list[ThrottleDevice] | None, value_key: str) -> list[dict[str, Any]] | None:
    return None if items is None else [{"Path": d.path, value_key: d.rate} for d in items]


def _device_request_doc(r: DeviceRequest) -> dict[str, Any]:
    return {"Driver": r.driver, "Count": r.count, "DeviceIDs": r.device_ids, "Capabilities": r.capabilities,
            "Options": r.options}


def _host_config_doc(c: Container) -> dict[str, Any]:
    """HostConfig as dockerd writes it: its fields in Go's order, those tagged `omitempty`
    left out when empty, lists echoed as sent (null when not sent)."""
    h = c.host_config
    doc: dict[str, Any] = {
        "Binds": h.binds or None,
        "ContainerIDFile": h.container_id_file,
        "LogConfig": {"Type": h.log_config.type, "Config": h.log_config.config},
        "NetworkMode": h.network_mode,
        "PortBindings": {k: [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in v]
                         for k, v in h.port_bindings.items()},
        "RestartPolicy": {"Name": h.restart_policy.name, "MaximumRetryCount": h.restart_policy.maximum_retry_count},
        "AutoRemove": h.auto_remove,
        "VolumeDriver": h.volume_driver,
        "VolumesFrom": h.volumes_from or None,
        "ConsoleSize": list(h.console_size),
    }
    if h.annotations:
        doc["Annotations"] = h.annotations
    doc.update({
        "CapAdd": h.cap_add or None,
        "CapDrop": h.cap_drop or None,
        "CgroupnsMode": h.cgroupns_mode,
        "Dns": h.dns,
        "DnsOptions": h.dns_options,
        "DnsSearch": h.dns_search,
        "ExtraHosts": h.extra_hosts or None,
        "GroupAdd": h.group_add or None,
        "IpcMode": h.ipc_mode,
        "Cgroup": h.cgroup,
        # dockerd shows the legacy links of the default bridge only; on a user-defined
        # network they are the endpoint's (NetworkSettings.Networks[...].Links)
        "Links": [_link_doc(link, c.name) for link in h.links] or None
        if (h.network_mode or "default") in ("default", "bridge") else None,
        "OomScoreAdj": h.oom_score_adj,
        "PidMode": h.pid_mode,
        "Privileged": h.privileged,
        "PublishAllPorts": h.publish_all_ports,
        "ReadonlyRootfs": h.readonly_rootfs,
        "SecurityOpt": [o if not o.startswith("seccomp=") or o == "seccomp=unconfined" else "seccomp=<profile>"
                        for o in h.security_opt] or None,
    })
    if h.storage_opt:
        doc["StorageOpt"] = h.storage_opt
    if h.tmpfs:
        doc["Tmpfs"] = h.tmpfs
    doc.update({
        "UTSMode": h.uts_mode,
        "UsernsMode": h.userns_mode,
        "ShmSize": h.shm_size or 67108864,
    })
    if h.sysctls:
        doc["Sysctls"] = h.sysctls
    if h.runtime:
        doc["Runtime"] = h.runtime
    doc.update({
        "Isolation": h.isolation,
        "CpuShares": h.cpu_shares,
        "Memory": h.memory,
        "NanoCpus": h.nano_cpus,
        "CgroupParent": h.cgroup_parent,
        "BlkioWeight": h.blkio_weight,
        "BlkioWeightDevice": _throttle_doc(h.blkio_weight_device, "Weight"),
        "BlkioDeviceReadBps": _throttle_doc(h.blkio_device_read_bps, "Rate"),
        "BlkioDeviceWriteBps": _throttle_doc(h.blkio_device_write_bps, "Rate"),
        "BlkioDeviceReadIOps": _throttle_doc(h.blkio_device_read_iops, "Rate"),
        "BlkioDeviceWriteIOps": _throttle_doc(h.blkio_device_write_iops, "Rate"),
        "CpuPeriod": h.cpu_period,
        "CpuQuota": h.cpu_quota,
        "CpuRealtimePeriod": h.cpu_realtime_period,
        "CpuRealtimeRuntime": h.cpu_realtime_runtime,
        "CpusetCpus": h.cpuset_cpus,
        "CpusetMems": h.cpuset_mems,
        "Devices": [dict(zip(("PathOnHost", "PathInContainer", "CgroupPermissions"), d.split(":"), strict=False))
                    for d in h.devices],
        "DeviceCgroupRules": h.device_cgroup_rules or None,
        "DeviceRequests": None if h.device_requests is None
        else [_device_request_doc(r) for r in h.device_requests],
    })
    if h.kernel_memory_tcp:
        doc["KernelMemoryTCP"] = h.kernel_memory_tcp
    doc.update({
        "MemoryReservation": h.memory_reservation,
        "MemorySwap": h.memory_swap,
        "MemorySwappiness": h.memory_swappiness,
        "OomKillDisable": h.oom_kill_disable,
        "PidsLimit": h.pids_limit,
        "Ulimits": [{"Name": n, "Soft": s, "Hard": hd} for n, s, hd in h.ulimits],
        "CpuCount": h.cpu_count,
        "CpuPercent": h.cpu_percent,
        "IOMaximumIOps": h.io_maximum_iops,
        "IOMaximumBandwidth": h.io_maximum_bandwidth,
    })
    if h.mounts:
        doc["Mounts"] = [_mount_spec_doc(m) for m in h.mounts]
    doc["MaskedPaths"] = h.masked_paths
    doc["ReadonlyPaths"] = h.readonly_paths
    if h.init is not None:
        doc["Init"] = h.init
    return doc


def _ports_doc(c: Container) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or published port, bound or not (null)."""
    ports: dict[str, Any] = {}
    if c.state.running:
        for p in c.config.exposed_ports:
            ports.setdefault(p if "/" in p else f"{p}/tcp", None)
        for key in c.host_config.port_bindings:
            ports.setdefault(key, None)
        for pp in c.ports:
            ports.setdefault(f"{pp.container_port}/{pp.proto}", None)
            entries = ports[f"{pp.container_port}/{pp.proto}"] or []
            hosts = [pp.host_ip] if pp.host_ip else ["0.0.0.0", "::"]
            for h in hosts:
                entries.append({"HostIp": h, "HostPort": str(pp.host_port)})
            ports[f"{pp.container_port}/{pp.proto}"] = entries
    return ports


def endpoint_doc(name: str, ep: Endpoint, c: Container, network_id: str) -> dict[str, Any]:
    ipam_cfg: dict[str, Any] | None = {} if ep.request.ipam_config else None  # as sent, like dockerd
    if ep.request.ipv4 or ep.request.ipv6 or ep.request.link_local_ips:
        ipam_cfg = {k: v for k, v in (("IPv4Address", ep.request.ipv4), ("IPv6Address", ep.request.ipv6),
                                      ("LinkLocalIPs", ep.request.link_local_ips)) if v}
    dns_names = None
    if ep.endpoint_id and name not in ("bridge", "host", "none"):
        # dockerd's order (the first name makes the PTR record), each name once
        dns_names = list(dict.fromkeys(n for n in (c.name, *ep.request.aliases, c.id[:12],
                                                   c.config.hostname) if n))
    return {
        "IPAMConfig": ipam_cfg,
        "Links": ep.request.links or None,
        "Aliases": ep.request.aliases or None,
        "MacAddress": ep.mac,
        "DriverOpts": ep.request.driver_opts or None,
        "GwPriority": 0,
        "NetworkID": network_id,
        "EndpointID": ep.endpoint_id,
        "Gateway": ep.gateway,
        "IPAddress": ep.ipv4,
        "IPPrefixLen": ep.ipv4_prefixlen,
        "IPv6Gateway": ep.ipv6_gateway,
        "GlobalIPv6Address": ep.ipv6,
        "GlobalIPv6PrefixLen": ep.ipv6_prefixlen,
        "DNSNames": dns_names,
    }


def _link_doc(link: str, own: str) -> str:
    """HostConfig.Links as Docker shows them: "/target:/own/alias"."""
    target, _, alias = link.partition(":")
    target = target.lstrip("/")
    return f"/{target}:/{own}/{alias or target}"


def _network_settings(c: Container, mgr: ContainerManager) -> dict[str, Any]:
    networks: dict[str, Any] = {}
    for name, ep in c.networks.items():
        networks[name] = endpoint_doc(name, ep, c, ep.network_id)
    mode = c.host_config.network_mode
    if not networks and mode in ("host", "none"):
        n = mgr.network.get(mode) if mgr.network is not None else None
        networks[mode] = endpoint_doc(mode, Endpoint(n.id if n else ""), c, n.id if n else "")
    default = c.networks.get("bridge")
    return {
        "Bridge": "",
        "SandboxID": c.sandbox_key and os.path.basename(c.sandbox_key),
        "SandboxKey": c.sandbox_key,
        "Ports": _ports_doc(c),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": default.endpoint_id if default else "",
        "Gateway": default.gateway if default else "",
        "GlobalIPv6Address": default.ipv6 if default else "",
        "GlobalIPv6PrefixLen": default.ipv6_prefixlen if default else 0,
        "IPAddress": default.ipv4 if default else "",
        "IPPrefixLen": default.ipv4_prefixlen if default else 0,
        "IPv6Gateway": default.ipv6_gateway if default else "",
        "MacAddress": default.mac if default else "",
        "Networks": networks,
    }


def ports_summary(c: Container) -> list[dict[str, Any]]:
    """The list's Ports: published ones with their host side, exposed ones without; none
    while the container does not run (dockerd lists NetworkSettings.Ports, emptied then)."""
    out: list[dict[str, Any]] = []
    if not c.state.running:
        return out
    published = set()
    for pp in c.ports:
        published.add(f"{pp.container_port}/{pp.proto}")
        for h in ([pp.host_ip] if pp.host_ip else ["0.0.0.0", "::"]):
            out.append({"IP": h, "PrivatePort": pp.container_port, "PublicPort": pp.host_port, "Type": pp.proto})
    for p in c.config.exposed_ports:
        spec, _, proto = p.partition("/")
        first, _, last = spec.partition("-")  # a range ("9100-9101"), as compose sends `expose`
        if not first.isdigit() or not (last or first).isdigit():
            continue
        for port in range(int(first), int(last or first) + 1):
            if f"{port}/{proto or 'tcp'}" not in published:
                out.append({"PrivatePort": port, "Type": proto or "tcp"})
    return out


def render_inspect(c: Container, mgr: ContainerManager) -> dict[str, Any]:
    graph = mgr.layers.describe(c.id)
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": _state_doc(c),
        "Image": c.image_id,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": apparmor_profile_of(c.host_config),
        "ExecIDs": mgr.execs.of_container(c.id) or None,
        "HostConfig": _host_config_doc(c),
        "GraphDriver": {"Name": graph.name, "Data": graph.data},
        "Mounts": mount_points_doc(c),
        "Config": config_doc(c),
        "NetworkSettings": _network_settings(c, mgr),
    }


def status_text(c: Container) -> str:
    s = c.state
    now = time.time()
    if s.status == Status.RUNNING and c.health is not None:
        health = "health: starting" if c.health.status == "starting" else c.health.status
        return f"Up {human_duration(now - listing.epoch(s.started_at))} ({health})"
    if s.status == Status.RUNNING:
        return f"Up {human_duration(now - listing.epoch(s.started_at))}"
    if s.status == Status.PAUSED:
        return f"Up {human_duration(now - listing.epoch(s.started_at))} (Paused)"
    if s.status == Status.RESTARTING:
        return f"Restarting ({s.exit_code}) {human_duration(now - listing.epoch(s.finished_at))} ago"
    if s.status == Status.REMOVING:
        return "Removal In Progress"
    if s.status == Status.DEAD:
        return "Dead"
    if s.status == Status.EXITED or listing.epoch(s.finished_at):
        return f"Exited ({s.exit_code}) {human_duration(now - listing.epoch(s.finished_at))} ago"
    return "Created"


def render_summary(c: Container) -> dict[str, Any]:
    # dockerd quotes the arguments with a space in them, and nothing else
    command = " ".join([c.path, *(f"'{a}'" if " " in a else a for a in c.args)])
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.config.image,
        "ImageID": c.image_id,
        "Command": command,
        "Created": int(listing.epoch(c.created)),
        "Ports": ports_summary(c),
        "Labels": c.config.labels,
        "State": c.state.status.value,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": {name: endpoint_doc(name, ep, c, ep.network_id)
                                         for name, ep in c.networks.items()}},
        "Mounts": mount_points_doc(c),
    }


CONTAINER_FILTERS = {"ancestor", "before", "expose", "exited", "health", "id", "is-task", "label", "name",
                     "network", "publish", "since", "status", "volume"}
_STATES = [s.value for s in Status]
_HEALTH_STATES = ["none", "starting", "healthy", "unhealthy"]


def _port_filter(key: str, value: str) -> set[str]:
    """"80", "80/udp", "8000-8010/tcp" as the set of "port/proto" it names."""
    if ":" in value:
        raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
    port, _, proto = value.partition("/")
    proto = proto or "tcp"

    def number(text: str) -> int:
        if not text.isdigit():
            raise InvalidParameter(f'error while looking up for {key} {value}: strconv.ParseUint: parsing "{text}": '
                                   "invalid syntax")
        if int(text) > 65535:
            raise InvalidParameter(f'error while looking up for {key} {value}: strconv.ParseUint: parsing "{text}": '
                                   "value out of range")
        return int(text)

    if not port:
        raise InvalidParameter(f"error while looking up for {key} {value}: empty string specified for ports")
    start_text, dash, end_text = port.partition("-")
    start = number(start_text)
    end = number(end_text) if dash else start
    if end < start:
        raise InvalidParameter(f"error while looking up for {key} {value}: invalid range specified for port: {port}")
    return {f"{p}/{proto}" for p in range(start, end + 1)}


def parse_container_filters(filters: dict[str, list[str]]) -> listing.ContainerFilters:
    """The list's `filters`, checked with dockerd's messages."""
    exited = []
    for v in filters.get("exited", []):
        try:
            exited.append(int(v))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={v}': strconv.Atoi: parsing {json.dumps(v)}: "
                                   "invalid syntax") from None
    for v in filters.get("status", []):
        if v not in _STATES:
            raise InvalidParameter(f"invalid filter 'status={v}': invalid value for state ({v}): "
                                   f"must be one of {', '.join(_STATES)}")
    for v in filters.get("health", []):
        if v not in _HEALTH_STATES:
            raise InvalidParameter(f"invalid filter 'health={v}': invalid value for health ({v}): "
                                   f"must be one of {', '.join(_HEALTH_STATES)}")
    is_task = None
    if "is-task" in filters:
        values = set(filters["is-task"])
        falsy, truthy = bool(values & {"0", "false"}), bool(values & {"1", "true"})
        if falsy == truthy:
            raise InvalidParameter(f"invalid filter 'is-task=[{' '.join(filters['is-task'])}]'")
        is_task = truthy
    publish: set[str] = set()
    for v in filters.get("publish", []):
        publish |= _port_filter("publish", v)
    expose: set[str] = set()
    for v in filters.get("expose", []):
        expose |= _port_filter("expose", v)

    def given(key: str) -> tuple[str, ...] | None:
        return tuple(filters[key]) if key in filters else None

    return listing.ContainerFilters(
        name=given("name"), id=given("id"), status=given("status"), health=given("health"),
        volume=given("volume"), network=given("network"), ancestor=given("ancestor"),
        label=tuple(filters.get("label", [])), exited=tuple(exited), before=tuple(filters.get("before", [])),
        since=tuple(filters.get("since", [])), publish=frozenset(publish), expose=frozenset(expose),
        is_task=is_task)


# -- routes --------------------------------------------------------------------------------

_MOUNT_OPTIONS = {"BindOptions": "bind", "VolumeOptions": "volume", "TmpfsOptions": "tmpfs"}


def _mounts_for_version(request: web.Request, body: dict[str, Any]) -> None:
    """HostConfig.Mounts as dockerd takes them from a client of this version: options of
    another mount type dropped before 1.42 and refused after, newer options refused
    before the version that brought them."""
    host = body.get("HostConfig")
    mounts = host.get("Mounts") if isinstance(host, dict) else None
    for m in mounts if isinstance(mounts, list) else []:
        if not isinstance(m, dict):
            continue
        kind = m.get("Type")
        for key, owner in _MOUNT_OPTIONS.items():
            if m.get(key) is None or kind == owner:
                continue
            if versions.client_at_least(request, versions.MOUNT_OPTIONS_OF_ITS_TYPE):
                raise InvalidParameter(f'{key} must not be specified on mount type "{kind}"')
            if key != "BindOptions":
                del m[key]
        bind, volume = m.get("BindOptions"), m.get("VolumeOptions")
        if (isinstance(bind, dict) and bind.get("ReadOnlyForceRecursive")
                and not versions.client_at_least(request, versions.MOUNT_READ_ONLY_FORCE_RECURSIVE)):
            raise InvalidParameter("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
        if (isinstance(volume, dict) and volume.get("Subpath")
                and not versions.client_at_least(request, versions.MOUNT_VOLUME_SUBPATH)):
            raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
        if kind == "image" and not versions.client_at_least(request, versions.MOUNT_TYPE_IMAGE):
            raise InvalidParameter('Mount type "Image" needs API v1.48 or newer')


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    _mounts_for_version(request, body)
    config, host = parse_create(body)
    endpoints = parse_endpoints(body)
    if len(endpoints) > 1 and not versions.client_at_least(request, versions.CREATE_WITH_MANY_NETWORKS):
        raise InvalidParameter(f"Container cannot be created with multiple network endpoints: {', '.join(endpoints)}")
    if not host.ipc_mode and not versions.client_at_least(request, versions.IPC_PRIVATE_BY_DEFAULT):
        host.ipc_mode = "shareable"
    if not versions.client_at_least(request, versions.CREATE_CONSOLE_SIZE):
        host.console_size = (0, 0)
    if config.healthcheck is not None and not versions.client_at_least(request, versions.HEALTH_START_INTERVAL):
        config.healthcheck.start_interval = 0
    warnings: list[str] = []
    c = await _mgr(request).create(request.query.get("name") or None, config, host, endpoints, warnings)
    return json_response({"Id": c.id, "Warnings": warnings}, 201)


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    mgr = _mgr(request)
    filters = parse_container_filters(filters_param(request, CONTAINER_FILTERS))
    found = listing.list_containers(mgr, filters, query_bool(request, "all"), query_int(request, "limit", -1) or -1)
    out = []
    for c in found:
        doc = render_summary(c)
        if query_bool(request, "size"):
            doc["SizeRw"], doc["SizeRootFs"] = await listing.layer_sizes(mgr, c)
        out.append(doc)
    return json_response(out)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    doc = render_inspect(c, mgr)
    if query_bool(request, "size"):
        doc["SizeRw"] = mgr.layers.rw_size(c.id)
        doc["SizeRootFs"] = doc["SizeRw"] + mgr.images.resolve(c.image_id).size
    return versions.respond(request, versions.CONTAINER_INSPECT, doc)


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    await _mgr(request).start(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    timeout = query_int(request, "t", None)
    await _mgr(request).stop(request.match_info["id"], timeout, request.query.get("signal") or None)
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    await _mgr(request).restart(request.match_info["id"], query_int(request, "t", None))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    await _mgr(request).kill(request.match_info["id"], request.query.get("signal") or None)
    return web.Response(status=204)


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    mgr = _mgr(request)
    cid = mgr.get(request.match_info["id"]).id
    condition = "not-running"
    if versions.client_at_least(request, versions.WAIT_CONDITION):
        condition = request.query.get("condition") or condition
        if condition not in WAIT_CONDITIONS:  # refused before the answer starts, as dockerd
            raise InvalidParameter(f'invalid condition: "{condition}"')
    waiter = asyncio.ensure_future(mgr.wait(cid, condition))
    # The status goes out at once, so the client knows the wait is in place; the body
    # follows when the condition is met (as dockerd does).
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    try:
        if not waiter.done():
            await response.prepare(request)
        code = await waiter
    except BaseException:
        waiter.cancel()
        raise
    # dockerd leaves Error out when there is none
    body = json.dumps({"StatusCode": code}).encode() + b"\n"
    if not response.prepared:
        return json_response({"StatusCode": code})
    try:
        await response.write(body)
        await response.write_eof()
    except (ConnectionError, OSError):
        pass  # the client stopped waiting (docker run -d does): nothing to tell it
    return response


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    if query_bool(request, "link"):
        _mgr(request).remove_link(request.match_info["id"])
        return web.Response(status=204)
    await _mgr(request).remove(request.match_info["id"], force=query_bool(request, "force"),
                               volumes=query_bool(request, "v"))
    return web.Response(status=204)


@routes.delete(r"/containers/{parent:/?[^/]+}/{alias}")
async def remove_by_link_name(request: web.Request) -> web.Response:
    """A link's name has a slash ("/parent/alias"): `docker rm --link` names one."""
    ref = f"{request.match_info['parent']}/{request.match_info['alias']}"
    if query_bool(request, "link"):
        _mgr(request).remove_link(ref)
        return web.Response(status=204)
    await _mgr(request).remove(ref, force=query_bool(request, "force"), volumes=query_bool(request, "v"))
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    _mgr(request).rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    h = query_int(request, "h", 0) or 0
    w = query_int(request, "w", 0) or 0
    await _mgr(request).resize(request.match_info["id"], h, w)
    return web.Response(status=200)


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    keys = hijack.detach_keys(request.query.get("detachKeys", ""), "Invalid detach keys ({}) provided")
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    check_attachable(c, request.match_info["id"])
    want_stdin = query_bool(request, "stdin")
    want_stdout = query_bool(request, "stdout")
    want_stderr = query_bool(request, "stderr")
    with_logs = query_bool(request, "logs")
    stream = query_bool(request, "stream")
    tty = c.config.tty
    reader, writer, response = await hijack.hijack(request, hijack.stream_type(request, tty),
                                                   head_read_first=with_logs)
    try:
        if with_logs and c.log_path:
            async for batch in container_logs.logged_output(mgr, c, want_stdout, want_stderr):
                writer.write(batch.text() if tty else batch.frames())
                await writer.drain()
        if stream:
            # A client that half-closes (no stdin) is still listening: wait for the
            # start, or for the container's removal, which ends the wait with None.
            streams = await mgr.attach(c.id, want_stdin, want_stdout, want_stderr)
            if streams is not None:
                stdin = want_stdin and c.config.open_stdin
                if await hijack.pump(*hijack.stream_client(reader, writer), *streams,
                                     escape=EscapeScanner(keys) if tty and stdin else None,
                                     input_end_ends=stdin and (tty or not c.config.stdin_once)):
                    mgr.detached(c.id)
    except (ConnectionError, OSError):
        pass
    return await hijack.finish(request, writer)


@routes.get("/containers/{id}/attach/ws")
async def attach_websocket(request: web.Request) -> web.StreamResponse:
    keys = hijack.detach_keys(request.query.get("detachKeys", ""), "Invalid detach keys ({}) provided")
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    check_attachable(c, request.match_info["id"])
    wants = [query_bool(request, n) for n in ("stdin", "stdout", "stderr")] \
        if versions.client_at_least(request, versions.WEBSOCKET_CHOSEN_STREAMS) else [True] * 3
    tty = c.config.tty
    ws = web.WebSocketResponse(compress=False, decode_text=False, autoclose=True)
    await ws.prepare(request)
    client = hijack.WebsocketClient(ws, binary=versions.client_at_least(request, versions.WEBSOCKET_BINARY))
    try:
        if query_bool(request, "logs") and c.log_path:
            async for batch in container_logs.logged_output(mgr, c, wants[1], wants[2]):
                for _kind, data in batch.messages():
                    await client.send(data)
        if query_bool(request, "stream"):
            streams = await mgr.attach(c.id, *wants)
            if streams is not None:
                stdin = wants[0] and c.config.open_stdin
                if await hijack.pump(client.read, client.output_writer(not tty), *streams,
                                     escape=EscapeScanner(keys) if tty and stdin else None,
                                     input_end_ends=stdin and (tty or not c.config.stdin_once)):
                    mgr.detached(c.id)
    except (ConnectionError, OSError):
        pass
    await ws.close()
    return ws


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    tail_text = request.query.get("tail", "all")
    tail = None
    if tail_text not in ("", "all"):
        try:
            tail = int(tail_text)
        except ValueError:
            tail = None
    options = container_logs.LogOptions(
        stdout=query_bool(request, "stdout"), stderr=query_bool(request, "stderr"),
        follow=query_bool(request, "follow"), tail=tail,
        since=_parse_stamp(request.query.get("since")), until=_parse_stamp(request.query.get("until")),
        timestamps=query_bool(request, "timestamps"), details=query_bool(request, "details"))
    tty = c.config.tty
    source = await container_logs.LogStream.open(mgr, c, options)  # before the answer starts
    try:
        response = web.StreamResponse(status=200, headers={
            "Content-Type": hijack.stream_type(request, tty, hijacked=False)})
        await response.prepare(request)
        async with contextlib.aclosing(source.batches()) as batches:
            async for batch in batches:
                data = batch.text() if tty else batch.frames()
                if data:
                    await response.write(data)
    finally:
        source.close()
    await response.write_eof()
    return response


def _parse_stamp(text: str | None) -> int:
    """`since`/`until`: unix seconds with optional fraction, as the docker CLI sends."""
    if not text:
        return 0
    try:
        secs, _, frac = text.partition(".")
        return int(secs) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
    except ValueError:
        raise InvalidParameter(f"invalid value for since/until: {text}") from None


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    await _mgr(request).pause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    await _mgr(request).unpause(request.match_info["id"])
    return web.Response(status=204)


_UPDATE_FIELDS = {
    "Memory": ("memory", int), "MemorySwap": ("memory_swap", int), "MemoryReservation": ("memory_reservation", int),
    "NanoCpus": ("nano_cpus", int), "CpuShares": ("cpu_shares", int), "CpuPeriod": ("cpu_period", int),
    "CpuQuota": ("cpu_quota", int), "CpusetCpus": ("cpuset_cpus", str), "CpusetMems": ("cpuset_mems", str),
    "PidsLimit": ("pids_limit", int), "BlkioWeight": ("blkio_weight", int),
}


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    body = await json_body(request)
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    changes: dict[str, Any] = {}
    for key, (attr, kind) in _UPDATE_FIELDS.items():
        value = _opt(body, key, kind, None)
        if value is not None and (value != 0 or key in ("PidsLimit",)):
            changes[attr] = value
    rp = _opt(body, "RestartPolicy", dict, None)
    if rp is not None and rp.get("Name"):  # the CLI sends an empty policy when not asked to change it
        changes["restart_policy"] = RestartPolicy(_opt(rp, "Name", str, "") or "no", _opt(rp, "MaximumRetryCount", int, 0))
    validate.check_host_config(dataclasses.replace(c.host_config, **changes))
    warnings = await mgr.update(c.id, changes)
    return json_response({"Warnings": warnings})


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    table = await container_top.top(_mgr(request), request.match_info["id"], request.query.get("ps_args") or "")
    return json_response({"Titles": table.titles, "Processes": table.processes})


# -- stats, prune ----------------------------------------------------------------------------


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    """A sample a second while streaming. Without the stream dockerd sends the second
    sample, so that precpu_stats is filled (CPU % needs two); one-shot sends the first."""
    mgr = _mgr(request)
    c = mgr.get(request.match_info["id"])
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if stream and one_shot:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    if not stream and c.state.status not in (Status.RUNNING, Status.PAUSED):
        return json_response(render_stats(c, None, None))
    if one_shot:
        return json_response(render_stats(c, await mgr.stats(c), None))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    previous = None
    # Until the container is removed or the client goes; a stopped container sends
    # nothing until it starts again, as with dockerd.
    while c.id in mgr.containers and request.transport is not None and not request.transport.is_closing():
        sample = await mgr.stats(c)
        if sample is None and not stream:
            await response.write(json.dumps(render_stats(c, None, None)).encode() + b"\n")
            break
        if sample is not None:
            if stream or previous is not None:
                await response.write(json.dumps(render_stats(c, sample, previous)).encode() + b"\n")
                if not stream:
                    break
            previous = sample
        await asyncio.sleep(1)
    return response


def _go_time(ns: int) -> str:
    """Go's RFC 3339 with nanoseconds (trailing zeros dropped); the zero time for 0."""
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def _cpu_stats_doc(sample: container_stats.Sample | None) -> dict[str, Any]:
    cg = sample.cgroup if sample else CgroupStats()
    usage: dict[str, Any] = {"total_usage": cg.cpu_usage_ns or 0}
    if cg.cpu_percpu_ns:
        usage["percpu_usage"] = list(cg.cpu_percpu_ns)
    usage["usage_in_kernelmode"] = cg.cpu_system_ns or 0
    usage["usage_in_usermode"] = cg.cpu_user_ns or 0
    doc: dict[str, Any] = {"cpu_usage": usage}
    if sample and sample.system_cpu_ns:
        doc["system_cpu_usage"] = sample.system_cpu_ns
    if sample and sample.online_cpus:
        doc["online_cpus"] = sample.online_cpus
    doc["throttling_data"] = {"periods": cg.cpu_periods or 0, "throttled_periods": cg.cpu_throttled_periods or 0,
                              "throttled_time": cg.cpu_throttled_ns or 0}
    return doc


def _blkio_doc(entries: tuple[BlkioEntry, ...]) -> list[dict[str, Any]] | None:
    return [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries] or None


def render_stats(c: Container, sample: container_stats.Sample | None,
                 previous: container_stats.Sample | None) -> dict[str, Any]:
    """Docker's stats JSON; with no sample (the container does not run) its zero shape.
    Fields Go leaves out when zero (`omitempty`) are left out here too."""
    cg = sample.cgroup if sample else CgroupStats()
    pids = {k: v for k, v in (("current", cg.pids_current), ("limit", cg.pids_limit)) if v}
    memory: dict[str, Any] = {}
    if sample is not None:
        limit = cg.memory_limit
        if sample.machine_memory and (limit is None or limit > sample.machine_memory):
            limit = sample.machine_memory  # no limit: what the host has, as dockerd says
        for key, value in (("usage", cg.memory_usage), ("max_usage", cg.memory_max_usage),
                           ("stats", {k: max(v, 0) for k, v in cg.memory_stat.items()}),
                           ("failcnt", cg.memory_failcnt), ("limit", limit)):
            if value:
                memory[key] = value
    doc: dict[str, Any] = {
        "name": "/" + c.name,
        "id": c.id,
        "read": _go_time(sample.read_ns if sample else 0),
        "preread": _go_time(previous.read_ns if previous else 0),
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": _blkio_doc(cg.io_service_bytes),
            "io_serviced_recursive": _blkio_doc(cg.io_serviced),
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_stats_doc(sample),
        "precpu_stats": _cpu_stats_doc(previous),
        "memory_stats": memory,
    }
    if sample and sample.networks:
        doc["networks"] = {name: dataclasses.asdict(n) for name, n in sample.networks.items()}
    return doc


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    """`docker container prune`: every container that does not run, but those created
    after `until` or failing the `label`/`label!` filters."""
    filters = filters_param(request, {"label", "label!", "until"})
    if len(filters.get("until", [])) > 1:
        raise InvalidParameter("more than one until filter specified")
    until = parse_until(filters["until"][0]) if filters.get("until") else None
    result = await listing.prune(_mgr(request), listing.PruneFilters(
        label=tuple(filters.get("label", [])), label_not=tuple(filters.get("label!", [])), until=until))
    context(request).events.log("container", "prune", "", {"reclaimed": str(result.reclaimed)})
    return json_response({"ContainersDeleted": result.deleted or None, "SpaceReclaimed": result.reclaimed})


# -- filesystem: docker diff, export, cp ----------------------------------------------------


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    found = await _mgr(request).changes(request.match_info["id"])
    return json_response([{"Path": ch.path, "Kind": int(ch.kind)} for ch in found])


async def _stream_tar(request: web.Request, chunks: AsyncGenerator[bytes, None],
                      headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Send a tar that a child process writes; the first chunk is read before the headers
    go out, so that a failure at the start is still an error response."""
    try:
        first = await anext(chunks, b"")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar",
                                                           **(headers or {})})
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # tar readers may hang up once they have the end-of-archive blocks
        return response
    finally:
        await chunks.aclose()


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    async with container_archive.export(_mgr(request), request.match_info["id"]) as chunks:
        return await _stream_tar(request, chunks)


def _path_query(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("Path cannot be empty")
    return path


def _path_stat_header(st: container_archive.PathStat) -> dict[str, str]:
    doc = {"name": st.name, "size": st.size, "mode": st.mode, "mtime": st.mtime, "linkTarget": st.link_target}
    return {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(doc).encode()).decode()}


@routes.head("/containers/{id}/archive")
async def archive_stat(request: web.Request) -> web.Response:
    st = await container_archive.stat_path(_mgr(request), request.match_info["id"], _path_query(request))
    return web.Response(status=200, headers=_path_stat_header(st))


@routes.get("/containers/{id}/archive")
async def archive_get(request: web.Request) -> web.StreamResponse:
    path = _path_query(request)
    async with container_archive.read_path(_mgr(request), request.match_info["id"], path) as (st, chunks):
        return await _stream_tar(request, chunks, _path_stat_header(st))


@routes.put("/containers/{id}/archive")
async def archive_put(request: web.Request) -> web.Response:
    path = _path_query(request)
    await container_archive.extract(_mgr(request), request.match_info["id"], path,
                                    request.content.iter_chunked(1 << 16),
                                    copy_uid_gid=query_bool(request, "copyUIDGID"),
                                    no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"))
    return web.Response(status=200)
