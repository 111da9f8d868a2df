"""Issue 5, Must show 3: the example volume plugin (tests/helpers/volume_plugin.py), found
by berthd in /run/docker/plugins as Docker finds plugins, makes and mounts a volume for
`docker volume create -d` and `docker run -v`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.processes import terminate

EXAMPLE = Path(__file__).resolve().parents[1] / "helpers" / "volume_plugin.py"
PLUGIN_DIR = Path("/run/docker/plugins")


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    name = f"berthtest{uuid.uuid4().hex[:8]}"
    PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
    sock = PLUGIN_DIR / f"{name}.sock"
    root = tmp_path / "plugin-root"
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--socket", str(sock), "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "the example plugin did not start"
            time.sleep(0.05)
        yield name, root
    finally:
        terminate(proc)
        if proc.stdout:
            proc.stdout.close()
        if sock.exists():
            sock.unlink()


def test_plugin_volume_create_run_and_remove(docker: Cli, busybox: str, plugin: tuple[str, Path]) -> None:
    driver, root = plugin
    vol = f"pv-{uuid.uuid4().hex[:8]}"
    docker.ok("volume", "create", "-d", driver, "--opt", "size=10m", vol)
    try:
        doc = json.loads(docker.ok("volume", "inspect", vol))[0]
        assert (doc["Driver"], doc["Name"], doc["Options"]) == (driver, vol, {"size": "10m"}), doc
        # the plugin got the options, and keeps the data where it says
        assert json.loads((root / "volumes" / f"{vol}.opts.json").read_text()) == {"size": "10m"}
        assert vol in docker.ok("volume", "ls", "-q", "--filter", f"driver={driver}").split()
        out = docker.ok("run", "--rm", "-v", f"{vol}:/data", busybox, "sh", "-c",
                        "echo through the plugin > /data/f; cat /data/f")
        assert out == "through the plugin\n"
        assert (root / "volumes" / vol / "f").read_text() == "through the plugin\n"
        # a second container sees it too, and --mount works with the driver's volume
        out = docker.ok("run", "--rm", "--mount", f"type=volume,source={vol},target=/d", busybox, "cat", "/d/f")
        assert out == "through the plugin\n"
    finally:
        res = docker("volume", "rm", vol)
    assert res.returncode == 0, describe(res)
    assert not (root / "volumes" / vol).exists()


def test_plugin_volume_made_by_run(docker: Cli, busybox: str, plugin: tuple[str, Path]) -> None:
    driver, root = plugin
    vol = f"pr-{uuid.uuid4().hex[:8]}"
    out = docker.ok("run", "--rm", "--volume-driver", driver, "-v", f"{vol}:/data", busybox, "sh", "-c",
                    "echo made by run > /data/g; cat /data/g")
    assert out == "made by run\n"
    try:
        assert docker.ok("volume", "inspect", "-f", "{{.Driver}}", vol).strip() == driver
        assert (root / "volumes" / vol / "g").read_text() == "made by run\n"
    finally:
        docker("volume", "rm", vol)


def test_unknown_plugin_is_refused(docker: Cli) -> None:
    res = docker("volume", "create", "-d", "nosuchplugin-x", "v1x")
    assert res.returncode != 0 and 'plugin "nosuchplugin-x" not found' in res.stderr, describe(res)
    assert "v1x" not in docker.ok("volume", "ls", "-q").split()
    assert not os.path.exists(PLUGIN_DIR / "nosuchplugin-x.sock")
