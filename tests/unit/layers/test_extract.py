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
