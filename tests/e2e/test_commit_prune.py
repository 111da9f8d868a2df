"""`docker commit`, the image list filters, `docker image prune` and `docker system df`,
through the real docker CLI."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers.cli import Cli

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


@pytest.fixture
def new_image(docker: Cli) -> Iterator[Callable[[str], str]]:
    """A factory of unique image repository names; each is removed after the test."""
    names: list[str] = []

    def make(prefix: str = "img") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        for ref in docker.ok("images", "-q", "--no-trunc", name).split():
            docker("rmi", "-f", ref)


def _image_id(docker: Cli, name: str) -> str:
    return docker.ok("image", "inspect", "-f", "{{.Id}}", name).strip()


def test_commit_of_a_changed_container_adds_one_layer(docker: Cli, new_name: Names,
                                                        new_image: Callable[[str], str]) -> None:
    name = new_name("commit")
    image = new_image("committed") + ":v1"
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "touch /made-here && rm /etc/group")
    docker.ok("commit", "-m", "made a file", "-a", "tester", name, image)
    rows = docker.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", image).splitlines()
    assert len(rows) == 2
    assert rows[0] == "sh -c touch /made-here && rm /etc/group|made a file"
    base_layers = docker.ok("image", "inspect", "-f", "{{len .RootFS.Layers}}", "busybox").strip()
    layers = docker.ok("image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Author}}", image).strip()
    assert layers == f"{int(base_layers) + 1} tester"
    out = docker.ok("run", "--rm", image, "sh", "-c", "ls /made-here; test -e /etc/group || echo gone")
    assert out.split() == ["/made-here", "gone"]
    docker.ok("rm", name)


def test_commit_records_the_container_and_its_config(docker: Cli, new_name: Names,
                                                     new_image: Callable[[str], str]) -> None:
    # dockerd keeps the committed container's ID and config in the image: image inspect
    # shows them as Container and ContainerConfig to clients before API 1.45
    name = new_name("commit")
    image = new_image("ccfg") + ":v1"
    docker.ok("run", "--name", name, "-e", "X=1", "-h", "committer", "-w", "/tmp", "busybox", "sh", "-c",
              "echo hi > f")
    docker.ok("commit", "-c", "ENV Y=2", name, image)
    container = json.loads(docker.ok("inspect", name))[0]
    old = Cli(docker.program, {**docker.env, "DOCKER_API_VERSION": "1.41"})
    doc = json.loads(old.ok("image", "inspect", image))[0]
    assert doc["Container"] == container["Id"]
    assert doc["ContainerConfig"] == container["Config"]
    assert doc["ContainerConfig"]["Hostname"] == "committer" and "Y=2" not in doc["ContainerConfig"]["Env"]
    assert "Y=2" in doc["Config"]["Env"]
    assert "ContainerConfig" not in json.loads(docker.ok("image", "inspect", image))[0]  # gone in 1.45
    docker.ok("rm", name)


def test_commit_with_changes_sets_the_command(docker: Cli, new_name: Names,
                                              new_image: Callable[[str], str]) -> None:
    name = new_name("commit")
    image = new_image("cmd") + ":x"
    docker.ok("create", "--name", name, "busybox", "true")
    docker.ok("commit", "-c", 'CMD ["echo","hi"]', "-c", "ENV GREETING=hello", name, image)
    assert docker.ok("run", "--rm", image).strip() == "hi"
    assert docker.ok("run", "--rm", image, "sh", "-c", "echo $GREETING").strip() == "hello"
    # Nothing changed in the container: still one layer more, Docker's empty one.
    layers = docker.ok("image", "inspect", "-f", "{{range .RootFS.Layers}}{{println .}}{{end}}", image).split()
    assert layers[-1] == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    docker.ok("rm", name)


def test_commit_of_a_running_container_pauses_and_resumes_it(docker: Cli, new_name: Names,
                                                            new_image: Callable[[str], str]) -> None:
    name = new_name("commit")
    image = new_image("running")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo x > /state; while true; do echo tick; sleep 0.1; done")
    time.sleep(0.5)
    docker.ok("commit", name, image)
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
    before = len(docker.ok("logs", name).splitlines())
    time.sleep(0.6)
    assert len(docker.ok("logs", name).splitlines()) > before
    assert docker.ok("run", "--rm", image, "cat", "/state").strip() == "x"
    docker.ok("rm", "-f", name)



def test_commit_changes_are_dockerfile_instructions_as_dockerd_applies_them(
        docker: Cli, berth: Cli, new_name: Names, new_image: Callable[[str], str]) -> None:
    name = new_name("changes")
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "echo made > /made")
    image = new_image("changes")
    docker.ok("commit", "--change", 'ENTRYPOINT ["echo","from-entrypoint"]',
              "--change", "HEALTHCHECK --interval=3s --retries=2 CMD true",
              "--change", "ENV PATH=$PATH:/opt/extra GREETING=\"hello world\"",
              "--change", "WORKDIR data", "--change", "EXPOSE 8080 53/udp", name, image)
    config = json.loads(docker.ok("image", "inspect", "-f", "{{json .Config}}", image))
    # an ENTRYPOINT change drops the container's CMD (no CMD change came before it)
    assert (config["Entrypoint"], config.get("Cmd")) == (["echo", "from-entrypoint"], None)
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 3_000_000_000, "Retries": 2}
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/extra" in config["Env"]
    assert "GREETING=hello world" in config["Env"]
    assert config["WorkingDir"] == "/data"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert docker.ok("run", "--rm", image, "and", "args").strip() == "from-entrypoint and args"
    # JSON and shell form of CMD, through berth too
    shell_image, json_image = new_image("shellform"), new_image("jsonform")
    berth.ok("commit", "-c", "CMD echo shell-form $HOSTNAME", name, shell_image)
    assert json.loads(docker.ok("image", "inspect", "-f", "{{json .Config.Cmd}}", shell_image)) == \
        ["/bin/sh", "-c", "echo shell-form $HOSTNAME"]
    docker.ok("commit", "-c", 'CMD ["sh","-c","echo json-form; cat /made"]', name, json_image)
    assert docker.ok("run", "--rm", json_image).split() == ["json-form", "made"]
    docker.ok("rm", name)


def test_commit_with_the_default_pause_of_created_and_exited_containers_through_docker_py(
        docker_client: Any, docker: Cli, new_name: Names, new_image: Callable[[str], str]) -> None:
    created = docker_client.containers.create("busybox", ["true"], name=new_name("created"))
    exited = docker_client.containers.run("busybox", ["sh", "-c", "echo x > /x"], name=new_name("exited"),
                                          detach=True)
    exited.wait()
    try:
        for container in (created, exited):
            repo = new_image("dockerpy")
            # docker-py sends pause=True, as the docker CLI does: dockerd ignores it for a
            # container that is not running
            image = container.commit(repo, changes=['CMD ["sh","-c","echo hi"]', "LABEL from=docker-py"])
            assert image.attrs["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
            assert image.attrs["Config"]["Labels"] == {"from": "docker-py"}
            assert docker.ok("run", "--rm", repo).strip() == "hi"
    finally:
        created.remove()
        exited.remove()


@pytest.mark.parametrize(("change", "message"), [
    ("RUN echo hi", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("ENV", "dockerfile parse error on line 1: ENV requires at least one argument"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ('CMD ["sh", 1]', "when using JSON array syntax, arrays must be comprised of strings only"),
])
def test_commit_with_a_bad_change_fails_and_makes_no_image(docker: Cli, new_name: Names, change: str,
                                                           message: str) -> None:
    name = new_name("badchange")
    docker.ok("create", "--name", name, "busybox", "true")
    before = docker.ok("images", "-aq", "--no-trunc").split()
    res = docker("commit", "-c", change, name, "never-made:tag")
    assert res.returncode != 0
    assert f"Error response from daemon: {message}" in res.stderr, res.stderr
    assert docker.ok("images", "-aq", "--no-trunc").split() == before
    res = docker("import", "-c", change, "-", "never-imported:tag", input="")
    assert res.returncode != 0 and message in res.stderr, res.stderr
    docker.ok("rm", name)


def test_commit_of_a_missing_container_fails(docker: Cli) -> None:
    res = docker("commit", "no-such-container-xyz", "whatever:tag")
    assert res.returncode != 0
    assert "No such container: no-such-container-xyz" in res.stderr


def test_image_list_filters(docker: Cli, new_name: Names, new_image: Callable[[str], str]) -> None:
    name = new_name("filters")
    first, second = new_image("first"), new_image("second")
    docker.ok("create", "--name", name, "busybox", "true")
    docker.ok("commit", "-c", "LABEL tier=one", name, first)
    time.sleep(1.1)  # Created is in seconds: before/since need distinct times
    docker.ok("commit", "-c", "LABEL tier=two", name, second)
    old_id = _image_id(docker, first)
    # Re-tagging `first` onto the second image leaves the old one dangling.
    docker.ok("tag", second, first)
    dangling = docker.ok("images", "-q", "--no-trunc", "--filter", "dangling=true").split()
    assert old_id in dangling
    assert _image_id(docker, second) not in dangling
    tagged = docker.ok("images", "-q", "--no-trunc", "--filter", "dangling=false").split()
    assert old_id not in tagged and _image_id(docker, second) in tagged
    assert docker.ok("images", "-q", "--no-trunc", "--filter", "label=tier=one").split() == [old_id]
    assert old_id in docker.ok("images", "-q", "--no-trunc", "--filter", "label=tier").split()
    assert docker.ok("images", "-q", "--no-trunc", "--filter", f"before={second}",
                     "--filter", "label=tier").split() == [old_id]
    since = docker.ok("images", "-q", "--no-trunc", "--filter", f"since={old_id}").split()
    assert set(since) == {_image_id(docker, second)}  # listed once per tag
    res = docker("images", "--filter", "colour=blue")
    assert res.returncode != 0 and "invalid filter 'colour'" in res.stderr
    docker.ok("rmi", old_id)
    docker.ok("rm", name)


def test_image_prune_removes_what_docker_would(docker: Cli, new_name: Names,
                                               new_image: Callable[[str], str]) -> None:
    keeper = new_name("keeper")
    used, unused, dangling_src = new_image("used"), new_image("unused"), new_image("dangling")
    docker.ok("create", "--name", keeper, "busybox", "true")
    docker.ok("commit", "-c", "LABEL prune=used", keeper, used)
    docker.ok("commit", "-c", "LABEL prune=unused", keeper, unused)
    docker.ok("commit", "-c", "LABEL prune=dangling", keeper, dangling_src)
    dangling_id = _image_id(docker, dangling_src)
    docker.ok("tag", unused, dangling_src)  # leaves the third image without a tag
    user = new_name("user")
    docker.ok("create", "--name", user, used, "true")
    unused_id, used_id = _image_id(docker, unused), _image_id(docker, used)

    out = docker.ok("image", "prune", "-f", "--filter", "label=prune")
    assert f"deleted: {dangling_id}" in out
    assert "untagged" not in out
    images = docker.ok("images", "-q", "--no-trunc").split()
    assert dangling_id not in images and unused_id in images and used_id in images

    out = docker.ok("image", "prune", "-a", "-f", "--filter", "label=prune")
    assert f"deleted: {unused_id}" in out
    assert f"untagged: {unused}:latest" in out and f"untagged: {dangling_src}:latest" in out
    images = docker.ok("images", "-q", "--no-trunc").split()
    assert unused_id not in images and used_id in images
    assert "busybox" in docker.ok("images", "--format", "{{.Repository}}")  # no label: kept
    docker.ok("rm", user, keeper)


def test_system_df_prints_its_table(docker: Cli, new_name: Names) -> None:
    name = new_name("df")
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "head -c 100000 /dev/zero > /blob")
    lines = docker.ok("system", "df").splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in lines[1:]] == ["Images", "Containers", "Local", "Build"]
    assert int(lines[2].split()[1]) >= 1
    verbose = docker.ok("system", "df", "-v")
    assert name in verbose and "busybox" in verbose
    docker.ok("rm", name)
