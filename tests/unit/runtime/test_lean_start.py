"""What berth-runtime does instead of the costly standard modules, held against them:
`leanjson` against `json`, `record` against `dataclasses`, the quick command-line
parse against argparse, and the launcher's import list."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.runtime import cli, leanjson
from berth.runtime.record import asdict, field, record, replace

SRC = str(Path(__file__).resolve().parents[3] / "src")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_leanjson_reads_and_writes_what_json_does(value: object) -> None:
    text = json.dumps(value)
    assert leanjson.dumps(value) == text
    assert leanjson.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert leanjson.loads(text) == value
    assert leanjson.loads(text.encode()) == value
    assert leanjson.loads(f" \n{json.dumps(value, indent=1)}\t\r\n") == value


@pytest.mark.parametrize("text", ["", "  ", "{", "[1,]", "1 2", '{"a":1}x', "nul", '{"a" 1}', '"\\q"', "[1] ]"])
def test_leanjson_refuses_what_json_refuses_with_its_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        leanjson.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_leanjson_error_without_json_loaded() -> None:
    """The C scanner reports errors through json.decoder only if it is loaded."""
    code = ("import sys\nfrom berth.runtime import leanjson\nassert 'json' not in sys.modules\n"
            "try:\n    leanjson.loads('[1,')\nexcept ValueError as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {SRC!r})\n{code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "JSONDecodeError Expecting value: line 1 column 4 (char 3)"


def test_leanjson_refuses_what_json_cannot_write() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        leanjson.dumps({"a": object()})


@record
class _Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@dataclasses.dataclass
class _RealPoint:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@record(frozen=True)
class _Frozen:
    name: str
    size: int = 1


def test_record_builds_as_a_dataclass_does() -> None:
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((), {"x": 3, "tags": ["a"]}), ((1,), {"y": 5})]:
        ours, theirs = _Point(*args, **kwargs), _RealPoint(*args, **kwargs)
        assert (ours.x, ours.y, ours.tags) == (theirs.x, theirs.y, theirs.tags)
        assert repr(ours).replace("_Point", "P") == repr(theirs).replace("_RealPoint", "P")
    assert _Point(1).tags is not _Point(1).tags  # a fresh default each time
    assert _Point(1, 2) == _Point(1, 2) and _Point(1, 2) != _Point(1, 3)
    assert _Point.y == 0 and not hasattr(_Point, "tags")


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {}, "missing required argument: 'x'"),
    ((1, 2, [], 4), {}, "takes 3 positional arguments but 4 were given"),
    ((1,), {"z": 1}, "unexpected keyword argument 'z'"),
    ((1,), {"x": 1}, "multiple values for argument 'x'"),
])
def test_record_refuses_bad_arguments(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _Point(*args, **kwargs)


def test_frozen_record_replace_and_asdict() -> None:
    f = _Frozen("a")
    with pytest.raises(AttributeError):
        f.name = "b"  # type: ignore[misc]
    assert hash(f) == hash(_Frozen("a", 1)) and {f, _Frozen("a")} == {f}
    assert replace(f, size=2) == _Frozen("a", 2) and f.size == 1
    with pytest.raises(TypeError):
        replace(f, colour="red")
    assert asdict(_Point(1, tags=["t"])) == {"x": 1, "y": 0, "tags": ["t"]}
    with pytest.raises(TypeError):
        hash(_Point(1))  # a mutable record, as a dataclass with eq: unhashable


QUICK_LINES = [
    ["run", "c1"], ["create", "--bundle", "/b", "c1"], ["--root", "/r", "create", "-b", "/b", "--pid-file", "/p", "c1"],
    ["--root=/r", "run", "--bundle=/b", "-d", "--console-socket", "/s", "c1"], ["--debug", "--log", "/l", "start", "c1"],
    ["state", "c1"], ["kill", "c1"], ["kill", "c1", "KILL"], ["kill", "--all", "c1", "9"], ["delete", "-f", "c1"],
    ["delete", "c1", "--force"], ["create", "c1", "--preserve-fds", "3", "--no-pivot", "--no-new-keyring"],
    ["--systemd-cgroup", "--log-format", "json", "state", "x"],
]


@pytest.mark.parametrize("argv", QUICK_LINES, ids=" ".join)
def test_quick_parse_agrees_with_argparse(argv: list[str]) -> None:
    quick = cli._quick_parse(argv)
    assert quick is not None
    assert vars(quick) == vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["run", "--help"], ["run"], ["run", "a", "b"], ["kill", "a", "b", "c"], ["run", "--bund", "/b", "c"],
    ["run", "--bundle"], ["create", "--preserve-fds", "x", "c"], ["run", "--root", "/r", "c"], ["list"],
    ["exec", "c", "true"], ["run", "--", "c"], ["run", "-d=1", "c"], ["nope", "c"],
], ids=lambda a: " ".join(a) or "(empty)")
def test_quick_parse_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert cli._quick_parse(argv) is None


def test_a_runtime_command_imports_no_costly_module(tmp_path: Path) -> None:
    """`state` of a missing container, as the launcher runs it (python -S): what it
    loads must not bring back the modules the lean start removed."""
    code = (f"import sys; sys.path.insert(0, {SRC!r})\n"
            "from berth.runtime import cli, process, oci, cgroups, rootfs\n"
            "from berth.runtime.cgroups import v1\n"
            "try:\n    cli.main(['--root', sys.argv[1], 'state', 'nosuch'])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    costly = {"argparse", "dataclasses", "typing", "re", "enum", "json", "socket", "signal", "logging", "shutil",
              "collections", "functools", "contextlib", "inspect"}
    assert loaded & costly == set()
    assert "container does not exist: nosuch" in out.stderr


def test_dataclasses_functions_take_records() -> None:
    """Code beyond the runtime (berthd's stats, for one) uses dataclasses' functions on them."""
    p = _Point(1, tags=["t"])
    assert dataclasses.is_dataclass(p) and [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags"]
    assert dataclasses.replace(p, y=7) == _Point(1, 7, ["t"])
    assert dataclasses.asdict(p) == {"x": 1, "y": 0, "tags": ["t"]}
    assert dataclasses.replace(_Frozen("a"), size=3) == _Frozen("a", 3)
    with pytest.raises(TypeError):
        dataclasses.replace(p, nope=1)


def test_state_loads_neither_ctypes_nor_the_container_code(tmp_path: Path) -> None:
    """`state` is what callers poll: it reads a JSON file and /proc, nothing more."""
    code = (f"import sys; sys.path.insert(0, {SRC!r})\n"
            "from berth.runtime import cli\n"
            "try:\n    cli.main(['--root', sys.argv[1], 'state', 'nosuch'])\nexcept SystemExit as e:\n"
            "    print(e.code, ' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    code_, *loaded = out.stdout.split()
    assert code_ == "1" and "container does not exist: nosuch" in out.stderr
    assert {"ctypes", "berth.runtime.process", "berth.runtime.oci"} & set(loaded) == set()


def test_record_refuses_what_it_does_not_do() -> None:
    """No __post_init__ and no inherited fields: refused at the class, not half-done."""
    with pytest.raises(TypeError, match="no __post_init__"):
        @record
        class _Checked:
            x: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="no inheritance"):
        @record
        class _Child(_Point):
            z: int = 0
