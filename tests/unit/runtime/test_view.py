"""berth.runtime.view, the thread that holds dockerd's view of a container for `docker cp`:
its binds land inside the root whatever symlinks the root or a bind holds, read-only ones
are read-only, nothing of it is seen outside its thread's mount namespace, and it all
ends with the thread."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from berth.runtime import view
from berth.runtime.rootfs import _open_beneath

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


def _mounts_of(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


class View:
    def __init__(self, root: Path, *binds: tuple[str, str, bool]) -> None:
        self.ready: Future[int] = Future()
        self.release = threading.Event()
        self.thread = threading.Thread(target=view.hold, args=(str(root), list(binds), self.ready, self.release))
        self.thread.start()
        fd = self.ready.result(timeout=10)
        self.root = Path(f"/proc/self/fd/{fd}")

    def close(self) -> None:
        self.release.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "f").write_text("in the volume\n")
    (tmp_path / "outside").mkdir()
    yield tmp_path


def test_binds_are_seen_in_the_view_only(tree: Path) -> None:
    held = View(tree / "root", (str(tree / "vol"), "/data", True), (str(tree / "vol"), "/ro", False))
    try:
        assert (held.root / "data" / "f").read_text() == "in the volume\n"
        (held.root / "data" / "g").write_text("written\n")
        with pytest.raises(OSError) as e:
            (held.root / "ro" / "h").write_text("no\n")
        assert e.value.errno == errno.EROFS
        assert not _mounts_of(tree / "root")
        assert (tree / "root" / "data").is_dir() and not (tree / "root" / "data" / "f").exists()
    finally:
        held.close()
    assert (tree / "vol" / "g").read_text() == "written\n"
    # the mount points were made in the root; what was bound there is gone with the view
    assert os.listdir(tree / "root" / "data") == []


def test_a_symlinked_destination_resolves_inside_the_root(tree: Path) -> None:
    # /data in the root, and /data/sub in the first bind, point at absolute paths: both
    # are followed as the container would, inside the root
    os.symlink(str(tree / "outside"), tree / "root" / "data")
    os.symlink("/../../etc", tree / "vol" / "sub")
    held = View(tree / "root", (str(tree / "vol"), "/data", True), (str(tree / "vol"), "/data/sub", False))
    try:
        assert (held.root / str(tree / "outside").lstrip("/") / "f").read_text() == "in the volume\n"
        assert (held.root / "etc" / "f").read_text() == "in the volume\n"
    finally:
        held.close()
    assert os.listdir(tree / "outside") == []
    assert os.path.isdir(tree / "root" / str(tree / "outside").lstrip("/"))


def test_a_destination_that_is_the_root_is_refused(tree: Path) -> None:
    os.symlink("/", tree / "root" / "up")
    with pytest.raises(ValueError, match="resolves to the container's root"):
        View(tree / "root", (str(tree / "vol"), "/up", True))


def test_the_main_thread_is_refused(tree: Path) -> None:
    with pytest.raises(RuntimeError):
        view.open_view(str(tree / "root"), [(str(tree / "vol"), "/data", True)])


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
