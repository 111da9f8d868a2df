"""`berth compose` ps, logs, top, port, images, events, ls, cp and exec print what Compose
v2 2.40.3 prints, run side by side on the same project on a private berthd (issue 17):
once with the project brought up by Compose v2, once by `berth compose up`.

Only what differs between two runs of Compose v2 itself is set aside: durations that
tick between the two commands, the order of Go map iterations (labels, event
attributes, the images list) and the order in which concurrent log streams interleave.
Each module run brings its project down; the private daemon is stopped by PID.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import compose
from helpers.cli import Cli, describe
from helpers.daemon import BERTH, BerthDaemon

PROJECT = """\
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo web starting; echo err line >&2; exec httpd -f -p 80"]
    ports:
      - "127.0.0.1::80"
    environment:
      GREETING: hello
  worker:
    image: busybox:latest
    command: ["sh", "-c", "for i in 1 2 3; do echo working $$i; done; exec sleep 1000"]
    deploy:
      replicas: 2
  once:
    image: busybox:latest
    command: ["sh", "-c", "echo done; exit 3"]
  term:
    image: busybox:latest
    tty: true
    command: ["sh", "-c", "echo tty hello; exec sleep 1000"]
"""

_DURATION = re.compile(r"(Less than a second|About an? \w+|\d+ \w+) ago|Up (Less than a second|About an? \w+|\d+ \w+)")


@dataclass
class View:
    v2: compose.Compose
    berth: compose.Compose
    docker: Cli
    name: str
    dir: Path
    since: int = 0  # a window of whole seconds around `up` and the settling of the project
    until: int = 0

    def both(self, *args: str) -> tuple[Any, Any]:
        return self.v2(*args), self.berth(*args)


def _same(view: View, *args: str, stdout_only: bool = False) -> tuple[str, str]:
    """Both clients run `args`: same exit status, same stderr (unless stdout_only)."""
    want, got = view.both(*args)
    assert got.returncode == want.returncode, f"{args}:\nv2: {describe(want)}\nberth: {describe(got)}"
    if not stdout_only:
        assert got.stderr == want.stderr, f"{args}:\nv2: {describe(want)}\nberth: {describe(got)}"
    return want.stdout, got.stdout


def _untimed(text: str) -> list[list[str]]:
    """A table's cells, durations set aside (they tick between the two commands)."""
    text = _DURATION.sub("T", text)
    return [re.split(r"\s{2,}", line.rstrip()) for line in text.splitlines()]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vdaemon(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
            compose_bin: Path) -> Iterator[Cli]:
    with compose.compose_daemon(berth_root, berthd, busybox_tar, compose_bin, "cvw") as (_, docker):
        yield docker


@pytest.fixture(scope="module", params=["up-by-compose-v2", "up-by-berth"])
def view(request: pytest.FixtureRequest, vdaemon: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[View]:
    docker = vdaemon
    name = f"cv{uuid.uuid4().hex[:8]}"
    directory = tmp_path_factory.mktemp("cview") / name
    directory.mkdir()
    (directory / "compose.yaml").write_text(PROJECT)
    v = View(compose.v2(directory, name, docker.env),
             compose.Compose([str(BERTH), "compose"], directory, name, docker.env), docker, name, directory)
    maker = v.v2 if request.param == "up-by-compose-v2" else v.berth
    try:
        v.since = int(time.time())
        maker.ok("up", "-d")
        _settle(v)
        # the first execs in a container leave a process forked by berthd's shim zygote
        # that lives on (as long as the daemon): run them now, so that the per-test
        # process check does not count it as some test's leftover
        for service, index in (("web", 1), ("term", 1), ("worker", 1), ("worker", 2)) * 2:
            v.v2.ok("exec", "-T", "--index", str(index), service, "true")
        v.until = int(time.time()) + 1
        yield v
    finally:
        maker("down", "-v", "-t", "1")


def _settle(v: View) -> None:
    """Until `once` has exited and every container has printed what it prints."""
    deadline = time.monotonic() + 20
    while True:
        states = v.docker.ok("ps", "-a", "--filter", f"label=com.docker.compose.project={v.name}",
                             "--format", "{{.Names}} {{.State}}").split("\n")
        logs = v.v2.ok("logs", "--no-color")
        if (f"{v.name}-once-1 exited" in states and logs.count("working 3") == 2
                and "tty hello" in logs and "err line" in logs):
            return
        assert time.monotonic() < deadline, f"the project did not settle:\n{states}\n{logs}"
        time.sleep(0.2)


# -- ps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    (), ("-a",), ("--status", "exited"), ("--filter", "status=running"), ("web", "worker"), ("--no-trunc", "-a"),
    ("-a", "--format", "table {{.Name}}\t{{.Service}}\t{{.State}}\t{{.ExitCode}}\t{{.Ports}}"),
])
def test_ps_table(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "ps", *args)
    assert _untimed(got) == _untimed(want)


@pytest.mark.parametrize("args", [("-q",), ("-aq",), ("--services",), ("-a", "--services"),
                                  ("-a", "--format", "{{.Name}} {{.Service}} {{.Project}} {{.Publishers}}")])
def test_ps_lists(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "ps", *args)
    assert got == want


def test_ps_json(view: View) -> None:
    want, got = _same(view, "ps", "-a", "--format", "json")

    def records(text: str) -> list[dict[str, Any]]:
        out = []
        for line in text.splitlines():
            record = json.loads(line)
            record["Labels"] = sorted(record["Labels"].split(","))
            for key in ("RunningFor", "Status"):
                record[key] = _DURATION.sub("T", record[key])
            out.append(record)
        return out

    assert records(got) == records(want)
    assert len(records(got)) == 5


@pytest.mark.parametrize("args", [("nosuch",), ("--filter", "x"), ("--filter", "a=b")])
def test_ps_errors(view: View, args: tuple[str, ...]) -> None:
    _same(view, "ps", *args)


# -- logs ----------------------------------------------------------------------------------


def _by_container(text: str) -> dict[str, list[str]]:
    """Each container's lines in order (streams interleave differently from run to run;
    the padding depends on which container spoke first in compose v2)."""
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(" | ")
        assert sep, line
        lines.setdefault(name.strip(), []).append(rest)
    return lines


@pytest.mark.parametrize("args", [(), ("--tail", "1"), ("-t",), ("worker", "once"), ("--index", "2", "worker")])
def test_logs(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "logs", "--no-color", *args)
    assert _by_container(got) == _by_container(want)
    names = [line.partition(" | ")[0] for line in got.splitlines()]
    assert len({len(n) for n in names}) == 1, "every prefix is padded to the longest name"


def test_logs_without_prefix_and_in_color(view: View) -> None:
    want, got = _same(view, "logs", "--no-log-prefix", "once")
    assert got == want == "done\n"
    want, got = _same(view, "--ansi", "always", "logs", "web", "term")
    color = re.compile(r"^\x1b\[([\d;]+)m(\S+) +\| \x1b\[0m(.*)$")

    def parsed(text: str) -> tuple[set[str], dict[str, set[str]]]:
        codes: set[str] = set()
        lines: dict[str, set[str]] = {}
        for line in text.splitlines():
            match = color.match(line)
            assert match, repr(line)
            codes.add(match.group(1))
            lines.setdefault(match.group(2), set()).add(match.group(3))
        return codes, lines

    assert parsed(got) == parsed(want)
    assert parsed(got)[0] == {"36", "33"}  # compose v2's first two colors, one per container


def test_logs_follow_ends_with_the_containers_streams(view: View) -> None:
    """Unlike compose v2, which goes on watching for new containers, `berth compose logs
    -f` ends when the streams of the containers it follows have ended."""
    assert view.berth.ok("logs", "-f", "--no-color", "once", timeout=30) == "once-1  | done\n"


@pytest.mark.parametrize("args", [("nosuch",), ("--index", "3", "worker"), ("--index", "1", "web", "worker")])
def test_logs_errors(view: View, args: tuple[str, ...]) -> None:
    _same(view, "logs", *args)


# -- top, port, images, ls -----------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("worker",), ("once",), ("nosuch",)])
def test_top(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "top", *args)
    assert got == want


@pytest.mark.parametrize("args", [
    ("web", "80"), ("--protocol", "UDP", "web", "80"), ("web", "81"), ("--index", "2", "worker", "80"),
    ("--index", "9", "worker", "80"), ("once", "80"), ("web", "abc"), ("web", "70000"), ("web",),
])
def test_port(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "port", *args)
    assert got == want


@pytest.mark.parametrize("args", [(), ("worker",), ("-q",), ("--format", "yaml")])
def test_images(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "images", *args)
    if "-q" in args:
        assert sorted(got.splitlines()) == sorted(want.splitlines())
    else:
        assert _untimed(got) == _untimed(want)


def test_images_json(view: View) -> None:
    want, got = _same(view, "images", "--format", "json")

    def records(text: str) -> list[dict[str, Any]]:
        assert text.endswith("]\n\n")
        return sorted(json.loads(text), key=lambda r: r["ContainerName"])

    assert records(got) == records(want)


def test_ls(view: View) -> None:
    only = ("--filter", f"name=^{view.name}$")
    for args in [("-a", *only), (*only,), ("-a", "--format", "json", *only), ("-aq", *only)]:
        want, got = _same(view, "ls", *args)
        assert got == want, args
    assert "exited(1), running(4)" in got or view.name in got
    for args in [("--filter", "foo"), ("--filter", "foo=bar"), ("--format", "{{.Name}}")]:
        _same(view, "ls", *args)


# -- events --------------------------------------------------------------------------------


def test_events_between_two_times(view: View) -> None:
    while time.time() < view.until + 0.2:  # every event up to `until` is in the past
        time.sleep(0.1)
    window = ("--since", str(view.since), "--until", str(view.until))

    def texts(out: str) -> list[str]:
        lines = [line for line in out.split("\n\n") if line]
        return [re.sub(r"\((.*)\)$", lambda m: "(" + ", ".join(sorted(m.group(1).split(", "))) + ")", line)
                for line in lines]

    # compose v2 ends when the engine ends the stream, with "EOF" and status 1
    want, got = _same(view, "events", *window)
    assert texts(got) == texts(want)
    assert any(" container die " in line and "exitCode=3" in line for line in texts(got))
    want, got = _same(view, "events", "--json", *window, "worker")
    assert [json.loads(line) for line in got.splitlines()] == [json.loads(line) for line in want.splitlines()]
    assert {json.loads(line)["action"] for line in got.splitlines()} >= {"create", "start", "exec_die"}


# -- cp ------------------------------------------------------------------------------------


def test_cp_both_ways(view: View, tmp_path: Path) -> None:
    local = tmp_path / "note.txt"
    local.write_text("hi from the host\n")
    for client, tag in ((view.v2, "v2"), (view.berth, "berth")):
        res = client("cp", str(local), f"worker:/tmp/{tag}.txt")
        assert res.returncode == 0, describe(res)
        for i in (1, 2):
            assert client.ok("exec", "-T", "--index", str(i), "worker", "cat", f"/tmp/{tag}.txt") == "hi from the host\n"
        back = tmp_path / f"back-{tag}.txt"
        res = client("cp", "--index", "2", f"worker:/tmp/{tag}.txt", str(back))
        assert res.returncode == 0, describe(res)
        assert back.read_text() == "hi from the host\n"
    want, got = view.both("cp", str(local), "worker:/tmp/")
    # a line per container and step (they copy in parallel in compose v2); berth's plain
    # progress writer puts two spaces after the container's name where compose v2 puts one
    assert sorted(" ".join(line.split()) for line in got.stderr.splitlines()) == \
        sorted(" ".join(line.split()) for line in want.stderr.splitlines())
    assert got.returncode == want.returncode == 0


@pytest.mark.parametrize("args", [("nosuch:/x", "/tmp/"), ("a:/x", "b:/y"), ("/tmp/x", "/tmp/y"), ("web:/tmp/a",)])
def test_cp_errors(view: View, args: tuple[str, ...]) -> None:
    want, got = view.both("cp", *args)
    assert got.returncode == want.returncode == 1
    assert got.stderr.replace("berth", "docker") == want.stderr, f"v2: {describe(want)}\nberth: {describe(got)}"


# -- exec ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("-T", "web", "sh", "-c", "echo $GREETING; exit 7"),
    ("-T", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "worker", "sh", "-c", "echo $FOO $(pwd) $(id -u)"),
    ("-T", "--index", "2", "worker", "sh", "-c", "hostname"),
    ("web", "sh", "-c", "[ -t 1 ] && echo tty || echo no tty"),
    ("-d", "web", "true"), ("nosuch", "true"), ("web",), ("--index", "4", "worker", "true"),
])
def test_exec(view: View, args: tuple[str, ...]) -> None:
    want, got = _same(view, "exec", *args)
    assert got == want


# -- the engine's follower, as `up` uses it -------------------------------------------------


def test_follower_attaches_before_start_and_reports_the_end(view: View) -> None:
    """A container followed through its attach stream from before it starts: every line,
    stdout and stderr apart, then the end of its stream."""
    import io
    import threading

    from berth.client.engine import Client
    from berth.compose.engine.logs import LogFollower, LogPrinter, LogSource

    cid = view.docker.ok("create", "busybox:latest", "sh", "-c", "echo one; echo two >&2; echo three").strip()
    try:
        out, err = io.BytesIO(), io.BytesIO()
        printer = LogPrinter(out, err, color=True)
        ended: list[tuple[str, object]] = []
        done = threading.Event()

        def on_end(source: LogSource, error: object) -> None:
            ended.append((source.name, error))
            done.set()

        client = Client(view.docker.env["DOCKER_HOST"])
        follower = LogFollower(client, printer, on_end=on_end)
        follower.add(LogSource(cid, "job-1", tty=False), attach=True)
        time.sleep(0.5)  # the attach is made before the start, as up makes it; not asserted
        view.docker.ok("start", cid)
        follower.wait()
        assert done.is_set() and ended == [("job-1", None)]
        assert out.getvalue() == b"\x1b[36mjob-1  | \x1b[0mone\n\x1b[36mjob-1  | \x1b[0mthree\n"
        assert err.getvalue() == b"\x1b[36mjob-1  | \x1b[0mtwo\n"
    finally:
        view.docker("rm", "-f", cid)
