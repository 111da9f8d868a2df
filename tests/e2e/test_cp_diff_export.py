"""Container filesystems through the real docker CLI: cp in and out, diff, export, and
that nothing in a container (symlinks, hostile archives) can make cp write on the host."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def _source_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    secret = src / "secret"
    secret.write_text("only for 1234\n")
    os.chmod(secret, 0o600)
    os.chown(secret, 1234, 1234)
    (src / "sub" / "g").write_text("g\n")
    os.symlink("secret", src / "link")
    return src


def _root_mounted(cid: str) -> bool:
    """Whether the container's root is still mounted, once the daemon had a moment: the
    CLI can return before the daemon has finished the request and unmounted."""
    deadline = time.monotonic() + 5
    while True:
        with open("/proc/self/mountinfo") as f:
            mounted = any(f"/overlay/containers/{cid}/" in line for line in f)
        if not mounted or time.monotonic() > deadline:
            return mounted
        time.sleep(0.1)


def _container_id(docker: Cli, name: str) -> str:
    return docker.ok("inspect", "-f", "{{.Id}}", name).strip()


def test_cp_into_running_container_and_back_keeps_owner_and_mode(
        docker: Cli, api: ApiClient, new_name: Names, tmp_path: Path) -> None:
    src = _source_tree(tmp_path)
    name = new_name("cp")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    docker.ok("cp", str(src), f"{name}:/dst")
    out = tmp_path / "out"
    out.mkdir()
    docker.ok("cp", f"{name}:/dst", str(out))
    # The CLI writes host files as the user who runs it; the archive itself keeps owners.
    assert stat.S_IMODE(os.lstat(out / "dst" / "secret").st_mode) == 0o600
    resp = api.get(f"/containers/{name}/archive?path=/dst")
    assert resp.status == 200
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        secret = tar.getmember("dst/secret")
        assert (secret.mode, secret.uid, secret.gid) == (0o600, 1234, 1234)
        assert tar.getmember("dst/sub").isdir() and tar.getmember("dst/link").issym()
    assert (out / "dst" / "secret").read_text() == "only for 1234\n"
    assert (out / "dst" / "sub" / "g").read_text() == "g\n"
    assert os.readlink(out / "dst" / "link") == "secret"
    docker.ok("rm", "-f", name)


def test_cp_into_created_container_is_seen_inside(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    src = _source_tree(tmp_path)
    name = new_name("cp")
    docker.ok("create", "--name", name, "busybox", "sh", "-c",
              "stat -c '%a %u %g %n' /dst/secret /dst/sub/g; cat /dst/secret")
    docker.ok("cp", str(src), f"{name}:/dst")
    cid = _container_id(docker, name)
    assert not _root_mounted(cid), "cp left the root of a created container mounted"
    output = docker.ok("start", "-a", name)
    assert "600 1234 1234 /dst/secret" in output
    assert "644 0 0 /dst/sub/g" in output or "/dst/sub/g" in output
    assert "only for 1234" in output
    docker.ok("rm", name)


def test_cp_out_of_stopped_container(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    name = new_name("cp")
    docker.ok("run", "--name", name, "busybox", "sh", "-c",
              "mkdir /data && echo hello > /data/a && chmod 640 /data/a && chown 7:8 /data/a")
    docker.ok("cp", f"{name}:/data/a", str(tmp_path / "a"))
    st = os.lstat(tmp_path / "a")
    assert (tmp_path / "a").read_text() == "hello\n"
    assert stat.S_IMODE(st.st_mode) == 0o640  # owned by the CLI's user, as with Docker
    docker.ok("cp", f"{name}:/data", str(tmp_path / "data"))
    assert (tmp_path / "data" / "a").read_text() == "hello\n"
    cid = _container_id(docker, name)
    assert not _root_mounted(cid), "cp left the root of a stopped container mounted"
    res = docker("cp", f"{name}:/nope", str(tmp_path / "nope"))
    assert res.returncode != 0 and "nope" in res.stderr, describe(res)
    docker.ok("rm", name)


@pytest.mark.parametrize("target", ["/", "../../..", "../../../../../../../.."])
def test_cp_through_symlink_stays_inside_the_root(
        docker: Cli, new_name: Names, tmp_path: Path, target: str) -> None:
    marker = f"berth-cp-escape-{uuid.uuid4().hex[:8]}"
    (tmp_path / marker).write_text("escaped?\n")
    name = new_name("cp")
    docker.ok("run", "--name", name, "busybox", "sh", "-c", f"ln -s {target} /link && mkdir /tmp/x")
    docker.ok("cp", str(tmp_path / marker), f"{name}:/link/")
    docker.ok("cp", str(tmp_path / marker), f"{name}:/link/tmp/x/")
    assert not os.path.exists(f"/{marker}"), "docker cp wrote on the host through a symlink"
    assert not os.path.exists(f"/tmp/x/{marker}"), "docker cp wrote on the host through a symlink"
    back = tmp_path / "back"
    docker.ok("cp", f"{name}:/{marker}", str(back))
    assert back.read_text() == "escaped?\n"
    docker.ok("cp", f"{name}:/tmp/x/{marker}", str(tmp_path / "back2"))
    docker.ok("rm", name)


def _hostile_tar(marker: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        add(link)
        rel = tarfile.TarInfo("rel")
        rel.type, rel.linkname = tarfile.SYMTYPE, "../../../../../../.."
        add(rel)
        add(tarfile.TarInfo(f"up/tmp/{marker}-1"), b"x")
        add(tarfile.TarInfo(f"rel/tmp/{marker}-2"), b"x")
        add(tarfile.TarInfo(f"/tmp/{marker}-3"), b"x")
        hard = tarfile.TarInfo("shadow")
        hard.type, hard.linkname = tarfile.LNKTYPE, "up/etc/shadow"
        add(hard)
    return buf.getvalue()


def test_put_hostile_archive_cannot_write_outside(
        docker: Cli, api: ApiClient, new_name: Names) -> None:
    marker = f"berth-evil-{uuid.uuid4().hex[:8]}"
    name = new_name("cp")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    resp = api.request("PUT", f"/containers/{name}/archive?path=/", body=_hostile_tar(marker),
                       headers={"Content-Type": "application/x-tar"})
    assert resp.status == 200, resp.body
    for i in (1, 2, 3):
        assert not os.path.exists(f"/tmp/{marker}-{i}"), "a hostile archive wrote on the host"
    inside = docker.ok("run", "--rm", "busybox", "true")
    assert inside == ""
    for i in (1, 2, 3):
        head = api.head(f"/containers/{name}/archive?path=/tmp/{marker}-{i}")
        assert head.status == 200, i
    shadow = api.head(f"/containers/{name}/archive?path=/shadow")
    assert shadow.status == 200
    escape = tarfile.TarInfo("../../../../etc/berth-evil")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(escape, io.BytesIO(b""))
    resp = api.request("PUT", f"/containers/{name}/archive?path=/tmp", body=buf.getvalue())
    assert resp.status == 400 and "leaves the extraction directory" in resp.body.decode()
    docker.ok("rm", "-f", name)


def test_archive_stat_and_errors(docker: Cli, api: ApiClient, new_name: Names) -> None:
    name = new_name("cp")
    docker.ok("create", "--name", name, "busybox")
    resp = api.head(f"/containers/{name}/archive?path=/bin/sh")
    assert resp.status == 200
    doc = json.loads(base64.b64decode(resp.header("X-Docker-Container-Path-Stat") or ""))
    assert doc["name"] == "sh" and doc["mode"] & (1 << 27) and doc["linkTarget"] == "/bin/busybox"
    resp = api.head(f"/containers/{name}/archive?path=/etc")
    doc = json.loads(base64.b64decode(resp.header("X-Docker-Container-Path-Stat") or ""))
    assert doc["name"] == "etc" and doc["mode"] == (1 << 31) | 0o755 and doc["mtime"].endswith("Z")
    assert api.head(f"/containers/{name}/archive?path=/nope").status == 404
    resp = api.get(f"/containers/{name}/archive?path=/nope")
    assert resp.status == 404
    assert resp.json()["message"] == f"Could not find the file /nope in container {name}"
    resp = api.request("PUT", f"/containers/{name}/archive?path=/etc/passwd", body=b"")
    assert resp.status == 400 and resp.json()["message"] == "extraction point is not a directory"
    resp = api.request("PUT", f"/containers/{name}/archive?path=/nope", body=b"")
    assert resp.status == 404
    docker.ok("rm", name)


def test_diff_and_export(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    name = new_name("diff")
    docker.ok("run", "--name", name, "busybox", "sh", "-c",
              "touch /new; rm /etc/group; echo x >> /etc/passwd")
    lines = docker.ok("diff", name).splitlines()
    assert lines == ["C /etc", "D /etc/group", "C /etc/passwd", "A /new"]
    out = tmp_path / "export.tar"
    docker.ok("export", "-o", str(out), name)
    with tarfile.open(out) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/sh"].issym() or members["bin/sh"].islnk()
    assert "new" in members and "etc/passwd" in members
    assert "etc/group" not in members
    assert members["etc/passwd"].size > 0
    cid = _container_id(docker, name)
    assert not _root_mounted(cid), "export left the container's root mounted"
    docker.ok("rm", name)


def test_diff_of_running_container(docker: Cli, new_name: Names) -> None:
    name = new_name("diff")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "mkdir -p /a/b && sleep 300")
    for _ in range(50):
        lines = docker.ok("diff", name).splitlines()
        if "A /a/b" in lines:
            break
        time.sleep(0.1)
    assert lines == ["A /a", "A /a/b"]
    docker.ok("rm", "-f", name)


def test_cp_archive_mode_takes_the_container_user(docker: Cli, new_name: Names, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f\n")
    name = new_name("cp")
    docker.ok("create", "--name", name, "--user", "5:6", "busybox", "stat", "-c", "%u %g %a", "/tmp/f")
    docker.ok("cp", "-a", str(tmp_path / "f"), f"{name}:/tmp/f")
    assert docker.ok("start", "-a", name).split() == ["5", "6", "644"]
    docker.ok("rm", name)
