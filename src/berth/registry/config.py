"""The registry's settings: defaults, a YAML file (berth's flat keys, or distribution's
config.yml sections), REGISTRY_* environment variables, command-line flags — each
overriding the one before.

Pure apart from reading the config file; it opens no sockets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Settings:
    addr: str = "127.0.0.1:5000"
    root: str = "/var/lib/registry"
    htpasswd: str = ""
    htpasswd_realm: str = "berth-registry"
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    read_only: bool = False
    token_realm: str = ""
    token_service: str = ""
    token_issuer: str = ""
    token_cert: str = ""
    token_key: str = ""
    token_ttl: int = 300
    max_upload_size: int = 0  # 0: no limit
    upload_max_age: float = 3600.0
    upload_purge_interval: float = 600.0
    quiet: bool = False

    @property
    def token_auth(self) -> bool:
        return bool(self.token_cert or self.token_key)


class ConfigError(ValueError):
    """A config file or setting that cannot be used; the message names it."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)?")


def parse_duration(value: Any) -> float:
    """Seconds from 3600, "1h", "30m", "168h", "1h30m" (Go's time.Duration text)."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    total, pos = 0.0, 0
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigError(f"invalid duration: {value!r}")
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    if not text:
        raise ConfigError("empty duration")
    return total


def parse_size(value: Any) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", str(value).lower())
    if match is None:
        raise ConfigError(f"invalid size: {value!r}")
    return int(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _distribution_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """distribution's config.yml sections as Settings fields."""
    out: dict[str, Any] = {}
    pairs = {
        "addr": ("http", "addr"),
        "tls_cert": ("http", "tls", "certificate"),
        "tls_key": ("http", "tls", "key"),
        "root": ("storage", "filesystem", "rootdirectory"),
        "read_only": ("storage", "maintenance", "readonly", "enabled"),
        "upload_max_age": ("storage", "maintenance", "uploadpurging", "age"),
        "upload_purge_interval": ("storage", "maintenance", "uploadpurging", "interval"),
        "htpasswd": ("auth", "htpasswd", "path"),
        "htpasswd_realm": ("auth", "htpasswd", "realm"),
        "token_realm": ("auth", "token", "realm"),
        "token_service": ("auth", "token", "service"),
        "token_issuer": ("auth", "token", "issuer"),
        "token_cert": ("auth", "token", "rootcertbundle"),
    }
    for name, path in pairs.items():
        value = _get(doc, *path)
        if value is not None:
            out[name] = value
    cas = _get(doc, "http", "tls", "clientcas")
    if isinstance(cas, list) and cas:
        out["tls_client_ca"] = cas[0]
    return out


def _coerce(settings: Settings, values: dict[str, Any], source: str) -> None:
    known = {f.name: f for f in fields(Settings)}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        default = getattr(Settings(), name)
        try:
            if name in ("upload_max_age", "upload_purge_interval"):
                value = parse_duration(value)
            elif name == "max_upload_size":
                value = parse_size(value)
            elif isinstance(default, bool):
                if isinstance(value, str):
                    value = value.lower() in ("1", "true", "yes", "on")
                value = bool(value)
            elif isinstance(default, int):
                value = int(value)
            else:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid value for {key!r}: {value!r}") from exc
        setattr(settings, name, value)


def load_file(settings: Settings, path: Path) -> None:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ConfigError(f"config {path}: expected a mapping")
    sections = {"version", "log", "storage", "http", "auth", "health", "notifications",
                "redis", "proxy", "validation", "compatibility", "loglevel", "middleware",
                "reporting", "catalog"}
    flat = {k: v for k, v in doc.items() if k not in sections}
    if any(k in doc for k in sections - {"version"}):
        _coerce(settings, _distribution_keys(doc), str(path))
    _coerce(settings, flat, str(path))


ENVIRONMENT = {
    "REGISTRY_HTTP_ADDR": "addr",
    "REGISTRY_HTTP_TLS_CERTIFICATE": "tls_cert",
    "REGISTRY_HTTP_TLS_KEY": "tls_key",
    "REGISTRY_AUTH_HTPASSWD_PATH": "htpasswd",
    "REGISTRY_AUTH_HTPASSWD_REALM": "htpasswd_realm",
    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "root",
    "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "read_only",
    "REGISTRY_AUTH_TOKEN_REALM": "token_realm",
    "REGISTRY_AUTH_TOKEN_SERVICE": "token_service",
    "REGISTRY_AUTH_TOKEN_ISSUER": "token_issuer",
    "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": "token_cert",
}


def load_environment(settings: Settings, environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    _coerce(settings, {field: env[var] for var, field in ENVIRONMENT.items() if var in env},
            "environment")


def apply(settings: Settings, overrides: dict[str, Any]) -> None:
    _coerce(settings, {k: v for k, v in overrides.items() if v is not None}, "command line")


def split_addr(addr: str) -> tuple[str, int]:
    """("0.0.0.0", 5000) from ":5000", "HOST:PORT", "[::1]:PORT"."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"invalid address {addr!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
