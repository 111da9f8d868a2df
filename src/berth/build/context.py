"""A build's context: the files the Dockerfile's COPY and ADD may read.

It arrives as a tar (plain or compressed) in the request body, or is fetched: a git
repository (`remote=` a git URL, `#ref:subdir` supported) or a tarball URL. The tar is
extracted by the layer store's chrooted extraction child, so no name in it can reach
outside the context directory; the `.dockerignore` in it is applied again here, as
dockerd does for clients that did not apply it. Paths are resolved inside the context
with symlinks followed only within it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from berth.errors import InvalidParameter
from berth.layers.extract import child_env

GIT_PREFIXES = ("git://", "git@", "github.com/")


@dataclass
class Context:
    root: str  # the extracted context
    workdir: str  # the temp directory to remove afterwards

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def is_git_url(remote: str) -> bool:
    base = remote.split("#", 1)[0]
    return remote.startswith(GIT_PREFIXES) or base.endswith(".git") or (
        "://" in remote and remote.split("://", 1)[0] in ("git", "ssh", "git+ssh"))


async def from_tar(chunks: AsyncIterator[bytes], tmp_root: str) -> Context:
    """Extract a tar stream (plain, gzip, bzip2, xz or zstd) into a new directory.

    The stream is spooled to a file first: a plain tar in a file is extracted by the
    child with copy_file_range, file to file, which is much faster than through a pipe."""
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ctx-", dir=tmp_root)
    root = os.path.join(workdir, "context")
    os.mkdir(root, 0o755)
    spool = os.path.join(workdir, "context.tar")
    try:
        fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            sent = 0
            head = b""
            batch: list[bytes] = []
            batched = 0
            async for chunk in chunks:
                if len(head) < 6:
                    head += chunk[:6]
                batch.append(chunk)
                batched += len(chunk)
                sent += len(chunk)
                if batched >= 8 << 20:
                    await asyncio.to_thread(os.write, fd, b"".join(batch))
                    batch, batched = [], 0
            # The docker CLI's tar, when it adds a Dockerfile from -f outside the context
            # or from stdin, ends right after the last member's data: no padding and no
            # end-of-archive blocks. dockerd reads it; so do we, by adding them.
            if not _compressed(head):
                batch.append(b"\0" * (-sent % 512 + 1024))
            data = b"".join(batch)
            while data:
                n = os.write(fd, data)
                data = data[n:]
        finally:
            os.close(fd)
        with open(spool, "rb") as source:
            # the digest argument: the child need not hash a context, nobody asks for it
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-S", "-m", "berth.layers.extract", root, "sha256:context",
                stdin=source, stdout=asyncio.subprocess.PIPE, env=child_env())
            assert proc.stdout is not None
            try:
                out = await proc.stdout.read()
                await proc.wait()
            except BaseException:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                raise
        os.unlink(spool)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if proc.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        text = out.decode(errors="replace").strip().splitlines()
        raise InvalidParameter(f"the build context is not a valid tar archive: {text[-1] if text else 'it ended early'}")
    return Context(root, workdir)


async def from_git(remote: str, tmp_root: str) -> Context:
    """Clone a git repository (`URL#ref:subdir`) as the context."""
    url, _, fragment = remote.partition("#")
    ref, _, subdir = fragment.partition(":")
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ctx-", dir=tmp_root)
    clone = os.path.join(workdir, "clone")

    async def git(*args: str, cwd: str | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0"})
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidParameter(f"error fetching git context {remote}: git {args[0]}: "
                                   f"{out.decode(errors='replace').strip().splitlines()[-1:] or ''}")

    try:
        if shutil.which("git") is None:
            raise InvalidParameter("a git context needs git, which is not installed on the daemon's host")
        await git("clone", "--quiet", "--recurse-submodules", url, clone)
        if ref:
            await git("checkout", "--quiet", ref, cwd=clone)
        shutil.rmtree(os.path.join(clone, ".git"), ignore_errors=True)
        root = os.path.realpath(os.path.join(clone, subdir)) if subdir else clone
        if not (root == clone or root.startswith(clone + os.sep)) or not os.path.isdir(root):
            raise InvalidParameter(f"error fetching git context {remote}: subdirectory {subdir!r} not found")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Context(root, workdir)


async def from_url(url: str, tmp_root: str) -> tuple[Context | None, bytes | None]:
    """A remote tarball (the context), or a plain Dockerfile (returned as bytes)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise InvalidParameter(f"error downloading remote context {url}: {resp.status} {resp.reason}")
                body = await resp.read()
        except aiohttp.ClientError as e:
            raise InvalidParameter(f"error downloading remote context {url}: {e}") from None
    if _looks_like_archive(body):
        async def chunks() -> AsyncIterator[bytes]:
            yield body
        return await from_tar(chunks(), tmp_root), None
    return None, body


def _compressed(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or \
        head[:4] == b"\x28\xb5\x2f\xfd"


def _looks_like_archive(data: bytes) -> bool:
    return _compressed(data) or (len(data) >= 262 and data[257:262] == b"ustar")


def resolve(root: str, path: str) -> str:
    """`path` (relative to the context) on the host, symlinks followed inside the context
    only; InvalidParameter when it would leave it."""
    from berth.runtime.rootfs import secure_join

    clean = os.path.normpath("/" + path)
    return secure_join(root, clean)


def apply_dockerignore(root: str, keep: set[str]) -> None:
    """Delete what .dockerignore excludes (the Dockerfile and .dockerignore themselves
    stay, as Docker sends them regardless)."""
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path):
        return
    from berth.build.ignore import IgnoreMatcher

    with open(path, encoding="utf-8", errors="replace") as f:
        matcher = IgnoreMatcher.from_text(f.read())
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in keep and matcher.excluded(rel):
                os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not os.path.islink(full) and matcher.excluded(rel) and not os.listdir(full):
                os.rmdir(full)  # emptied above; a directory an exception keeps something in stays
