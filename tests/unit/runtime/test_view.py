"""berth.runtime.view, the process that holds dockerd's view of a container for `docker cp`:
its binds land inside the root whatever symlinks the root or a bind holds, read-only ones
are read-only, and nothing of it is seen outside its own mount namespace."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.runtime.rootfs import _open_beneath

SRC = str(Path(__file__).resolve().parents[3] / "src")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


def _mounts_of(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


class View:
    def __init__(self, root: Path, *binds: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-S", "-m", "berth.runtime.view", str(root), *binds],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={"PYTHONPATH": SRC})
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline() == b"ready\n"
        self.root = Path(f"/proc/{self.proc.pid}/root")

    def close(self) -> str:
        out, err = self.proc.communicate(timeout=10)
        return err.decode()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "f").write_text("in the volume\n")
    (tmp_path / "outside").mkdir()
    yield tmp_path


def test_binds_are_seen_in_the_view_only(tree: Path) -> None:
    view = View(tree / "root", str(tree / "vol"), "/data", "rw", str(tree / "vol"), "/ro", "ro")
    try:
        assert view.ready, view.close()
        assert (view.root / "data" / "f").read_text() == "in the volume\n"
        (view.root / "data" / "g").write_text("written\n")
        with pytest.raises(OSError) as e:
            (view.root / "ro" / "h").write_text("no\n")
        assert e.value.errno == errno.EROFS
        assert not _mounts_of(tree / "root")
    finally:
        view.close()
    assert (tree / "vol" / "g").read_text() == "written\n"
    # the mount points were made in the root; what was bound there is gone with the view
    assert os.listdir(tree / "root" / "data") == []


def test_a_symlinked_destination_resolves_inside_the_root(tree: Path) -> None:
    # /data in the root, and /data/sub in the first bind, point at absolute paths: both
    # are followed as the container would, inside the root
    os.symlink(str(tree / "outside"), tree / "root" / "data")
    os.symlink("/../../etc", tree / "vol" / "sub")
    view = View(tree / "root", str(tree / "vol"), "/data", "rw", str(tree / "vol"), "/data/sub", "ro")
    try:
        assert view.ready, view.close()
        assert (view.root / str(tree / "outside").lstrip("/") / "f").read_text() == "in the volume\n"
    finally:
        view.close()
    assert os.listdir(tree / "outside") == []
    assert os.path.isdir(tree / "root" / str(tree / "outside").lstrip("/"))


def test_a_destination_that_is_the_root_is_refused(tree: Path) -> None:
    os.symlink("/", tree / "root" / "up")
    view = View(tree / "root", str(tree / "vol"), "/up", "rw")
    assert not view.ready
    assert "resolves to the container's root" in view.close()
    assert view.proc.returncode == 1


def test_opening_a_destination_never_follows_a_symlink(tree: Path) -> None:
    # what a container could swap in between the resolution and the mount
    os.symlink(str(tree / "outside"), tree / "root" / "etc" / "swapped")
    with pytest.raises(OSError) as e:
        _open_beneath(str(tree / "root"), ["etc", "swapped", "x"], True)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError) as e:
        _open_beneath(str(tree / "root"), ["etc", "swapped"], True)
    assert e.value.errno == errno.ELOOP
    assert os.listdir(tree / "outside") == []
