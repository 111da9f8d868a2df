"""docker-py, the Python SDK, against berthd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker as docker_py
import pytest

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def test_ping_and_version(docker_client: Any) -> None:
    assert docker_client.ping() is True
    version = docker_client.version()
    assert version["ApiVersion"] == "1.51"
    assert version["MinAPIVersion"] == "1.24"
    assert version["Os"] == "linux"
    # docker-py negotiated the daemon's version.
    assert docker_client.api.api_version == "1.51"


def test_run_returns_output(docker_client: Any) -> None:
    assert docker_client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_run_failure_raises_container_error(docker_client: Any) -> None:
    with pytest.raises(docker_py.errors.ContainerError) as excinfo:
        docker_client.containers.run(
            "busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True
        )
    assert excinfo.value.exit_status == 3
    assert b"oops" in excinfo.value.stderr


def test_detached_run_logs_wait_remove(docker_client: Any, new_name: Names) -> None:
    name = new_name("py")
    container = docker_client.containers.run(
        "busybox", ["sh", "-c", "echo out; echo err >&2; exit 5"], detach=True, name=name
    )
    assert container.name == name
    result = container.wait(timeout=30)
    assert result["StatusCode"] == 5
    assert container.logs(stdout=True, stderr=False) == b"out\n"
    assert container.logs(stdout=False, stderr=True) == b"err\n"
    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 5
    assert name in [c.name for c in docker_client.containers.list(all=True)]
    assert name not in [c.name for c in docker_client.containers.list()]
    container.remove()
    with pytest.raises(docker_py.errors.NotFound):
        docker_client.containers.get(name)


def test_streamed_logs_come_a_line_at_a_time(docker_client: Any, new_name: Names) -> None:
    """dockerd sends each log message (a line) in a frame of its own, and docker-py's
    logs(stream=True) yields frame by frame: `for line in container.logs(stream=True)`
    is a common way to read them, so lines written together must not arrive merged."""
    container = docker_client.containers.run(
        "busybox", ["sh", "-c", "echo a; echo b; echo c >&2; echo d; sleep 1; echo e"],
        detach=True, name=new_name("pylines"))
    assert container.wait(timeout=30)["StatusCode"] == 0
    assert list(container.logs(stream=True, stderr=False)) == [b"a\n", b"b\n", b"d\n", b"e\n"]
    assert list(container.logs(stream=True, stdout=False)) == [b"c\n"]
    # both streams: one line a frame (how stdout and stderr interleave is a race, as in Docker)
    assert sorted(container.logs(stream=True)) == [b"a\n", b"b\n", b"c\n", b"d\n", b"e\n"]
    stamped = list(container.logs(stream=True, timestamps=True, stderr=False))
    assert [line.split(b" ", 1)[1] for line in stamped] == [b"a\n", b"b\n", b"d\n", b"e\n"]


def test_running_container_stop(docker_client: Any, new_name: Names) -> None:
    name = new_name("pystop")
    container = docker_client.containers.run("busybox", "sleep 100", detach=True, name=name)
    container.reload()
    assert container.status == "running"
    assert name in [c.name for c in docker_client.containers.list()]
    container.stop(timeout=1)
    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 137
    container.remove()


def test_images(docker_client: Any) -> None:
    tags = [tag for image in docker_client.images.list() for tag in image.tags]
    assert "busybox:latest" in tags
    image = docker_client.images.get("busybox")
    assert image.attrs["Config"]["Cmd"] == ["sh"]
    assert image.id.startswith("sha256:")
    with pytest.raises(docker_py.errors.ImageNotFound):
        docker_client.images.get("nosuchimage:v9")
