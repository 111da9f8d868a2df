"""What `berth compose ps/ls/logs/top/images/events/port` print, from records, against
the text Compose v2 2.40.3 printed for the same containers (recorded from the real
binary against berthd: a project with web (two published ports), two worker replicas,
an exited one-shot and a tty service)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest

from berth.cli.compose.view import (
    PsRow,
    combined_status,
    event_line,
    images_table,
    ls_output,
    ls_rows,
    parse_private_port,
    ps_output,
    top_table,
)
from berth.cli.context import CliExit
from berth.client.engine import STDERR, STDOUT, encode_frame
from berth.compose.engine.logs import (
    LineSplitter,
    LogFollower,
    LogPrinter,
    container_log_name,
)
from berth.compose.engine.observed import ProjectContainer

NOW = 1_796_677_387.0  # 2026-12-07 21:03:07 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _container(service: str, number: int, *, state: str = "running", status: str = "Up 2 seconds",
               command: str = "", ports: list[dict[str, object]] | None = None,
               labels: dict[str, str] | None = None) -> ProjectContainer:
    name = f"p1-{service}-{number}"
    return ProjectContainer(
        id=f"{number:02d}{service:a<10}" + "0" * 52, name=name, service=service, number=number,
        state=state, status=status, image="busybox:latest", command=command, created=int(NOW) - 3,
        labels=labels if labels is not None else {"com.docker.compose.project": "p1",
                                                  "com.docker.compose.service": service,
                                                  "com.docker.compose.container-number": str(number)},
        ports=ports or [], networks={"p1_default": {}})


WEB_PORTS: list[dict[str, object]] = [
    {"IP": "127.0.0.1", "PrivatePort": 81, "PublicPort": 18081, "Type": "tcp"},
    {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 51467, "Type": "tcp"},
]


def _project() -> list[ProjectContainer]:
    return [
        _container("once", 1, state="exited", status="Exited (3) 2 seconds ago",
                   command="sh -c 'echo done; exit 3'"),
        _container("term", 1, command="sh -c 'echo tty hello; sleep 1000'"),
        _container("web", 1, command="sh -c 'echo web starting; echo err line >&2; exec httpd -f -p 80'",
                   ports=WEB_PORTS),
        _container("worker", 1, command="sh -c 'i=0; while true; do i=$((i+1)); echo working $i; sleep 1; done'"),
        _container("worker", 2, command="sh -c 'i=0; while true; do i=$((i+1)); echo working $i; sleep 1; done'"),
    ]


# -- ps ----------------------------------------------------------------------------------------

PS_A = "".join(line + "\n" for line in (
    'NAME          IMAGE            COMMAND                  SERVICE   CREATED         STATUS                     PORTS',
    'p1-once-1     busybox:latest   "sh -c \'echo done; e…"   once      3 seconds ago   Exited (3) 2 seconds ago   ',
    'p1-term-1     busybox:latest   "sh -c \'echo tty hel…"   term      3 seconds ago   Up 2 seconds               ',
    'p1-web-1      busybox:latest   "sh -c \'echo web sta…"   web       3 seconds ago   Up 2 seconds               127.0.0.1:51467->80/tcp, 127.0.0.1:18081->81/tcp',
    'p1-worker-1   busybox:latest   "sh -c \'i=0; while t…"   worker    3 seconds ago   Up 2 seconds               ',
    'p1-worker-2   busybox:latest   "sh -c \'i=0; while t…"   worker    3 seconds ago   Up 2 seconds               ',
))


def test_ps_table_is_compose_v2s() -> None:
    rows = [PsRow(c, now=NOW) for c in _project()]
    assert ps_output(rows, "table") == PS_A
    assert ps_output(rows, "") == PS_A


def test_ps_table_of_nothing_is_the_header() -> None:
    assert ps_output([], "table") == "NAME      IMAGE     COMMAND   SERVICE   CREATED   STATUS    PORTS\n"


def test_ps_json_is_one_object_per_line_as_compose_v2_prints_it() -> None:
    web = _container("web", 1, command="sh -c 'echo web starting; echo err line >&2; exec httpd -f -p 80'",
                     ports=WEB_PORTS, labels={"com.docker.compose.service": "web"})
    web.id = "8537cea6548aefd14d491c747590c1137098ae797f38c4f54dbb149e587e409a"
    once = _container("once", 1, state="exited", status="Exited (3) 2 seconds ago",
                      labels={"com.docker.compose.service": "once"})
    out = ps_output([PsRow(web, now=NOW), PsRow(once, now=NOW)], "json")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        '{"Command":"\\"sh -c \'echo web sta…\\"","CreatedAt":"2026-12-07 21:03:04 +0000 UTC",'
        '"ExitCode":0,"Health":"","ID":"8537cea6548a","Image":"busybox:latest",'
        '"Labels":"com.docker.compose.service=web","LocalVolumes":"0","Mounts":"","Name":"p1-web-1",'
        '"Names":"p1-web-1","Networks":"p1_default",'
        '"Ports":"127.0.0.1:51467-\\u003e80/tcp, 127.0.0.1:18081-\\u003e81/tcp","Project":"",'
        '"Publishers":[{"URL":"127.0.0.1","TargetPort":80,"PublishedPort":51467,"Protocol":"tcp"},'
        '{"URL":"127.0.0.1","TargetPort":81,"PublishedPort":18081,"Protocol":"tcp"}],'
        '"RunningFor":"3 seconds ago","Service":"web","Size":"0B","State":"running","Status":"Up 2 seconds"}')
    record = json.loads(lines[1])
    assert record["ExitCode"] == 3 and record["Publishers"] == [] and record["Command"] == '""'


def test_ps_templates_and_no_trunc() -> None:
    rows = [PsRow(c, trunc=False, now=NOW) for c in _project()[:1]]
    assert ps_output(rows, "{{.Name}} {{.ExitCode}} {{.State}}") == "p1-once-1 3 exited\n"
    assert ps_output(rows, "{{.Command}}") == "\"sh -c 'echo done; exit 3'\"\n"
    assert ps_output(rows, "table {{.Name}}\t{{.Service}}") == "NAME        SERVICE\np1-once-1   once\n"


def test_ps_health_comes_from_the_status() -> None:
    healthy = _container("web", 1, status="Up 5 seconds (healthy)")
    starting = _container("web", 2, status="Up 1 second (health: starting)")
    assert PsRow(healthy).Health() == "healthy"
    assert PsRow(starting).Health() == "starting"
    assert PsRow(_container("web", 3)).Health() == ""


def test_ps_raw_format() -> None:
    rows = [PsRow(_container("term", 1, labels={"a": "b"}), now=NOW)]
    assert ps_output(rows, "raw") == (
        "container_id: 01termaaaaaa\nimage: busybox:latest\ncommand: \"\"\n"
        "created_at: 2026-12-07 21:03:04 +0000 UTC\nstate: running\nstatus: Up 2 seconds\n"
        "names: p1-term-1\nlabels: a=b\nports:\n\n")


def test_ps_bad_template_is_an_error() -> None:
    with pytest.raises(CliExit) as exc:
        ps_output([PsRow(_container("web", 1))], "{{.Name")
    assert "template parsing error" in exc.value.message


# -- ls ----------------------------------------------------------------------------------------


def test_ls_status_counts_each_state_in_alphabetical_order() -> None:
    assert combined_status(["running", "exited", "running", "running", "running"]) == "exited(1), running(4)"
    assert combined_status(["running", "running"]) == "running(2)"
    assert combined_status([]) == ""


def test_ls_table_and_json_are_compose_v2s() -> None:
    rows = ls_rows({"p1": [_with_files(c) for c in _project()]})
    assert ls_output(rows, "table") == (
        "NAME                STATUS                  CONFIG FILES\n"
        "p1                  exited(1), running(4)   /tmp/cv/p1/compose.yaml\n")
    assert ls_output(rows, "json") == (
        '[{"Name":"p1","Status":"exited(1), running(4)","ConfigFiles":"/tmp/cv/p1/compose.yaml"}]\n')
    assert ls_output([], "json") == "[]\n"
    assert ls_output([], "table") == "NAME                STATUS              CONFIG FILES\n"
    with pytest.raises(CliExit) as exc:
        ls_output(rows, "{{.Name}}")
    assert exc.value.message == 'format value "{{.Name}}" could not be parsed: parsing failed'


def _with_files(c: ProjectContainer) -> ProjectContainer:
    c.labels["com.docker.compose.project.config_files"] = "/tmp/cv/p1/compose.yaml"
    return c


def test_ls_config_files_without_the_label_are_na() -> None:
    rows = ls_rows({"p": [_container("web", 1)]})
    assert rows == [{"Name": "p", "Status": "running(1)", "ConfigFiles": "N/A"}]


# -- logs --------------------------------------------------------------------------------------


def test_log_names_drop_the_project_unless_the_service_names_its_container() -> None:
    assert container_log_name("p1-web-1", "p1", "web", "1") == "web-1"
    assert container_log_name("my-web", "p1", "web", "1") == "my-web"
    assert container_log_name("p1-web-run-0123", "p1", "web", "") == "p1-web-run-0123"


def test_log_prefixes_are_padded_to_the_longest_name_and_colored_in_turn() -> None:
    out = io.BytesIO()
    printer = LogPrinter(out, color=True)
    for name in ("web-1", "worker-2", "worker-1", "term-1", "once-1"):
        printer.register(name)
    printer.log("web-1", b"err line")
    printer.log("worker-2", b"working 340")
    printer.log("term-1", b"tty hello\r")
    printer.log("once-1", b"done")
    # what Compose v2 printed with --ansi always for the same containers in this order
    assert out.getvalue() == (
        b"\x1b[36mweb-1     | \x1b[0merr line\n"
        b"\x1b[33mworker-2  | \x1b[0mworking 340\n"
        b"\x1b[35mterm-1    | \x1b[0mtty hello\r\n"
        b"\x1b[34monce-1    | \x1b[0mdone\n")


def test_log_prefix_widens_when_a_longer_name_first_logs() -> None:
    out = io.BytesIO()
    printer = LogPrinter(out, color=False)
    printer.log("once-1", b"done")
    printer.log("web-1", b"web starting")
    printer.log("worker-1", b"working 1")
    printer.log("web-1", b"err line")
    assert out.getvalue().decode().splitlines() == [
        "once-1  | done", "web-1   | web starting", "worker-1  | working 1", "web-1     | err line"]


def test_log_without_prefix_or_color_and_with_status_lines() -> None:
    out = io.BytesIO()
    plain = LogPrinter(out, color=False, prefix=False)
    plain.log("web-1", b"hello")
    assert out.getvalue() == b"hello\n"
    out = io.BytesIO()
    colored = LogPrinter(out, color=True)
    colored.register("web-1")
    colored.status("web-1", "exited with code 0")
    assert out.getvalue() == b"\x1b[36m\x1b[2K\rweb-1 exited with code 0\n\x1b[0m"


def test_a_named_hook_shares_its_containers_color() -> None:
    out = io.BytesIO()
    printer = LogPrinter(out, color=True)
    printer.register("db-1")
    printer.register("web-1")
    printer.log("web-1 post_start", b"hook")
    assert out.getvalue() == b"\x1b[33mweb-1 post_start  | \x1b[0mhook\n"


def test_line_splitter_hands_over_whole_lines_and_the_rest_at_close() -> None:
    lines: list[bytes] = []
    split = LineSplitter(lines.append)
    split.feed(b"one\ntw")
    split.feed(b"o\nthree")
    assert lines == [b"one", b"two"]
    split.close()
    assert lines == [b"one", b"two", b"three"]


def test_frames_are_demultiplexed_unless_the_container_has_a_tty() -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    stream = encode_frame(STDOUT, b"out 1\nout") + encode_frame(STDERR, b"err 1\n") + encode_frame(STDOUT, b" 2\n")
    LogFollower._pump([stream[:5], stream[5:]], False, LineSplitter(out.append), LineSplitter(err.append))
    assert out == [b"out 1", b"out 2"] and err == [b"err 1"]
    raw: list[bytes] = []
    splitter = LineSplitter(raw.append)
    LogFollower._pump([b"tty hello\r\n"], True, splitter, splitter)
    assert raw == [b"tty hello\r"]


# -- top, port, images, events -----------------------------------------------------------------


def test_top_table_is_compose_v2s() -> None:
    titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    table = top_table([
        ("term", "1", titles, [["root", "8655", "8642", "0", "21:03", "?", "00:00:00", "sleep 1000"]]),
        ("web", "1", titles, [["root", "8649", "8645", "0", "21:03", "?", "00:00:00", "httpd -f -p 80"]]),
    ])
    assert table == (
        "SERVICE  #   UID   PID   PPID  C   STIME  TTY  TIME      CMD\n"
        "term     1   root  8655  8642  0   21:03  ?    00:00:00  sleep 1000\n"
        "web      1   root  8649  8645  0   21:03  ?    00:00:00  httpd -f -p 80\n")
    assert top_table([]) == ""


def test_top_keeps_cmd_last_when_columns_differ() -> None:
    table = top_table([("a", "1", ["PID", "CMD"], [["1", "sh"]]),
                       ("b", "1", ["PID", "CMD", "USER"], [["2", "top", "root"]])])
    assert table.splitlines()[0].split() == ["SERVICE", "#", "PID", "USER", "CMD"]
    assert table.splitlines()[1].split() == ["a", "1", "1", "-", "sh"]


def test_port_argument_errors_are_gos() -> None:
    assert parse_private_port("80") == 80
    with pytest.raises(CliExit) as exc:
        parse_private_port("abc")
    assert exc.value.message == 'strconv.ParseUint: parsing "abc": invalid syntax'
    with pytest.raises(CliExit) as exc:
        parse_private_port("70000")
    assert exc.value.message == 'strconv.ParseUint: parsing "70000": value out of range'


def test_images_table_is_compose_v2s() -> None:
    row = {"ID": "sha256:9ffe914edd638911de35df58856e3fa0b2cabad23fe2e5de19eec51619a1232a",
           "ContainerName": "p1-once-1", "Repository": "busybox", "Tag": "latest",
           "Platform": "linux/amd64", "Size": 1983054, "LastTagTime": "0001-01-01T00:00:00Z"}
    assert images_table([row], NOW) == (
        "CONTAINER           REPOSITORY          TAG                 PLATFORM            "
        "IMAGE ID            SIZE                CREATED\n"
        "p1-once-1           busybox             latest              linux/amd64         "
        "9ffe914edd63        1.98MB              292 years ago\n")


EVENT = {
    "Type": "container", "Action": "die", "timeNano": 1796677464276778642, "time": 1796677464,
    "Actor": {"ID": "87dc7e8cfb48d4ab22687f614918ad75888f35f0342d2d8697d1b65fbd88cacc",
              "Attributes": {"name": "p1-once-1", "image": "busybox:latest", "exitCode": "3",
                             "execDuration": "0", "com.docker.compose.service": "once",
                             "com.docker.compose.project": "p1", "com.docker.compose.oneoff": "False"}},
}


def test_event_lines_are_compose_v2s() -> None:
    assert event_line(EVENT, [], False) == (
        "2026-12-07 21:04:24.276778 container die 87dc7e8cfb48d4ab22687f614918ad75888f35f0342d2d8697d1b65fbd88cacc"
        " (execDuration=0, exitCode=3, image=busybox:latest, name=p1-once-1)\n\n")
    assert event_line(EVENT, ["once"], True) == (
        '{"action":"die","attributes":{"execDuration":"0","exitCode":"3","image":"busybox:latest",'
        '"name":"p1-once-1"},"id":"87dc7e8cfb48d4ab22687f614918ad75888f35f0342d2d8697d1b65fbd88cacc",'
        '"service":"once","time":"2026-12-07T21:04:24.276778642Z","type":"container"}\n')


def test_events_of_other_services_one_offs_and_other_types_are_not_shown() -> None:
    assert event_line(EVENT, ["web"], False) is None
    oneoff = json.loads(json.dumps(EVENT))
    oneoff["Actor"]["Attributes"]["com.docker.compose.oneoff"] = "True"
    assert event_line(oneoff, [], False) is None
    assert event_line({**EVENT, "Type": "network"}, [], False) is None
