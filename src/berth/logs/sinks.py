"""Where the shim sends a container's output: the log driver's writing side.

`open_sink(driver, path, options)` picks the back end from the driver's name; the shim
only calls `write(stream, data)` and `close()`. Options arrive already checked and
completed by berthd (`berth.logs.drivers`), so a bad one here is a bug, not user input.

  json-file  JSON lines at `path`, rotated by `max-size`/`max-file`/`compress`
  local      the same format and rotation, Docker's defaults for `local` (20m, 5, gzip)
  syslog     one syslog message a line; plus the dual-logging cache at `path`, if any
  none       nothing (no sink)
  plugin     a log driver plugin's FIFO (`fifo` option), in Docker's LogEntry frames

Stdlib only: the shim imports this at start.
"""

from __future__ import annotations

from typing import Protocol

from berth.logs import jsonfile
from berth.logs.files import from_human_size


class Sink(Protocol):
    def write(self, stream: str, data: bytes) -> None: ...

    def close(self) -> None: ...


class Tee:
    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def write(self, stream: str, data: bytes) -> None:
        for sink in self.sinks:
            sink.write(stream, data)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


# (max-size, max-file, compress) when the options do not say
FILE_DEFAULTS = {"json-file": ("-1", "1", "false"), "local": ("20m", "5", "true")}
CACHE_DEFAULTS = ("20m", "5", "true")


def _bool(text: str) -> bool:
    return text.lower() in ("1", "t", "true")


def file_writer(path: str, max_size: str, max_file: str, compress: str) -> jsonfile.Writer:
    size = -1 if max_size in ("", "-1") else from_human_size(max_size)
    return jsonfile.Writer(path, size, int(max_file or "1"), _bool(compress))


def open_sink(driver: str, path: str, options: dict[str, str]) -> Sink | None:
    if driver in FILE_DEFAULTS:
        size, count, compress = FILE_DEFAULTS[driver]
        return file_writer(path, options.get("max-size", size), options.get("max-file", count),
                           options.get("compress", compress))
    if driver == "syslog":
        from berth.logs import syslog

        remote = syslog.Writer(options.get("syslog-address", ""), options.get("syslog-facility", ""),
                               options.get("syslog-format", ""), options.get("tag", ""))
        if not path:
            return remote
        size, count, compress = CACHE_DEFAULTS
        cache = file_writer(path, options.get("cache-max-size", size), options.get("cache-max-file", count),
                            options.get("cache-compress", compress))
        return Tee(remote, cache)
    if driver == "none":
        return None
    if driver == "plugin":
        from berth.logs.pluginlog import FifoWriter

        return FifoWriter(options["fifo"])
    raise ValueError(f"logger: no log driver named '{driver}' is registered")
