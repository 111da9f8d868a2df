"""Hostile layer tars through the real extraction children: nothing lands outside the target.

Every archive is built here with tarfile, in memory. Each one is fed on stdin to
`python -m berth.layers.extract DEST` (how the layer store applies a layer) and to
`python -m berth.layers.archive unpack ROOT /` (how `docker cp` writes into a
container). The target sits in a fake host tree (an `etc/` with a shadow file, a
sentinel directory beside the target); after each run that tree must be exactly as it
was, and the child must have either extracted inside the target or reported an error.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from berth.layers.extract import child_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="extraction chroots: needs root")


def _entry(tar: tarfile.TarFile, name: str, *, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
           linkname: str = "", mode: int = 0o644, devmajor: int = 0, devminor: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


Entries = list[tuple[str, dict[str, object]]]


def _tar(entries: Entries, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kw in entries:
            _entry(tar, name, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


F: dict[str, object] = {"data": b"pwned\n"}
DIR: dict[str, object] = {"kind": tarfile.DIRTYPE, "mode": 0o755}


def _sym(target: str) -> dict[str, object]:
    return {"kind": tarfile.SYMTYPE, "linkname": target}


def _link(target: str) -> dict[str, object]:
    return {"kind": tarfile.LNKTYPE, "linkname": target}


def _truncated() -> bytes:
    whole = _tar([("big", {"data": b"x" * 100_000})])
    return whole[:4096]


def _deep(depth: int) -> bytes:
    return _tar([("a/" * i + "a", DIR) for i in range(depth)])


def _nul_name() -> bytes | None:
    try:
        return _tar([("etc/x\x00../../../etc/x", F)], fmt=tarfile.GNU_FORMAT)
    except (ValueError, UnicodeError):
        return None


HOSTILE: dict[str, Callable[[], bytes | None]] = {
    "dotdot": lambda: _tar([("../../../etc/x", F), ("../sentinel/x", F)]),
    "absolute": lambda: _tar([("/etc/x", F)]),
    "symlink-to-root-then-file": lambda: _tar([("evil", _sym("/")), ("evil/etc/x", F)]),
    "symlink-to-parents-then-file": lambda: _tar([("evil", _sym("../../..")), ("evil/etc/x", F),
                                                  ("evil/sentinel/x", F)]),
    "symlink-chain": lambda: _tar([("a", _sym("b")), ("b", _sym("../..")), ("a/etc/x", F)]),
    "hardlink-outside": lambda: _tar([("shadow", _link("/etc/shadow"))]),
    "hardlink-dotdot": lambda: _tar([("shadow", _link("../../../etc/shadow"))]),
    "hardlink-through-symlink": lambda: _tar([("evil", _sym("/")), ("shadow", _link("evil/etc/shadow"))]),
    "hardlink-through-parent-symlink": lambda: _tar([("up", _sym("../../..")), ("s", _link("up/etc/shadow"))]),
    "char-device": lambda: _tar([("null", {"kind": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3,
                                           "mode": 0o666})]),
    "device-through-symlink": lambda: _tar([("evil", _sym("/")), ("evil/etc/null",
                                            {"kind": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})]),
    "huge-pax-path": lambda: _tar([("d/" * 50_000 + "x", F)]),
    "truncated-member": _truncated,
    "nul-in-name": _nul_name,
    "deep-nesting": lambda: _deep(10_000),
    "whiteout-outside": lambda: _tar([("../.wh.sentinel", F), ("../../.wh.etc", F)]),
    "whiteout-through-symlink": lambda: _tar([("evil", _sym("/")), ("evil/etc/.wh.shadow", F)]),
    "opaque-in-symlinked-dir": lambda: _tar([("evil", _sym("../../..")), ("evil/.wh..wh..opq", F),
                                             ("evil/etc/x", F)]),
    "file-then-symlink-swap": lambda: _tar([("d", DIR), ("d/x", F), ("d", _sym("/")), ("d/etc/x", F)]),
}


def _snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every path under `top` but `skip`, with its mode, size, inode and (for files) content."""
    out: dict[str, tuple[int, int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[str(path.relative_to(top))] = (st.st_mode, st.st_size, st.st_nlink, data)
    return out


def _host(tmp_path: Path) -> tuple[Path, Path]:
    """A fake host: host/etc/shadow, host/sentinel/keep and the target host/var/lib/dest."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "shadow").write_text("root:secret:::\n")
    (host / "etc" / "shadow").chmod(0o600)
    (host / "sentinel").mkdir()
    (host / "sentinel" / "keep").write_text("keep\n")
    dest = host / "var" / "lib" / "dest"
    dest.mkdir(parents=True)
    (host / "var" / "lib" / "sentinel").mkdir()
    return host, dest


def _run_extract(dest: Path, data: bytes) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.extract", str(dest)],
                          input=data, capture_output=True, env=child_env(), timeout=60)
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def _run_unpack(dest: Path, data: bytes) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.archive", "unpack", str(dest),
                           "/", "0", ""], input=data, capture_output=True, env=child_env(), timeout=60)
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


EXTRACTORS = {"layer": _run_extract, "cp": _run_unpack}


def _assert_contained(dest: Path) -> None:
    """No file in dest is a hard link to the host's shadow. Walked by relative names from
    an open directory, without recursion: a hostile tree may be thousands of levels deep."""
    shadow = (dest.parent.parent.parent / "etc" / "shadow").lstat()
    stack = [os.open(dest, os.O_RDONLY | os.O_DIRECTORY)]
    while stack:
        fd = stack.pop()
        try:
            for name in os.listdir(fd):
                st = os.lstat(name, dir_fd=fd)
                assert (st.st_dev, st.st_ino) != (shadow.st_dev, shadow.st_ino), "links the host's shadow"
                if stat.S_ISDIR(st.st_mode):
                    stack.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd))
        finally:
            os.close(fd)


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    yield
    subprocess.run(["rm", "-rf", str(tmp_path / "host")], check=False)


@pytest.mark.parametrize("extractor", EXTRACTORS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tar_is_refused_or_contained(tmp_path: Path, case: str, extractor: str) -> None:
    data = HOSTILE[case]()
    if data is None:
        pytest.skip("tarfile cannot write this archive")
    host, dest = _host(tmp_path)
    before = _snapshot(host, dest)
    started = time.monotonic()
    code, out = EXTRACTORS[extractor](dest, data)
    assert time.monotonic() - started < 30
    assert _snapshot(host, dest) == before, out
    assert "Traceback" not in out, out
    if extractor == "layer":
        result = json.loads(out.splitlines()[-1])
        assert ("error" in result) == (code != 0), out
        if code:
            assert result["error"].startswith("invalid tar archive"), out
    _assert_contained(dest)


def test_device_node_is_created_inside_the_target(tmp_path: Path) -> None:
    # Docker extracts device nodes in layers when it runs as root; so does berth, in DEST.
    host, dest = _host(tmp_path)
    code, out = _run_extract(dest, HOSTILE["char-device"]() or b"")
    assert code == 0, out
    st = (dest / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_dotdot_lands_inside_the_layer(tmp_path: Path) -> None:
    # A layer's `..` is cleaned against its root, as Docker does: ../../../etc/x is /etc/x.
    host, dest = _host(tmp_path)
    code, out = _run_extract(dest, HOSTILE["dotdot"]() or b"")
    assert code == 0, out
    assert (dest / "etc" / "x").read_bytes() == b"pwned\n"
    assert not (host / "etc" / "x").exists()


def test_symlink_to_root_then_file_lands_inside(tmp_path: Path) -> None:
    host, dest = _host(tmp_path)
    code, out = _run_extract(dest, HOSTILE["symlink-to-root-then-file"]() or b"")
    assert code == 0, out
    assert (dest / "etc" / "x").read_bytes() == b"pwned\n"
    assert os.readlink(dest / "evil") == "/"


def test_cp_refuses_dotdot(tmp_path: Path) -> None:
    host, dest = _host(tmp_path)
    code, out = _run_unpack(dest, HOSTILE["dotdot"]() or b"")
    assert code != 0 and "leaves the extraction directory" in out
