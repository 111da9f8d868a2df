"""The log drivers as berthd sees them: which exist, their options, where they keep
their files, and what `docker logs` can read back.

A driver is chosen per container (`HostConfig.LogConfig`); this module checks its
options at create with Docker's messages, says which file the shim writes
(`log_path`), and which options the shim gets (`shim_options`: the syslog tag already
expanded). The writing is the shim's (`berth.logs.sinks`), the reading the API's
(`berth.logs.jsonfile.render` over `berth.logs.files.retained`).

On disk, in the container's directory:
  json-file  `<id>-json.log`, `.1` … (`.gz`): Docker's json-file format and layout
  local      `local-logs/container.log`, `.1.gz` …: berth writes the json-file format
             here, not Docker's protobuf frames (reading JSON lines is as fast in
             Python, and one reader serves both); the layout and defaults are Docker's
  syslog     `container-cached.log`: the dual-logging cache, in the `local` format,
             unless `cache-disabled=true`; messages go to the syslog server
  none       nothing
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote_plus

from berth.errors import InvalidParameter
from berth.logs import syslog
from berth.logs.files import from_human_size

_ATTRIBUTE_OPTS = frozenset({"labels", "labels-regex", "env", "env-regex"})
_GENERIC_OPTS = frozenset({"mode", "max-buffer-size"})
_CACHE_OPTS = frozenset({"cache-disabled", "cache-max-size", "cache-max-file", "cache-compress"})


@dataclass(frozen=True)
class Driver:
    name: str
    options: frozenset[str]
    file: str  # the log file below the container's directory ("" for none)
    unknown_option: str  # Docker's message, with {key}
    remote: bool = False  # sends elsewhere; reading is from the dual-logging cache


DRIVERS = {
    "json-file": Driver("json-file", frozenset({"max-size", "max-file", "compress", "tag"}) | _ATTRIBUTE_OPTS,
                        "{id}-json.log", "unknown log opt '{key}' for json-file log driver"),
    "local": Driver("local", frozenset({"max-size", "max-file", "compress"}), "local-logs/container.log",
                    "unknown log opt '{key}' for log driver local"),
    "syslog": Driver("syslog", frozenset({"syslog-address", "syslog-facility", "syslog-tls-ca-cert",
                                          "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify",
                                          "tag", "syslog-format"}) | _ATTRIBUTE_OPTS,
                     "container-cached.log", "unknown log opt '{key}' for syslog log driver", remote=True),
    "none": Driver("none", frozenset(), "", ""),
}


def validate(driver_name: str, config: dict[str, str]) -> None:
    """Docker's checks at create (and berth checks the values too, which Docker leaves
    to the start)."""
    if driver_name == "none":
        return
    driver = DRIVERS.get(driver_name)
    mode = config.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in config:
        if mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        _size("max-buffer-size", config["max-buffer-size"])
    if driver is None:
        raise InvalidParameter(f"failed to create logger: logger: no log driver named '{driver_name}' is registered")
    for key in config:
        if key in _GENERIC_OPTS or (key in _CACHE_OPTS and driver.remote):
            continue
        if key not in driver.options:
            raise InvalidParameter(driver.unknown_option.format(key=key))
    if driver.name in ("json-file", "local"):
        _check_rotation(config.get("max-size", ""), config.get("max-file", ""), config.get("compress", ""),
                        driver.name == "json-file")
    if driver.remote:
        _check_bool("cache-disabled", config.get("cache-disabled", ""))
        _check_rotation(config.get("cache-max-size", ""), config.get("cache-max-file", ""),
                        config.get("cache-compress", ""), False)
        try:
            syslog.parse_address(config.get("syslog-address", ""))
            syslog.parse_facility(config.get("syslog-facility", ""))
            syslog.formatter(config.get("syslog-format", ""), False, "", "", 0)
        except syslog.SyslogError as e:
            raise InvalidParameter(str(e)) from None
    for key in ("labels-regex", "env-regex"):
        if config.get(key):
            try:
                re.compile(config[key])
            except re.error as e:
                raise InvalidParameter(f"error parsing regexp: {e}: `{config[key]}`") from None


def _size(key: str, text: str) -> int:
    try:
        return from_human_size(text)
    except ValueError as e:
        raise InvalidParameter(f"error parsing option {key}: {e}") from None


def _check_bool(key: str, text: str) -> bool:
    if text == "":
        return False
    if text.lower() not in ("1", "t", "true", "0", "f", "false"):
        raise InvalidParameter(f'error parsing option {key}: strconv.ParseBool: parsing "{text}": invalid syntax')
    return text.lower() in ("1", "t", "true")


def _check_rotation(max_size: str, max_file: str, compress: str, strict_compress: bool) -> None:
    size = _size("max-size", max_size) if max_size not in ("", "-1") else -1
    count = 1
    if max_file:
        try:
            count = int(max_file)
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{max_file}": invalid syntax') from None
        if count < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    if _check_bool("compress", compress) and strict_compress and (count < 2 or size == -1):
        raise InvalidParameter("compress cannot be true when max-file is less than 2 or max-size is not set")


class LogPlugins(Protocol):
    """Log drivers that managed plugins provide (berth.plugins implements it): the
    shim writes to a FIFO the plugin reads, between StartLogging and StopLogging."""

    def is_plugin(self, driver_name: str) -> bool:
        """Whether an enabled plugin of that name serves docker.logdriver/1.0."""

    async def start_logging(self, driver_name: str, info: ContainerInfo) -> dict[str, str]:
        """The plugin starts reading the container's log FIFO; the shim's options for it."""

    async def stop_logging(self, driver_name: str, container_id: str) -> None:
        """The container's output has ended: the plugin stops, the FIFO goes."""

    async def read_logs(self, driver_name: str, info: ContainerInfo) -> bytes | None:
        """What the plugin kept of the container's output, as json-file lines (LogDriver.
        ReadLogs); None when the plugin cannot read logs back."""


def log_path(driver_name: str, config: dict[str, str], container_dir: str, container_id: str) -> str:
    """The file the shim writes for this container and `docker logs` reads ("" for none)."""
    driver = DRIVERS.get(driver_name)
    if driver is None or not driver.file:
        return ""
    if driver.remote and config.get("cache-disabled", "").lower() in ("1", "t", "true"):
        return ""
    return os.path.join(container_dir, driver.file.format(id=container_id))


@dataclass
class ContainerInfo:
    """What a tag template and the `labels`/`env` attributes may draw on (the container's
    side makes it: Container.log_info(); the drivers know no container records)."""

    id: str
    name: str
    image_id: str
    image_name: str
    labels: dict[str, str]
    env: list[str]


def shim_options(driver_name: str, config: dict[str, str], info: ContainerInfo) -> dict[str, str]:
    """The options as the shim takes them: the tag template expanded."""
    options = dict(config)
    if driver_name == "syslog":
        options["tag"] = expand_tag(config.get("tag", ""), info)
    return options


def expand_tag(template: str, info: ContainerInfo) -> str:
    """Docker's tag templates ({{.ID}}, {{.Name}}, {{.ImageName}} …); default {{.ID}}."""
    image_id = info.image_id.removeprefix("sha256:")
    fields = {"ID": info.id[:12], "FullID": info.id, "Name": info.name.lstrip("/"),
              "ImageID": image_id[:12], "ImageFullID": image_id, "ImageName": info.image_name,
              "DaemonName": "berth"}
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: fields.get(m[1], m[0]), template or "{{.ID}}")


def details_prefix(driver_name: str, config: dict[str, str], info: ContainerInfo) -> bytes:
    """What `docker logs --details` puts before each line: the extra attributes that
    `labels`, `labels-regex`, `env` and `env-regex` select, "k=v,k2=v2 ", as Docker
    prints them (sorted, query-escaped; only json-file records attributes)."""
    attrs: dict[str, str] = {}
    if driver_name == "json-file":
        attrs = extra_attributes(config, info)
    text = ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items()))
    return text.encode() + b" "


def extra_attributes(config: dict[str, str], info: ContainerInfo) -> dict[str, str]:
    extra: dict[str, str] = {}
    for name in filter(None, config.get("labels", "").split(",")):
        if name in info.labels:
            extra[name] = info.labels[name]
    if config.get("labels-regex"):
        pattern = re.compile(config["labels-regex"])
        extra.update({k: v for k, v in info.labels.items() if pattern.search(k)})
    env = dict(e.split("=", 1) for e in info.env if "=" in e)
    for name in filter(None, config.get("env", "").split(",")):
        if name in env:
            extra[name] = env[name]
    if config.get("env-regex"):
        pattern = re.compile(config["env-regex"])
        extra.update({k: v for k, v in env.items() if pattern.search(k)})
    return extra
