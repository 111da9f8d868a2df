"""berth-shim's command line (berthd writes it; argparse's grammar without argparse) and
the two fields of a bundle the shim reads itself."""

import json
from pathlib import Path

import pytest

from berth.shim import backends, shim
from berth.shim.client import ShimOptions, _shim_argv


def test_the_argv_berthd_writes_parses_back() -> None:
    opts = ShimOptions("abc", "/b", "/s", "/s/shim.sock", "/l.json", stdin=True, stdin_once=True,
                       runtime="/usr/sbin/runc", log_driver="local", log_options={"max-size": "1m", "max-file": "2"})
    args = shim.parse_args(_shim_argv(opts))
    assert (args.id, args.bundle, args.state_dir, args.socket, args.log) == ("abc", "/b", "/s", "/s/shim.sock", "/l.json")
    assert (args.stdin, args.stdin_once, args.runtime, args.log_driver) == (True, True, "/usr/sbin/runc", "local")
    assert args.log_opt == ["max-size=1m", "max-file=2"]


def test_defaults_and_the_equals_form() -> None:
    args = shim.parse_args(["--id=x", "--bundle=/b", "--state-dir=/s", "--socket=/k", "--log-opt=a=b"])
    assert (args.id, args.log, args.log_driver, args.runtime, args.stdin) == ("x", "", "json-file", "", False)
    assert args.log_opt == ["a=b"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--id", "x"], "the following arguments are required: --bundle, --state-dir, --socket"),
    (["--id", "x", "--bundle", "/b", "--state-dir", "/s", "--socket"], "argument --socket: expected one argument"),
    (["--id", "x", "--bogus"], "unrecognized argument: --bogus"),
    (["--stdin=yes"], "unrecognized argument: --stdin=yes"),
])
def test_bad_command_lines_exit_2_with_a_message(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        shim.parse_args(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"berth-shim: error: {message}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        shim.parse_args(["--help"])
    assert exit_.value.code == 0
    assert "--log-opt KEY=VAL" in capsys.readouterr().out


@pytest.mark.parametrize(("config", "basics"), [
    ({"process": {"terminal": True}, "linux": {"cgroupsPath": "/berth/x"}}, backends.Basics(True, "/berth/x")),
    ({"process": {"terminal": "yes"}, "linux": {"cgroupsPath": 3}}, backends.Basics()),
    ({"process": [], "linux": None}, backends.Basics()),
    ([1, 2], backends.Basics()),
])
def test_read_basics(tmp_path: Path, config: object, basics: backends.Basics) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert backends.read_basics(str(tmp_path)) == basics


def test_read_basics_of_a_bundle_that_does_not_parse(tmp_path: Path) -> None:
    assert backends.read_basics(str(tmp_path)) == backends.Basics()  # no config.json
    (tmp_path / "config.json").write_text('{"process": {')
    assert backends.read_basics(str(tmp_path)) == backends.Basics()
