"""layers.changeset: the layer tar `docker commit` stores, from an upperdir on temp dirs."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.layers.changeset import EMPTY_LAYER_DIFF_ID, write_changes


def _tar(upper: Path, lowers: list[Path]) -> bytes:
    out = io.BytesIO()
    write_changes(str(upper), [str(p) for p in lowers], out)
    return out.getvalue()


def test_no_changes_is_dockers_empty_layer(tmp_path: Path) -> None:
    data = _tar(tmp_path, [])
    assert len(data) == 1024
    assert "sha256:" + hashlib.sha256(data).hexdigest() == EMPTY_LAYER_DIFF_ID


def test_entries_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("whiteouts and trusted xattrs need root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "group").write_text("root\n")
    (lower / "var").mkdir()
    (lower / "var" / "old").write_text("old")
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "group", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (upper / "etc" / "hostname").write_text("")  # a runtime mount point: left out
    (upper / "var").mkdir()
    os.setxattr(upper / "var", "trusted.overlay.opaque", b"y")
    (upper / "var" / "new").write_text("new")
    (upper / "made").write_text("hello")
    os.chown(upper / "made", 1234, 5678)
    os.chmod(upper / "made", 0o640)
    os.link(upper / "made", upper / "again")
    os.symlink("/etc/passwd", upper / "link")

    with tarfile.open(fileobj=io.BytesIO(_tar(upper, [lower]))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["again", "etc", "etc/.wh.group", "link", "made", "var",
                                   "var/.wh..wh..opq", "var/new"]
        made = members["again"]  # the first name of the hard-linked pair holds the data
        assert (made.isreg(), made.uid, made.gid, made.mode) == (True, 1234, 5678, 0o640)
        assert tar.extractfile(made).read() == b"hello"  # type: ignore[union-attr]
        assert members["made"].islnk() and members["made"].linkname == "again"
        assert members["link"].issym() and members["link"].linkname == "/etc/passwd"
        assert members["etc/.wh.group"].isreg() and members["etc/.wh.group"].size == 0
        assert members["etc"].isdir() and members["var/.wh..wh..opq"].size == 0


def test_a_symlinked_directory_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink(outside, upper / "escape")
    with tarfile.open(fileobj=io.BytesIO(_tar(upper, []))) as tar:
        assert tar.getnames() == ["escape"]


def test_remapped_owners_are_written_as_the_container_sees_them(tmp_path: Path) -> None:
    """--userns-remap: host 100000+N is container N; overlayfs's whiteouts (made as the
    host's root) belong to the container's root; an id outside the ranges is refused."""
    if os.geteuid() != 0:
        pytest.skip("chown and whiteouts need root")
    from berth.errors import SystemError_
    from berth.runtime.userns import IdMap, IdMappings

    maps = IdMappings((IdMap(0, 100000, 65536),), (IdMap(0, 200000, 65536),))
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (lower / "gone").write_text("")
    upper.mkdir()
    (upper / "made").write_text("x")
    os.chown(upper / "made", 100007, 200008)
    os.mknod(upper / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    out = io.BytesIO()
    write_changes(str(upper), [str(lower)], out, maps)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners == {"made": (7, 8), ".wh.gone": (0, 0)}
    os.chown(upper / "made", 5, 200008)
    with pytest.raises(SystemError_, match="Host ID 5 cannot be mapped to a container ID"):
        write_changes(str(upper), [str(lower)], io.BytesIO(), maps)
