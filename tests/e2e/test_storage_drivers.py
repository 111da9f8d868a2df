"""The container-lifecycle basics on each storage driver: the session's berthd
(overlay2, or vfs where overlayfs cannot mount) and a private berthd started with
`--storage-driver vfs`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon


@pytest.fixture(scope="module")
def vfs_docker(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> Iterator[Cli]:
    with private_daemon(berth_root, berthd, busybox_tar, "--storage-driver", "vfs", prefix="vfs") as (_, docker):
        yield docker


@pytest.fixture(params=["default", "vfs"])
def engine(request: pytest.FixtureRequest) -> tuple[str, Cli]:
    if request.param == "vfs":
        return "vfs", request.getfixturevalue("vfs_docker")
    request.getfixturevalue("busybox")
    docker: Cli = request.getfixturevalue("docker")
    return docker.ok("info", "-f", "{{.Driver}}").strip(), docker


def test_info_names_the_driver(engine: tuple[str, Cli]) -> None:
    driver, docker = engine
    assert driver in ("overlay2", "vfs")
    assert f"Storage Driver: {driver}" in docker.ok("info")


def test_image_inspect_names_the_driver(engine: tuple[str, Cli]) -> None:
    driver, docker = engine
    assert docker.ok("image", "inspect", "-f", "{{.GraphDriver.Name}}", "busybox").strip() == driver
    if driver == "overlay2":  # the layer's files are where inspect says
        upper = docker.ok("image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "busybox").strip()
        assert (Path(upper) / "bin" / "busybox").is_file()


def test_run_write_isolation_and_rm(engine: tuple[str, Cli]) -> None:
    driver, docker = engine
    assert docker.ok("run", "--rm", "busybox", "echo", "hello").strip() == "hello"
    docker.ok("run", "--name", "sd-a", "busybox", "sh", "-c", "echo mine > /etc/only-a && rm /bin/true")
    try:
        inspect = docker.ok("inspect", "-f", "{{.Driver}} {{.GraphDriver.Name}}", "sd-a").split()
        assert inspect == [driver, driver]
        res = docker("run", "--rm", "busybox", "sh", "-c", "cat /etc/only-a; ls /bin/true")
        assert "mine" not in res.stdout
        assert "/bin/true" in res.stdout, describe(res)
        again = docker("start", "-a", "sd-a")  # the second start sees its own changes: rm fails now
        assert again.returncode == 1 and "can't remove '/bin/true'" in again.stderr, describe(again)
        out = docker.ok("export", "sd-a", timeout=60)
        assert out  # a tar of the container's root
        cp = docker("cp", "sd-a:/etc/only-a", "-")
        assert cp.returncode == 0 and "only-a" in cp.stdout, describe(cp)
    finally:
        docker.ok("rm", "-f", "sd-a")
    assert "sd-a" not in docker.ok("ps", "-a", "--format", "{{.Names}}").split()


def test_diff_on_each_driver(engine: tuple[str, Cli]) -> None:
    driver, docker = engine
    docker.ok("create", "--name", "sd-d", "busybox", "true")
    try:
        res = docker("diff", "sd-d")
        if driver == "vfs":
            assert res.returncode != 0
            assert "not supported on the vfs storage driver" in res.stderr, describe(res)
        else:
            assert res.returncode == 0, describe(res)
    finally:
        docker.ok("rm", "sd-d")
