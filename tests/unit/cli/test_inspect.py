"""``inspect -f`` sees the daemon's JSON the way docker's typed structs behave."""

import json

import pytest

from berth.cli.inspect import go_value, typed_container
from berth.template.gotemplate import Template, TemplateError

RAW = json.loads(
    """{
  "Id": "abc",
  "State": {"Status": "running", "Running": true, "Pid": 42},
  "Config": {"Labels": {"a": "1"}, "Cmd": ["sleep", "1"], "Entrypoint": null, "Env": null},
  "HostConfig": {"Binds": null, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                 "LogConfig": {"Type": "json-file", "Config": {}}},
  "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2", "Aliases": null}}}
}"""
)


def _render(text: str) -> str:
    return Template(text).execute(typed_container(RAW))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.State}}", "{running true 42 <nil>}"),
        ("{{.State.Health}}", "<nil>"),
        ("{{.Config.Labels}}", "map[a:1]"),
        ("{{.Config.Labels.missing}}", "<no value>"),
        ('{{index .Config.Labels "missing"}}', ""),
        ("{{.Config.Entrypoint}}", "[]"),
        ("{{json .Config.Entrypoint}}", "null"),
        ("{{.HostConfig.Binds}}", "[]"),
        ("{{.HostConfig.PortBindings}}", "map[80/tcp:[{ 8080}]]"),
        ("{{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostPort}}", "8080"),
        ("{{.NetworkSettings.Networks.bridge.IPAddress}}", "172.17.0.2"),
        ("{{range $n, $e := .NetworkSettings.Networks}}{{$n}}={{$e.IPAddress}}{{end}}", "bridge=172.17.0.2"),
        ("{{json .State}}", '{"Status":"running","Running":true,"Pid":42,"Health":null}'),
        ("{{.SizeRw}}", "<nil>"),
    ],
)
def test_typed_view(text: str, expected: str) -> None:
    assert _render(text) == expected


def test_unknown_struct_field_is_an_error() -> None:
    with pytest.raises(TemplateError, match='map has no entry for key "Foo"'):
        _render("{{.Foo}}")


def test_go_value_maps_stay_maps() -> None:
    value = go_value({"Labels": {"x": "y"}, "Options": None, "Aliases": None})
    assert Template("{{.Labels}} {{.Options}} {{.Aliases}}").execute(value) == "map[x:y] map[] []"
