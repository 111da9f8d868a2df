"""Paths under a container's mounts, as dockerd resolves them: `docker cp` both ways, the
archive API, `docker diff` and `docker export`, for running and stopped containers.

dockerd serves cp from a view of the container that it builds itself, the same whether
the container runs or not: the container's root with its volumes and bind mounts bound
in (read-only ones read-only) and its /etc/hosts, /etc/hostname and /etc/resolv.conf,
and nothing else. No tmpfs, no /proc, nothing the container mounted itself: Docker's
cp reference says "It isn't possible to copy certain system files such as resources
under /proc, /sys, /dev, tmpfs, and mounts created by the user in the container".
`docker diff` and `docker export` show the container's root: the mount points made in
it, never what a volume or bind mount holds.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


@pytest.fixture
def new_volume(docker: Cli) -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def make() -> str:
        names.append(f"cpm{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    for name in names:
        docker("volume", "rm", "-f", name)


def _wait_for(docker: Cli, name: str, path: str) -> None:
    """Until `path` exists in the running container `name`."""
    deadline = time.monotonic() + 10
    while docker("exec", name, "test", "-e", path).returncode != 0:
        assert time.monotonic() < deadline, f"{path} did not appear in {name}"
        time.sleep(0.1)


def _in_state(docker: Cli, state: str, name: str, args: list[str], script: str, wait_for: str = "") -> None:
    """Run `script` in a new container `name`; `running` keeps it running after, `stopped`
    lets it exit."""
    if state == "running":
        docker.ok("run", "-d", "--name", name, *args, "busybox", "sh", "-c", script + "; exec sleep 300")
        if wait_for:
            _wait_for(docker, name, wait_for)
    else:
        docker.ok("run", "--name", name, *args, "busybox", "sh", "-c", script)


def _mounted_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_cp_out_reads_the_containers_volumes_and_binds(
        docker: Cli, berth: Cli, api: ApiClient, docker_client: Any, new_name: Names, new_volume: Callable[[], str], tmp_path: Path,
        state: str) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("from the host\n")
    vol, name = new_volume(), new_name("cpm")
    _in_state(docker, state, name, ["-v", f"{vol}:/v", "-v", f"{host}:/b"],
              "echo in the volume > /v/f && mkdir /v/d && echo deep > /v/d/e", wait_for="/v/d/e")
    docker.ok("cp", f"{name}:/v/f", str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "in the volume\n"
    docker.ok("cp", f"{name}:/b/h", str(tmp_path / "h"))
    assert (tmp_path / "h").read_text() == "from the host\n"
    docker.ok("cp", f"{name}:/v", str(tmp_path / "vdir"))
    assert (tmp_path / "vdir" / "d" / "e").read_text() == "deep\n"
    berth.ok("cp", f"{name}:/v/d", str(tmp_path / "d"))
    assert (tmp_path / "d" / "e").read_text() == "deep\n"
    head = api.head(f"/containers/{name}/archive?path=/v/f")
    assert head.status == 200
    chunks, st = docker_client.containers.get(name).get_archive("/v/f")
    assert (st["name"], st["size"]) == ("f", len("in the volume\n"))
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile("f")
        assert member is not None and member.read() == b"in the volume\n"
    resp = api.get(f"/containers/{name}/archive?path=/b")
    assert resp.status == 200
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        assert sorted(tar.getnames()) == ["b", "b/h"]
    assert not _mounted_below(host), "the view of the container left a mount behind"
    docker.ok("rm", "-f", name)


def test_cp_into_a_created_container_lands_in_its_volume_and_bind(
        docker: Cli, new_name: Names, new_volume: Callable[[], str], tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (tmp_path / "g").write_text("copied in\n")
    vol, name = new_volume(), new_name("cpm")
    docker.ok("create", "--name", name, "-v", f"{vol}:/v", "-v", f"{host}:/b", "busybox", "cat", "/v/g", "/b/g")
    docker.ok("cp", str(tmp_path / "g"), f"{name}:/v/")
    docker.ok("cp", str(tmp_path / "g"), f"{name}:/b/g")
    assert (host / "g").read_text() == "copied in\n"
    mountpoint = Path(docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
    assert (mountpoint / "g").read_text() == "copied in\n"
    assert docker.ok("start", "-a", name) == "copied in\ncopied in\n"
    assert not _mounted_below(host)
    docker.ok("rm", name)


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_cp_into_a_read_only_mount_is_refused_as_dockerd(
        docker: Cli, berth: Cli, api: ApiClient, new_name: Names, new_volume: Callable[[], str], tmp_path: Path,
        state: str) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (tmp_path / "f").write_text("x\n")
    vol, name = new_volume(), new_name("cpro")
    _in_state(docker, state, name, ["-v", f"{ro}:/ro:ro", "--mount", f"type=volume,src={vol},dst=/rov,readonly",
                                    "-v", f"{rw}:/rw"], "ln -s /ro /lnk", wait_for="/lnk")
    # the path is resolved first: a symlink into a read-only mount is refused too
    for client in (docker, berth):
        for dest in ("/ro/", "/rov/", "/lnk/", "/ro"):
            res = client("cp", str(tmp_path / "f"), f"{name}:{dest}")
            assert res.returncode != 0, describe(res)
            assert "Error response from daemon: mounted volume is marked read-only" in res.stderr, describe(res)
    with io.BytesIO() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("put")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
        body = buf.getvalue()
    for path in ("/ro", "/rov", "/lnk"):
        resp = api.request("PUT", f"/containers/{name}/archive?path={path}", body=body)
        assert resp.status == 400, (path, resp.status, resp.body)
        assert resp.json() == {"message": "mounted volume is marked read-only"}
    assert os.listdir(ro) == []
    mountpoint = Path(docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
    assert os.listdir(mountpoint) == []
    docker.ok("cp", str(tmp_path / "f"), f"{name}:/rw/")
    assert (rw / "f").read_text() == "x\n"
    docker.ok("rm", "-f", name)


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_symlinks_in_a_bind_mount_resolve_inside_the_container(
        docker: Cli, api: ApiClient, new_name: Names, tmp_path: Path, state: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host only\n")
    bind = tmp_path / "bind"
    bind.mkdir()
    os.symlink(str(outside), bind / "abs")  # the host's path of a host directory
    os.symlink("../outside", bind / "rel")  # climbs out of the bind mount
    os.symlink("/etc", bind / "etc")  # the container's /etc, not the host's
    marker = f"berth-cpm-{uuid.uuid4().hex[:8]}"
    (tmp_path / marker).write_text("marker\n")
    name = new_name("cpsym")
    _in_state(docker, state, name, ["-v", f"{bind}:/data"], "true")
    for path in ("/data/abs/secret", "/data/rel/secret"):
        res = docker("cp", f"{name}:{path}", str(tmp_path / "got"))
        assert res.returncode != 0, describe(res)
        assert f"Could not find the file {path} in container {name}" in res.stderr, describe(res)
        assert api.head(f"/containers/{name}/archive?path={path}").status == 404
        resp = api.request("PUT", f"/containers/{name}/archive?path={path.rsplit('/', 1)[0]}", body=b"")
        assert resp.status == 404, (path, resp.status, resp.body)
    assert not (tmp_path / "got").exists()
    # written through /data/etc it lands in the container's /etc
    docker.ok("cp", str(tmp_path / marker), f"{name}:/data/etc/")
    assert not os.path.exists(f"/etc/{marker}"), "docker cp wrote into the host's /etc"
    assert os.listdir(outside) == ["secret"]
    docker.ok("cp", f"{name}:/etc/{marker}", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "marker\n"
    docker.ok("rm", "-f", name)


@pytest.mark.parametrize("state", ["created", "running"])
def test_a_symlink_in_a_bind_mount_cannot_lead_a_nested_mount_out(
        docker: Cli, new_name: Names, tmp_path: Path, state: str) -> None:
    # /data/sub, where the second bind goes, is a symlink in the first bind to an absolute
    # path: it is followed inside the container (runc does the same at start), so the
    # nested mount lands at the container's /berth-nested, never at the host's.
    target = f"/berth-nested-{uuid.uuid4().hex[:8]}"
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    outer.mkdir()
    inner.mkdir()
    (inner / "c").write_text("inner\n")
    os.symlink(target, outer / "sub")
    name = new_name("cpnest")
    args = ["-v", f"{outer}:/data", "-v", f"{inner}:/data/sub"]
    if state == "created":
        docker.ok("create", "--name", name, *args, "busybox", "cat", f"{target}/c")
    else:
        _in_state(docker, state, name, args, "true", wait_for=f"{target}/c")
    docker.ok("cp", f"{name}:{target}/c", str(tmp_path / "c"))
    assert (tmp_path / "c").read_text() == "inner\n"
    docker.ok("cp", f"{name}:/data/sub/c", str(tmp_path / "c2"))
    assert (tmp_path / "c2").read_text() == "inner\n"
    assert not os.path.lexists(target), "a mount of the container's view landed on the host"
    assert not _mounted_below(inner)
    if state == "created":
        assert docker.ok("start", "-a", name) == "inner\n"
    docker.ok("rm", "-f", name)


def test_cp_does_not_reach_tmpfs_or_proc_of_a_running_container(
        docker: Cli, new_name: Names, tmp_path: Path) -> None:
    name = new_name("cptmp")
    _in_state(docker, "running", name, ["--tmpfs", "/t"], "echo in tmpfs > /t/f", wait_for="/t/f")
    for path in ("/t/f", "/proc/1/cmdline"):
        res = docker("cp", f"{name}:{path}", str(tmp_path / "got"))
        assert res.returncode != 0, describe(res)
        assert f"Could not find the file {path} in container {name}" in res.stderr, describe(res)
    docker.ok("rm", "-f", name)


def test_a_tmpfs_of_a_read_only_container_counts_as_its_root(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    # dockerd checks a cp's destination against the container's mount points, which
    # --tmpfs mounts are not: under --read-only, /t is the read-only root
    (tmp_path / "f").write_text("x\n")
    name = new_name("cpro")
    _in_state(docker, "running", name, ["--read-only", "--tmpfs", "/t"], "true")
    res = docker("cp", str(tmp_path / "f"), f"{name}:/t/")
    assert res.returncode != 0, describe(res)
    assert "Error response from daemon: container rootfs is marked read-only" in res.stderr, describe(res)
    docker.ok("rm", "-f", name)


def test_cp_of_a_stopped_container_reads_its_etc_hosts(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    name = new_name("cphosts")
    docker.ok("run", "--name", name, "--add-host", "berth-cp.example:10.9.8.7", "--hostname", "cphost",
              "busybox", "true")
    docker.ok("cp", f"{name}:/etc/hosts", str(tmp_path / "hosts"))
    assert "10.9.8.7\tberth-cp.example" in (tmp_path / "hosts").read_text()
    docker.ok("cp", f"{name}:/etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text() == "cphost\n"
    docker.ok("rm", name)


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_diff_and_export_show_mount_points_not_what_is_mounted(
        docker: Cli, new_name: Names, new_volume: Callable[[], str], tmp_path: Path, state: str) -> None:
    host = tmp_path / "host"
    host.mkdir()
    vol, name = new_volume(), new_name("cpdx")
    _in_state(docker, state, name, ["-v", f"{vol}:/v", "-v", f"{host}:/b", "--tmpfs", "/t"],
              "echo v > /v/f; echo b > /b/g; echo t > /t/h; touch /new", wait_for="/new")
    assert (host / "g").read_text() == "b\n"
    assert docker.ok("diff", name).splitlines() == ["A /b", "A /new", "A /t", "A /v"]
    out = tmp_path / "export.tar"
    docker.ok("export", "-o", str(out), name)
    with tarfile.open(out) as tar:
        names = {m.name.rstrip("/") for m in tar.getmembers()}
    assert {"b", "v", "t", "new"} <= names
    assert not {"b/g", "v/f", "t/h"} & names, sorted(names)
    docker.ok("rm", "-f", name)


def test_cp_mounts_and_unmounts_the_volumes_with_events(
        docker: Cli, api: ApiClient, new_name: Names, new_volume: Callable[[], str], tmp_path: Path) -> None:
    vol, name = new_volume(), new_name("cpev")
    docker.ok("create", "--name", name, "-v", f"{vol}:/v", "busybox")
    since = api.get("/info").json()["SystemTime"]
    resp = api.head(f"/containers/{name}/archive?path=/v")
    assert resp.status == 200
    until = time.time() + 1
    events = docker.ok("events", "--since", since, "--until", f"{until:.3f}", "--filter", "type=volume",
                       "--format", "{{json .}}")
    actions = [(e["Action"], e["Actor"]["ID"]) for e in map(json.loads, events.splitlines())]
    assert actions == [("mount", vol), ("unmount", vol)], actions
    docker.ok("rm", name)


def test_a_new_volume_holds_the_images_data_from_create_on(
        docker: Cli, new_name: Names, new_volume: Callable[[], str], tmp_path: Path) -> None:
    # dockerd fills a new volume at create, so cp into or out of a created container
    # finds the image's files there, and what cp adds is not lost at start
    vol, name = new_volume(), new_name("cppop")
    (tmp_path / "added").write_text("added\n")
    docker.ok("create", "--name", name, "-v", f"{vol}:/etc", "busybox", "sh", "-c",
              "grep -c ^root: /etc/passwd; cat /etc/added")
    mountpoint = Path(docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
    assert "root:" in (mountpoint / "passwd").read_text()
    docker.ok("cp", f"{name}:/etc/passwd", str(tmp_path / "passwd"))
    assert "root:" in (tmp_path / "passwd").read_text()
    docker.ok("cp", str(tmp_path / "added"), f"{name}:/etc/")
    assert docker.ok("start", "-a", name) == "1\nadded\n"
    docker.ok("rm", name)


def test_a_view_that_cannot_be_made_is_an_error_and_leaves_nothing(
        docker: Cli, api: ApiClient, new_name: Names, tmp_path: Path) -> None:
    # a bind under a file of the image: the view cannot make its mount point
    (tmp_path / "src").mkdir()
    name = new_name("cpbad")
    docker.ok("create", "--name", name, "-v", f"{tmp_path / 'src'}:/etc/passwd/sub", "busybox")
    resp = api.head(f"/containers/{name}/archive?path=/etc")
    assert resp.status == 500
    resp = api.get(f"/containers/{name}/archive?path=/etc")
    assert resp.status == 500 and "not a directory" in resp.json()["message"].lower(), resp.body
    res = docker("cp", f"{name}:/etc/group", str(tmp_path / "group"))
    assert res.returncode != 0, describe(res)
    cid = docker.ok("inspect", "-f", "{{.Id}}", name).strip()
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if cid in line or str(tmp_path) in line]
    assert api.get("/_ping").status == 200
    docker.ok("rm", name)


@pytest.mark.parametrize("state", ["created", "running"])
def test_cp_reaches_a_volume_mounted_with_a_subpath(
        docker: Cli, new_name: Names, new_volume: Callable[[], str], tmp_path: Path, state: str) -> None:
    vol, name = new_volume(), new_name("cpsub")
    docker.ok("run", "--rm", "-v", f"{vol}:/d", "busybox", "sh", "-c", "mkdir /d/sub && echo in sub > /d/sub/f")
    args = ["--mount", f"type=volume,src={vol},dst=/s,volume-subpath=sub"]
    if state == "created":
        docker.ok("create", "--name", name, *args, "busybox", "cat", "/s/g")
    else:
        _in_state(docker, state, name, args, "true")
    docker.ok("cp", f"{name}:/s/f", str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "in sub\n"
    (tmp_path / "g").write_text("copied\n")
    docker.ok("cp", str(tmp_path / "g"), f"{name}:/s/")
    mountpoint = Path(docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
    assert (mountpoint / "sub" / "g").read_text() == "copied\n"
    if state == "created":
        assert docker.ok("start", "-a", name) == "copied\n"
    docker.ok("rm", "-f", name)
