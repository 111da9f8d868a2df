"""`berth compose config` through the `berth` program: the project's flags before the
subcommand (-f, -p, --profile, --env-file), --format, --services, --volumes, and the
output byte for byte as Compose v2 2.40.3 printed it for the same project (the
expected files of tests/unit/compose/projects, recorded from the real binary)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECTS = Path(__file__).resolve().parents[1] / "compose" / "projects"
BERTH = str(Path(sys.executable).with_name("berth"))


def _berth(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/home/tester"}
    return subprocess.run([BERTH, "compose", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def _copy(case: str, tmp_path: Path, dirname: str) -> Path:
    target = tmp_path / dirname
    shutil.copytree(PROJECTS / case, target, ignore=shutil.ignore_patterns("expected.*"))
    return target


def test_config_prints_what_compose_v2_prints(tmp_path: Path) -> None:
    project = _copy("basic", tmp_path, "myproj")
    expected = (PROJECTS / "basic" / "expected.yaml").read_text().replace("@DIR@", str(project))
    res = _berth(project, "--profile", "x", "config")
    assert res.returncode == 0, res.stderr
    assert res.stdout == expected
    expected_json = (PROJECTS / "basic" / "expected.json").read_text().replace("@DIR@", str(project))
    res = _berth(project, "--profile", "x", "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json.loads(expected_json)


def test_project_flags_services_and_volumes(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("services:\n  web:\n    image: busybox:${TAG:?set TAG}\n"
                                        "    volumes: [data:/data]\n  tool:\n    image: busybox\n"
                                        "    profiles: [tools]\nvolumes:\n  data: {}\n")
    (tmp_path / "over.yaml").write_text("services:\n  web:\n    environment: [MODE=prod]\n")
    (tmp_path / "vars.env").write_text("TAG=1.36\n")
    res = _berth(tmp_path, "-f", "base.yaml", "-f", "over.yaml", "-p", "shop", "--env-file", "vars.env",
                 "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["name"] == "shop"
    assert doc["services"]["web"]["image"] == "busybox:1.36"
    assert doc["services"]["web"]["environment"] == {"MODE": "prod"}
    assert "tool" not in doc["services"]
    assert doc["volumes"]["data"]["name"] == "shop_data"
    res = _berth(tmp_path, "-f", "base.yaml", "--env-file", "vars.env", "--profile", "tools", "config", "--services")
    assert res.returncode == 0 and sorted(res.stdout.split()) == ["tool", "web"], res.stderr
    res = _berth(tmp_path, "-f", "base.yaml", "--env-file", "vars.env", "config", "--volumes")
    assert res.returncode == 0 and res.stdout.split() == ["data"], res.stderr
    res = _berth(tmp_path, "-f", "base.yaml", "config", "-q")
    assert res.returncode == 1 and "set TAG" in res.stderr


def test_bad_files_and_commands_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: [unclosed\n")
    res = _berth(tmp_path, "config")
    assert res.returncode == 1 and "line" in res.stderr and "column" in res.stderr
    res = _berth(tmp_path, "nosuch")
    assert res.returncode == 1 and "compose nosuch" in res.stderr
    res = _berth(tmp_path, "docker-cli-plugin-metadata")
    assert res.returncode == 0 and json.loads(res.stdout)["SchemaVersion"] == "0.1.0"
