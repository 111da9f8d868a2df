"""Hostile archives through the API and the docker CLI: `docker import`, `docker cp`
(PUT /containers/{id}/archive) and `docker load`. Each is refused with a clear message,
or what it carries ends up inside the image or container and nothing appears on the host.

The hostile entries are appended to the busybox rootfs, so an imported image can run and
show where they landed. Every entry is named after a fresh marker, so the host check is
exact: no path with the marker may exist outside berth's data root.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from helpers.api import ApiClient
from helpers.cli import Cli, describe, import_image

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]
Add = Callable[..., None]


def _adder(tar: tarfile.TarFile) -> Add:
    def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"pwned\n", linkname: str = "",
            devmajor: int = 0, devminor: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, linkname, 0o644
        info.devmajor, info.devminor = devmajor, devminor
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return add


def _with_rootfs(rootfs: Path, hostile: Callable[[Add], None]) -> bytes:
    """The busybox rootfs followed by hostile entries, as one uncompressed tar."""
    out = io.BytesIO()
    with tarfile.open(rootfs) as src, tarfile.open(fileobj=out, mode="w",
                                                   format=tarfile.PAX_FORMAT) as tar:
        for member in src:
            tar.addfile(member, src.extractfile(member) if member.isreg() else None)
        hostile(_adder(tar))
    return out.getvalue()


@pytest.fixture
def marker(berth_root: Path) -> Iterator[str]:
    """A fresh name; afterwards, nothing by that name may exist outside berth's data root."""
    name = f"berth-hostile-{uuid.uuid4().hex[:12]}"
    yield name
    for top in ("/", "/etc", "/tmp", str(berth_root), str(berth_root.parent)):
        leaked = [p for p in os.listdir(top) if name in p]
        assert not leaked, f"{leaked} appeared in {top}"


# Each case: (hostile entries, the shell test that must pass in the imported image, or
# None when the import must fail, with the words its error must contain).
ContainedCase = tuple[Callable[[str], Callable[[Add], None]], str | None, str]

IMPORT_CASES: dict[str, ContainedCase] = {
    "dotdot": (lambda m: lambda add: add(f"../../../../etc/{m}"), "grep -q pwned /etc/{m}", ""),
    "absolute": (lambda m: lambda add: add(f"/etc/{m}"), "grep -q pwned /etc/{m}", ""),
    "symlink-to-root": (lambda m: lambda add: (add(f"{m}-evil", tarfile.SYMTYPE, linkname="/"),
                                               add(f"{m}-evil/tmp/{m}")),
                        "grep -q pwned /tmp/{m}", ""),
    "symlink-to-parents": (lambda m: lambda add: (add(f"{m}-up", tarfile.SYMTYPE, linkname="../../.."),
                                                  add(f"{m}-up/etc/{m}")),
                           "grep -q pwned /etc/{m}", ""),
    "hardlink-inside": (lambda m: lambda add: add(f"{m}", tarfile.LNKTYPE, linkname="/etc/passwd"),
                        "grep -q root /{m}", ""),
    "hardlink-missing": (lambda m: lambda add: add(f"{m}", tarfile.LNKTYPE, linkname=f"/etc/{m}-shadow"),
                         None, "invalid hardlink"),
    "char-device": (lambda m: lambda add: add(f"{m}-null", tarfile.CHRTYPE, devmajor=1, devminor=3),
                    "test -c /{m}-null", ""),
    "whiteout-outside": (lambda m: lambda add: add(f"../.wh.{m}"), "true", ""),
    "huge-pax-path": (lambda m: lambda add: add("d/" * 50_000 + m), None, "invalid tar archive"),
}


@pytest.mark.parametrize("case", IMPORT_CASES)
def test_import_hostile_tar(docker: Cli, busybox_tar: Path, tmp_path: Path, marker: str,
                            new_name: Names, case: str) -> None:
    build, check, error = IMPORT_CASES[case]
    tar = tmp_path / "hostile.tar"
    tar.write_bytes(_with_rootfs(busybox_tar, build(marker)))
    ref = f"hostile-{case}:{marker[-6:]}"
    res = import_image(docker, tar, ref)
    try:
        if check is None:
            assert res.returncode != 0, describe(res)
            assert error in res.stderr, describe(res)
            return
        assert res.returncode == 0, describe(res)
        docker.ok("run", "--rm", "--name", new_name("h"), ref, "sh", "-c", check.format(m=marker))
    finally:
        docker("rmi", "-f", ref)


def test_import_truncated_tar_is_refused(docker: Cli, busybox_tar: Path, tmp_path: Path) -> None:
    whole = _with_rootfs(busybox_tar, lambda add: add("big", data=b"x" * 200_000))
    tar = tmp_path / "truncated.tar"
    tar.write_bytes(whole[: len(whole) - 150_000])
    res = import_image(docker, tar, "hostile-truncated:1")
    assert res.returncode != 0, describe(res)
    assert "invalid tar archive" in res.stderr or "truncated" in res.stderr, describe(res)


def test_import_zstd_rootfs(docker: Cli, busybox_tar: Path, tmp_path: Path, new_name: Names) -> None:
    tar = tmp_path / "rootfs.tar.zst"
    tar.write_bytes(zstandard.ZstdCompressor().compress(busybox_tar.read_bytes()))
    ref = "zstd-import:1"
    res = import_image(docker, tar, ref)
    assert res.returncode == 0, describe(res)
    try:
        assert docker.ok("run", "--rm", "--name", new_name("z"), ref, "echo", "zstd ok").strip() == "zstd ok"
    finally:
        docker("rmi", "-f", ref)


CP_CASES: dict[str, Callable[[str], Callable[[Add], None]]] = {
    "absolute": lambda m: lambda add: add(f"/etc/{m}"),
    "symlink-then-file": lambda m: lambda add: (add(f"{m}-evil", tarfile.SYMTYPE, linkname="/"),
                                                add(f"{m}-evil/tmp/{m}")),
    "symlink-parents-then-file": lambda m: lambda add: (
        add(f"{m}-up", tarfile.SYMTYPE, linkname="../../../../.."), add(f"{m}-up/tmp/{m}")),
    "hardlink-outside": lambda m: lambda add: add(m, tarfile.LNKTYPE, linkname="/etc/shadow"),
    "hardlink-through-symlink": lambda m: lambda add: (add(f"{m}-evil", tarfile.SYMTYPE, linkname="/"),
                                                       add(m, tarfile.LNKTYPE, linkname=f"{m}-evil/etc/passwd")),
    "char-device": lambda m: lambda add: add(f"{m}-null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    "dotdot": lambda m: lambda add: add(f"../../../../tmp/{m}"),
}


@pytest.mark.parametrize("case", CP_CASES)
def test_cp_hostile_tar_is_contained(docker: Cli, api: ApiClient, new_name: Names, marker: str,
                                     case: str) -> None:
    name = new_name("cp")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        CP_CASES[case](marker)(_adder(tar))
    resp = api.request("PUT", f"/containers/{name}/archive?path=/tmp", body=out.getvalue(),
                       headers={"Content-Type": "application/x-tar"})
    assert resp.status in (200, 400), resp.body
    if resp.status == 400:
        assert json.loads(resp.body)["message"], resp.body
    export = api.get(f"/containers/{name}/export")
    assert export.status == 200
    with tarfile.open(fileobj=io.BytesIO(export.body)) as tar:
        landed = [m.name for m in tar if marker in m.name]
    for path in landed:
        assert path.startswith("tmp/"), f"{path} landed outside /tmp in the container"


def _save_archive(member: str) -> bytes:
    """A docker-save archive whose one layer has a hostile member name."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        _adder(t)("x")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        add = _adder(tar)
        add(member, data=layer.getvalue())
        add("config.json", data=config)
        add("manifest.json", data=json.dumps([{"Config": "config.json", "RepoTags": ["hostile-load:1"],
                                               "Layers": [member]}]).encode())
    return out.getvalue()


@pytest.mark.parametrize("member", ["../../layer.tar", "/tmp/layer.tar", "a/../../layer.tar"])
def test_load_hostile_member_names_is_refused(docker: Cli, tmp_path: Path, member: str) -> None:
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(_save_archive(member))
    res = docker("load", "-i", str(archive))
    assert res.returncode != 0, describe(res)
    assert "invalid" in res.stderr.lower() or "refus" in res.stderr.lower(), describe(res)
    assert "hostile-load" not in docker.ok("images", "--format", "{{.Repository}}")
