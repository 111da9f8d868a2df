"""layers.diff: docker diff from an overlay upperdir, on temp dirs posing as layers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from berth.layers.diff import Change, ChangeKind, changes, exists_below

A, C, D = ChangeKind.ADDED, ChangeKind.MODIFIED, ChangeKind.DELETED


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _opaque(path: Path) -> None:
    os.setxattr(path, "trusted.overlay.opaque", b"y")


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    if os.geteuid() != 0:
        pytest.skip("whiteouts and trusted xattrs need root")
    base, top, upper = tmp_path / "base", tmp_path / "top", tmp_path / "upper"
    for d in (base, top, upper):
        d.mkdir()
    (base / "etc").mkdir()
    (base / "etc" / "passwd").write_text("root\n")
    (base / "etc" / "group").write_text("root\n")
    (base / "bin").mkdir()
    (base / "bin" / "sh").write_text("sh")
    (base / "var" / "lib").mkdir(parents=True)
    (base / "var" / "lib" / "a").write_text("a")
    (base / "var" / "lib" / "b").write_text("b")
    (top / "etc").mkdir()
    (top / "etc" / "motd").write_text("hi")
    _whiteout(top / "etc" / "gone")
    return base, top, upper


def _diff(layers: tuple[Path, Path, Path]) -> list[tuple[str, ChangeKind]]:
    base, top, upper = layers
    return [(c.path, c.kind) for c in changes(str(upper), [str(top), str(base)])]


def test_added_modified_deleted(layers: tuple[Path, Path, Path]) -> None:
    _base, _top, upper = layers
    (upper / "new").write_text("x")
    (upper / "etc").mkdir()
    (upper / "etc" / "passwd").write_text("root\nx\n")
    _whiteout(upper / "etc" / "group")
    (upper / "etc" / "motd").write_text("changed")
    assert _diff(layers) == [("/etc", C), ("/etc/group", D), ("/etc/motd", C),
                             ("/etc/passwd", C), ("/new", A)]


def test_nested_add_marks_every_copied_up_parent(layers: tuple[Path, Path, Path]) -> None:
    upper = layers[2]
    (upper / "var" / "lib" / "x" / "y").mkdir(parents=True)
    assert _diff(layers) == [("/var", C), ("/var/lib", C), ("/var/lib/x", A), ("/var/lib/x/y", A)]


def test_copied_up_directory_alone_is_not_a_change(layers: tuple[Path, Path, Path]) -> None:
    base, _top, upper = layers
    (upper / "bin").mkdir()
    os.chmod(upper / "bin", os.stat(base / "bin").st_mode & 0o7777)
    assert _diff(layers) == []
    os.chmod(upper / "bin", 0o700)
    assert _diff(layers) == [("/bin", C)]


def test_opaque_directory_deletes_what_was_below(layers: tuple[Path, Path, Path]) -> None:
    upper = layers[2]
    (upper / "var" / "lib").mkdir(parents=True)
    _opaque(upper / "var" / "lib")
    (upper / "var" / "lib" / "b").write_text("new b")
    (upper / "var" / "lib" / "c").write_text("c")
    assert _diff(layers) == [("/var", C), ("/var/lib", C), ("/var/lib/a", D), ("/var/lib/b", C),
                             ("/var/lib/c", A)]


def test_whiteout_of_something_never_below_is_ignored(layers: tuple[Path, Path, Path]) -> None:
    upper = layers[2]
    _whiteout(upper / "nothing")
    assert _diff(layers) == []


def test_init_files_are_not_reported(layers: tuple[Path, Path, Path]) -> None:
    upper = layers[2]
    (upper / "etc").mkdir()
    (upper / "etc" / "hostname").write_text("")
    (upper / "proc").mkdir()
    assert _diff(layers) == []


def test_lower_lookup_respects_whiteouts_and_symlinks(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("whiteouts need root")
    base, top = tmp_path / "base", tmp_path / "top"
    (base / "d").mkdir(parents=True)
    (base / "d" / "f").write_text("")
    top.mkdir()
    _whiteout(top / "d")
    assert exists_below([str(base)], "/d/f")
    assert not exists_below([str(top), str(base)], "/d/f")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("")
    link_layer = tmp_path / "links"
    link_layer.mkdir()
    os.symlink(str(outside), link_layer / "l")
    assert not exists_below([str(link_layer)], "/l/secret")


def test_changes_sort_by_path() -> None:
    assert sorted([Change("/b", A), Change("/a/b", D), Change("/a", C)])[0] == Change("/a", C)
