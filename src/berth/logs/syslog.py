"""The syslog log driver: each line of output as one syslog message.

`syslog-address` is `unix:///path`, `unixgram:///path`, `udp://host[:port]` or
`tcp://host[:port]` (port 514 by default; empty: the local `/dev/log`). Messages are
formatted as Docker's driver formats them (`syslog-format`: "" is Go's default
format, or `rfc3164`, `rfc5424`, `rfc5424micro`), with priority `facility*8 + 6` for
stdout and `+ 3` for stderr, one datagram or one newline-ended record each.

`parse_address`, `parse_facility` and `formatter` are pure and shared with berthd's
validation; `Writer` runs in the shim (stdlib only). A send that fails reconnects once
and otherwise drops the message: the container must not stall on a dead log server.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from berth.logs.jsonfile import MAX_MESSAGE

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
SEVERITY = {"stdout": 6, "stderr": 3}  # LOG_INFO, LOG_ERR
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")


class SyslogError(ValueError):
    pass


def parse_address(address: str) -> tuple[str, str | tuple[str, int]]:
    """(scheme, path or (host, port)); ("", "/dev/log") for the local syslog."""
    if not address:
        return "", "/dev/log"
    url = urlsplit(address)
    if url.scheme in ("unix", "unixgram"):
        if not os.path.exists(url.path):
            raise SyslogError(f"stat {url.path}: no such file or directory")
        return url.scheme, url.path
    if url.scheme not in ("udp", "tcp", "tcp+tls"):
        raise SyslogError(f"unsupported scheme: '{url.scheme}'")
    if url.scheme == "tcp+tls":
        raise SyslogError("syslog-address: tcp+tls is not supported by berth")
    try:
        port = url.port or 514
    except ValueError:
        raise SyslogError(f"invalid syslog-address: {address}") from None
    return url.scheme, (url.hostname or "", port)


def parse_facility(name: str) -> int:
    if not name:
        return FACILITIES["daemon"]
    if name in FACILITIES:
        return FACILITIES[name]
    if name.isdigit() and int(name) in FACILITIES.values():
        return int(name)
    raise SyslogError("invalid syslog facility")


def formatter(fmt: str, unix: bool, hostname: str, tag: str, pid: int) -> Callable[[int, str], str]:
    """A function (priority, content) -> message, for `syslog-format` `fmt`."""
    if fmt not in FORMATS:
        raise SyslogError("Invalid syslog format")

    def stamp() -> str:  # Go's time.Stamp: "Jan _2 15:04:05"
        t = time.localtime()
        return time.strftime("%b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S", t)

    def rfc3339(micro: bool) -> str:
        now = time.time()
        t = time.localtime(now)
        off = t.tm_gmtoff or 0
        zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
        frac = f".{int(now % 1 * 1_000_000):06d}" if micro else ""
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + frac + zone

    if fmt == "rfc3164":
        return lambda p, msg: f"<{p}>{stamp()} {hostname} {tag}[{pid}]: {msg}"
    if fmt in ("rfc5424", "rfc5424micro"):
        micro = fmt == "rfc5424micro"
        return lambda p, msg: f"<{p}>1 {rfc3339(micro)} {hostname} {tag} {pid} {tag} - {msg}"
    if unix:  # Go's UnixFormatter: no hostname on a local socket
        return lambda p, msg: f"<{p}>{stamp()} {tag}[{pid}]: {msg}"
    return lambda p, msg: f"<{p}>{rfc3339(False)} {hostname} {tag}[{pid}]: {msg}"


class Writer:
    """The shim's syslog sink: one message a line of output."""

    def __init__(self, address: str, facility: str = "", fmt: str = "", tag: str = "") -> None:
        self._scheme, self._target = parse_address(address)
        self._facility = parse_facility(facility)
        self._format = formatter(fmt, self._scheme in ("", "unix", "unixgram"), socket.gethostname(), tag,
                                 os.getpid())
        self._partial: dict[str, bytes] = {}
        self._sock: socket.socket | None = None
        try:
            self._connect()
        except OSError as e:
            raise SyslogError(f"failed to initialize logging driver: {_describe(e, self._target)}") from None

    def _connect(self) -> None:
        self.close_socket()
        if self._scheme in ("", "unix", "unixgram"):
            assert isinstance(self._target, str)
            kinds = [socket.SOCK_DGRAM] if self._scheme == "unixgram" else (
                [socket.SOCK_STREAM] if self._scheme == "unix" and not _is_dgram(self._target)
                else [socket.SOCK_DGRAM])
            sock = socket.socket(socket.AF_UNIX, kinds[0])
        else:
            assert isinstance(self._target, tuple)
            host, port = self._target
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM if self._scheme == "udp" else socket.SOCK_STREAM)
        sock.settimeout(2.0)
        try:
            sock.connect(self._target)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stream = sock.type == socket.SOCK_STREAM

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial.pop(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if len(rest) >= MAX_MESSAGE:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[stream] = rest
        priority = self._facility * 8 + SEVERITY[stream]
        for line in lines:
            self._send(self._format(priority, line.decode("utf-8", "replace")).encode())

    def _send(self, message: bytes) -> None:
        for attempt in (0, 1):
            try:
                if self._sock is None:
                    self._connect()
                assert self._sock is not None
                if self._stream:
                    self._sock.sendall(message if message.endswith(b"\n") else message + b"\n")
                else:
                    self._sock.send(message)
                return
            except OSError:
                self.close_socket()
                if attempt:
                    return

    def flush(self) -> None:
        partial, self._partial = self._partial, {}
        for stream, rest in partial.items():
            if rest:
                self.write(stream, rest + b"\n")

    def close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self.flush()
        self.close_socket()


def _is_dgram(path: str) -> bool:
    """Whether the UNIX socket at `path` takes datagrams (as /dev/log usually does):
    Go's syslog tries a datagram socket first, then a stream one."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _describe(e: OSError, target: str | tuple[str, int]) -> str:
    where = target if isinstance(target, str) else f"{target[0]}:{target[1]}"
    return f"dial {where}: {e.strerror or e}"
