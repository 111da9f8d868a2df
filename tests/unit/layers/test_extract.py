"""layers.extract: every compression a layer may come in, through the real child process;
and content.compression's Decompressor on the same formats."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from berth.content.compression import Decompressor
from berth.layers.extract import child_env


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/hello", b"hello\n"), ("bin/big", os.urandom(300_000))):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zstd_two_frames(data: bytes) -> bytes:
    cut = len(data) // 2
    z = zstandard.ZstdCompressor()
    return z.compress(data[:cut]) + z.compress(data[cut:])


COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda d: d,
    "gzip": gzip.compress,
    "gzip-two-members": lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:]),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "zstd-two-frames": _zstd_two_frames,
    "zstd-streamed": lambda d: zstandard.ZstdCompressor().compressobj().compress(d)
    + zstandard.ZstdCompressor().compressobj().flush(),
}


@pytest.mark.skipif(os.geteuid() != 0, reason="extraction chroots: needs root")
@pytest.mark.parametrize("kind", [k for k in COMPRESSIONS if k != "zstd-streamed"])
def test_extract_each_compression(tmp_path: Path, kind: str) -> None:
    layer = _layer()
    proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.extract", str(tmp_path)],
                          input=COMPRESSIONS[kind](layer), capture_output=True, env=child_env(),
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    # the size is Docker's: what the layer's regular files hold, not the tar's length
    files = sum(m.size for m in tarfile.open(fileobj=io.BytesIO(layer)) if m.isreg())
    assert result == {"diff_id": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": files}
    assert (tmp_path / "etc" / "hello").read_bytes() == b"hello\n"
    assert (tmp_path / "bin" / "big").stat().st_size == 300_000


@pytest.mark.skipif(os.geteuid() != 0, reason="extraction chroots: needs root")
@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz"])
def test_extract_corrupt_compression_is_a_clean_error(tmp_path: Path, kind: str) -> None:
    data = COMPRESSIONS[kind](_layer())
    proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.extract", str(tmp_path)],
                          input=data[: len(data) // 2], capture_output=True, env=child_env(),
                          timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["error"].startswith("invalid tar archive")


@pytest.mark.parametrize("kind", ["plain", "gzip", "gzip-two-members", "bzip2", "xz", "zstd",
                                  "zstd-two-frames"])
def test_decompressor_each_format_in_small_chunks(kind: str) -> None:
    layer = _layer()
    data = COMPRESSIONS[kind](layer)
    d = Decompressor()
    out = [d.feed(data[i:i + 4093]) for i in range(0, len(data), 4093)]
    out.append(d.finish())
    assert b"".join(out) == layer


def test_decompressor_truncated_zstd_is_an_error() -> None:
    from berth.errors import InvalidParameter

    data = COMPRESSIONS["zstd"](_layer())
    d = Decompressor()
    d.feed(data[: len(data) // 2])
    with pytest.raises(InvalidParameter, match="zstd"):
        d.finish()


def _owned_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, uid, gid, kind in (("srv/app", 1000, 50, tarfile.REGTYPE), ("srv/run", 0, 0, tarfile.SYMTYPE),
                                     ("srv/.wh.gone", 0, 0, tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = kind, uid, gid, 0o4755
            if kind == tarfile.SYMTYPE:
                info.linkname = "app"
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="extraction chroots: needs root")
@pytest.mark.parametrize(("file", "mode"), [(True, "plain file"), (False, "stream")])
def test_extract_with_id_maps_owns_files_as_the_container_sees_them(tmp_path: Path, file: bool, mode: str) -> None:
    """--userns-remap: container id N is host id 100000+N; the implied /srv and the
    layer's root belong to the container's root; setuid bits survive the chown."""
    from berth.layers.extract import encode_id_maps

    maps = encode_id_maps([(0, 100000, 65536)], [(0, 200000, 65536)])
    layer = tmp_path / "layer.tar"
    layer.write_bytes(_owned_layer())
    dest = tmp_path / "diff"
    dest.mkdir()
    with open(layer, "rb") as f:
        proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.extract", str(dest), "", maps],
                              stdin=f if file else None, input=None if file else layer.read_bytes(),
                              capture_output=True, env=child_env(), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    owner = {p: (st.st_uid, st.st_gid) for p in ("", "srv", "srv/app", "srv/run", "srv/gone")
             for st in [os.lstat(dest / p)]}
    assert owner == {"": (100000, 200000), "srv": (100000, 200000), "srv/app": (101000, 200050),
                     "srv/run": (100000, 200000), "srv/gone": (100000, 200000)}
    assert os.lstat(dest / "srv/app").st_mode & 0o7777 == 0o4755


@pytest.mark.skipif(os.geteuid() != 0, reason="extraction chroots: needs root")
def test_extract_with_id_maps_refuses_an_unmapped_owner(tmp_path: Path) -> None:
    from berth.layers.extract import encode_id_maps

    proc = subprocess.run([sys.executable, "-S", "-m", "berth.layers.extract", str(tmp_path), "",
                           encode_id_maps([(0, 100000, 100)], [(0, 100000, 65536)])],
                          input=_owned_layer(), capture_output=True, env=child_env(), timeout=60)
    assert proc.returncode == 1
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "error": "invalid tar archive: Container ID 1000 cannot be mapped to a host ID"}
