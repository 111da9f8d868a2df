"""Log drivers through the docker CLI: json-file rotation, local, none, syslog, and
`docker logs --details/--since/--until`."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

SEQ = "i=1; while [ $i -le {n} ]; do echo line-$i; i=$((i+1)); done"


def run_to_end(docker: Cli, name: str, *args: str) -> None:
    docker.ok("run", "-d", "--name", name, *args)
    assert docker.ok("wait", name) == "0\n"


def lines_of(text: str) -> list[int]:
    return [int(line.removeprefix("line-")) for line in text.splitlines()]


def test_json_file_rotation_keeps_the_newest_files(docker: Cli, new_name: Names) -> None:
    name = new_name("rot")
    run_to_end(docker, name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
               "busybox", "sh", "-c", SEQ.format(n=300))
    shown = lines_of(docker.ok("logs", name))
    assert shown[-1] == 300
    assert shown == list(range(shown[0], 301)), "the retained lines are in order, without gaps"
    assert 20 < len(shown) < 60  # three files of about 1 kB, ~70 bytes a line
    path = docker.ok("inspect", "-f", "{{.LogPath}}", name).strip()
    assert os.path.exists(path + ".1") and os.path.exists(path + ".2")
    assert not os.path.exists(path + ".3")
    assert os.path.getsize(path + ".1") < 1100
    config = json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.LogConfig}}", name))
    assert config == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    assert lines_of(docker.ok("logs", "--tail", "5", name)) == [296, 297, 298, 299, 300]


def test_json_file_compresses_rotated_files(docker: Cli, new_name: Names) -> None:
    name = new_name("gz")
    run_to_end(docker, name, "--log-opt", "max-size=2k", "--log-opt", "max-file=4",
               "--log-opt", "compress=true", "busybox", "sh", "-c", SEQ.format(n=300))
    path = docker.ok("inspect", "-f", "{{.LogPath}}", name).strip()
    assert os.path.exists(path + ".1.gz") and not os.path.exists(path + ".1")
    shown = lines_of(docker.ok("logs", name))
    assert shown == list(range(shown[0], 301)) and len(shown) > 60


def test_local_driver(docker: Cli, new_name: Names) -> None:
    name = new_name("local")
    run_to_end(docker, name, "--log-driver", "local", "--log-opt", "max-size=10m",
               "busybox", "sh", "-c", "echo out; echo err >&2")
    res = docker("logs", name)
    assert (res.stdout, res.stderr) == ("out\n", "err\n"), describe(res)
    config = json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.LogConfig}}", name))
    assert config == {"Type": "local", "Config": {"max-size": "10m"}}
    res = docker("run", "--rm", "--log-driver", "local", "--log-opt", "labels=a", "busybox", "true")
    assert res.returncode != 0
    assert "unknown log opt 'labels' for log driver local" in res.stderr


def test_none_driver_cannot_be_read(docker: Cli, new_name: Names) -> None:
    name = new_name("none")
    run_to_end(docker, name, "--log-driver", "none", "busybox", "echo", "hi")
    res = docker("logs", name)
    assert res.returncode != 0
    assert "configured logging driver does not support reading" in res.stderr, describe(res)


@pytest.mark.parametrize(("driver", "message"), [
    ("json-file", "unknown log opt 'bogus' for json-file log driver"),
    ("syslog", "unknown log opt 'bogus' for syslog log driver"),
])
def test_unknown_log_opt(docker: Cli, driver: str, message: str) -> None:
    res = docker("create", "--log-driver", driver, "--log-opt", "bogus=1", "busybox", "true")
    assert res.returncode != 0
    assert message in res.stderr, describe(res)


def test_unknown_driver_and_bad_values(docker: Cli) -> None:
    res = docker("create", "--log-driver", "nosuch", "busybox", "true")
    assert "logger: no log driver named 'nosuch' is registered" in res.stderr, describe(res)
    res = docker("create", "--log-opt", "max-file=0", "busybox", "true")
    assert "max-file cannot be less than 1" in res.stderr, describe(res)
    res = docker("create", "--log-opt", "compress=true", "busybox", "true")
    assert "compress cannot be true when max-file is less than 2" in res.stderr, describe(res)
    res = docker("create", "--log-driver", "syslog", "--log-opt", "syslog-facility=nope", "busybox", "true")
    assert "invalid syslog facility" in res.stderr, describe(res)


def test_details_shows_the_extra_attributes(docker: Cli, new_name: Names) -> None:
    name = new_name("details")
    run_to_end(docker, name, "--label", "team=db", "-e", "STAGE=prod", "--log-opt", "labels=team",
               "--log-opt", "env=STAGE", "busybox", "sh", "-c", "echo a; echo b")
    assert docker.ok("logs", "--details", name) == "STAGE=prod,team=db a\nSTAGE=prod,team=db b\n"
    plain = new_name("details-plain")
    run_to_end(docker, plain, "busybox", "echo", "x")
    assert docker.ok("logs", "--details", plain) == " x\n"


def test_since_and_until(docker: Cli, new_name: Names) -> None:
    name = new_name("since")
    run_to_end(docker, name, "busybox", "sh", "-c", "echo early; sleep 2; echo late")
    stamps = docker.ok("logs", "-t", name).splitlines()
    late = stamps[1].split()[0]
    early_secs = int(time.time()) - 1  # "late" was printed about now
    assert docker.ok("logs", "--since", late[:19] + "Z", name) == "late\n"
    assert docker.ok("logs", "--until", late[:19] + "Z", name) == "early\n"
    assert docker.ok("logs", "--since", str(early_secs), name) == "late\n"
    assert docker.ok("logs", "--since", "1h", name) == "early\nlate\n"


@pytest.mark.timeout(60)
def test_follow_continues_across_rotations(docker: Cli, new_name: Names) -> None:
    name = new_name("follow-rot")
    script = "sleep 1; " + SEQ.format(n=100).replace("echo line-$i;", "echo line-$i; usleep 20000;")
    docker.ok("run", "-d", "--name", name, "--log-opt", "max-size=500", "--log-opt", "max-file=50",
              "busybox", "sh", "-c", script)
    res = docker("logs", "-f", name, timeout=50)
    assert res.returncode == 0, describe(res)
    assert lines_of(res.stdout) == list(range(1, 101))


@pytest.fixture
def syslog_unix() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="berth-syslog-")
    path = os.path.join(folder, "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def receive(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(65536).decode() for _ in range(count)]


def test_syslog_to_a_unix_socket(docker: Cli, new_name: Names, syslog_unix: tuple[socket.socket, str]) -> None:
    sock, path = syslog_unix
    name = new_name("syslog")
    run_to_end(docker, name, "--log-driver", "syslog", "--log-opt", f"syslog-address=unix://{path}",
               "--log-opt", "tag=web-{{.Name}}", "busybox", "sh", "-c", "echo hello; echo oops >&2")
    got = receive(sock, 2)
    assert got[0].startswith("<30>") and got[0].endswith(f"web-{name}[{got[0].split('[')[1].split(']')[0]}]: hello")
    assert got[1].startswith("<27>") and got[1].endswith(": oops")
    # dual logging: docker logs reads the local cache, as Docker 20.10+ does
    res = docker("logs", name)
    assert (res.stdout, res.stderr) == ("hello\n", "oops\n"), describe(res)


def test_syslog_over_udp_rfc5424_without_cache(docker: Cli, new_name: Names) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    name = new_name("syslog-udp")
    try:
        run_to_end(docker, name, "--log-driver", "syslog", "--log-opt", f"syslog-address=udp://127.0.0.1:{port}",
                   "--log-opt", "syslog-format=rfc5424", "--log-opt", "syslog-facility=local3",
                   "--log-opt", "tag=udptag", "--log-opt", "cache-disabled=true", "busybox", "echo", "over udp")
        message = sock.recv(65536).decode()
    finally:
        sock.close()
    assert message.startswith(f"<{19 * 8 + 6}>1 "), message
    assert " udptag " in message and message.endswith(" udptag - over udp")
    res = docker("logs", name)
    assert "configured logging driver does not support reading" in res.stderr, describe(res)


def test_syslog_address_must_exist(docker: Cli) -> None:
    res = docker("create", "--log-driver", "syslog", "--log-opt", "syslog-address=unix:///nonexistent/sock",
                 "busybox", "true")
    assert res.returncode != 0
    assert "no such file or directory" in res.stderr, describe(res)
