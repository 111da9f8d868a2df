"""The Go text/template engine behind every --format flag."""

from typing import Any

import pytest

from berth.template.gotemplate import (
    NO_VALUE,
    GoStruct,
    NilList,
    NilMap,
    Template,
    TemplateError,
    go_float,
    go_json,
    go_sprintf,
    go_str,
    render,
)

DATA: dict[str, Any] = {
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {
        "Labels": {"b": "2", "a": "1"},
        "Env": ["A=1", "B=2"],
        "Cmd": None,
    },
    "Count": 0,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.Name}}", "/web"),
        ("{{.State.Status}}", "running"),
        ("{{.State.Pid}}", "42"),
        ("{{.State.Running}}", "true"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Missing.Deeper}}", "<no value>"),
        ("{{.Config.Labels.a}}", "1"),
        ('{{index .Config.Labels "b"}}', "2"),
        ('{{index .Config.Labels "zz"}}', ""),
        ("{{index .Config.Env 1}}", "B=2"),
        ("{{json .Config.Labels}}", '{"a":"1","b":"2"}'),
        ("{{json .Config.Env}}", '["A=1","B=2"]'),
        ("{{json .Config.Cmd}}", "null"),
        ("{{.Config.Env | json}}", '["A=1","B=2"]'),
        ("{{upper .Name}}", "/WEB"),
        ("{{lower \"ABC\"}}", "abc"),
        ('{{title "hello world"}}', "Hello World"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ('{{split "a,b" ","}}', "[a b]"),
        ("{{pad .Name 1 2}}|", " /web  |"),
        ("{{truncate .Name 2}}", "/w"),
        ("{{println .Name}}", "/web\n"),
        ("{{println}}", "\n"),
        ("{{print 1 2 \"a\" 3}}", "1 2a3"),
        ('{{printf "%s=%d" .Name .State.Pid}}', "/web=42"),
        ('{{printf "%5s|%-4d|%05d" "ab" 7 42}}', "   ab|7   |00042"),
        ("{{len .Config.Env}}", "2"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if .Count}}x{{else if .Name}}name{{end}}", "name"),
        ("{{if not .Count}}zero{{end}}", "zero"),
        ("{{if and .Name .Count}}a{{else}}b{{end}}", "b"),
        ("{{if or .Count .Name}}{{.Name}}{{end}}", "/web"),
        ('{{if eq .State.Status "running" "paused"}}yes{{end}}', "yes"),
        ('{{if ne .State.Status "running"}}no{{else}}same{{end}}', "same"),
        ("{{if lt .State.Pid 100}}small{{end}}", "small"),
        ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
        ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
        ('{{range .Config.Env}}{{if eq . "A=1"}}{{continue}}{{end}}{{.}}{{end}}', "B=2"),
        ("{{range .Config.Env}}{{.}}{{break}}{{end}}", "A=1"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
        ("{{with .Count}}x{{else}}none{{end}}", "none"),
        ("{{$x := .Name}}{{$x}}", "/web"),
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{$.Name}}", "/web"),
        ("{{range .Config.Env}}{{$.Name}}{{end}}", "/web/web"),
        ("{{(index .Config.Env 0)}}", "A=1"),
        ("{{(.State).Status}}", "running"),
        ("a {{- .Name -}} b", "a/webb"),
        ("{{/* a comment */}}x", "x"),
        ("{{- /* trimmed */ -}} x", "x"),
        ("{{`raw\\n`}}", "raw\\n"),
        ('{{"q\\t"}}', "q\t"),
        ("{{1.5}} {{100000.0}} {{1e6}}", "1.5 100000 1e+06"),
        ("{{range 3}}{{.}}{{end}}", "012"),
    ],
)
def test_renders_like_go(text: str, expected: str) -> None:
    assert render(text, DATA) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Foo", "template: :1: unclosed action"),
        ("{{foo .ID}}", 'template: :1: function "foo" not defined'),
        ("{{if .ID}}", "template: :1: unexpected EOF"),
        ("{{.Names}} {{end}}", "template: :1: unexpected {{end}}"),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ("{{.ID}", "template: :1: bad character U+007D '}'"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ],
)
def test_parse_errors_are_worded_like_go(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        Template(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Name.X}}", 'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
        ('{{join .Name ","}}', 'template: :1:7: executing "" at <.Name>: wrong type for value; expected []string; got string'),
        ("{{index .Config.Env 5}}", 'template: :1:2: executing "" at <index .Config.Env 5>: error calling index: index out of range: 5'),
        ("{{.Config.Cmd.X}}", 'template: :1:9: executing "" at <.Config.Cmd.X>: nil pointer evaluating interface {}.X'),
    ],
)
def test_execution_errors_are_worded_like_go(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(text, DATA)
    assert str(err.value) == message


def test_missingkey_error_option() -> None:
    with pytest.raises(TemplateError, match='map has no entry for key "Foo"'):
        Template("{{.Foo}}", missingkey="error").execute({})


def test_structs_print_in_field_order_and_reject_unknown_fields() -> None:
    state = GoStruct(Status="running", Running=True, Health=None)
    assert render("{{.}}", state) == "{running true <nil>}"
    assert render("{{json .}}", state) == '{"Status":"running","Running":true,"Health":null}'
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render("{{.Nope}}", state)


def test_nil_slices_and_maps_print_empty_but_encode_null() -> None:
    data = {"Binds": NilList(), "Labels": NilMap()}
    assert render("{{.Binds}} {{.Labels}}", data) == "[] map[]"
    assert render("{{json .Binds}} {{json .Labels}}", data) == "null null"


def test_struct_aliases_and_omitempty() -> None:
    client = GoStruct(ApiVersion="1.51", Platform=None)
    client.aliases = {"APIVersion": "ApiVersion"}
    client.omitempty = frozenset({"Platform"})
    assert render("{{.APIVersion}}", client) == "1.51"
    assert render("{{json .}}", client) == '{"ApiVersion":"1.51"}'


class _Row:
    template_type = "*formatter.Row"

    def ID(self) -> str:
        return "abc"

    def Label(self, name: str) -> str:
        return {"x": "1"}.get(name, "")

    def template_json(self) -> dict[str, str]:
        return {"ID": "abc", "Ports": "0.0.0.0:80->80/tcp"}


def test_objects_expose_methods_as_fields() -> None:
    assert render('{{.ID}} {{.Label "x"}}', _Row()) == "abc 1"
    with pytest.raises(TemplateError, match=r"can't evaluate field Nope in type \*formatter.Row"):
        render("{{.Nope}}", _Row())


def test_object_json_is_html_escaped_like_encoding_json() -> None:
    assert render("{{json .}}", _Row()) == '{"ID":"abc","Ports":"0.0.0.0:80-\\u003e80/tcp"}'
    assert render('{{json "a>b"}}', None) == '"a>b"'


def test_custom_functions() -> None:
    tmpl = Template("{{twice .}}", {"twice": lambda s: s * 2})
    assert tmpl.execute("ab") == "abab"


def test_partial_output_is_kept_on_error() -> None:
    out: list[str] = []
    with pytest.raises(TemplateError):
        Template("a{{.X.Y.Z}}b").execute({"X": None}, out)
    assert "".join(out) == "a"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "<nil>"),
        (NO_VALUE, "<no value>"),
        (True, "true"),
        (3, "3"),
        (2.5, "2.5"),
        ({"b": 1, "a": [1, 2]}, "map[a:[1 2] b:1]"),
        ([None, "x"], "[<nil> x]"),
    ],
)
def test_go_str(value: Any, text: str) -> None:
    assert go_str(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1e6, "1e+06"), (123456.0, "123456"), (1e-5, "1e-05"), (0.0001, "0.0001"), (-2.5, "-2.5")],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_json_floats_and_unicode() -> None:
    assert go_json([1e6, 1e-7, 0.5]) == "[1000000,1e-7,0.5]"
    assert go_json("é") == '"é"'


def test_sprintf_mismatches() -> None:
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("%s") == "%!s(MISSING)"
    assert go_sprintf("%s", "a", 1) == "a%!(EXTRA int=1)"
