"""The berth command line: the core flow, with docker's grammar and output."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")


def test_run_rm_echo(berth: Cli) -> None:
    res = berth("run", "--rm", "busybox", "echo", "hi")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hi\n"


def test_run_exit_code(berth: Cli) -> None:
    res = berth("run", "--rm", "busybox", "sh", "-c", "exit 7")
    assert res.returncode == 7, describe(res)


def test_detached_logs_inspect_rm(berth: Cli, new_name: Callable[[str], str]) -> None:
    name = new_name("berth")
    cid = berth.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo a; sleep 100")
    assert re.fullmatch(r"[0-9a-f]{64}\n", cid), cid
    deadline = time.monotonic() + 10
    while (logs := berth.ok("logs", name)) != "a\n" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logs == "a\n"
    assert berth.ok("inspect", "-f", "{{.State.Status}}", name) == "running\n"
    assert berth.ok("ps", "-q") == cid[:12] + "\n"
    assert berth.ok("rm", "-f", name) == f"{name}\n"
    assert berth.ok("ps", "-aq") == ""


def test_images(berth: Cli) -> None:
    lines = berth.ok("images").splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == [
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
    ]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in lines[1:]), lines


def test_image_inspect_format(berth: Cli) -> None:
    assert berth.ok("image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox") == '["sh"]\n'


def test_unknown_container(berth: Cli) -> None:
    res = berth("logs", "nosuch")
    assert res.returncode == 1, describe(res)
    assert "No such container: nosuch" in res.stderr
