"""The build context read as it arrives: the index a tar stream gives must describe
exactly the files its extraction puts on disk, whatever the tar's format and however
the stream is cut into chunks."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import stat
import tarfile
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.builder import context as ctxmod
from berth.errors import InvalidParameter


def make_tar(fmt: int, *, end_blocks: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size, info.mtime = kind, mode, link, len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("Dockerfile", data=b"FROM busybox\nCOPY . /app\n")
        add("app", tarfile.DIRTYPE, mode=0o755)
        add("app/run.sh", data=b"#!/bin/sh\necho hi\n", mode=0o755)
        add("app/big.bin", data=os.urandom(300_000), mode=0o600)
        add("app/empty", data=b"")
        add("./app/setuid", data=b"x", mode=0o4755)
        add("deep/" + "d" * 120 + "/" + "n" * 120 + "/file.txt", data=b"long name\n")  # no parent entries
        add("link-to-app", tarfile.SYMTYPE, link="app", mode=0o777)
        add("abs-link", tarfile.SYMTYPE, link="/app/run.sh", mode=0o777)
        add("escape", tarfile.SYMTYPE, link="../../../etc", mode=0o777)
        add("hard", tarfile.LNKTYPE, link="app/run.sh", mode=0o755)
        add("dup.txt", data=b"first\n")
        add("dup.txt", data=b"second, which wins\n")
        add("wasfile", data=b"file\n")
        add("wasfile", tarfile.DIRTYPE, mode=0o750)
        add("wasfile/inside", data=b"now a dir\n")
        add("unicodé/ünï.txt", data="ü".encode())
        add(".dockerignore", data=b"*.tmp\n")
        add("junk.tmp", data=b"ignored\n")
        add("fifo", tarfile.FIFOTYPE, mode=0o644)
        add("zz-last.txt", data=b"the last member\n")
    data = buf.getvalue()
    if not end_blocks:  # as the docker CLI's tar with a Dockerfile from elsewhere: it ends
        # right after the last member's data, no padding, no end-of-archive blocks
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            last = tar.getmembers()[-1]
        data = data[:last.offset_data + last.size]
    return data


async def chunks_of(data: bytes, sizes: Iterator[int]) -> AsyncIterator[bytes]:
    pos = 0
    while pos < len(data):
        n = max(1, next(sizes))
        yield data[pos:pos + n]
        pos += n


def cycle(*sizes: int) -> Iterator[int]:
    while True:
        yield from sizes


def snapshot(ctx: ctxmod.Context) -> dict[str, tuple[int, int, str]]:
    """Every path's type, mode and content, through the Context's questions."""
    out = {}
    for dirpath, dirnames, filenames in ctx.walk(ctx.root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = ctx.lstat(full)
            mode = stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)
            out[os.path.relpath(full, ctx.root)] = (*mode, ctx.content(full, st))
    return out


def build_both(data: bytes, tmp_path, sizes: Iterator[int]) -> tuple[ctxmod.Context, dict, dict]:
    async def go() -> tuple[ctxmod.Context, dict, dict]:
        ctx = await ctxmod.from_tar(chunks_of(data, sizes), str(tmp_path), keep=("Dockerfile",))
        assert ctx.index is not None, "a plain tar is indexed, not extracted"
        indexed = snapshot(ctx)
        resolved = {p: ctx.resolve(p) for p in ("link-to-app/run.sh", "abs-link", "escape/passwd", "app/../..")}
        await ctx.materialize()
        assert ctx.index is None
        on_disk = snapshot(ctx)
        assert resolved == {p: ctx.resolve(p) for p in resolved}
        return ctx, indexed, on_disk
    return asyncio.run(go())


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])  # ustar has no long names
@pytest.mark.parametrize("sizes", [(1 << 20,), (1, 511, 513, 7), (512,), (100_000, 3)])
def test_index_matches_extraction(fmt: int, sizes: tuple[int, ...], tmp_path) -> None:
    ctx, indexed, on_disk = build_both(make_tar(fmt), tmp_path, cycle(*sizes))
    try:
        assert indexed == on_disk
        assert indexed["dup.txt"][2] == on_disk["dup.txt"][2]
        assert indexed["wasfile/inside"][0] == stat.S_IFREG
        assert indexed["app/setuid"][1] == 0o4755
        assert indexed["hard"][2] == indexed["app/run.sh"][2]
    finally:
        ctx.cleanup()
    assert not os.path.exists(ctx.workdir)


def test_docker_cli_tar_without_end_blocks(tmp_path) -> None:
    ctx, indexed, on_disk = build_both(make_tar(tarfile.PAX_FORMAT, end_blocks=False), tmp_path, cycle(4096))
    try:
        assert indexed == on_disk and "fifo" in indexed
    finally:
        ctx.cleanup()


def test_dockerfile_and_ignore_read_without_extraction(tmp_path) -> None:
    async def go() -> None:
        data = make_tar(tarfile.PAX_FORMAT)
        ctx = await ctxmod.from_tar(chunks_of(data, cycle(777)), str(tmp_path), keep=("Dockerfile",))
        try:
            assert await ctx.read("Dockerfile") == b"FROM busybox\nCOPY . /app\n"
            assert await ctx.read("./link-to-app/../Dockerfile") == b"FROM busybox\nCOPY . /app\n"
            assert await ctx.read("missing") is None
            await ctx.apply_dockerignore(set())
            assert ctx.index is not None, "neither needed the files on disk"
            assert not ctx.lexists(ctx.resolve("junk.tmp"))
            assert ctx.lexists(ctx.resolve("dup.txt"))
            assert await ctx.read("app/big.bin") is not None  # not kept in memory: extracted for it
            assert ctx.index is None
            assert not os.path.lexists(os.path.join(ctx.root, "junk.tmp")), "the ignore applies on disk too"
        finally:
            ctx.cleanup()
    asyncio.run(go())


def test_compressed_context_is_extracted_at_once(tmp_path) -> None:
    async def go() -> None:
        data = gzip.compress(make_tar(tarfile.PAX_FORMAT))
        ctx = await ctxmod.from_tar(chunks_of(data, cycle(1000)), str(tmp_path))
        try:
            assert ctx.index is None
            assert os.path.isfile(os.path.join(ctx.root, "app", "run.sh"))
        finally:
            ctx.cleanup()
    asyncio.run(go())


def test_truncated_tar_is_refused(tmp_path) -> None:
    data = make_tar(tarfile.PAX_FORMAT)
    cut = data[:data.index(b"second, which wins") + 3]

    async def go() -> None:
        with pytest.raises(InvalidParameter, match="not a valid tar archive"):
            await ctxmod.from_tar(chunks_of(cut, cycle(1000)), str(tmp_path))
    asyncio.run(go())
    assert os.listdir(tmp_path) == [], "nothing is left of a refused context"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=1, max_value=700))
def test_garbage_never_crashes(tmp_path_factory, blob: bytes, chunk: int) -> None:
    tmp = tmp_path_factory.mktemp("ctx")

    async def go() -> None:
        try:
            ctx = await ctxmod.from_tar(chunks_of(blob, cycle(chunk)), str(tmp))
        except InvalidParameter:
            return
        try:
            snapshot(ctx)
            await ctx.read("Dockerfile")
            await ctx.materialize()
            snapshot(ctx)
        finally:
            ctx.cleanup()
    asyncio.run(go())
    assert os.listdir(tmp) == []
