"""Issue 18, managed plugins (course 12.6): `docker plugin create` from a directory
(rootfs/ + config.json), enable, a volume made and used through the plugin, disable
refused while the plugin is in use, rm, and the bad input Docker refuses.

The plugin's server is a real program inside its rootfs: tests/helpers/plugin_volumes.c,
built here with `gcc -static` (scripts/setup installs gcc and libc6-dev), serving
Docker's volume plugin protocol on /run/docker/plugins/vol.sock inside the plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker import errors as docker_errors

from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon
from helpers.registries import DistributionRegistry

SERVER_SOURCE = Path(__file__).resolve().parents[1] / "helpers" / "plugin_volumes.c"
CONFIG = {
    "Description": "berth's example volume plugin, a static C server",
    "Documentation": "tests/helpers/plugin_volumes.c",
    "Entrypoint": ["/bin/volplugin", "/run/docker/plugins/vol.sock", "/data/volumes"],
    "Env": [{"Name": "DIE", "Description": "1: exit at start", "Settable": ["value"], "Value": "0"}],
    "Interface": {"Socket": "vol.sock", "Types": ["docker.volumedriver/1.0"]},
    "Network": {"Type": ""},
    "PropagatedMount": "/data",
    "Linux": {"Capabilities": ["CAP_SYS_ADMIN"]},
}


@pytest.fixture(scope="session")
def volplugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: run scripts/setup with BERTH_SETUP_PEERS=1 (it installs gcc and libc6-dev)")
    out = tmp_path_factory.mktemp("volplugin") / "volplugin"
    res = subprocess.run(["gcc", "-static", "-Os", "-o", str(out), str(SERVER_SOURCE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def make_plugin_dir(where: Path, server: Path, config: object = CONFIG) -> Path:
    (where / "rootfs" / "bin").mkdir(parents=True)
    (where / "rootfs" / "data").mkdir()
    shutil.copy(server, where / "rootfs" / "bin" / "volplugin")
    (where / "config.json").write_text(json.dumps(config) if not isinstance(config, str) else config)
    return where


@pytest.fixture
def plugin_dir(tmp_path: Path, volplugin: Path) -> Path:
    return make_plugin_dir(tmp_path / "plugin", volplugin)


@pytest.fixture
def new_plugin(docker: Cli) -> Iterator[Callable[[], str]]:
    """Unique plugin names; each plugin, and the volumes made with it, removed afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"berthtest-plugin-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    for name in made:
        for vol in docker("volume", "ls", "-q", "--filter", f"driver={name}:latest").stdout.split():
            docker("volume", "rm", "-f", vol)
        docker("plugin", "rm", "-f", name)


def plugin_rows(cli: Cli) -> dict[str, list[str]]:
    out = cli.ok("plugin", "ls", "--no-trunc", "--format", "{{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}")
    return {row.split("\t")[1]: row.split("\t") for row in out.splitlines()}


def test_volume_plugin_made_from_a_directory(docker: Cli, berthd: BerthDaemon, busybox: str, plugin_dir: Path,
                                             new_plugin: Callable[[], str], new_name: Callable[[str], str]) -> None:
    name = new_plugin()
    full = f"{name}:latest"
    assert docker.ok("plugin", "create", name, str(plugin_dir)) == f"{name}\n"
    header, *rows = docker.ok("plugin", "ls").splitlines()
    assert header.split() == ["ID", "NAME", "DESCRIPTION", "ENABLED"]
    row = next(r for r in rows if full in r)
    assert row.split()[-1] == "false" and "berth's example volume plugin, a static C se…" in row, row
    plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    assert len(plugin_id) == 64 and row.startswith(plugin_id[:12] + " ")
    assert (berthd.data_root / "plugins" / plugin_id / "rootfs" / "bin" / "volplugin").is_file()

    assert docker.ok("plugin", "enable", name) == f"{name}\n"
    assert plugin_rows(docker)[full][3] == "true"
    assert full in json.loads(docker.ok("info", "--format", "{{json .Plugins.Volume}}"))
    # the plugin made its socket in /run/docker/plugins inside; berthd sees it in its exec root
    assert (berthd.exec_root / "plugins" / plugin_id / "vol.sock").is_socket()

    vol = f"pv-{uuid.uuid4().hex[:8]}"
    assert docker.ok("volume", "create", "-d", name, vol) == f"{vol}\n"
    assert docker.ok("volume", "inspect", "-f", "{{.Driver}}", vol).strip() == full
    out = docker.ok("run", "--rm", "-v", f"{vol}:/v", busybox, "sh", "-c", "echo via the plugin > /v/f; cat /v/f")
    assert out == "via the plugin\n"
    data = berthd.data_root / "plugins" / plugin_id / "rootfs" / "data" / "volumes" / vol / "f"
    assert data.read_text() == "via the plugin\n"

    # in use: a volume holds it (Docker's reference count), so no disable, no rm
    res = docker("plugin", "disable", name)
    assert res.returncode == 1 and res.stderr == f"Error response from daemon: plugin {full} is in use\n", describe(res)
    res = docker("plugin", "rm", name)
    assert res.returncode == 1 and res.stderr == f"Error response from daemon: plugin {full} is in use\n", describe(res)
    assert plugin_rows(docker)[full][3] == "true"
    assert docker.ok("run", "--rm", "-v", f"{vol}:/v", busybox, "cat", "/v/f") == "via the plugin\n"

    docker.ok("volume", "rm", vol)
    assert not data.parent.exists()  # the plugin removed the volume's directory
    res = docker("plugin", "rm", name)
    assert res.returncode == 1 and res.stderr == f"Error response from daemon: plugin {full} is enabled\n", describe(res)
    assert docker.ok("plugin", "disable", name) == f"{name}\n"
    assert not (berthd.exec_root / "plugins" / plugin_id).exists()
    res = docker("volume", "create", "-d", name, "after-disable")
    assert res.returncode == 1 and f"plugin {full} found but disabled" in res.stderr, describe(res)
    assert docker.ok("plugin", "rm", name) == f"{name}\n"
    assert full not in plugin_rows(docker)
    assert not (berthd.data_root / "plugins" / plugin_id).exists()


def test_disable_force_and_rm_force(docker: Cli, berthd: BerthDaemon, plugin_dir: Path,
                                    new_plugin: Callable[[], str]) -> None:
    name = new_plugin()
    docker.ok("plugin", "create", name, str(plugin_dir))
    docker.ok("plugin", "enable", name)
    res = docker("plugin", "enable", name)
    assert res.returncode == 1 and res.stderr == (
        f"Error response from daemon: plugin already enabled: plugin {name}:latest is enabled\n"), describe(res)
    vol = f"pf-{uuid.uuid4().hex[:8]}"
    docker.ok("volume", "create", "-d", name, vol)
    try:
        assert docker.ok("plugin", "disable", "-f", name) == f"{name}\n"
        docker.ok("plugin", "enable", name)
    finally:
        docker.ok("volume", "rm", vol)
    plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    assert docker.ok("plugin", "rm", "-f", name) == f"{name}\n"
    assert not (berthd.data_root / "plugins" / plugin_id).exists()
    assert not (berthd.exec_root / "plugins" / plugin_id).exists()


def test_berth_plugin_grammar(berth: Cli, docker: Cli, busybox: str, plugin_dir: Path,
                              new_plugin: Callable[[], str]) -> None:
    name = new_plugin()
    full = f"{name}:latest"
    assert berth.ok("plugin", "create", name, str(plugin_dir)) == f"{name}\n"
    plugin_id = berth.ok("plugin", "inspect", "--format", "{{.Id}}", full).strip()
    assert berth.ok("plugin", "ls", "-q", "--filter", "enabled=false").split().count(plugin_id[:12]) == 1
    assert berth.ok("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}").splitlines().count(f"{full} false") == 1
    row = next(r for r in berth.ok("plugin", "ls").splitlines() if full in r)
    assert row == next(r for r in docker.ok("plugin", "ls").splitlines() if full in r)  # docker's table, to the space
    for cli in (berth, docker):
        assert full in cli.ok("plugin", "ls", "--format", "{{.Name}}", "--filter", "capability=volumedriver")
        assert full not in cli.ok("plugin", "ls", "--format", "{{.Name}}", "--filter", "capability=logdriver")
        res = cli("plugin", "ls", "--filter", "enabled=maybe")
        assert res.returncode == 1 and res.stderr == (
            "Error response from daemon: invalid filter 'enabled=maybe'\n"), describe(res)
    doc = json.loads(berth.ok("plugin", "inspect", name))[0]
    assert doc["Config"]["Interface"] == {"Socket": "vol.sock", "Types": ["docker.volumedriver/1.0"]}
    assert doc["Settings"]["Env"] == ["DIE=0"] and doc["Name"] == full and doc["Enabled"] is False
    # the same record through docker's own CLI
    assert json.loads(docker.ok("plugin", "inspect", name))[0]["Id"] == plugin_id

    berth.ok("plugin", "set", name, "DIE=0")
    res = berth("plugin", "set", name, "NOPE=1")
    assert res.returncode == 1 and res.stderr == (
        'Error response from daemon: setting "NOPE" not found in the plugin configuration\n'), describe(res)
    assert berth.ok("plugin", "enable", name) == f"{name}\n"
    res = berth("plugin", "set", name, "DIE=1")
    assert res.returncode == 1 and "cannot set on an active plugin" in res.stderr, describe(res)
    vol = f"pb-{uuid.uuid4().hex[:8]}"
    berth.ok("volume", "create", "--driver", name, vol)
    try:
        out = berth.ok("run", "--rm", "-v", f"{vol}:/v", busybox, "sh", "-c", "echo berth > /v/g; cat /v/g")
        assert out == "berth\n"
        res = berth("plugin", "disable", name)
        assert res.returncode == 1 and res.stderr == (
            f"Error response from daemon: plugin {full} is in use\n"), describe(res)
    finally:
        berth.ok("volume", "rm", vol)
    assert berth.ok("plugin", "disable", name) == f"{name}\n"
    assert berth.ok("plugin", "rm", name) == f"{name}\n"
    res = berth("plugin", "inspect", name)
    assert res.returncode == 1 and f'plugin "{name}" not found' in res.stderr, describe(res)


def test_bad_plugin_input_leaves_nothing(docker: Cli, berth: Cli, docker_client: Any, berthd: BerthDaemon,
                                         tmp_path: Path,
                                         volplugin: Path, plugin_dir: Path, new_plugin: Callable[[], str]) -> None:
    plugins_root = berthd.data_root / "plugins"
    before = sorted(os.listdir(plugins_root)) if plugins_root.exists() else []

    # no rootfs/: refused by the daemon
    no_rootfs = tmp_path / "no-rootfs"
    no_rootfs.mkdir()
    (no_rootfs / "config.json").write_text(json.dumps(CONFIG))
    name = new_plugin()
    for cli in (docker, berth):
        res = cli("plugin", "create", name, str(no_rootfs))
        assert res.returncode == 1 and "no rootfs found" in res.stderr, describe(res)

    # a config.json that is not JSON: refused by the client, before any request
    bad = make_plugin_dir(tmp_path / "bad-json", volplugin, config='{"Description": "x",}')
    for cli in (docker, berth):
        res = cli("plugin", "create", name, str(bad))
        assert res.returncode == 1 and res.stderr == (
            "invalid character '}' looking for beginning of object key string\n"), describe(res)
    # JSON, but not a plugin config: the docker CLI refuses it; sent anyway (docker-py
    # does not look), the daemon refuses it with the same words
    wrong = make_plugin_dir(tmp_path / "wrong-types", volplugin, config=json.dumps({"Entrypoint": "/bin/volplugin"}))
    words = "json: cannot unmarshal string into Go struct field PluginConfig.Entrypoint of type []string"
    res = docker("plugin", "create", name, str(wrong))
    assert res.returncode == 1 and res.stderr == words + "\n", describe(res)
    with pytest.raises(docker_errors.APIError) as err:
        docker_client.api.create_plugin(name, str(wrong))
    assert (err.value.status_code, err.value.explanation) == (500, f"failed to parse config: {words}")
    assert name + ":latest" not in plugin_rows(docker)
    assert (sorted(os.listdir(plugins_root)) if plugins_root.exists() else []) == before

    # a plugin whose process dies at start: enable fails with Docker's dial error,
    # the plugin stays disabled and no task is left
    docker.ok("plugin", "create", name, str(plugin_dir))
    res = docker("plugin", "create", name, str(plugin_dir))
    assert res.returncode == 1 and res.stderr == (
        f"Error response from daemon: plugin {name}:latest already exists\n"), describe(res)
    plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    docker.ok("plugin", "set", name, "DIE=1")
    assert json.loads(docker.ok("plugin", "inspect", name))[0]["Settings"]["Env"] == ["DIE=1"]
    res = docker("plugin", "enable", name, timeout=60)
    sock = berthd.exec_root / "plugins" / plugin_id / "vol.sock"
    assert res.returncode == 1 and res.stderr == (
        f"Error response from daemon: dial unix {sock}: connect: no such file or directory\n"), describe(res)
    assert plugin_rows(docker)[f"{name}:latest"][3] == "false"
    assert not (berthd.exec_root / "containers" / plugin_id).exists()
    res = docker("volume", "create", "-d", name, "never-made")
    assert res.returncode == 1 and "found but disabled" in res.stderr, describe(res)
    # set back, it works
    docker.ok("plugin", "set", name, "DIE=0")
    docker.ok("plugin", "enable", name)
    assert sock.is_socket()
    # an entrypoint that is not in the rootfs: the runtime's error, nothing left running
    broken = new_plugin()
    docker.ok("plugin", "create", broken, str(make_plugin_dir(tmp_path / "broken", volplugin,
                                                            {**CONFIG, "Entrypoint": ["/bin/nope"]})))
    broken_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", broken).strip()
    res = docker("plugin", "enable", broken)
    assert res.returncode == 1 and res.stderr.startswith("Error response from daemon: ") and \
        "/bin/nope" in res.stderr and len(res.stderr.splitlines()) == 1, describe(res)
    assert plugin_rows(docker)[f"{broken}:latest"][3] == "false"
    assert not (berthd.exec_root / "containers" / broken_id).exists()
    assert plugin_pids(broken_id) == []
    res = docker("plugin", "create", "Not/Lower", str(plugin_dir))
    assert res.returncode == 1 and "invalid reference format" in res.stderr, describe(res)
    res = docker("plugin", "rm", "no-such-plugin")
    assert res.returncode == 1 and res.stderr == (
        'Error response from daemon: plugin "no-such-plugin" not found\n'), describe(res)
    res = docker("plugin", "disable", "no-such-plugin")
    assert res.returncode == 1 and res.stderr == (
        'Error response from daemon: plugin "no-such-plugin" not found\n'), describe(res)


@pytest.mark.timeout(120)
def test_enabled_plugin_survives_a_daemon_restart(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
                                                  plugin_dir: Path) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="pl") as (daemon, docker):
        docker.ok("plugin", "create", "restartme", str(plugin_dir))
        docker.ok("plugin", "enable", "restartme")
        docker.ok("plugin", "create", "staysoff", str(plugin_dir))
        docker.ok("volume", "create", "-d", "restartme", "kept")
        docker.ok("run", "--rm", "-v", "kept:/v", "busybox", "sh", "-c", "echo before > /v/f")
        assert daemon.stop() == 0
        daemon.start()
        rows = plugin_rows(docker)
        assert (rows["restartme:latest"][3], rows["staysoff:latest"][3]) == ("true", "false")
        assert docker.ok("run", "--rm", "-v", "kept:/v", "busybox", "cat", "/v/f") == "before\n"
        docker.ok("volume", "rm", "kept")
        docker.ok("plugin", "rm", "-f", "restartme", "staysoff")


def test_push_and_install_through_a_registry(docker: Cli, berth: Cli, busybox: str, plugin_dir: Path,
                                             new_plugin: Callable[[], str]) -> None:
    """`docker plugin push` to Debian's reference registry on loopback, then `docker plugin
    install` (privileges, pull, settings, enable) of what it holds; `berth plugin install`
    with an alias and --disable."""
    with DistributionRegistry() as reg:
        base = new_plugin()
        remote = f"{reg.host}/berthtest/{base}:1.0"
        docker.ok("plugin", "create", remote, str(plugin_dir))
        out = docker.ok("plugin", "push", remote)
        assert f"The push refers to repository [{reg.host}/berthtest/{base}]" in out, out
        manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{reg.url}/v2/berthtest/{base}/manifests/1.0",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})).read())
        assert manifest["config"]["mediaType"] == "application/vnd.docker.plugin.v1+json"
        assert [x["mediaType"] for x in manifest["layers"]] == ["application/vnd.docker.image.rootfs.diff.tar.gzip"]
        docker.ok("plugin", "rm", remote)

        # the privileges are asked for: without --grant-all-permissions and no "y", refused
        for cli in (docker, berth):
            res = cli("plugin", "install", remote)
            assert res.returncode == 1 and res.stderr == f"permission denied while installing plugin {remote}\n", \
                describe(res)
            assert res.stdout == (f'Plugin "{remote}" is requesting the following privileges:\n'
                                  " - capabilities: [CAP_SYS_ADMIN]\nDo you grant the above permissions? [y/N] "), \
                describe(res)
        assert remote not in plugin_rows(docker)

        out = docker.ok("plugin", "install", "--grant-all-permissions", remote, "DIE=0")
        assert out.endswith(f"Installed plugin {remote}\n"), out
        doc = json.loads(docker.ok("plugin", "inspect", remote))[0]
        assert (doc["Enabled"], doc["PluginReference"], doc["Settings"]["Env"]) == (True, remote, ["DIE=0"])
        vol = f"pi-{uuid.uuid4().hex[:8]}"
        docker.ok("volume", "create", "-d", remote, vol)
        try:
            assert docker.ok("run", "--rm", "-v", f"{vol}:/v", busybox, "sh", "-c",
                             "echo installed > /v/f; cat /v/f") == "installed\n"
        finally:
            docker.ok("volume", "rm", vol)
        docker.ok("plugin", "rm", "-f", remote)

        alias = new_plugin()
        out = berth.ok("plugin", "install", "--grant-all-permissions", "--disable", "--alias", alias, remote)
        assert out.endswith(f"Installed plugin {alias}:latest\n"), out
        assert plugin_rows(docker)[f"{alias}:latest"][3] == "false"
        res = berth("plugin", "install", "--grant-all-permissions", "--alias", alias, remote)
        assert res.returncode == 1 and res.stderr == (
            f"Error response from daemon: plugin {alias}:latest already exists\n"), describe(res)
        # upgrade: a second version in the registry replaces the rootfs and config of the
        # disabled plugin, keeping its ID, name and settings
        v2 = make_plugin_dir(plugin_dir.parent / "v2", plugin_dir / "rootfs" / "bin" / "volplugin",
                             {**CONFIG, "Description": "version two"})
        remote2 = f"{reg.host}/berthtest/{base}:2.0"
        docker.ok("plugin", "create", remote2, str(v2))
        docker.ok("plugin", "push", remote2)
        docker.ok("plugin", "rm", remote2)
        plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", alias).strip()
        berth.ok("plugin", "set", alias, "DIE=0")
        berth.ok("plugin", "enable", alias)
        for cli in (docker, berth):
            res = cli("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", alias, remote2)
            assert res.returncode == 1 and res.stderr == "the plugin must be disabled before upgrading\n", \
                describe(res)
        berth.ok("plugin", "disable", alias)
        out = docker.ok("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", alias, remote2)
        assert out.endswith(f"Upgraded plugin {alias}:latest to {remote2}\n"), out
        doc = json.loads(berth.ok("plugin", "inspect", alias))[0]
        assert (doc["Id"], doc["Config"]["Description"], doc["PluginReference"]) == (plugin_id, "version two", remote2)
        out = berth.ok("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", alias, remote)
        assert out.endswith(f"Upgraded plugin {alias}:latest to {remote}\n"), out
        assert docker.ok("plugin", "inspect", "-f", "{{.Config.Description}}", alias).strip() == CONFIG["Description"]
        berth.ok("plugin", "enable", alias)
        assert plugin_rows(docker)[f"{alias}:latest"][3] == "true"

        res = docker("plugin", "install", "--grant-all-permissions", f"{reg.host}/berthtest/nothing-here:1")
        assert res.returncode == 1 and "Error response from daemon:" in res.stderr, describe(res)
        assert "nothing-here" not in docker.ok("plugin", "ls")


def plugin_pids(plugin_id: str) -> list[int]:
    """The processes in the plugin's cgroup (/berth/<id>): its server."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cgroup") as f:
                    if f"/berth/{plugin_id}\n" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_a_plugin_whose_process_dies_is_started_again(docker: Cli, berthd: BerthDaemon, busybox: str,
                                                      plugin_dir: Path, new_plugin: Callable[[], str]) -> None:
    name = new_plugin()
    docker.ok("plugin", "create", name, str(plugin_dir))
    docker.ok("plugin", "enable", name)
    plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    first = plugin_pids(plugin_id)
    assert len(first) == 1, first
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not ((pids := plugin_pids(plugin_id)) and pids != first):
        assert time.monotonic() < deadline, "the plugin was not started again"
        time.sleep(0.2)
    vol = f"pd-{uuid.uuid4().hex[:8]}"
    res = docker("volume", "create", "-d", name, vol)
    while res.returncode != 0 and "connect:" in res.stderr and time.monotonic() < deadline:
        time.sleep(0.2)  # started, not yet listening: the dial error, one line, nothing made
        assert vol not in docker.ok("volume", "ls", "-q")
        res = docker("volume", "create", "-d", name, vol)
    assert res.returncode == 0, describe(res)
    try:
        assert docker.ok("run", "--rm", "-v", f"{vol}:/v", busybox, "sh", "-c", "echo again > /v/f; cat /v/f") \
            == "again\n"
        assert plugin_rows(docker)[f"{name}:latest"][3] == "true"
    finally:
        docker.ok("volume", "rm", vol)
    docker.ok("plugin", "rm", "-f", name)
    assert plugin_pids(plugin_id) == []


def test_log_driver_plugin(docker: Cli, berthd: BerthDaemon, busybox: str, tmp_path: Path, volplugin: Path,
                           new_plugin: Callable[[], str], new_name: Callable[[str], str]) -> None:
    """A docker.logdriver/1.0 plugin gets a container's output: `docker run --log-driver
    PLUGIN`; berthd makes the FIFO, the plugin reads Docker's LogEntry frames from it."""
    config = {**CONFIG, "Description": "berth's example log driver plugin",
              "Interface": {"Socket": "vol.sock", "Types": ["docker.logdriver/1.0"]}}
    name = new_plugin()
    docker.ok("plugin", "create", name, str(make_plugin_dir(tmp_path / "logplugin", volplugin, config)))
    res = docker("run", "--rm", "--log-driver", name, busybox, "true")
    assert res.returncode == 125 and f"no log driver named '{name}' is registered" in res.stderr, describe(res)
    docker.ok("plugin", "enable", name)
    plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    container = new_name("logp")
    docker.ok("run", "--name", container, "--log-driver", name, busybox, "sh", "-c",
              "echo first line; echo second line >&2; printf 'no newline'")
    cid = docker.ok("inspect", "-f", "{{.Id}}", container).strip()
    assert docker.ok("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", container).strip() == name
    log = berthd.data_root / "plugins" / plugin_id / "rootfs" / "data" / "volumes" / "logs" / f"{cid}.log"
    deadline = time.monotonic() + 10
    while not (log.exists() and "no newline" in log.read_text()):
        assert time.monotonic() < deadline, f"the plugin did not get the output: {log}"
        time.sleep(0.1)
    assert sorted(log.read_text().splitlines()) == ["first line", "no newline (partial)", "second line"]
    # docker logs reads back what the plugin kept (LogDriver.ReadLogs), as Docker's frames
    res = docker("logs", container)
    assert (res.returncode, res.stdout, res.stderr) == (0, "first line\nno newline", "second line\n"), describe(res)
    res = docker("logs", "--tail", "1", container)  # the last entry, whichever stream it came on
    assert res.returncode == 0 and res.stdout + res.stderr in ("no newline", "second line\n"), describe(res)
    # a container logging through it holds the plugin, as Docker's reference count does
    running = new_name("logq")
    docker.ok("run", "-d", "--name", running, "--log-driver", name, busybox, "sleep", "60")
    res = docker("plugin", "disable", name)
    assert res.returncode == 1 and res.stderr == (
        f"Error response from daemon: plugin {name}:latest is in use\n"), describe(res)
    docker.ok("rm", "-f", running)
    fifos = berthd.data_root / "plugins" / plugin_id / "rootfs" / "run" / "docker" / "logging"
    assert list(fifos.iterdir()) == []  # the FIFO went with the container's end
    docker.ok("rm", container)
    docker.ok("plugin", "rm", "-f", name)


def test_docker_py_plugins_and_events(docker_client: Any, plugin_dir: Path,
                                      new_plugin: Callable[[], str]) -> None:
    """docker-py's plugin API (create, get, enable, disable, configure, remove) and the
    plugin events dockerd logs."""
    name = new_plugin()
    since = int(time.time()) - 1
    plugin = docker_client.plugins.create(name, str(plugin_dir))
    assert (plugin.name, plugin.enabled) == (f"{name}:latest", False)
    assert plugin.settings["Env"] == ["DIE=0"]
    plugin.configure({"DIE": "0"})
    plugin.enable()
    plugin.reload()
    assert plugin.enabled is True
    assert [p.id for p in docker_client.plugins.list() if p.name == f"{name}:latest"] == [plugin.id]
    with pytest.raises(docker_errors.APIError) as err:
        plugin.remove()
    assert (err.value.status_code, err.value.explanation) == (409, f"plugin {name}:latest is enabled")
    plugin.disable()
    plugin.remove()
    with pytest.raises(docker_errors.NotFound):
        docker_client.plugins.get(name)
    events = docker_client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                      filters={"type": "plugin"})
    actions = [e["Action"] for e in events if e["Actor"]["ID"] == plugin.id]
    assert actions == ["create", "enable", "disable", "remove"], actions


@pytest.mark.timeout(120)
def test_live_restore_keeps_an_enabled_plugin_running(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
                                                      plugin_dir: Path) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, "--live-restore", prefix="pr") as (daemon, docker):
        try:
            docker.ok("plugin", "create", "livep", str(plugin_dir))
            docker.ok("plugin", "enable", "livep")
            plugin_id = docker.ok("plugin", "inspect", "-f", "{{.Id}}", "livep").strip()
            before = plugin_pids(plugin_id)
            docker.ok("volume", "create", "-d", "livep", "livevol")
            docker.ok("run", "-d", "--name", "user", "-v", "livevol:/v", "busybox", "sh", "-c",
                      "echo kept > /v/f; sleep 60")
            assert daemon.stop() == 0
            assert plugin_pids(plugin_id) == before  # still running while berthd is away
            daemon.start()
            assert plugin_pids(plugin_id) == before
            assert plugin_rows(docker)["livep:latest"][3] == "true"
            assert docker.ok("run", "--rm", "-v", "livevol:/v", "busybox", "cat", "/v/f") == "kept\n"
        finally:
            docker("rm", "-f", "user")
            docker("volume", "rm", "-f", "livevol")
            docker("plugin", "rm", "-f", "livep")
        assert plugin_pids(plugin_id) == []


@pytest.mark.timeout(120)
def test_authorization_plugin(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path, tmp_path: Path,
                              volplugin: Path) -> None:
    """A docker.authz/1.0 plugin named by --authorization-plugin is asked about every
    request, and its refusal is the client's 403; disabling it takes it out of the chain."""
    config = {**CONFIG, "Description": "berth's example authorization plugin",
              "Interface": {"Socket": "vol.sock", "Types": ["docker.authz/1.0"]}}
    directory = make_plugin_dir(tmp_path / "authz", volplugin, config)
    with private_daemon(berth_root, berthd, busybox_tar, prefix="pa") as (daemon, docker):
        docker.ok("plugin", "create", "authzp", str(directory))
        docker.ok("plugin", "enable", "authzp")
        docker.ok("create", "--name", "before", "busybox", "true")
        assert daemon.stop() == 0
        daemon.extra_args += ["--authorization-plugin", "authzp"]
        daemon.start()
        res = docker("create", "busybox", "true")
        assert res.returncode == 1 and res.stderr == (
            "Error response from daemon: authorization denied by plugin authzp:latest: no containers today\n"), describe(res)
        assert docker.ok("ps", "-a", "--format", "{{.Names}}").split() == ["before"]  # the rest is allowed
        docker.ok("plugin", "disable", "authzp")
        docker.ok("create", "--name", "after", "busybox", "true")
        docker.ok("rm", "before", "after")
        docker.ok("plugin", "rm", "authzp")
