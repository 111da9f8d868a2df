"""docker's command-line grammar: pflag parsing, errors, exit codes, help layout."""

import pytest

from berth.cli.flags import (
    Command,
    FlagSet,
    HelpRequested,
    UsageError,
    format_duration,
    parse_bool,
    parse_duration,
    parse_flags,
    parse_ram_bytes,
    resolve,
)
from berth.cli.main import build_root


def _flags() -> FlagSet:
    f = FlagSet()
    f.add("detach", "d", "bool", "Run in background")
    f.add("interactive", "i", "bool", "Keep STDIN open")
    f.add("tty", "t", "bool", "Allocate a pseudo-TTY")
    f.add("env", "e", "list", "Set environment variables")
    f.add("name", "", "string", "Assign a name")
    f.add("last", "n", "int", "Show n last", -1, default_text="-1")
    f.add("filter", "f", "filter", "Filter output")
    return f


def test_long_short_grouped_and_equals_forms() -> None:
    p = parse_flags(_flags(), ["-dit", "--name=web", "-e", "A=1", "-eB=2", "-e=C=3", "--env", "D", "x"])
    assert p["detach"] and p["interactive"] and p["tty"]
    assert p["name"] == "web"
    assert p["env"] == ["A=1", "B=2", "C=3", "D"]
    assert p.args == ["x"]
    assert p.changed == {"detach", "interactive", "tty", "name", "env"}


def test_defaults_and_typed_values() -> None:
    p = parse_flags(_flags(), ["-n", "3", "-f", "status=exited", "--filter", "Name = web"])
    assert p["last"] == 3
    assert p["filter"] == [("status", "exited"), ("name", "web")]
    assert parse_flags(_flags(), [])["last"] == -1
    assert parse_flags(_flags(), ["--detach=false"])["detach"] is False


def test_interspersed_and_dash_dash() -> None:
    assert parse_flags(_flags(), ["a", "-d", "b"]).args == ["a", "b"]
    p = parse_flags(_flags(), ["img", "-d", "cmd"], interspersed=False)
    assert p.args == ["img", "-d", "cmd"] and not p["detach"]
    assert parse_flags(_flags(), ["--", "-d"]).args == ["-d"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unknown flag: --bogus"),
        (["-x"], "unknown shorthand flag: 'x' in -x"),
        (["-dx"], "unknown shorthand flag: 'x' in -x"),
        (["--name"], "flag needs an argument: --name"),
        (["-e"], "flag needs an argument: 'e' in -e"),
        (["-n", "abc"], 'invalid argument "abc" for "-n, --last" flag: strconv.ParseInt: parsing "abc": invalid syntax'),
        (["-d=x"], 'invalid argument "x" for "-d, --detach" flag: strconv.ParseBool: parsing "x": invalid syntax'),
        (["-f", "x"], 'invalid argument "x" for "-f, --filter" flag: bad format of filter (expected name=value)'),
        (["---x"], "bad flag syntax: ---x"),
    ],
)
def test_errors_are_pflags(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_flags(_flags(), argv)
    assert str(err.value) == message


def test_help_flags() -> None:
    with pytest.raises(HelpRequested):
        parse_flags(_flags(), ["--help"])
    with pytest.raises(HelpRequested) as req:
        parse_flags(_flags(), ["-h"])
    assert req.value.deprecated_short
    assert parse_flags(_flags(), ["--help=false"]).args == []


def test_value_parsers() -> None:
    assert parse_bool("T") is True and parse_bool("0") is False
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match='missing unit in duration "5"'):
        parse_duration("5")
    assert format_duration(90) == "1m30s"
    assert format_duration(0) == "0s"
    assert parse_ram_bytes("512m") == 512 * 1024 * 1024
    assert parse_ram_bytes("1GiB") == 1024**3
    assert parse_ram_bytes("100") == 100
    with pytest.raises(ValueError, match="invalid suffix: 'x'"):
        parse_ram_bytes("1x")


def test_help_text_is_wrapped_like_pflag() -> None:
    f = FlagSet()
    f.add("all", "a", "bool", "Show all containers (default shows just running)")
    f.add("last", "n", "int", "Show n last created containers (includes all states)", -1, default_text="-1")
    f.add("format", "", "string", "Format output")
    assert f.help_text(79) == (
        "  -a, --all             Show all containers (default shows just running)\n"
        "      --format string   Format output\n"
        "  -n, --last int        Show n last created containers (includes all\n"
        "                        states) (default -1)\n"
    )


def test_resolve_management_and_top_level_commands() -> None:
    root = build_root()
    cmd, flags = resolve(root, ["container", "ls", "-a"])
    assert cmd.path == "berth container ls" and flags["all"]
    cmd, _ = resolve(root, ["container", "ps"])
    assert cmd.name == "ls"
    cmd, flags = resolve(root, ["run", "-it", "--rm", "busybox", "sh", "-c", "echo -d"])
    assert cmd.path == "berth run"
    assert flags.args == ["busybox", "sh", "-c", "echo -d"]
    assert flags["rm"] and flags["tty"] and flags["interactive"]
    cmd, _ = resolve(root, ["image", "rm", "x"])
    assert cmd.path == "berth image rm"


@pytest.mark.parametrize(
    ("argv", "status", "first_line"),
    [
        (["ps", "--bogus"], 125, "unknown flag: --bogus"),
        (["run", "--xyz", "busybox"], 125, "unknown flag: --xyz"),
        (["ps", "extra"], 1, "berth: 'berth ps' accepts no arguments"),
        (["rm"], 1, "berth: 'berth rm' requires at least 1 argument"),
        (["rename", "a"], 1, "berth: 'berth rename' requires 2 arguments"),
        (["foo"], 1, "berth: unknown command: berth foo"),
        (["container", "foo"], 1, "berth: unknown command: berth container foo"),
        (["container", "-a"], 125, "unknown shorthand flag: 'a' in -a"),
    ],
)
def test_usage_errors_and_exit_codes(argv: list[str], status: int, first_line: str) -> None:
    with pytest.raises(UsageError) as err:
        resolve(build_root(), argv)
    assert err.value.status == status
    assert str(err.value).splitlines()[0] == first_line


def test_run_flag_error_layout() -> None:
    with pytest.raises(UsageError) as err:
        resolve(build_root(), ["run", "--xyz"])
    assert str(err.value) == (
        "unknown flag: --xyz\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
        "Run 'berth run --help' for more information"
    )


def test_command_help_layout() -> None:
    cmd = Command("wait", use="wait CONTAINER [CONTAINER...]", short="Block until stop",
                  aliases_text="berth container wait, berth wait")
    Command("berth").add(cmd)
    assert cmd.help() == (
        "Usage:  berth wait CONTAINER [CONTAINER...]\n\nBlock until stop\n\n"
        "Aliases:\n  berth container wait, berth wait\n"
    )
