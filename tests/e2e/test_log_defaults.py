"""The daemon's default log driver (daemon.json `log-driver`/`log-opts`, dockerd's
`--log-driver`/`--log-opt`): what containers that name none get, as dockerd merges it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli
from helpers.daemon import BerthDaemon, DaemonStartError, private_daemon


def _daemon(berth_root: Path, berthd: BerthDaemon, config: dict[str, object], *flags: str) -> BerthDaemon:
    name = f"log{uuid.uuid4().hex[:6]}"
    path = berth_root / f"{name}-daemon.json"
    path.write_text(json.dumps(config))
    return BerthDaemon(berth_root, marker=berthd.marker, name=name, extra_args=["--config-file", str(path), *flags])


@pytest.fixture(scope="module")
def local_docker(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> Iterator[Cli]:
    path = berth_root / f"log{uuid.uuid4().hex[:6]}-daemon.json"
    path.write_text(json.dumps({"log-driver": "local", "log-opts": {"max-size": "1m", "max-file": "2"}}))
    with private_daemon(berth_root, berthd, busybox_tar, "--config-file", str(path), prefix="log") as (_, docker):
        yield docker


def _log_config(docker: Cli, name: str) -> dict[str, object]:
    return json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.LogConfig}}", name))  # type: ignore[no-any-return]


def test_containers_get_the_daemon_default(local_docker: Cli) -> None:
    docker = local_docker
    assert docker.ok("info", "-f", "{{.LoggingDriver}}").strip() == "local"
    name = f"ld-{uuid.uuid4().hex[:6]}"
    assert docker.ok("run", "--name", name, "busybox", "echo", "kept by local") == "kept by local\n"
    assert _log_config(docker, name) == {"Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    assert docker.ok("logs", name) == "kept by local\n"


def test_own_options_win_and_another_driver_takes_none(local_docker: Cli) -> None:
    docker = local_docker
    a, b = f"ld-{uuid.uuid4().hex[:6]}", f"ld-{uuid.uuid4().hex[:6]}"
    docker.ok("create", "--name", a, "--log-opt", "max-size=5m", "busybox", "true")
    assert _log_config(docker, a) == {"Type": "local", "Config": {"max-size": "5m", "max-file": "2"}}
    docker.ok("create", "--name", b, "--log-driver", "json-file", "busybox", "true")
    assert _log_config(docker, b) == {"Type": "json-file", "Config": {}}


@pytest.mark.parametrize(("config", "flags", "message"), [
    ({"log-driver": "nosuch"}, (), "no log driver named 'nosuch' is registered"),
    ({"log-driver": "json-file", "log-opts": {"max-size": "lots"}}, (), "max-size"),
    ({"log-driver": "local"}, ("--log-driver", "json-file"), "specified both as a flag and in the configuration file"),
])
def test_bad_defaults_stop_the_daemon(berth_root: Path, berthd: BerthDaemon, config: dict[str, object],
                                      flags: tuple[str, ...], message: str) -> None:
    daemon = _daemon(berth_root, berthd, config, *flags)
    with pytest.raises(DaemonStartError, match=message):
        daemon.start()
    assert daemon.proc is not None and daemon.proc.returncode not in (0, None)
