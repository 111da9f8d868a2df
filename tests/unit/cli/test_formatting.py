"""Durations, sizes, tables and list rows exactly as the docker CLI prints them."""

import pytest

from berth.cli.formatting import (
    ContainerContext,
    ImageContext,
    bytes_size,
    displayable_ports,
    ellipsis,
    go_quote,
    human_duration,
    human_size,
    image_rows,
    json_compact,
    json_indent,
    parse_rfc3339,
    render_rows,
    tabwrite,
    truncate_id,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (2, "2 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (89 * 60, "About an hour"),
        (90 * 60, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (731 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (4261550, "4.26MB"),
        (123456789, "123MB"),
        (7800000, "7.8MB"),
        (999999, "1e+03kB"),
        (1.5e12, "1.5TB"),
    ],
)
def test_human_size_three_digits(size: float, text: str) -> None:
    assert human_size(size, 3) == text


def test_human_size_default_precision_and_bytes_size() -> None:
    assert human_size(1234567) == "1.235MB"
    assert bytes_size(8238211072) == "7.672GiB"
    assert bytes_size(1024) == "1KiB"


@pytest.mark.parametrize(
    ("text", "width", "out"),
    [
        ("sh", 20, "sh"),
        ("sh -c echo this is a long one", 20, "sh -c echo this is …"),
        ("abc", 1, "a"),
        ("abc", 0, ""),
        ("日本語のテキスト", 6, "日本…"),
    ],
)
def test_ellipsis(text: str, width: int, out: str) -> None:
    assert ellipsis(text, width) == out


def test_go_quote() -> None:
    assert go_quote('echo "hi"\n') == '"echo \\"hi\\"\\n"'
    assert go_quote("é") == '"é"'
    assert go_quote("\x01") == '"\\x01"'


def test_truncate_id() -> None:
    assert truncate_id("sha256:" + "ab" * 32) == "abababababab"
    assert truncate_id("0123456789abcdef") == "0123456789ab"


def test_tabwriter_pads_blocks_like_go() -> None:
    text = "A\tBB\tC\nxxx\ty\tz\n"
    assert tabwrite(text, minwidth=0, padding=1) == "A   BB C\nxxx y  z\n"
    assert tabwrite("a\tb\n", minwidth=10, padding=3) == "a         b\n"
    # a line without tabs ends the column block
    assert tabwrite("aa\tb\nzzzzzz\nc\td\n", padding=1) == "aa b\nzzzzzz\nc d\n"
    # empty cells are padded too; the last cell never is
    assert tabwrite("x\t\ty\n\t\t\n", padding=1) == "x  y\n   \n"


def test_displayable_ports_groups_ranges() -> None:
    ports = [
        {"PrivatePort": 5000, "Type": "tcp"},
        {"PrivatePort": 5001, "Type": "tcp"},
        {"PrivatePort": 5002, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 9000, "PublicPort": 9000, "Type": "udp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
    ]
    assert displayable_ports(ports) == (
        "5000-5002/tcp, 127.0.0.1:9000->9000/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    )
    assert displayable_ports([]) == ""


def test_json_indent_keeps_tokens() -> None:
    raw = '[{"a":1,"b":{},"c":[],"d":"x\\"}{","e":[1,2],"f":1e3}]'
    assert json_indent(raw) == (
        '[\n    {\n        "a": 1,\n        "b": {},\n        "c": [],\n        "d": "x\\"}{",\n'
        '        "e": [\n            1,\n            2\n        ],\n        "f": 1e3\n    }\n]'
    )
    assert json_compact('[ {"a" : 1 , "b": " x "} ]') == '[{"a":1,"b":" x "}]'


def test_parse_rfc3339() -> None:
    assert parse_rfc3339("1970-01-01T00:01:00Z") == 60.0
    assert parse_rfc3339("1970-01-01T01:00:00.5+01:00") == 0.5
    assert parse_rfc3339("0001-01-01T00:00:00Z") is None
    assert parse_rfc3339("junk") is None


NOW = 1_700_000_000.0


def _container(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Id": "f" * 64,
        "Names": ["/web"],
        "Image": "docker.io/library/busybox:latest",
        "ImageID": "sha256:" + "a" * 64,
        "Command": "sleep 1000",
        "Created": NOW - 3,
        "Ports": [],
        "Labels": {"b": "2", "a": "1"},
        "State": "running",
        "Status": "Up 2 seconds",
    }
    base.update(kw)
    return base


def test_container_context_fields() -> None:
    row = ContainerContext(_container(), trunc=True, now=NOW)
    assert row.ID() == "ffffffffffff"
    assert row.Image() == "busybox:latest"
    assert row.Command() == '"sleep 1000"'
    assert row.RunningFor() == "3 seconds ago"
    assert row.Labels() == "a=1,b=2"
    assert row.Label("a") == "1"
    assert row.Names() == "web"
    full = ContainerContext(_container(), trunc=False, now=NOW)
    assert full.ID() == "f" * 64
    assert full.Image() == "docker.io/library/busybox:latest"
    by_id = ContainerContext(_container(Image="sha256:" + "a" * 64), trunc=True, now=NOW)
    assert by_id.Image() == "aaaaaaaaaaaa"


def test_default_ps_table() -> None:
    fmt = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    rows = [ContainerContext(_container(), trunc=True, now=NOW)]
    assert render_rows(fmt, rows, ContainerContext.HEADER) == (
        "CONTAINER ID   IMAGE            COMMAND        CREATED         STATUS         PORTS     NAMES\n"
        'ffffffffffff   busybox:latest   "sleep 1000"   3 seconds ago   Up 2 seconds             web\n'
    )


def test_table_header_with_label_and_functions() -> None:
    rows = [ContainerContext(_container(), trunc=True, now=NOW)]
    out = render_rows('table {{.Label "com.x_y"}}\t{{upper .Names}}', rows, ContainerContext.HEADER)
    assert out.splitlines() == ["x y       NAMES", "          WEB"]


def test_custom_format_has_no_header_and_json_format() -> None:
    rows = [ContainerContext(_container(), trunc=True, now=NOW)]
    assert render_rows("{{.ID}}: {{.Names}}", rows, ContainerContext.HEADER) == "ffffffffffff: web\n"
    assert render_rows("json", rows, ContainerContext.HEADER).startswith('{"Command":"\\"sleep 1000\\""')


def test_image_rows_expand_tags_and_dangling() -> None:
    images = [
        {"Id": "sha256:" + "c" * 64, "RepoTags": ["myimg:v1", "myimg:latest", "localhost:5000/x:1"],
         "RepoDigests": [], "Created": NOW - 7200, "Size": 4261550},
        {"Id": "sha256:" + "d" * 64, "RepoTags": [], "RepoDigests": [], "Created": NOW - 5, "Size": 999},
    ]
    rows = image_rows(images, trunc=True, show_digests=False, format_uses_digest=False)
    assert [(r.Repository(), r.Tag(), r.ID()) for r in rows] == [
        ("myimg", "v1", "cccccccccccc"),
        ("myimg", "latest", "cccccccccccc"),
        ("localhost:5000/x", "1", "cccccccccccc"),
        ("<none>", "<none>", "dddddddddddd"),
    ]
    for row in rows:
        row.now = NOW
    fmt = (
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
        "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
    )
    assert render_rows(fmt, rows[:1], ImageContext.HEADER) == (
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n"
        "myimg        v1        cccccccccccc   2 hours ago   4.26MB\n"
    )
