"""The syslog driver's formats and sink, and berthd's checks of log options."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from berth.errors import InvalidParameter
from berth.logs import drivers, syslog


def test_formats() -> None:
    f = syslog.formatter("rfc5424", False, "host", "web", 42)
    assert f(30, "hi").endswith(" host web 42 web - hi") and f(30, "hi").startswith("<30>1 ")
    f = syslog.formatter("rfc3164", False, "host", "web", 42)
    assert f(27, "hi").startswith("<27>") and f(27, "hi").endswith(" host web[42]: hi")
    assert syslog.formatter("", True, "host", "web", 42)(30, "x").endswith(" web[42]: x")
    with pytest.raises(syslog.SyslogError, match="Invalid syslog format"):
        syslog.formatter("rfc9999", False, "", "", 0)


def test_facilities() -> None:
    assert syslog.parse_facility("") == 3
    assert syslog.parse_facility("local7") == 23
    assert syslog.parse_facility("4") == 4
    with pytest.raises(syslog.SyslogError, match="invalid syslog facility"):
        syslog.parse_facility("nope")


def test_writer_sends_one_datagram_a_line(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        writer = syslog.Writer(f"unixgram://{path}", "user", "rfc3164", "t")
        writer.write("stdout", b"a\nb")
        writer.write("stderr", b"c\n")
        writer.close()
        got = [server.recv(4096).decode() for _ in range(3)]
    finally:
        server.close()
    assert got[0].startswith("<14>") and got[0].endswith("]: a")
    assert got[1].startswith("<11>") and got[1].endswith("]: c")
    assert got[2].endswith("]: b")


def test_validation_messages() -> None:
    with pytest.raises(InvalidParameter, match="unknown log opt 'x' for json-file log driver"):
        drivers.validate("json-file", {"x": "1"})
    with pytest.raises(InvalidParameter, match="no log driver named 'gelfish' is registered"):
        drivers.validate("gelfish", {})
    with pytest.raises(InvalidParameter, match="logging mode not supported: fast"):
        drivers.validate("json-file", {"mode": "fast"})
    with pytest.raises(InvalidParameter, match="unsupported scheme: 'http'"):
        drivers.validate("syslog", {"syslog-address": "http://x"})
    drivers.validate("json-file", {"max-size": "10m", "max-file": "3", "compress": "true", "mode": "non-blocking",
                                   "max-buffer-size": "4m"})
    drivers.validate("syslog", {"syslog-address": "udp://127.0.0.1", "cache-disabled": "true"})
    drivers.validate("none", {})


def test_tag_and_details() -> None:
    info = drivers.ContainerInfo("ab" * 32, "/web", "sha256:" + "cd" * 32, "busybox", {"team": "db", "x": "y"},
                                 ["STAGE=prod sys", "HOME=/"])
    assert drivers.expand_tag("", info) == "ab" * 6
    assert drivers.expand_tag("{{.Name}}/{{.ImageName}}/{{.ImageID}}", info) == "web/busybox/" + "cd" * 6
    config = {"labels": "team,missing", "env": "STAGE"}
    assert drivers.details_prefix("json-file", config, info) == b"STAGE=prod+sys,team=db "
    assert drivers.details_prefix("local", {}, info) == b" "
