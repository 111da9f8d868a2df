"""Merging compose documents (several `-f` files, `extends`) as compose-go merges them.

Owns: the merge rules on raw (interpolated) documents. Mappings merge key by key;
`command`, `entrypoint`, `healthcheck.test` and `ulimits.*` are replaced; environment,
labels, sysctls, build args and the like merge as KEY=VALUE sets (list or mapping on
either side); `depends_on` and `networks` merge as mappings (a list is a mapping of
nulls); `logging` merges its options unless the driver changes; sequences such as
ports, volumes, expose, secrets, dns are appended and then made unique by their key
(a volume by its target, a port by its whole spec, a secret by its target), the later
entry taking the earlier one's place.
Must not: interpolate, validate, or resolve paths.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from berth.compose.yamlfile import Tagged, strip_tags

_KEY_VALUE_LISTS = {
    "environment", "labels", "sysctls", "annotations", "extra_hosts",
}
_REPLACED = {"command", "entrypoint", "container_name", "image", "network_mode"}


def key_value_map(value: Any, *, sep: str = "=") -> dict[str, Any]:
    """A list of KEY=VALUE (or KEY) strings, or a mapping, as a mapping (KEY alone → None)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    for item in value:
        text = str(item)
        if sep in text:
            k, _, v = text.partition(sep)
            result[k] = v
        else:
            result[text] = None
    return result


def _extra_hosts_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    for item in value or []:
        text = str(item)
        sep = "=" if "=" in text else ":"
        k, _, v = text.partition(sep)
        result[k] = v
    return result


def _names_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    return {str(v): None for v in value or []}


def _volume_key(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _mount_key(default_dir: str) -> Callable[[Any], Any]:
    def key(item: Any) -> Any:
        if isinstance(item, dict):
            target = item.get("target") or item.get("source")
            if default_dir and target and not str(target).startswith("/"):
                return f"{default_dir}/{target}"
            return target
        return f"{default_dir}/{item}" if default_dir else item

    return key


def _port_key(item: Any) -> Any:
    if isinstance(item, dict):
        return (
            item.get("host_ip"), str(item.get("published", "")), item.get("target"),
            item.get("protocol", "tcp"), item.get("mode", "ingress"),
        )
    return str(item)


def _plain_key(item: Any) -> Any:
    return str(item) if not isinstance(item, dict) else repr(sorted(item.items()))


_UNIQUE: dict[str, Callable[[Any], Any]] = {
    "ports": _port_key,
    "volumes": _volume_key,
    "devices": _volume_key,
    "secrets": _mount_key("/run/secrets"),
    "configs": _mount_key(""),
    "expose": _plain_key,
    "dns": _plain_key,
    "dns_search": _plain_key,
    "dns_opt": _plain_key,
    "cap_add": _plain_key,
    "cap_drop": _plain_key,
    "profiles": _plain_key,
    "links": _plain_key,
    "external_links": _plain_key,
    "tmpfs": _plain_key,
    "env_file": lambda item: item.get("path") if isinstance(item, dict) else item,
    "security_opt": _plain_key,
    "volumes_from": _plain_key,
    "group_add": _plain_key,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _unique(items: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    result: list[Any] = []
    index: dict[Any, int] = {}
    for item in items:
        k = key(item)
        if k in index:
            result[index[k]] = item
        else:
            index[k] = len(result)
            result.append(item)
    return result


def _tagged(result: dict[str, Any], key: str, value: Any) -> bool:
    """Apply `!reset` (drop the key) or `!override` (take the value whole); True if so."""
    if not isinstance(value, Tagged):
        return False
    if value.tag == "!reset":
        result.pop(key, None)
    else:
        result[key] = strip_tags(copy.deepcopy(value.value))
    return True


def merge_mappings(base: Any, override: Any) -> Any:
    """Generic deep merge: mappings key by key, anything else replaced."""
    if isinstance(override, Tagged):
        return None if override.tag == "!reset" else strip_tags(copy.deepcopy(override.value))
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for k, v in override.items():
            if not _tagged(result, k, v):
                result[k] = merge_mappings(base[k], v) if k in base else copy.deepcopy(v)
        return result
    return copy.deepcopy(override)


def _merge_build(base: Any, override: Any) -> Any:
    b = {"context": base} if isinstance(base, str) else dict(base or {})
    o = {"context": override} if isinstance(override, str) else dict(override or {})
    result = merge_mappings(b, o)
    for key in ("args", "labels"):
        if key in b or key in o:
            result[key] = {**key_value_map(b.get(key)), **key_value_map(o.get(key))}
    if "extra_hosts" in b or "extra_hosts" in o:
        result["extra_hosts"] = {
            **_extra_hosts_map(b.get("extra_hosts")), **_extra_hosts_map(o.get("extra_hosts"))
        }
    if "cache_from" in b or "cache_from" in o:
        result["cache_from"] = _unique(
            _as_list(b.get("cache_from")) + _as_list(o.get("cache_from")), _plain_key
        )
    return result


def _merge_logging(base: Any, override: Any) -> Any:
    b, o = dict(base or {}), dict(override or {})
    if b.get("driver") and o.get("driver") and b["driver"] != o["driver"]:
        return copy.deepcopy(o)
    return merge_mappings(b, o)


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The service `override` laid over `base` (both raw mappings)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if _tagged(result, key, value):
            continue
        if key not in result or key in _REPLACED:
            result[key] = copy.deepcopy(value)
        elif key in _KEY_VALUE_LISTS:
            if key == "extra_hosts":
                result[key] = {**_extra_hosts_map(result[key]), **_extra_hosts_map(value)}
            else:
                result[key] = {**key_value_map(result[key]), **key_value_map(value)}
        elif key in ("depends_on", "networks"):
            merged = _names_map(result[key])
            for name, cfg in _names_map(value).items():
                if name in merged and isinstance(merged[name], dict) and isinstance(cfg, dict):
                    aliases = _unique(
                        _as_list(merged[name].get("aliases")) + _as_list(cfg.get("aliases")),
                        _plain_key,
                    )
                    merged[name] = merge_mappings(merged[name], cfg)
                    if aliases:
                        merged[name]["aliases"] = aliases
                elif cfg is not None or name not in merged:
                    merged[name] = copy.deepcopy(cfg)
            result[key] = merged
        elif key == "build":
            result[key] = _merge_build(result[key], value)
        elif key == "logging":
            result[key] = _merge_logging(result[key], value)
        elif key == "ulimits":
            merged_ulimits = dict(result[key] or {})
            merged_ulimits.update(copy.deepcopy(value or {}))
            result[key] = merged_ulimits
        elif key == "healthcheck":
            merged_hc = merge_mappings(result[key] or {}, value or {})
            if isinstance(value, dict) and "test" in value:
                merged_hc["test"] = copy.deepcopy(value["test"])
            result[key] = merged_hc
        elif key in _UNIQUE:
            result[key] = _unique(
                _as_list(result[key]) + copy.deepcopy(_as_list(value)), _UNIQUE[key]
            )
        else:
            result[key] = merge_mappings(result[key], value)
    return result


def merge_documents(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Two whole compose documents merged as `-f base -f override`."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if _tagged(result, key, value):
            continue
        if key == "services" and isinstance(value, dict):
            services = dict(result.get("services") or {})
            for name, svc in value.items():
                if _tagged(services, name, svc):
                    continue
                if name in services and isinstance(services[name], dict):
                    services[name] = merge_service(services[name], svc or {})
                else:
                    services[name] = copy.deepcopy(svc)
            result["services"] = services
        elif key in ("networks", "volumes", "secrets", "configs") and isinstance(value, dict):
            section = dict(result.get(key) or {})
            for name, cfg in value.items():
                if _tagged(section, name, cfg):
                    continue
                section[name] = (
                    merge_mappings(section[name], cfg)
                    if isinstance(section.get(name), dict) and isinstance(cfg, dict)
                    else copy.deepcopy(cfg)
                )
            result[key] = section
        elif key == "include":
            result[key] = _as_list(result.get(key)) + copy.deepcopy(_as_list(value))
        else:
            result[key] = merge_mappings(result.get(key), value)
    return result
