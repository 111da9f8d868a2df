"""`docker compose config` output: the model back to a normalized compose document.

Owns: `to_dict` (the project as compose v2's `config` prints it: `name` first, long
forms, durations as Go prints them, sizes in bytes, defaults left out), the YAML
writer (2-space indent, sequences indented under their key, strings quoted where YAML
would read them as something else), JSON, and the `--services`/`--volumes` listings.
Must not: load files or change the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import yaml

from berth.compose.loader import service_dependencies
from berth.compose.model import (
    BuildConfig,
    Deploy,
    FileObject,
    Healthcheck,
    Network,
    PortConfig,
    Project,
    ResourceSpec,
    Service,
    ServiceVolume,
    Volume,
)
from berth.compose.normalize import format_duration, parse_bytes


def _sorted(d: dict[str, Any]) -> dict[str, Any]:
    """Go maps print sorted by key."""
    return dict(sorted(d.items()))


def _deep_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_sorted(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [_deep_sorted(v) for v in value]
    return value


def _ipam(ipam: dict[str, Any] | None) -> dict[str, Any] | None:
    """compose-go's IPAMConfig field order: driver, config (subnet, gateway, ip_range,
    aux_addresses), options."""
    if ipam is None:
        return None
    out: dict[str, Any] = {}
    if "driver" in ipam:
        out["driver"] = ipam["driver"]
    if "config" in ipam:
        pools = []
        for pool in ipam["config"] or []:
            order = ["subnet", "gateway", "ip_range", "aux_addresses"]
            pools.append({k: _deep_sorted(pool[k]) for k in sorted(
                pool, key=lambda k: (order.index(k) if k in order else len(order), k))})
        out["config"] = pools
    if "options" in ipam:
        out["options"] = _deep_sorted(ipam["options"])
    out.update({k: v for k, v in _deep_sorted(ipam).items() if k not in out})
    return out


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {} and v is not False}


def _port(p: PortConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": p.mode}
    if p.host_ip:
        out["host_ip"] = p.host_ip
    out["target"] = p.target
    if p.published is not None:
        out["published"] = p.published
    out["protocol"] = p.protocol
    if p.app_protocol:
        out["app_protocol"] = p.app_protocol
    if p.name:
        out["name"] = p.name
    return out


def _volume(v: ServiceVolume) -> dict[str, Any]:
    out: dict[str, Any] = {"type": v.type}
    if v.source:
        out["source"] = v.source
    out["target"] = v.target
    if v.read_only:
        out["read_only"] = True
    if v.consistency:
        out["consistency"] = v.consistency
    if v.bind is not None:
        out["bind"] = _drop_empty({
            "selinux": v.bind.selinux,
            "propagation": v.bind.propagation,
            "create_host_path": v.bind.create_host_path,
        })
    if v.volume is not None:
        out["volume"] = _drop_empty({"nocopy": v.volume.nocopy, "subpath": v.volume.subpath})
    if v.tmpfs is not None:
        out["tmpfs"] = _drop_empty({
            "size": None if v.tmpfs.size is None else str(v.tmpfs.size),
            "mode": v.tmpfs.mode,  # a plain number in compose-go (01777 prints as 1023)
        })
    return out


def _duration(ns: int | None) -> str | None:
    return None if ns is None else format_duration(ns)


def _healthcheck(h: Healthcheck) -> dict[str, Any]:
    return _drop_empty({
        "test": h.test,
        "timeout": _duration(h.timeout),
        "interval": _duration(h.interval),
        "retries": h.retries,
        "start_period": _duration(h.start_period),
        "start_interval": _duration(h.start_interval),
        "disable": h.disable,
    })


def _build(b: BuildConfig) -> dict[str, Any]:
    return _drop_empty({
        "context": b.context,
        "dockerfile": None if b.dockerfile_inline else b.dockerfile,
        "dockerfile_inline": b.dockerfile_inline,
        "args": _sorted(b.args),
        "labels": _sorted(b.labels),
        "cache_from": b.cache_from,
        "network": b.network,
        "target": b.target,
        "shm_size": None if b.shm_size is None else str(b.shm_size),
        "extra_hosts": b.extra_hosts,
        "tags": b.tags,
        "platforms": b.platforms,
        "no_cache": b.no_cache,
        "pull": b.pull,
    })


def _resources(r: ResourceSpec | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return _drop_empty({
        "cpus": r.cpus,
        "memory": None if r.memory is None else str(r.memory),
        "pids": r.pids,
    })


def _deploy(d: Deploy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.mode:
        out["mode"] = d.mode
    if d.replicas is not None:
        out["replicas"] = d.replicas
    if d.labels:
        out["labels"] = _sorted(d.labels)
    if d.resources is not None:
        out["resources"] = _drop_empty({
            "limits": _resources(d.resources.limits),
            "reservations": _resources(d.resources.reservations),
        })
    if d.restart_policy is not None:
        p = d.restart_policy
        out["restart_policy"] = _drop_empty({
            "condition": p.condition,
            "delay": _duration(p.delay),
            "max_attempts": p.max_attempts,
            "window": _duration(p.window),
        })
    return out


def service_to_dict(s: Service) -> dict[str, Any]:
    """One service as compose v2's `config` prints it (keys in compose-go's order)."""
    out: dict[str, Any] = {}
    out["profiles"] = s.profiles
    if s.build is not None:
        out["build"] = _build(s.build)
    out["cap_add"] = s.cap_add
    out["cap_drop"] = s.cap_drop
    out["command"] = s.command
    out["configs"] = [
        _drop_empty({"source": c.source, "target": c.target, "uid": c.uid, "gid": c.gid,
                     "mode": None if c.mode is None else f"{c.mode:04o}"})
        for c in s.configs
    ]
    out["container_name"] = s.container_name
    out["depends_on"] = {
        name: {"condition": d.condition, **({"restart": True} if d.restart else {}),
               "required": d.required}
        for name, d in sorted(s.depends_on.items())
    }
    if s.deploy is not None:
        out["deploy"] = _deploy(s.deploy)
    out["devices"] = [
        _drop_empty({"source": d.source, "target": d.target, "permissions": d.permissions})
        for d in s.devices
    ]
    out["dns"] = s.dns
    out["dns_opt"] = s.dns_opt
    out["dns_search"] = s.dns_search
    out["domainname"] = s.domainname
    out["entrypoint"] = s.entrypoint
    out["environment"] = _sorted(s.environment)
    out["expose"] = s.expose
    out["external_links"] = s.external_links
    out["extra_hosts"] = s.extra_hosts
    out["hostname"] = s.hostname
    if s.healthcheck is not None:
        out["healthcheck"] = _healthcheck(s.healthcheck)
    out["image"] = s.image
    out["init"] = s.init
    out["ipc"] = s.ipc
    out["labels"] = _sorted(s.labels)
    out["links"] = s.links
    if s.logging is not None:
        out["logging"] = _drop_empty({"driver": s.logging.driver, "options": _sorted(s.logging.options)})
    out["network_mode"] = s.network_mode
    out["networks"] = {
        name: None if n is None else _drop_empty({
            "aliases": n.aliases, "ipv4_address": n.ipv4_address,
            "ipv6_address": n.ipv6_address, "link_local_ips": n.link_local_ips,
            "mac_address": n.mac_address, "priority": n.priority,
        })
        for name, n in sorted(s.networks.items())
    }
    out["pid"] = s.pid
    out["platform"] = s.platform
    out["ports"] = [_port(p) for p in s.ports]
    out["privileged"] = s.privileged
    out["pull_policy"] = s.pull_policy
    out["read_only"] = s.read_only
    out["restart"] = s.restart
    out["scale"] = s.scale
    out["secrets"] = [
        _drop_empty({"source": c.source, "target": c.target, "uid": c.uid, "gid": c.gid,
                     "mode": None if c.mode is None else f"{c.mode:04o}"})
        for c in s.secrets
    ]
    out["security_opt"] = s.security_opt
    out["shm_size"] = None if s.shm_size is None else str(s.shm_size)
    out["stdin_open"] = s.stdin_open
    out["stop_grace_period"] = _duration(s.stop_grace_period)
    out["stop_signal"] = s.stop_signal
    out["sysctls"] = _sorted(s.sysctls)
    out["tmpfs"] = s.tmpfs
    out["tty"] = s.tty
    out["ulimits"] = {
        name: u.soft if u.single and u.soft else {"soft": u.soft, "hard": u.hard}
        for name, u in sorted(s.ulimits.items())
    }
    out["user"] = s.user
    out["volumes"] = [_volume(v) for v in s.volumes]
    out["volumes_from"] = s.volumes_from
    out["working_dir"] = s.working_dir
    out["post_start"] = [_hook(h) for h in s.post_start]
    out["pre_stop"] = [_hook(h) for h in s.pre_stop]
    result = {k: v for k, v in out.items() if v is not None and v is not False
              and (v != [] or k in ("command", "entrypoint"))  # `command: []` is kept
              and not (v == {} and k not in ("environment",))}
    if not s.environment:
        result.pop("environment", None)
    if s.healthcheck is not None:
        result["healthcheck"] = out["healthcheck"]
    other = _deep_sorted(s.other)
    for key in UNIT_BYTES & other.keys():  # compose-go's UnitBytes: bytes, as a string
        other[key] = str(parse_bytes(other[key], where=f"services.{s.name}.{key}"))
    merged = {**result, **other}
    return dict(sorted(merged.items(), key=lambda kv: _service_key_rank(kv[0])))


UNIT_BYTES = {"mem_limit", "mem_reservation", "memswap_limit", "mem_swappiness"}

# compose-go's ServiceConfig field order, which its YAML output follows; keys it does
# not know (extensions) come last, sorted.
SERVICE_KEY_ORDER = [
    "profiles", "annotations", "attach", "build", "develop", "blkio_config", "cap_add",
    "cap_drop", "cgroup_parent", "cgroup", "cpu_count", "cpu_percent", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpus", "cpuset", "cpu_shares",
    "command", "configs", "container_name", "credential_spec", "depends_on", "deploy",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "dockerfile",
    "domainname", "entrypoint", "provider", "environment", "env_file", "expose", "extends",
    "external_links", "extra_hosts", "group_add", "gpus", "hostname", "healthcheck", "image",
    "init", "ipc", "isolation", "labels", "label_file", "links", "logging", "log_driver",
    "log_opt", "mem_limit", "mem_reservation", "memswap_limit", "mem_swappiness",
    "mac_address", "models", "net", "network_mode", "networks", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "ports", "privileged", "pull_policy",
    "read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size",
    "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs",
    "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volume_driver",
    "volumes", "volumes_from", "working_dir", "post_start", "pre_stop",
]
_SERVICE_RANK = {k: i for i, k in enumerate(SERVICE_KEY_ORDER)}


def _service_key_rank(key: str) -> tuple[int, str]:
    return (_SERVICE_RANK.get(key, len(SERVICE_KEY_ORDER)), key)


def _hook(h: Any) -> dict[str, Any]:
    return _drop_empty({
        "command": h.command, "user": h.user, "privileged": h.privileged,
        "working_dir": h.working_dir, "environment": h.environment,
    })


def _file_object(f: FileObject) -> dict[str, Any]:
    return _drop_empty({
        "name": f.name, "file": f.file, "environment": f.environment, "content": f.content,
        "external": f.external,
    })


def _network(n: Network) -> dict[str, Any]:
    return _drop_empty({
        "name": n.name, "driver": n.driver, "driver_opts": _sorted(n.driver_opts),
        "ipam": _ipam(n.ipam), "external": n.external, "internal": n.internal,
        "attachable": n.attachable, "labels": _sorted(n.labels),
    }) | ({} if n.enable_ipv6 is None else {"enable_ipv6": n.enable_ipv6})


def _volume_object(v: Volume) -> dict[str, Any]:
    return _drop_empty({
        "name": v.name, "driver": v.driver, "driver_opts": _sorted(v.driver_opts),
        "external": v.external, "labels": _sorted(v.labels),
    })


def to_dict(project: Project) -> dict[str, Any]:
    """The project as `docker compose config` prints it."""
    doc: dict[str, Any] = {"name": project.name}
    doc["services"] = {name: service_to_dict(s) for name, s in sorted(project.services.items())}
    if project.networks:
        doc["networks"] = {key: _network(n) for key, n in sorted(project.networks.items())}
    if project.volumes:
        doc["volumes"] = {key: _volume_object(v) for key, v in sorted(project.volumes.items())}
    if project.secrets:
        doc["secrets"] = {k: _file_object(f) for k, f in sorted(project.secrets.items())}
    if project.configs:
        doc["configs"] = {k: _file_object(f) for k, f in sorted(project.configs.items())}
    doc.update(sorted(_deep_sorted(project.extensions).items()))
    return _escape_dollars(doc)


def _escape_dollars(value: Any) -> Any:
    """`$` written as `$$`, as compose v2 does, so the output loads back to the same values."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value


# --- writing ------------------------------------------------------------------------

# Plain scalars a YAML 1.1 reader (and yaml.v3 when writing) would take for something
# other than a string: they are written quoted, as compose v2 writes them.
_AMBIGUOUS = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL|[-+]?[0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|0[xXoObB][0-9a-fA-F]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$"
)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if _AMBIGUOUS.match(value) or value == "":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _represent_none(dumper: yaml.SafeDumper, value: None) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:null", "null")


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(type(None), _represent_none)


def dump_yaml(document: Any) -> str:
    """YAML as compose v2 writes it (2-space indent, insertion order kept)."""
    return yaml.dump(  # type: ignore[no-any-return]
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, indent=2, width=1 << 30,
    )


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _json_shape(doc: dict[str, Any]) -> dict[str, Any]:
    """The differences of compose v2's JSON from its YAML: Go's encoding/json sorts the
    top-level map and writes a few struct fields the YAML encoder leaves out."""
    shaped = dict(doc)
    if "services" in doc:
        shaped["services"] = {name: _json_service(svc) for name, svc in doc["services"].items()}
    if "networks" in doc:
        shaped["networks"] = {key: _json_network(net) for key, net in doc["networks"].items()}
    return dict(sorted(shaped.items()))


def _json_service(svc: dict[str, Any]) -> dict[str, Any]:
    svc = {"command": None, "entrypoint": None,
           **{k: v for k, v in svc.items() if not k.startswith("x-")}}
    if "ulimits" in svc:  # soft and hard are omitempty in JSON, not in YAML
        svc["ulimits"] = {name: {k: n for k, n in u.items() if n} if isinstance(u, dict) else u
                          for name, u in svc["ulimits"].items()}
    svc = dict(sorted(svc.items(), key=lambda kv: _service_key_rank(kv[0])))
    if "deploy" in svc:
        deploy = dict(svc["deploy"])
        order = ["mode", "replicas", "labels", "update_config", "rollback_config",
                 "resources", "restart_policy", "placement", "endpoint_mode"]
        deploy.setdefault("resources", {})
        deploy.setdefault("placement", {})
        svc["deploy"] = {k: deploy[k] for k in sorted(deploy, key=lambda k: (
            order.index(k) if k in order else len(order), k))}
    return svc


def _json_network(net: dict[str, Any]) -> dict[str, Any]:
    net = dict(net)
    if "ipam" not in net and not net.get("external"):
        items = list(net.items())
        at = next((i for i, (k, _) in enumerate(items)
                   if k not in ("name", "driver", "driver_opts")), len(items))
        items.insert(at, ("ipam", {}))
        net = dict(items)
    return net


def json_shaped_service(service: Service) -> dict[str, Any]:
    """One service as Go's encoding/json writes compose-go's ServiceConfig (no `$`
    escaping): what compose v2 hashes."""
    return _json_service(service_to_dict(service))


def json_shaped_network(network: Network) -> dict[str, Any]:
    return _json_network(_network(network))


def json_shaped_volume(volume: Volume) -> dict[str, Any]:
    """A volume as compose v2 hashes it: the driver defaults to "local"."""
    return _volume_object(replace(volume, driver=volume.driver or "local"))


def config_yaml(project: Project) -> str:
    """`docker compose config` (YAML)."""
    return dump_yaml(to_dict(project))


def config_json(project: Project) -> str:
    """`docker compose config --format json`."""
    return json.dumps(_json_shape(to_dict(project)), indent=2, ensure_ascii=False)


def config_services(project: Project) -> list[str]:
    """`config --services`: the active services, each after the services it depends on
    (compose v2 walks the graph concurrently; this is one of its orders, always the same)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in sorted(service_dependencies(project.services[name])):
            if dep in project.services:
                visit(dep)
        order.append(name)

    for name in sorted(project.services):
        visit(name)
    return order


def config_volumes(project: Project) -> list[str]:
    """`config --volumes`: the volumes' keys."""
    return list(project.volumes)
