"""Interop with real dockerd: an archive `docker save`d by dockerd 20.10 loads into berth
and runs; an image saved by berth loads into a private dockerd (when one is installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.dockerd import Dockerd, running_dockerd

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dockerd-20.10-save.tar"


def test_archive_saved_by_dockerd_loads_and_runs(docker: Cli) -> None:
    out = docker.ok("load", "-i", str(FIXTURE), timeout=120)
    assert "Loaded image: berth-fixture/busybox:1" in out
    try:
        assert docker.ok("run", "--rm", "berth-fixture/busybox:1", "echo", "from dockerd").strip() == "from dockerd"
        history = docker.ok("history", "--no-trunc", "berth-fixture/busybox:1")
        assert "berth test fixture: static busybox" in history
    finally:
        docker("rmi", "berth-fixture/busybox:1")


@pytest.fixture
def dockerd() -> Iterator[Dockerd]:
    with running_dockerd() as d:
        yield d


@pytest.mark.timeout(180)
def test_image_saved_by_berth_loads_into_dockerd(docker: Cli, busybox: str, dockerd: Dockerd,
                                                  tmp_path: Path) -> None:
    docker.ok("tag", busybox, "berth-export/busybox:1")
    archive = tmp_path / "busybox.tar"
    try:
        docker.ok("save", "-o", str(archive), "berth-export/busybox:1", timeout=120)
    finally:
        docker("rmi", "berth-export/busybox:1")
    res = dockerd.cli("load", "-i", str(archive), timeout=120)
    assert res.returncode == 0, describe(res) + "\n" + dockerd.log_tail()
    assert "Loaded image: berth-export/busybox:1" in res.stdout
    listed = dockerd.cli.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    berth_id = docker.ok("image", "inspect", "-f", "{{.Id}}", busybox).strip()
    assert f"berth-export/busybox:1 {berth_id[len('sha256:'):][:12]}" in listed.splitlines()
    res = dockerd.cli("run", "--rm", "berth-export/busybox:1", "true", timeout=120)
    assert res.returncode == 0, describe(res) + "\n" + dockerd.log_tail()
