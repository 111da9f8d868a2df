"""Issue 19, authorization plugins, Must show 4: a legacy (v1) authorization plugin
(tests/helpers/authz_plugin.py), found by berthd in /run/docker/plugins as dockerd finds
plugins and named by --authorization-plugin, is asked about every request (AuthZReq
before the handler, AuthZRes after it; hijacked attach and exec start too) and its
refusal is the client's 403 with its message. With the plugin stopped, requests fail
closed with dockerd's "plugin NAME failed with error: ..." (500)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BERTH, BerthDaemon, private_daemon
from helpers.processes import terminate

EXAMPLE = Path(__file__).resolve().parents[1] / "helpers" / "authz_plugin.py"
PLUGIN_DIR = Path("/run/docker/plugins")
DENY_MSG = "volume creation is not allowed"


class AuthzPlugin:
    """The example plugin on /run/docker/plugins/NAME.sock; start/stop as the test says."""

    def __init__(self, name: str, log: Path, *args: str) -> None:
        self.name = name
        self.sock = PLUGIN_DIR / f"{name}.sock"
        self.log = log
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--socket", str(self.sock),
                                      "--log", str(self.log), *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else b""
            assert time.monotonic() < deadline, "the example authorization plugin did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        if self.sock.exists():
            self.sock.unlink()

    def calls(self) -> list[tuple[str, dict[str, object]]]:
        if not self.log.exists():
            return []
        return [(d["call"], d["request"]) for d in map(json.loads, self.log.read_text().splitlines())]


@pytest.fixture
def authz_plugin(tmp_path: Path) -> Iterator[Callable[..., AuthzPlugin]]:
    made: list[AuthzPlugin] = []

    def make(*args: str) -> AuthzPlugin:
        plugin = AuthzPlugin(f"berthtest-authz-{uuid.uuid4().hex[:8]}", tmp_path / f"log{len(made)}.jsonl", *args)
        made.append(plugin)
        plugin.start()
        return plugin

    yield make
    for plugin in made:
        plugin.stop()


def _paths(calls: list[tuple[str, dict[str, object]]], call: str) -> list[str]:
    return [f"{r['RequestMethod']} {str(r['RequestUri']).partition('?')[0]}" for c, r in calls if c == call]


@pytest.mark.timeout(180)
def test_plugin_denies_volume_creation_and_fails_closed(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
                                                        authz_plugin: Callable[..., AuthzPlugin]) -> None:
    plugin = authz_plugin("--deny", r"^POST (/v[0-9.]+)?/volumes/create$", "--msg", DENY_MSG)
    with private_daemon(berth_root, berthd, busybox_tar, "--authorization-plugin", plugin.name,
                        prefix="az") as (daemon, docker):
        berth = Cli(str(BERTH), docker.env)
        denied = f"Error response from daemon: authorization denied by plugin {plugin.name}: {DENY_MSG}\n"
        res = docker("volume", "create", "azvol")
        assert (res.returncode, res.stderr) == (1, denied), describe(res)
        res = berth("volume", "create", "azvol")
        assert res.returncode == 1 and denied in res.stderr, describe(res)
        assert "azvol" not in docker.ok("volume", "ls", "-q").split()  # refused before the handler ran

        # everything else works: run (a hijacked attach), exec (a hijacked start), ps, images
        assert docker.ok("run", "--rm", "busybox", "echo", "hi") == "hi\n"
        docker.ok("run", "-d", "--name", "azc", "busybox", "sleep", "60")
        assert docker.ok("exec", "azc", "echo", "from exec") == "from exec\n"
        assert docker.ok("ps", "--format", "{{.Names}}").split() == ["azc"]
        assert "busybox" in docker.ok("images", "--format", "{{.Repository}}").split()
        assert berth.ok("ps", "--format", "{{.Names}}").split() == ["azc"]

        calls = plugin.calls()
        asked = _paths(calls, "AuthZPlugin.AuthZReq")
        for method, path in (("HEAD|GET", "/_ping"), ("POST", "/containers/create"), ("GET", "/images/json"),
                             ("POST", "/volumes/create")):
            assert any(a.split()[0] in method.split("|") and a.endswith(path) for a in asked), (path, asked)
        assert any(a.startswith("POST ") and a.endswith("/attach") for a in asked), asked
        assert any(a.startswith("POST /v") and "/exec/" in a and a.endswith("/start") for a in asked), asked
        # the volume create that was refused never reached the handler: no AuthZRes for it
        answered = _paths(calls, "AuthZPlugin.AuthZRes")
        assert not any(a.endswith("/volumes/create") for a in answered), answered
        # a buffered answer is put to the plugin with its status, headers and JSON body
        listing = [r for c, r in calls if c == "AuthZPlugin.AuthZRes"
                   and str(r["RequestUri"]).partition("?")[0].endswith("/images/json")]
        assert listing, answered
        last = listing[-1]
        assert last["ResponseStatusCode"] == 200, last
        assert isinstance(last["ResponseHeaders"], dict), last
        assert last["ResponseHeaders"].get("Content-Type") == "application/json", last  # type: ignore[union-attr]
        body = json.loads(base64.b64decode(str(last["ResponseBody"])))
        assert any("busybox:latest" in (i.get("RepoTags") or []) for i in body), body
        # and a hijacked one is told once it has ended
        assert any(a.endswith("/attach") for a in answered), answered

        # the plugin down: every request fails closed (the CLI's _ping too), nothing is done
        plugin.stop()
        try:
            for args in (("ps",), ("volume", "ls")):
                res = docker(*args)
                assert res.returncode == 1, describe(res)
                assert res.stderr.startswith(f"Error response from daemon: plugin {plugin.name} failed with error: "
                                             "AuthZPlugin.AuthZReq: dial unix://"), describe(res)
            res = docker("run", "--name", "azdown", "busybox", "true")
            assert res.returncode == 125 and "500 Internal Server Error" in res.stderr, describe(res)  # its _ping
            res = berth("ps")
            assert res.returncode != 0 and f"plugin {plugin.name} failed with error:" in res.stderr, describe(res)
        finally:
            plugin.start()

        # back up on the same socket: served again, and nothing was made meanwhile
        assert docker.ok("ps", "-a", "--format", "{{.Names}}").split() == ["azc"]
        docker.ok("rm", "-f", "azc")
        assert daemon.ping()


@pytest.mark.timeout(120)
def test_plugin_denies_a_response(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
                                  authz_plugin: Callable[..., AuthzPlugin]) -> None:
    """AuthZRes: a refusal of a buffered answer replaces it with the 403; the request
    itself was served (the handler ran), as in dockerd."""
    plugin = authz_plugin("--deny-response", r"^(GET|POST) (/v[0-9.]+)?/(images/json|networks/create)$",
                          "--msg", "not for your eyes")
    with private_daemon(berth_root, berthd, busybox_tar, "--authorization-plugin", plugin.name,
                        prefix="ar") as (_daemon, docker):
        res = docker("images")
        assert (res.returncode, res.stderr) == (
            1, f"Error response from daemon: authorization denied by plugin {plugin.name}: not for your eyes\n"), \
            describe(res)
        name = f"arnet-{uuid.uuid4().hex[:6]}"
        res = docker("network", "create", name)
        assert res.returncode == 1 and "not for your eyes" in res.stderr, describe(res)
        try:
            # the handler had run: the network exists, only its answer was withheld
            assert docker.ok("network", "ls", "--format", "{{.Name}}", "--filter", f"name={name}").split() == [name]
        finally:
            docker("network", "rm", name)
        assert docker.ok("ps", "-a", "--format", "{{.Names}}") == ""
