"""volumes.safepath: a volume's subdirectory is resolved inside the volume with dockerd's
errors, and held by a bind of what was resolved, so that swapping the directory for a
symlink afterwards does not change what a container gets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import InvalidParameter, NotFound
from berth.runtime import linux
from berth.volumes import safepath


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    data = tmp_path / "vol" / "_data"
    (data / "sub" / "deeper").mkdir(parents=True)
    (data / "sub" / "f").write_text("in-sub")
    (data / "file").write_text("a file")
    (data / "abs").symlink_to("/etc")
    (data / "up").symlink_to("../..")
    (data / "inside").symlink_to("sub")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host data")
    return data


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    point = tmp_path / "holds" / "c-0"
    yield point
    safepath.release(str(point))
    assert not linux.is_mount_point(str(point)) and not point.exists()


def test_resolve_stays_inside_the_volume(volume: Path) -> None:
    assert safepath.resolve(str(volume), "sub") == str(volume / "sub")
    assert safepath.resolve(str(volume), "inside/deeper") == str(volume / "sub" / "deeper")
    assert safepath.resolve(str(volume), ".") == str(volume)
    for name in ("abs", "up"):
        with pytest.raises(InvalidParameter) as err:
            safepath.resolve(str(volume), name)
        assert str(err.value) == f"path concatenation escapes the base directory, base: {volume}, subpath: {name}"
    with pytest.raises(NotFound) as missing:
        safepath.resolve(str(volume), "sub/nope/x")
    assert str(missing.value) == (f"cannot access path {volume}/sub/nope/x: "
                                  f"lstat {volume}/sub/nope: no such file or directory")


def test_hold_binds_what_was_resolved(volume: Path, held: Path) -> None:
    assert safepath.hold(str(volume), "inside", str(held)) == str(held)
    assert linux.is_mount_point(str(held))
    assert sorted(os.listdir(held)) == ["deeper", "f"]
    # the directory swapped for a symlink out of the volume: the hold still has the original
    os.rename(volume / "sub", volume / "moved")
    (volume / "sub").symlink_to(volume.parent.parent / "outside")
    assert sorted(os.listdir(held)) == ["deeper", "f"]
    (held / "written").write_text("x")
    assert (volume / "moved" / "written").read_text() == "x"
    assert not (volume.parent.parent / "outside" / "written").exists()


def test_hold_of_a_file_and_again_on_the_same_point(volume: Path, held: Path) -> None:
    safepath.hold(str(volume), "file", str(held))
    assert held.read_text() == "a file"
    safepath.hold(str(volume), "sub", str(held))  # a stale hold there is let go first
    assert sorted(os.listdir(held)) == ["deeper", "f"]
