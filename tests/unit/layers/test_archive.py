"""layers.archive: path resolution inside a root, Go file modes, the path stat."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.errors import NotFound
from berth.layers import archive


def test_go_file_mode() -> None:
    assert archive.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert archive.go_file_mode(stat.S_IFREG | 0o600) == 0o600
    assert archive.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert archive.go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert archive.go_file_mode(stat.S_IFBLK | 0o660) == (1 << 26) | 0o660
    assert archive.go_file_mode(stat.S_IFIFO | 0o644) == (1 << 25) | 0o644
    assert archive.go_file_mode(stat.S_IFSOCK | 0o755) == (1 << 24) | 0o755
    assert archive.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert archive.go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777


def test_rfc3339_nano() -> None:
    assert archive.rfc3339_nano(0) == "1970-01-01T00:00:00Z"
    assert archive.rfc3339_nano(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("/", r / "up")
    os.symlink("../../..", r / "rel")
    os.symlink("/etc/passwd", r / "pw")
    os.symlink("etc", r / "etclink")
    return r


def test_resolve_keeps_the_last_name_unfollowed(root: Path) -> None:
    r = archive.resolve(str(root), "/pw")
    assert (r.path, r.host, r.inside) == ("/pw", f"{root}/pw", "/pw")
    r = archive.resolve(str(root), "etclink/passwd")
    assert r.host == f"{root}/etc/passwd" and r.inside == "/etc/passwd"
    r = archive.resolve(str(root), "/etclink/")
    assert r.host == f"{root}/etc" and r.path == "/etclink/"


def test_resolve_never_leaves_the_root(root: Path) -> None:
    for p in ("/up/etc/passwd", "/rel/etc/passwd", "../../../../etc/passwd", "/rel/../../etc/passwd"):
        assert archive.resolve(str(root), p).host == f"{root}/etc/passwd", p
    assert archive.resolve_dir(str(root), "/up").host == str(root)
    assert archive.resolve_dir(str(root), "/rel/").host == str(root)


def test_stat_path(root: Path) -> None:
    st = archive.stat_path(archive.resolve(str(root), "/etc"), "c1")
    assert st.name == "etc" and st.mode == (1 << 31) | 0o755 and st.link_target == ""
    st = archive.stat_path(archive.resolve(str(root), "/pw"), "c1")
    assert st.name == "pw" and st.mode & (1 << 27) and st.link_target == "/etc/passwd"
    st = archive.stat_path(archive.resolve(str(root), "/rel"), "c1")
    assert st.link_target == "/"
    with pytest.raises(NotFound, match="Could not find the file /nope in container c1"):
        archive.stat_path(archive.resolve(str(root), "/nope"), "c1")


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def test_extract_members_refuses_to_climb_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="leaves the extraction directory"):
        archive.extract_members(_tar(_file("../evil")), False, None)
    link = tarfile.TarInfo("h")
    link.type, link.linkname = tarfile.LNKTYPE, "../../etc/shadow"
    with pytest.raises(ValueError, match="leaves the extraction directory"):
        archive.extract_members(_tar((link, None)), False, None)
    assert not (tmp_path.parent / "evil").exists()


def test_extract_members_keeps_modes_and_applies_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tarfile.TarInfo("d")
    d.type, d.mode = tarfile.DIRTYPE, 0o750
    archive.extract_members(_tar((d, None), _file("/d/f", b"abc", 0o600), _file("./g")), False,
                            (os.getuid(), os.getgid()))
    assert (tmp_path / "d" / "f").read_bytes() == b"abc"
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "f").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o750
    assert (tmp_path / "g").exists()


def test_extract_members_no_overwrite_dir_non_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="cannot overwrite directory"):
        archive.extract_members(_tar(_file("d")), True, None)
    archive.extract_members(_tar(_file("d")), False, None)
    assert (tmp_path / "d").is_file()
