"""Volumes and mounts through the real docker CLI, docker-py and the raw API, as Docker
behaves: named and anonymous volumes, binds, tmpfs, copy-up, --volumes-from, prune and
the volume list filters, the Mounts of `docker inspect`, and Docker's errors."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tarfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe, import_image
from helpers.daemon import BerthDaemon

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
COPYUP_IMAGE = "berth-test-copyup:latest"


# Fixtures and helpers.


def _volume_names(docker: Cli) -> set[str] | None:
    res = docker("volume", "ls", "-q")
    if res.returncode != 0:
        return None
    return set(res.stdout.split())


@pytest.fixture(autouse=True)
def volume_hygiene(docker: Cli, api: ApiClient) -> Iterator[None]:
    """After each test: no new volumes remain. Leftovers (and the containers that hold
    them) are removed so that the next test starts clean, and the test fails."""
    before = _volume_names(docker)
    try:
        before_ids: set[str] | None = api.container_ids()
    except (OSError, RuntimeError, ValueError):
        before_ids = None
    yield
    if before is None:
        return
    problems = []
    if before_ids is not None:
        left_ids = api.container_ids() - before_ids
        if left_ids:
            problems.append(f"containers left behind: {sorted(c[:12] for c in left_ids)}")
            for cid in left_ids:
                api.request("DELETE", f"/containers/{cid}?force=1&v=1")
    after = _volume_names(docker)
    left = (after or set()) - before
    if left:
        problems.append(f"volumes left behind: {sorted(left)}")
        for name in left:
            docker("volume", "rm", "-f", name)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def new_volume(docker: Cli) -> Iterator[Callable[[str], str]]:
    """A factory of unique volume names; each is removed (if it exists) after the test."""
    names: list[str] = []

    def make(prefix: str = "vol") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        docker("volume", "rm", "-f", name)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A host directory for binds, removed after the test."""
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def copyup_image(docker: Cli, busybox: str, busybox_tar: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """busybox plus /srv/data (1000:1000 0750) holding secret (1000:1000 0640) and
    sub/nested (0:0 0644): content for a volume to be populated from."""
    tar_path = tmp_path_factory.mktemp("copyup") / "rootfs.tar"
    shutil.copyfile(busybox_tar, tar_path)
    with tarfile.open(tar_path, "a") as tar:
        def add(name: str, mode: int, uid: int, data: bytes | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1672531200
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        add("srv", 0o755, 0)
        add("srv/data", 0o750, 1000)
        add("srv/data/secret", 0o640, 1000, b"s3cret\n")
        add("srv/data/sub", 0o755, 0)
        add("srv/data/sub/nested", 0o644, 0, b"nested\n")
    res = import_image(docker, tar_path, COPYUP_IMAGE)
    assert res.returncode == 0, describe(res)
    yield COPYUP_IMAGE
    docker("rmi", "-f", COPYUP_IMAGE)
    shutil.rmtree(tar_path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def symlink_image(docker: Cli, busybox: str, busybox_tar: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """busybox plus /srv/abs -> /tmp/MARKER and /srv/rel -> ../../../../tmp/MARKER, where
    /tmp/MARKER exists neither in the image nor on the host: mount targets that would lead
    out of the root if they were resolved on the host."""
    marker = f"berth-mount-escape-{uuid.uuid4().hex[:8]}"
    tar_path = tmp_path_factory.mktemp("symlink") / "rootfs.tar"
    shutil.copyfile(busybox_tar, tar_path)
    with tarfile.open(tar_path, "a") as tar:
        for name, target in (("srv/abs", f"/tmp/{marker}"), ("srv/rel", f"../../../../tmp/{marker}")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1672531200
            tar.addfile(info)
    ref = "berth-test-symlinks:latest"
    res = import_image(docker, tar_path, ref)
    assert res.returncode == 0, describe(res)
    yield ref, marker
    docker("rmi", "-f", ref)
    shutil.rmtree(tar_path.parent, ignore_errors=True)


def _volume(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("volume", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    vol: dict[str, Any] = data[0]
    return vol


def _inspect(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("container", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    info: dict[str, Any] = data[0]
    return info


def _mounts(docker: Cli, name: str) -> dict[str, dict[str, Any]]:
    """The Mounts of `docker inspect`, by destination (Docker lists them in no set order)."""
    mounts = _inspect(docker, name)["Mounts"]
    by_dest = {m["Destination"]: m for m in mounts}
    assert len(by_dest) == len(mounts), mounts
    return by_dest


def _ls(docker: Cli, *filters: str) -> set[str]:
    args = ["volume", "ls", "-q"]
    for f in filters:
        args += ["--filter", f]
    return set(docker.ok(*args).split())


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _wait_for_log(docker: Cli, container: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in docker.ok("logs", container):
        assert time.monotonic() < deadline, f"{container} never logged {text!r}"
        time.sleep(0.2)


def _host_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _proc_mount_line(output: str, target: str) -> list[str]:
    """The fields of the /proc/mounts line for target, from a `grep` of it."""
    lines = [line.split() for line in output.splitlines() if line.split()[1:2] == [target]]
    assert len(lines) == 1, output
    return lines[0]


def _gone(docker: Cli, volume: str) -> bool:
    return volume not in _ls(docker)


# `docker volume` create / ls / inspect / rm / prune (course chapter 6).


def test_volume_create_ls_inspect_rm(docker: Cli, berthd: BerthDaemon) -> None:
    name = "test-volume1"
    assert docker.ok("volume", "create", name) == f"{name}\n"
    try:
        rows = [line.split() for line in docker.ok("volume", "ls").splitlines()]
        assert rows[0] == ["DRIVER", "VOLUME", "NAME"]
        assert ["local", name] in rows[1:]
        vol = _volume(docker, name)
        assert set(vol) >= {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                            "Scope"}, vol
        assert vol["Name"] == name
        assert vol["Driver"] == "local"
        assert vol["Scope"] == "local"
        assert vol["Mountpoint"] == f"{berthd.data_root}/volumes/{name}/_data"
        assert os.path.isdir(vol["Mountpoint"])
        assert vol["Labels"] in (None, {}), vol
        assert vol["Options"] in (None, {}), vol
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                            vol["CreatedAt"]), vol["CreatedAt"]
        created = datetime.fromisoformat(vol["CreatedAt"])
        assert abs((datetime.now(UTC) - created).total_seconds()) < 300, vol["CreatedAt"]
        # Creating it again is no error and changes nothing.
        Path(vol["Mountpoint"], "kept").write_text("kept\n")
        assert docker.ok("volume", "create", name) == f"{name}\n"
        assert _volume(docker, name)["Mountpoint"] == vol["Mountpoint"]
        assert Path(vol["Mountpoint"], "kept").read_text() == "kept\n"
        # `--format` as docker prints it.
        assert docker.ok("volume", "inspect", "-f", "{{.Driver}} {{.Name}}", name) == f"local {name}\n"
        assert docker.ok("volume", "rm", name) == f"{name}\n"
        assert name not in _ls(docker)
        assert not os.path.exists(os.path.dirname(vol["Mountpoint"])), "rm left the volume's directory"
    finally:
        docker("volume", "rm", "-f", name)


def test_volume_create_with_labels_and_without_name(docker: Cli, new_volume: Names) -> None:
    name = new_volume("lab")
    docker.ok("volume", "create", "--label", "env=prod", "--label", "tier", name)
    assert _volume(docker, name)["Labels"] == {"env": "prod", "tier": ""}
    generated = docker.ok("volume", "create").strip()
    try:
        assert HEX64.match(generated), generated
        assert generated in _ls(docker)
    finally:
        docker("volume", "rm", "-f", generated)


def test_volume_prune_only_anonymous_then_all(docker: Cli, new_volume: Names, new_name: Names) -> None:
    named = new_volume("prune-named")
    docker.ok("volume", "create", named)
    holder = new_name("anon")
    docker.ok("create", "--name", holder, "-v", "/data", "busybox", "true")
    anonymous = _mounts(docker, holder)["/data"]["Name"]
    docker.ok("rm", holder)  # without -v: the anonymous volume stays, unused
    assert anonymous in _ls(docker)
    assert _volume(docker, anonymous)["Labels"] == {ANONYMOUS_LABEL: ""}

    out = docker.ok("volume", "prune", "-f")
    assert "Deleted Volumes:" in out and anonymous in out.split(), out
    assert named not in out.split(), out
    assert "Total reclaimed space:" in out
    volumes = _ls(docker)
    assert anonymous not in volumes and named in volumes

    out = docker.ok("volume", "prune", "-a", "-f")
    assert named in out.split(), out
    assert named not in _ls(docker)


def test_volume_prune_never_removes_volumes_in_use(docker: Cli, new_volume: Names,
                                                   new_name: Names) -> None:
    by_stopped, by_running = new_volume("stopped"), new_volume("running")
    stopped, running = new_name("stopped"), new_name("running")
    docker.ok("run", "--name", stopped, "-v", f"{by_stopped}:/x", "-v", "/anon-stopped",
              "busybox", "true")
    docker.ok("run", "-d", "--name", running, "-v", f"{by_running}:/x", "-v", "/anon-running",
              "busybox", "sleep", "300")
    anon_stopped = _mounts(docker, stopped)["/anon-stopped"]["Name"]
    anon_running = _mounts(docker, running)["/anon-running"]["Name"]
    in_use = {by_stopped, by_running, anon_stopped, anon_running}
    for args in (["volume", "prune", "-f"], ["volume", "prune", "-a", "-f"]):
        out = docker.ok(*args)
        assert not in_use & set(out.split()), out
        assert in_use <= _ls(docker)
    docker.ok("rm", "-f", "-v", running)
    docker.ok("rm", "-v", stopped)
    volumes = _ls(docker)
    assert anon_stopped not in volumes and anon_running not in volumes, "rm -v kept anonymous volumes"
    assert {by_stopped, by_running} <= volumes, "rm -v removed named volumes"


def test_volume_prune_with_label_filter(docker: Cli, new_volume: Names) -> None:
    group = uuid.uuid4().hex[:8]
    doomed, kept = new_volume("doomed"), new_volume("kept")
    docker.ok("volume", "create", "--label", f"group={group}", doomed)
    docker.ok("volume", "create", "--label", "group=other", kept)
    out = docker.ok("volume", "prune", "-a", "-f", "--filter", f"label=group={group}")
    assert doomed in out.split() and kept not in out.split(), out
    volumes = _ls(docker)
    assert doomed not in volumes and kept in volumes


def test_volume_ls_filters(docker: Cli, new_volume: Names, new_name: Names) -> None:
    prefix = f"flt{uuid.uuid4().hex[:8]}"
    a, b, c = (new_volume(f"{prefix}-{x}") for x in "abc")
    docker.ok("volume", "create", "--label", "env=prod", "--label", "tier", a)
    docker.ok("volume", "create", "--label", "env=dev", b)
    holder = new_name("holder")
    docker.ok("create", "--name", holder, "-v", f"{c}:/c", "busybox", "true")
    name = f"name={prefix}"
    assert _ls(docker, name) == {a, b, c}
    assert _ls(docker, name, "dangling=true") == {a, b}
    assert _ls(docker, name, "dangling=false") == {c}
    assert _ls(docker, name, "driver=local") == {a, b, c}
    assert _ls(docker, name, "label=env") == {a, b}
    assert _ls(docker, name, "label=env=prod") == {a}
    assert _ls(docker, name, "label=tier") == {a}
    # Several label filters must all match (Docker's MatchKVList), as must different keys.
    assert _ls(docker, name, "label=env", "label=tier") == {a}
    assert _ls(docker, name, "label=env", "dangling=false") == set()
    assert _ls(docker, f"name={prefix}-b") == {b}
    docker.ok("rm", holder)
    assert _ls(docker, name, "dangling=true") == {a, b, c}


# Sharing a volume, read-only mounts (course chapter 6).


def test_html_volume_shared_by_two_containers(docker: Cli, new_name: Names) -> None:
    vol = "html-volume"
    docker.ok("volume", "create", vol)
    web1, web2 = new_name("web1"), new_name("web2")
    loop = "while true; do cat /www/index.html 2>/dev/null; sleep 0.3; done"
    try:
        docker.ok("run", "-d", "--name", web1, "--mount", f"type=volume,source={vol},target=/www",
                  "busybox", "sh", "-c", loop)
        docker.ok("run", "-d", "--name", web2, "-v", f"{vol}:/www", "busybox", "sh", "-c", loop)
        mountpoint = _volume(docker, vol)["Mountpoint"]
        Path(mountpoint, "index.html").write_text("edited on the host\n")
        for c in (web1, web2):
            _wait_for_log(docker, c, "edited on the host")
        docker.ok("run", "--rm", "-v", f"{vol}:/www", "busybox", "sh", "-c",
                  "echo written by a third container > /www/index.html")
        assert Path(mountpoint, "index.html").read_text() == "written by a third container\n"
        for c in (web1, web2):
            _wait_for_log(docker, c, "written by a third container")
        # Read-only: reading works, writing fails.
        ro = ["run", "--rm", "--mount", f"source={vol},target=/www,readonly", "busybox", "sh", "-c"]
        assert docker.ok(*ro, "cat /www/index.html") == "written by a third container\n"
        res = docker(*ro, "echo x > /www/index.html")
        assert res.returncode != 0, describe(res)
        assert "Read-only file system" in res.stderr, describe(res)
        res = docker("run", "--rm", "-v", f"{vol}:/www:ro", "busybox", "touch", "/www/new")
        assert res.returncode != 0 and "Read-only file system" in res.stderr, describe(res)
        assert Path(mountpoint, "index.html").read_text() == "written by a third container\n"
        assert not Path(mountpoint, "new").exists()
        docker.ok("rm", "-f", web1, web2)
    finally:
        docker("rm", "-f", web1, web2)
        docker("volume", "rm", "-f", vol)


# Binds.


def test_bind_mount_directory_both_syntaxes(docker: Cli, scratch: Path) -> None:
    before = _ls(docker)
    for i, spec in enumerate(["--mount", "-v"]):
        src = scratch / f"app{i}"
        src.mkdir()
        (src / "existing").write_text("from the host\n")
        mount = f"type=bind,source={src},target=/app" if spec == "--mount" else f"{src}:/app"
        out = docker.ok("run", "--rm", spec, mount, "busybox", "sh", "-c",
                        "cat /app/existing; echo made in the container > /app/created")
        assert out == "from the host\n"
        assert (src / "created").read_text() == "made in the container\n"
        assert os.stat(src / "created").st_uid == 0
    assert _ls(docker) == before, "docker volume ls lists bind mounts"


def test_bind_mount_single_file(docker: Cli, scratch: Path) -> None:
    conf = scratch / "nginx.conf"
    conf.write_text("worker_processes 1;\n")
    out = docker.ok("run", "--rm", "-v", f"{conf}:/etc/nginx/nginx.conf:ro", "busybox", "sh", "-c",
                    "cat /etc/nginx/nginx.conf; test -f /etc/nginx/nginx.conf && echo file")
    assert out == "worker_processes 1;\nfile\n"
    res = docker("run", "--rm", "-v", f"{conf}:/etc/nginx/nginx.conf:ro", "busybox", "sh", "-c",
                 "echo more >> /etc/nginx/nginx.conf")
    assert res.returncode != 0 and "Read-only file system" in res.stderr, describe(res)
    docker.ok("run", "--rm", "-v", f"{conf}:/etc/some.conf", "busybox", "sh", "-c",
              "echo appended >> /etc/some.conf")
    assert conf.read_text() == "worker_processes 1;\nappended\n"


def test_v_creates_a_missing_host_directory(docker: Cli, scratch: Path) -> None:
    missing = scratch / "made" / "by-docker"
    docker.ok("run", "--rm", "-v", f"{missing}:/x", "busybox", "sh", "-c", "echo hi > /x/f")
    assert missing.is_dir()
    assert (missing / "f").read_text() == "hi\n"


def test_mount_bind_of_a_missing_source_fails(docker: Cli, new_name: Names) -> None:
    missing = f"/nonexistent-berth-{uuid.uuid4().hex[:8]}"
    before = _ls(docker)
    res = docker("run", "--name", new_name("nobind"), "--mount",
                 f"type=bind,source={missing},target=/x", "busybox", "true")
    assert res.returncode != 0, describe(res)
    assert (f'invalid mount config for type "bind": bind source path does not exist: {missing}'
            in res.stderr), describe(res)
    assert not os.path.exists(missing)
    assert _ls(docker) == before


# docker inspect: Mounts, HostConfig.Binds / Mounts.


def test_inspect_mounts_are_as_docker_shows_them(docker: Cli, api: ApiClient, new_volume: Names,
                                                 new_name: Names, scratch: Path) -> None:
    v_vol, m_vol, ro_vol = new_volume("vflag"), new_volume("mflag"), new_volume("roflag")
    name = new_name("mounts")
    docker.ok("create", "--name", name,
              "-v", f"{v_vol}:/vol",
              "--mount", f"type=volume,source={m_vol},target=/vol2",
              "-v", f"{ro_vol}:/ro:ro",
              "-v", f"{scratch}:/bind",
              "--mount", f"type=bind,source={scratch},target=/bind2,readonly",
              "busybox", "true")
    mp = {v: _volume(docker, v)["Mountpoint"] for v in (v_vol, m_vol, ro_vol)}
    mounts = _mounts(docker, name)
    assert mounts == {
        "/vol": {"Type": "volume", "Name": v_vol, "Source": mp[v_vol], "Destination": "/vol",
                 "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
        "/vol2": {"Type": "volume", "Name": m_vol, "Source": mp[m_vol], "Destination": "/vol2",
                  "Driver": "local", "Mode": "", "RW": True, "Propagation": ""},
        "/ro": {"Type": "volume", "Name": ro_vol, "Source": mp[ro_vol], "Destination": "/ro",
                "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""},
        "/bind": {"Type": "bind", "Source": str(scratch), "Destination": "/bind", "Mode": "",
                  "RW": True, "Propagation": "rprivate"},
        "/bind2": {"Type": "bind", "Source": str(scratch), "Destination": "/bind2", "Mode": "",
                   "RW": False, "Propagation": "rprivate"},
    }
    host = _inspect(docker, name)["HostConfig"]
    assert sorted(host["Binds"]) == sorted([f"{v_vol}:/vol", f"{ro_vol}:/ro:ro", f"{scratch}:/bind"])
    asked: list[dict[str, Any]] = [{"Type": "volume", "Source": m_vol, "Target": "/vol2"},
             {"Type": "bind", "Source": str(scratch), "Target": "/bind2", "ReadOnly": True}]
    got = host["Mounts"]
    assert isinstance(got, list) and len(got) == 2, got
    for want, have in zip(asked, got, strict=True):
        assert {k: have.get(k) for k in want} == want, got
        assert not have.get("ReadOnly", False) or want.get("ReadOnly"), got
    # The same through the container list.
    filters = urllib.parse.quote(json.dumps({"id": [_inspect(docker, name)["Id"]]}))
    listed = api.get(f"/containers/json?all=1&filters={filters}").json()
    assert len(listed) == 1, listed
    assert {m["Destination"]: m for m in listed[0]["Mounts"]} == mounts
    docker.ok("rm", name)
    assert {v_vol, m_vol, ro_vol} <= _ls(docker), "removing the container removed named volumes"


def test_volume_filter_on_container_list(docker: Cli, new_volume: Names, new_name: Names) -> None:
    vol = new_volume("psf")
    name, other = new_name("psf"), new_name("other")
    docker.ok("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true")
    docker.ok("create", "--name", other, "busybox", "true")
    assert docker.ok("ps", "-a", "--filter", f"volume={vol}", "--format", "{{.Names}}").split() == [name]
    assert docker.ok("ps", "-a", "--filter", "volume=/data", "--format", "{{.Names}}").split() == [name]
    docker.ok("rm", name, other)


# Anonymous volumes.


def test_anonymous_volume_kept_by_rm_removed_by_rm_v(docker: Cli, new_name: Names) -> None:
    name = new_name("anon")
    docker.ok("run", "--name", name, "-v", "/data", "busybox", "sh", "-c", "echo anon > /data/f")
    mounts = _mounts(docker, name)
    m = mounts["/data"]
    assert HEX64.match(m["Name"]), m
    vol = _volume(docker, m["Name"])
    assert m == {"Type": "volume", "Name": m["Name"], "Source": vol["Mountpoint"],
                 "Destination": "/data", "Driver": "local", "Mode": "", "RW": True,
                 "Propagation": ""}
    assert vol["Labels"] == {ANONYMOUS_LABEL: ""}
    info = _inspect(docker, name)
    assert info["Config"]["Volumes"] == {"/data": {}}
    assert not info["HostConfig"]["Binds"]
    docker.ok("rm", name)
    try:
        assert m["Name"] in _ls(docker), "docker rm (without -v) removed the anonymous volume"
        assert Path(vol["Mountpoint"], "f").read_text() == "anon\n"
    finally:
        docker("volume", "rm", "-f", m["Name"])

    name2 = new_name("anon")
    docker.ok("run", "--name", name2, "-v", "/data", "busybox", "true")
    anon2 = _mounts(docker, name2)["/data"]["Name"]
    docker.ok("rm", "-v", name2)
    assert anon2 not in _ls(docker), "docker rm -v kept the anonymous volume"


def test_run_rm_removes_anonymous_not_named_volumes(docker: Cli, new_volume: Names) -> None:
    named = new_volume("keep")
    before = _ls(docker)
    docker.ok("run", "--rm", "-v", "/data", "-v", f"{named}:/named", "busybox", "sh", "-c",
              "echo x > /data/f; echo y > /named/f")
    _wait_for("--rm to remove the anonymous volume", lambda: _ls(docker) - before == {named})
    assert Path(_volume(docker, named)["Mountpoint"], "f").read_text() == "y\n"


def test_anonymous_volume_from_mount_without_source(docker: Cli, new_name: Names) -> None:
    name = new_name("anonm")
    docker.ok("create", "--name", name, "--mount", "type=volume,target=/data", "busybox", "true")
    m = _mounts(docker, name)["/data"]
    assert m["Type"] == "volume" and HEX64.match(m["Name"]), m
    docker.ok("rm", "-v", name)
    assert m["Name"] not in _ls(docker)


# Copy-up of the image's content into a new volume.


def test_new_named_volume_gets_image_content_with_owner_and_mode(
        docker: Cli, copyup_image: str, new_volume: Names) -> None:
    vol = new_volume("copy")
    out = docker.ok("run", "--rm", "-v", f"{vol}:/srv/data", copyup_image, "sh", "-c",
                    "stat -c '%a %u %g %n' /srv/data /srv/data/secret /srv/data/sub/nested;"
                    " cat /srv/data/secret")
    assert out.splitlines() == ["750 1000 1000 /srv/data", "640 1000 1000 /srv/data/secret",
                                "644 0 0 /srv/data/sub/nested", "s3cret"]
    mountpoint = Path(_volume(docker, vol)["Mountpoint"])
    for path, mode, uid in ((mountpoint, 0o750, 1000), (mountpoint / "secret", 0o640, 1000),
                            (mountpoint / "sub" / "nested", 0o644, 0)):
        st = os.lstat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, uid), path
    assert (mountpoint / "secret").read_text() == "s3cret\n"


def test_copy_up_of_busybox_etc_and_anonymous_volume(docker: Cli, copyup_image: str,
                                                    new_volume: Names) -> None:
    vol = new_volume("etc")
    out = docker.ok("run", "--rm", "-v", f"{vol}:/etc", "busybox", "sh", "-c",
                    "head -n 1 /etc/passwd")
    assert out == "root:x:0:0:root:/root:/bin/sh\n"
    assert Path(_volume(docker, vol)["Mountpoint"], "passwd").exists()
    out = docker.ok("run", "--rm", "-v", "/srv/data", copyup_image, "cat", "/srv/data/secret")
    assert out == "s3cret\n"


def test_non_empty_volume_is_not_populated(docker: Cli, copyup_image: str,
                                           new_volume: Names) -> None:
    vol = new_volume("full")
    docker.ok("run", "--rm", "-v", f"{vol}:/x", "busybox", "sh", "-c", "echo mine > /x/mine")
    out = docker.ok("run", "--rm", "-v", f"{vol}:/srv/data", copyup_image, "ls", "-A", "/srv/data")
    assert out.split() == ["mine"]
    assert sorted(os.listdir(_volume(docker, vol)["Mountpoint"])) == ["mine"]


@pytest.mark.parametrize("syntax", ["--mount", "-v"])
def test_nocopy_skips_the_copy(docker: Cli, copyup_image: str, new_volume: Names,
                               syntax: str) -> None:
    vol = new_volume("nocopy")
    spec = (f"type=volume,source={vol},target=/srv/data,volume-nocopy" if syntax == "--mount"
            else f"{vol}:/srv/data:nocopy")
    out = docker.ok("run", "--rm", syntax, spec, copyup_image, "ls", "-A", "/srv/data")
    assert out == ""
    assert os.listdir(_volume(docker, vol)["Mountpoint"]) == []


def test_bind_mount_is_never_populated(docker: Cli, copyup_image: str, scratch: Path) -> None:
    out = docker.ok("run", "--rm", "-v", f"{scratch}:/srv/data", copyup_image, "ls", "-A", "/srv/data")
    assert out == ""
    assert os.listdir(scratch) == []


# --volumes-from.


def test_volumes_from_and_read_only(docker: Cli, new_volume: Names, new_name: Names) -> None:
    vol = new_volume("vf")
    src, dst = new_name("vfsrc"), new_name("vfdst")
    docker.ok("run", "--name", src, "-v", f"{vol}:/shared", "-v", "/anon", "busybox", "sh", "-c",
              "echo a > /shared/f; echo b > /anon/g")
    src_mounts = _mounts(docker, src)
    out = docker.ok("run", "--name", dst, "--volumes-from", src, "busybox", "sh", "-c",
                    "cat /shared/f /anon/g; echo c > /shared/from-dst")
    assert out == "a\nb\n"
    dst_mounts = _mounts(docker, dst)
    assert set(dst_mounts) == {"/shared", "/anon"}
    for dest in ("/shared", "/anon"):
        assert dst_mounts[dest]["Name"] == src_mounts[dest]["Name"]
        assert dst_mounts[dest]["RW"] is True
    assert _inspect(docker, dst)["HostConfig"]["VolumesFrom"] == [src]
    res = docker("run", "--rm", "--volumes-from", f"{src}:ro", "busybox", "sh", "-c",
                 "cat /shared/from-dst; echo x > /shared/f")
    assert res.returncode != 0, describe(res)
    assert res.stdout == "c\n" and "Read-only file system" in res.stderr, describe(res)
    docker.ok("rm", dst)
    docker.ok("rm", "-v", src)
    assert src_mounts["/anon"]["Name"] not in _ls(docker)


# tmpfs.


def test_tmpfs_flag_and_mount(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "--tmpfs", "/t", "busybox", "sh", "-c",
                    "grep ' /t ' /proc/mounts; echo x > /t/f && cat /t/f")
    fields = _proc_mount_line(out, "/t")
    assert fields[2] == "tmpfs", out
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(fields[3].split(",")), out
    assert out.endswith("x\n")
    res = docker("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "sh",
                 "-c", "grep ' /t ' /proc/mounts; dd if=/dev/zero of=/t/big bs=1024 count=2048")
    assert res.returncode != 0, describe(res)
    fields = _proc_mount_line(res.stdout, "/t")
    assert fields[2] == "tmpfs" and "size=1024k" in fields[3].split(","), describe(res)
    assert "No space left on device" in res.stderr, describe(res)


def test_tmpfs_mount_in_inspect(docker: Cli, new_name: Names) -> None:
    name = new_name("tmpfs")
    docker.ok("create", "--name", name, "--tmpfs", "/t1:size=64k",
              "--mount", "type=tmpfs,target=/t2", "busybox", "true")
    info = _inspect(docker, name)
    assert info["HostConfig"]["Tmpfs"] == {"/t1": "size=64k"}
    assert [m["Type"] for m in info["HostConfig"]["Mounts"]] == ["tmpfs"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/t2"]["Type"] == "tmpfs" and mounts["/t2"]["RW"] is True, mounts
    assert "/t1" not in mounts, mounts
    docker.ok("rm", name)


# Volumes with driver options.


def test_tmpfs_volume_from_driver_options(docker: Cli, new_volume: Names) -> None:
    vol = new_volume("tmpvol")
    docker.ok("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
              "--opt", "o=size=1m", vol)
    info = _volume(docker, vol)
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    out = docker.ok("run", "--rm", "-v", f"{vol}:/x", "busybox", "sh", "-c",
                    "grep ' /x ' /proc/mounts; echo kept > /x/f")
    fields = _proc_mount_line(out, "/x")
    assert fields[2] == "tmpfs" and "size=1024k" in fields[3].split(","), out
    # Unmounted when no container uses it any more: the data was in memory only.
    _wait_for("the tmpfs volume to be unmounted", lambda: not _host_mounted(info["Mountpoint"]))
    assert docker.ok("run", "--rm", "-v", f"{vol}:/x", "busybox", "ls", "-A", "/x") == ""


def test_bind_volume_from_driver_options(docker: Cli, new_volume: Names, scratch: Path) -> None:
    device = scratch / "device"
    device.mkdir()
    (device / "hostfile").write_text("on the host\n")
    vol = new_volume("bindvol")
    docker.ok("volume", "create", "--opt", "type=none", "--opt", "o=bind",
              "--opt", f"device={device}", vol)
    out = docker.ok("run", "--rm", "-v", f"{vol}:/x", "busybox", "sh", "-c",
                    "cat /x/hostfile; echo from the container > /x/fromc")
    assert out == "on the host\n"
    assert (device / "fromc").read_text() == "from the container\n"
    mountpoint = _volume(docker, vol)["Mountpoint"]
    deadline = time.monotonic() + 10
    while _host_mounted(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.2)
    still_mounted = _host_mounted(mountpoint)
    docker.ok("volume", "rm", vol)
    assert sorted(os.listdir(device)) == ["fromc", "hostfile"], "volume rm deleted the device's files"
    assert (device / "hostfile").read_text() == "on the host\n"
    assert not _host_mounted(mountpoint), "volume rm left the device mounted"
    assert not still_mounted, "the device stayed mounted on the volume after its container exited"


# Bad input: Docker's errors, and nothing is created.


def _fails_cleanly(docker: Cli, args: list[str], message: str) -> None:
    volumes = _ls(docker)
    res = docker(*args)
    assert res.returncode != 0, describe(res)
    assert message in res.stderr, describe(res)
    assert _ls(docker) == volumes, f"{args} left a volume"


@pytest.mark.parametrize("name", ["bad name!", "..", "../escape", "a/b", ".hidden", "-dash"])
def test_bad_volume_name(docker: Cli, berthd: BerthDaemon, name: str) -> None:
    before = sorted(os.listdir(berthd.data_root))
    _fails_cleanly(docker, ["volume", "create", "--", name],
                   "includes invalid characters for a local volume name")
    assert sorted(os.listdir(berthd.data_root)) == before
    assert not (berthd.data_root / "escape").exists()


def test_bad_volume_name_in_run(docker: Cli) -> None:
    _fails_cleanly(docker, ["run", "--rm", "-v", "bad@name:/x", "busybox", "true"],
                   "includes invalid characters for a local volume name")


def test_one_character_volume_name(docker: Cli) -> None:
    _fails_cleanly(docker, ["volume", "create", "a"],
                   "volume name is too short, names should be at least two alphanumeric characters")


def test_unknown_volume_driver(docker: Cli) -> None:
    name = f"drv-{uuid.uuid4().hex[:8]}"
    _fails_cleanly(docker, ["volume", "create", "-d", "nosuchdriver", name],
                   'plugin "nosuchdriver" not found')


def test_relative_container_path(docker: Cli) -> None:
    name = f"rel-{uuid.uuid4().hex[:8]}"
    _fails_cleanly(docker, ["run", "--rm", "-v", f"{name}:relative", "busybox", "true"],
                   "invalid mount path: 'relative' mount path must be absolute")
    _fails_cleanly(docker, ["create", "--mount", f"type=volume,source={name},target=relative",
                            "busybox", "true"],
                   "invalid mount path: 'relative' mount path must be absolute")


def test_destination_root(docker: Cli, scratch: Path) -> None:
    name = f"root-{uuid.uuid4().hex[:8]}"
    _fails_cleanly(docker, ["run", "--rm", "-v", f"{scratch}:/", "busybox", "true"],
                   "destination can't be '/'")
    _fails_cleanly(docker, ["run", "--rm", "-v", f"{name}:/", "busybox", "true"],
                   "destination can't be '/'")
    _fails_cleanly(docker, ["create", "--mount", f"type=volume,source={name},target=/",
                            "busybox", "true"],
                   "destination can't be '/'")


def test_remove_volume_in_use(docker: Cli, api: ApiClient, new_volume: Names,
                              new_name: Names) -> None:
    vol = new_volume("inuse")
    holder = new_name("holder")
    docker.ok("create", "--name", holder, "-v", f"{vol}:/x", "busybox", "true")
    res = docker("volume", "rm", vol)
    assert res.returncode != 0 and "volume is in use" in res.stderr, describe(res)
    res = docker("volume", "rm", "-f", vol)
    assert res.returncode != 0 and "volume is in use" in res.stderr, describe(res)
    resp = api.request("DELETE", f"/volumes/{vol}")
    assert resp.status == 409, (resp.status, resp.body)
    assert "volume is in use" in resp.json()["message"]
    assert vol in _ls(docker)
    docker.ok("rm", holder)
    docker.ok("volume", "rm", vol)


def test_remove_and_inspect_missing_volume(docker: Cli, api: ApiClient) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    resp = api.request("DELETE", f"/volumes/{missing}")
    assert resp.status == 404, (resp.status, resp.body)
    assert "no such volume" in resp.json()["message"].lower()
    resp = api.get(f"/volumes/{missing}")
    assert resp.status == 404, (resp.status, resp.body)
    assert "no such volume" in resp.json()["message"].lower()
    res = docker("volume", "rm", missing)
    assert res.returncode != 0 and "no such volume" in res.stderr.lower(), describe(res)
    res = docker("volume", "inspect", missing)
    assert res.returncode != 0 and "no such volume" in res.stderr.lower(), describe(res)
    assert api.request("DELETE", f"/volumes/{missing}?force=1").status == 204
    assert docker("volume", "rm", "-f", missing).returncode == 0


# The raw API.


def test_api_volume_shapes(api: ApiClient, new_volume: Names, berthd: BerthDaemon) -> None:
    name = new_volume("api")
    resp = api.post_json("/volumes/create", {"Name": name, "Labels": {"k": "v"}})
    assert resp.status == 201, (resp.status, resp.body)
    created = resp.json()
    assert created["Name"] == name and created["Driver"] == "local"
    assert created["Labels"] == {"k": "v"} and created["Scope"] == "local"
    assert created["Mountpoint"] == f"{berthd.data_root}/volumes/{name}/_data"
    listed = api.get("/volumes").json()
    assert set(listed) >= {"Volumes", "Warnings"}
    assert name in [v["Name"] for v in listed["Volumes"]]
    filters = urllib.parse.quote(json.dumps({"label": ["k=v"], "name": [name]}))
    resp = api.get(f"/volumes?filters={filters}")
    assert [v["Name"] for v in resp.json()["Volumes"]] == [name]
    got = api.get(f"/volumes/{name}").json()
    assert {k: got[k] for k in ("Name", "Driver", "Mountpoint", "Labels", "Scope")} == \
        {k: created[k] for k in ("Name", "Driver", "Mountpoint", "Labels", "Scope")}
    resp = api.post_json("/volumes/create", {"Name": "bad name!"})
    assert resp.status == 400, (resp.status, resp.body)
    resp = api.request("DELETE", f"/volumes/{name}")
    assert resp.status == 204, (resp.status, resp.body)


# docker-py.


def test_docker_py_volumes(docker_client: Any, new_volume: Names) -> None:
    import docker as docker_py

    name = new_volume("py")
    vol = docker_client.volumes.create(name=name, driver="local", labels={"k": "v"})
    assert vol.name == name
    got = docker_client.volumes.get(name)
    assert got.attrs["Labels"] == {"k": "v"} and got.attrs["Driver"] == "local"
    assert name in [v.name for v in docker_client.volumes.list(filters={"label": "k=v"})]
    out = docker_client.containers.run("busybox", ["sh", "-c", "echo py > /data/f; cat /data/f"],
                                       volumes={name: {"bind": "/data", "mode": "rw"}},
                                       remove=True)
    assert out == b"py\n"
    out = docker_client.containers.run("busybox", ["cat", "/data/f"],
                                       volumes=[f"{name}:/data:ro"], remove=True)
    assert out == b"py\n"

    cid = docker_client.api.create_container("busybox", "true", volumes=["/anon"])["Id"]
    container = docker_client.containers.get(cid)
    anonymous = [m["Name"] for m in container.attrs["Mounts"]]
    assert len(anonymous) == 1 and HEX64.match(anonymous[0]), container.attrs["Mounts"]
    container.remove()
    result = docker_client.volumes.prune()
    assert anonymous[0] in (result["VolumesDeleted"] or []), result
    assert name not in (result["VolumesDeleted"] or []), result
    assert isinstance(result["SpaceReclaimed"], int)

    got.remove()
    with pytest.raises(docker_py.errors.NotFound):
        docker_client.volumes.get(name)


# docker system df.


def test_system_df_lists_volumes_with_size_and_links(docker: Cli, new_volume: Names,
                                                     new_name: Names) -> None:
    vol, idle = new_volume("df"), new_volume("dfidle")
    docker.ok("volume", "create", idle)
    name = new_name("df")
    docker.ok("run", "--name", name, "-v", f"{vol}:/data", "busybox", "sh", "-c",
              "head -c 1234 /dev/zero > /data/blob")
    out = docker.ok("system", "df", "-v")
    assert "Local Volumes space usage:" in out, out
    section = out.split("Local Volumes space usage:", 1)[1]
    rows = {line.split()[0]: line.split() for line in section.splitlines() if line.split()}
    assert rows["VOLUME"] == ["VOLUME", "NAME", "LINKS", "SIZE"], section
    assert rows[vol][1:] == ["1", "1.234kB"], section
    assert rows[idle][1:] == ["0", "0B"], section
    docker.ok("rm", name)


# Mount targets through symlinks stay inside the container's root.


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_mount_target_through_symlink_stays_in_the_root(
        docker: Cli, symlink_image: tuple[str, str], new_volume: Names, scratch: Path,
        link: str) -> None:
    image, marker = symlink_image
    host_path = Path("/tmp", marker)
    (scratch / "from-host").write_text("bound\n")
    vol = new_volume("link")
    mounts_before = _host_mounts()
    try:
        out = docker.ok("run", "--rm", "-v", f"{scratch}:/srv/{link}/bind",
                        "-v", f"{vol}:/srv/{link}/vol", image, "sh", "-c",
                        f"cat /srv/{link}/bind/from-host; echo in-volume > /srv/{link}/vol/f;"
                        f" ls -d /tmp/{marker}/bind /tmp/{marker}/vol")
        assert out == f"bound\n/tmp/{marker}/bind\n/tmp/{marker}/vol\n"
        assert not host_path.exists(), "a mount target was created on the host, outside the root"
        assert Path(_volume(docker, vol)["Mountpoint"], "f").read_text() == "in-volume\n"
        # what this test could have mounted wrongly: the marker's path, or its bind
        # source and volume anywhere else (other engines' mounts come and go meanwhile)
        left = {m for m in _host_mounts() - mounts_before
                if marker in m or str(scratch) in m or vol in m}
        assert left == set(), "a mount was left on the host"
    finally:
        if host_path.is_dir() and not os.path.ismount(host_path):
            shutil.rmtree(host_path, ignore_errors=True)


def _host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


# berth, our own CLI: the same grammar and output.


def test_berth_cli_volume_commands(berth: Cli, docker: Cli, new_volume: Names) -> None:
    name = new_volume("berthcli")
    assert berth.ok("volume", "create", "--label", "via=berth", name) == f"{name}\n"
    rows = [line.split() for line in berth.ok("volume", "ls").splitlines()]
    assert rows[0] == ["DRIVER", "VOLUME", "NAME"] and ["local", name] in rows[1:]
    assert set(berth.ok("volume", "ls", "-q", "--filter", "label=via=berth").split()) == {name}
    assert json.loads(berth.ok("volume", "inspect", name)) == json.loads(
        docker.ok("volume", "inspect", name))
    assert berth.ok("volume", "inspect", "-f", "{{.Driver}} {{.Labels}}", name) == \
        docker.ok("volume", "inspect", "-f", "{{.Driver}} {{.Labels}}", name)
    assert berth.ok("run", "--rm", "-v", f"{name}:/data", "busybox", "sh", "-c",
                    "echo via berth > /data/f; cat /data/f") == "via berth\n"
    assert docker.ok("run", "--rm", "--mount", f"type=volume,source={name},target=/data,readonly",
                     "busybox", "cat", "/data/f") == "via berth\n"
    res = berth("volume", "rm", f"missing-{uuid.uuid4().hex[:8]}")
    assert res.returncode != 0 and "no such volume" in res.stderr.lower(), describe(res)
    out = berth.ok("volume", "prune", "-a", "-f", "--filter", "label=via=berth")
    assert name in out.split(), out
    assert name not in _ls(docker)


# volume-subpath (VolumeOptions.Subpath, API 1.45): one directory of a volume.


def _fill_subpath_volume(docker: Cli, name: str) -> None:
    """`sub/` with a file, a file at the top, and symlinks: one inside, two leading out."""
    docker.ok("run", "--rm", "-v", f"{name}:/v", "busybox", "sh", "-c",
              "mkdir /v/sub && echo in-sub > /v/sub/f && echo top > /v/topf"
              " && ln -s /etc /v/abs && ln -s ../.. /v/up && ln -s sub /v/inside")


def test_volume_subpath_mounts_only_that_directory(docker: Cli, berth: Cli, new_volume: Names,
                                                   new_name: Names) -> None:
    vol = new_volume("subpath")
    _fill_subpath_volume(docker, vol)
    out = docker.ok("run", "--rm", "--mount", f"type=volume,src={vol},dst=/x,volume-subpath=sub", "busybox",
                    "sh", "-c", "ls /x; cat /x/f; echo written > /x/new")
    assert out.split() == ["f", "in-sub"]
    # what the container wrote is in the subdirectory; a symlink inside the volume is followed
    out = berth.ok("run", "--rm", "--mount", f"type=volume,src={vol},dst=/y,volume-subpath=inside", "busybox",
                   "sh", "-c", "ls /y | sort; cat /y/new")
    assert out.split() == ["f", "new", "written"]
    name = new_name("subpath")
    docker.ok("create", "--name", name, "--mount", f"type=volume,src={vol},dst=/x,volume-subpath=sub", "busybox",
              "sleep", "60")
    assert json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.Mounts}}", name)) == [
        {"Type": "volume", "Source": vol, "Target": "/x", "VolumeOptions": {"Subpath": "sub"}}]
    # while it runs, berthd holds the resolved directory for it (a bind, as dockerd's
    # safepath: what the runtime mounts cannot be swapped for a symlink); the hold goes
    # with the container's exit, and the directory swapped afterwards changes nothing
    docker.ok("start", name)
    cid = docker.ok("inspect", "-f", "{{.Id}}", name).strip()
    holds = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f"/{cid}-0 " in line]
    assert len(holds) == 1, holds
    docker.ok("run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c", "mv /v/sub /v/moved && ln -s /etc /v/sub")
    assert docker.ok("exec", name, "cat", "/x/f").strip() == "in-sub"
    docker.ok("rm", "-f", name)
    assert f"/{cid}-0 " not in Path("/proc/self/mountinfo").read_text()


def test_volume_subpath_through_docker_py_and_the_api_version_gate(docker_client: Any, api: ApiClient,
                                                                   docker: Cli, new_volume: Names) -> None:
    import docker as docker_py

    vol = new_volume("subpy")
    _fill_subpath_volume(docker, vol)
    out = docker_client.containers.run("busybox", ["ls", "/x"], remove=True,
                                       mounts=[docker_py.types.Mount("/x", vol, subpath="sub")])
    assert out.split() == [b"f"]
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "volume", "Source": vol, "Target": "/x", "VolumeOptions": {"Subpath": "sub"}}]}}
    res = api.post_json("/v1.44/containers/create", body)
    assert res.status == 400
    assert res.json()["message"] == "VolumeOptions.Subpath needs API v1.45 or newer"


@pytest.mark.parametrize(("subpath", "source", "message"), [
    ("../x", "VOL", 'invalid mount config for type "volume": subpath must be a relative path within the volume'),
    ("/sub", "VOL", 'invalid mount config for type "volume": subpath must be a relative path within the volume'),
    ("sub", "", 'invalid mount config for type "volume": must not set Subpath when using anonymous volumes'),
])
def test_volume_subpath_refused_at_create(docker: Cli, new_volume: Names, subpath: str, source: str,
                                          message: str) -> None:
    vol = new_volume("subbad")
    docker.ok("volume", "create", vol)
    src = f"src={vol}," if source else ""
    before = set(docker.ok("ps", "-aq", "--no-trunc").split())
    _fails_cleanly(docker, ["create", "--mount", f"type=volume,{src}dst=/x,volume-subpath={subpath}", "busybox"],
                   message)
    assert set(docker.ok("ps", "-aq", "--no-trunc").split()) == before


@pytest.mark.parametrize(("subpath", "message"), [
    ("missing", "cannot access path {data}/missing: lstat {data}/missing: no such file or directory"),
    ("sub/f/deeper", "cannot access path {data}/sub/f/deeper: lstat {data}/sub/f/deeper: not a directory"),
    ("abs", "path concatenation escapes the base directory, base: {data}, subpath: abs"),
    ("up", "path concatenation escapes the base directory, base: {data}, subpath: up"),
])
def test_volume_subpath_missing_or_escaping_fails_the_start(docker: Cli, berthd: BerthDaemon, new_volume: Names,
                                                            new_name: Names, subpath: str, message: str) -> None:
    vol = new_volume("subesc")
    _fill_subpath_volume(docker, vol)
    data = docker.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip()
    mounts_before = Path("/proc/self/mountinfo").read_text().count(str(berthd.root))
    name = new_name("subesc")
    res = docker("run", "--name", name, "--mount", f"type=volume,src={vol},dst=/x,volume-subpath={subpath}",
                 "busybox", "ls", "/x")
    assert res.returncode != 0
    assert message.format(data=data) in res.stderr, describe(res)
    # as dockerd: the container stays Created, nothing of it is mounted, the volume is untouched
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "created"
    assert Path("/proc/self/mountinfo").read_text().count(str(berthd.root)) == mounts_before
    assert sorted(os.listdir(data)) == ["abs", "inside", "sub", "topf", "up"]
    docker.ok("rm", name)
    docker.ok("volume", "rm", vol)
