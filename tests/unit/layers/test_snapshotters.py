"""The vfs snapshotter's layer copy: whiteouts and opaque directories become deletions,
and a lower layer's symlink cannot redirect an upper layer's files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from berth.errors import InvalidParameter
from berth.layers import snapshotters
from berth.layers.diff import OPAQUE_XATTR


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("whiteouts need root")
    low, up = tmp_path / "low", tmp_path / "up"
    (low / "etc").mkdir(parents=True)
    (low / "etc" / "gone").write_text("x")
    (low / "etc" / "kept").write_text("old")
    (low / "opq").mkdir()
    (low / "opq" / "hidden").write_text("x")
    (low / "link").symlink_to(str(tmp_path / "outside"))
    (low / "a").write_text("a")
    os.link(low / "a", low / "b")
    (up / "etc").mkdir(parents=True)
    _whiteout(up / "etc" / "gone")
    (up / "etc" / "kept").write_text("new")
    os.chmod(up / "etc" / "kept", 0o640)
    (up / "opq").mkdir()
    os.setxattr(up / "opq", OPAQUE_XATTR, b"y")
    (up / "opq" / "fresh").write_text("y")
    (up / "link").mkdir()
    (up / "link" / "inside").write_text("z")
    (tmp_path / "outside").mkdir()
    return [str(up), str(low)]  # top first


def test_vfs_copies_layers_and_applies_whiteouts(tmp_path: Path, layers: list[str]) -> None:
    vfs = snapshotters.Vfs(str(tmp_path / "containers"))
    vfs.prepare("c1", layers)
    root = Path(vfs.mount("c1", layers))
    assert sorted(os.listdir(root / "etc")) == ["kept"]
    assert (root / "etc" / "kept").read_text() == "new"
    assert stat.S_IMODE(os.stat(root / "etc" / "kept").st_mode) == 0o640
    assert os.listdir(root / "opq") == ["fresh"]
    assert not os.path.islink(root / "link") and (root / "link" / "inside").read_text() == "z"
    assert os.listdir(tmp_path / "outside") == []
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    assert not os.listxattr(root / "opq")
    with pytest.raises(InvalidParameter, match="not supported on the vfs storage driver"):
        vfs.upper("c1")
    vfs.remove("c1")
    assert not (tmp_path / "containers" / "c1").exists()


def test_an_unknown_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="driver not supported: zfs"):
        snapshotters.pick("zfs", str(tmp_path), str(tmp_path))


def test_overlay_probe_picks_a_driver(tmp_path: Path) -> None:
    chosen = snapshotters.pick("", str(tmp_path), str(tmp_path))
    expected = "overlay2" if not snapshotters.overlay_problem(str(tmp_path)) else "vfs"
    assert chosen.name == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("probe-")] == []
