"""A build's context: the files the Dockerfile's COPY and ADD may read.

It arrives as a tar (plain or compressed) in the request body, or is fetched: a git
repository (`remote=` a git URL, `#ref:subdir` supported) or a tarball URL. The tar is
extracted by the layer store's chrooted extraction child, so no name in it can reach
outside the context directory; the `.dockerignore` in it is applied again here, as
dockerd does for clients that did not apply it. Paths are resolved inside the context
with symlinks followed only within it.

A tar in the request body is read as it arrives: each member is indexed (type, mode,
size, symlink target, the sha256 of its bytes) while the stream is spooled to a file,
and extracted only when a step needs its files on disk. A rebuild whose every step is
cached so never extracts the context and never reads it twice: the COPY cache keys come
from the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidParameter
from berth.layers.extract import run_child

GIT_PREFIXES = ("git://", "git@", "github.com/")
KEEP_BYTES = 1 << 20  # the content of the files the builder reads itself, up to this size
QUEUE_CHUNKS = 32  # chunks of the body in flight between the receiver and the indexer
HOLD_BYTES = 256 << 20  # a context up to this size stays in memory until a step needs its files


@dataclass
class Member:
    """One entry of an indexed context, as its tar header and bytes describe it."""

    mode: int  # st_mode: type and permission bits
    size: int = 0
    mtime: int = 0
    linkname: str = ""  # a symlink's target
    digest: str = ""  # sha256 of a regular file's bytes
    data: bytes | None = None  # the bytes, for the few files the builder reads
    children: set[str] = field(default_factory=set)  # names, for a directory

    def stat(self) -> os.stat_result:
        return os.stat_result((self.mode, 0, 0, 1, 0, 0, self.size, self.mtime, self.mtime, self.mtime))


class Index:
    """The context's tree from its tar, without its files on disk. Paths are relative
    to the context ("" is its root); a later member replaces an earlier one, as on
    extraction; parents a tar leaves out are directories."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {"": Member(stat.S_IFDIR | 0o755)}

    def add(self, name: str, member: Member) -> None:
        rel = clean(name)
        if not rel:
            root = self.members[""]
            if stat.S_ISDIR(member.mode):
                root.mode, root.mtime = member.mode, member.mtime
            return
        parent = posixpath.dirname(rel)
        self._ensure_dir(parent)
        old = self.members.get(rel)
        if old is not None:
            if stat.S_ISDIR(old.mode) and stat.S_ISDIR(member.mode):
                old.mode, old.mtime = member.mode, member.mtime
                return
            self._remove(rel)
        self.members[rel] = member
        self.members[parent].children.add(posixpath.basename(rel))

    def _ensure_dir(self, rel: str) -> None:
        existing = self.members.get(rel)
        if existing is not None and stat.S_ISDIR(existing.mode):
            return
        if existing is not None:
            self._remove(rel)
        parent = posixpath.dirname(rel)
        self._ensure_dir(parent)
        self.members[rel] = Member(stat.S_IFDIR | 0o755)
        self.members[parent].children.add(posixpath.basename(rel))

    def _remove(self, rel: str) -> None:
        member = self.members.pop(rel)
        for name in member.children:
            self._remove(posixpath.join(rel, name))
        parent = self.members.get(posixpath.dirname(rel))
        if parent is not None:
            parent.children.discard(posixpath.basename(rel))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` with its symlinks followed inside the context, as secure_join does on
        disk: ".." and absolute targets stop at the context's root."""
        parts = [p for p in path.split("/")]
        current = ""
        followed = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, part) if current else part
            member = self.members.get(candidate)
            if member is not None and stat.S_ISLNK(member.mode) and (parts or follow_last):
                followed += 1
                if followed > 255:
                    raise InvalidParameter(f"too many symlinks under {path}")
                if member.linkname.startswith("/"):
                    current = ""
                parts = member.linkname.split("/") + parts
                continue
            current = candidate
        return current

    def walk(self, rel: str) -> Iterator[tuple[str, list[str], list[str]]]:
        """As os.walk, top-down, without following symlinks: (dir, subdirs, others)."""
        member = self.members[rel]
        dirs = sorted(n for n in member.children if stat.S_ISDIR(self.members[posixpath.join(rel, n)].mode))
        files = sorted(n for n in member.children if n not in dirs)
        yield rel, dirs, files
        for name in dirs:
            yield from self.walk(posixpath.join(rel, name))

    def apply_ignore(self, matcher: object, keep: set[str]) -> None:
        """Drop what .dockerignore excludes, as apply_dockerignore does on disk."""
        for rel in sorted(self.members, key=lambda r: r.count("/") if r else -1, reverse=True):
            if not rel or rel in keep or rel not in self.members:
                continue
            member = self.members[rel]
            if not matcher.excluded(rel):  # type: ignore[attr-defined]
                continue
            if not stat.S_ISDIR(member.mode) or not member.children:
                self._remove(rel)


class Context:
    """The context's files, on disk (`root`) or, until a step needs them there, in an
    index of the spooled tar. The builder asks its questions through this class with
    host paths under `root` either way."""

    def __init__(self, root: str, workdir: str, index: Index | None = None, spool: _Spool | None = None) -> None:
        self.root = root
        self.workdir = workdir  # the temp directory to remove afterwards
        self.index = index  # None once the files are on disk
        self.spool = spool
        self._ignore_keep: set[str] | None = None
        self._materializing: asyncio.Lock | None = None

    def cleanup(self) -> None:
        if self.spool is not None:
            self.spool.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- paths --------------------------------------------------------------------------

    def _rel(self, host: str) -> str:
        if host == self.root:
            return ""
        assert host.startswith(self.root + "/"), host
        return host[len(self.root) + 1:]

    def _host(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def resolve(self, path: str) -> str:
        """`path` (relative to the context) on the host, symlinks followed inside the
        context only."""
        if self.index is None:
            return resolve(self.root, path)
        return self._host(self.index.resolve(posixpath.normpath("/" + path)))

    def _member(self, host: str, follow: bool) -> Member | None:
        assert self.index is not None
        rel = self._rel(host)
        if follow:
            rel = self.index.resolve(rel)
        return self.index.members.get(rel)

    def lexists(self, host: str) -> bool:
        if self.index is None:
            return os.path.lexists(host)
        return self._member(host, False) is not None

    def isdir(self, host: str) -> bool:
        if self.index is None:
            return os.path.isdir(host)
        member = self._member(host, True)
        return member is not None and stat.S_ISDIR(member.mode)

    def lstat(self, host: str) -> os.stat_result:
        if self.index is None:
            return os.lstat(host)
        member = self._member(host, False)
        if member is None:
            raise FileNotFoundError(2, "no such file or directory", host)
        return member.stat()

    def listdir(self, host: str) -> list[str]:
        if self.index is None:
            return os.listdir(host)
        member = self._member(host, True)
        return sorted(member.children) if member is not None else []

    def walk(self, host: str) -> Iterator[tuple[str, list[str], list[str]]]:
        if self.index is None:
            yield from os.walk(host)
            return
        for rel, dirs, files in self.index.walk(self._rel(host)):
            yield self._host(rel), dirs, files

    def content(self, host: str, st: os.stat_result) -> str:
        """What a cache key covers of a file's content: the sha256 of a regular file's
        bytes, a symlink's target."""
        if self.index is not None:
            member = self._member(host, False)
            if member is None:
                return ""
            return member.digest if stat.S_ISREG(member.mode) else member.linkname
        return file_content_id(host, st)

    # -- whole-context steps ------------------------------------------------------------------

    async def read(self, path: str) -> bytes | None:
        """A file's bytes (the Dockerfile), or None when the context has no such file."""
        host = self.resolve(path)
        if self.index is not None:
            member = self._member(host, False)
            if member is None or not stat.S_ISREG(member.mode):
                return None
            if member.data is not None:
                return member.data
            await self.materialize()
        try:
            with open(host, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    async def apply_dockerignore(self, keep: set[str]) -> None:
        """Delete what .dockerignore excludes (the Dockerfile and .dockerignore
        themselves stay, as Docker sends them regardless)."""
        if self.index is None:
            await asyncio.to_thread(apply_dockerignore, self.root, keep)
            return
        self._ignore_keep = keep
        text = await self.read(".dockerignore")
        if text is None:
            return
        from berth.builder.ignore import IgnoreMatcher

        matcher = IgnoreMatcher.from_text(text.decode("utf-8", errors="replace"))
        self.index.apply_ignore(matcher, keep)

    async def materialize(self) -> None:
        """Put the context's files on disk (once), for a step that copies them."""
        if self.index is None:
            return
        if self._materializing is None:
            self._materializing = asyncio.Lock()
        async with self._materializing:
            if self.index is None:
                return
            assert self.spool is not None
            await _extract(await asyncio.to_thread(self.spool.to_file), self.root)
            if self._ignore_keep is not None:
                await asyncio.to_thread(apply_dockerignore, self.root, self._ignore_keep)
            self.index = None


def clean(name: str) -> str:
    """A tar member's name as a path relative to the context ("" for its root)."""
    return posixpath.normpath("/" + name).lstrip("/")


def file_content_id(host: str, st: os.stat_result) -> str:
    """The sha256 of a regular file's bytes, a symlink's target, "" for the rest."""
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(host, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(host)
    return ""


def is_git_url(remote: str) -> bool:
    base = remote.split("#", 1)[0]
    return remote.startswith(GIT_PREFIXES) or base.endswith(".git") or (
        "://" in remote and remote.split("://", 1)[0] in ("git", "ssh", "git+ssh"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Indexer:
    """Reads a tar as its chunks arrive, without copying file bytes: each regular
    file's data is hashed straight from the chunk it came in. Plain ustar, PAX and GNU
    long names; anything else (compression, sparse files, a bad header) gives up, and
    the context is then extracted to learn what it is."""

    def __init__(self, keep: set[str]) -> None:
        self.index: Index | None = Index()
        self.keep = keep
        self.header = bytearray()
        self.left = 0  # data bytes of the current entry still to come
        self.pad = 0  # then this much padding to the next 512-byte block
        self.hasher: Any = None
        self.parts: list[bytes] | None = None  # the bytes of an entry kept whole
        self.entry: tarfile.TarInfo | None = None
        self.pax: dict[str, str] = {}
        self.long_name: str | None = None
        self.long_link: str | None = None
        self.ended = False

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        pos, n = 0, len(view)
        while pos < n and self.index is not None and not self.ended:
            if self.left:
                k = min(self.left, n - pos)
                piece = view[pos:pos + k]
                if self.hasher is not None:
                    self.hasher.update(piece)  # hashlib lets go of the GIL for large pieces
                if self.parts is not None:
                    self.parts.append(bytes(piece))
                pos += k
                self.left -= k
                if not self.left:
                    self._end_entry()
            elif self.pad:
                k = min(self.pad, n - pos)
                pos += k
                self.pad -= k
            else:
                k = min(512 - len(self.header), n - pos)
                self.header += view[pos:pos + k]
                pos += k
                if len(self.header) == 512:
                    block = bytes(self.header)
                    self.header.clear()
                    try:
                        self._start_entry(block)
                    except (tarfile.TarError, ValueError, UnicodeError):
                        self.index = None

    def finish(self) -> Index | None:
        """The index, once the stream has ended (None when it could not be read)."""
        if self.index is not None and (self.left or any(self.header)):
            raise InvalidParameter("the build context is not a valid tar archive: unexpected EOF")
        return self.index

    def _start_entry(self, block: bytes) -> None:
        if block.count(0) == 512:
            self.ended = True  # the end-of-archive marker: what follows is not read
            return
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            if info.size > KEEP_BYTES:
                raise ValueError("an oversized extended header")
            self.parts = []
        elif info.type == tarfile.GNUTYPE_SPARSE:
            raise ValueError("a sparse file")
        else:
            if "path" in self.pax:
                info.name = self.pax["path"]
            elif self.long_name is not None:
                info.name = self.long_name
            if "linkpath" in self.pax:
                info.linkname = self.pax["linkpath"]
            elif self.long_link is not None:
                info.linkname = self.long_link
            if "size" in self.pax:
                info.size = int(self.pax["size"])
            if "mtime" in self.pax:
                info.mtime = int(float(self.pax["mtime"]))
            self.pax, self.long_name, self.long_link = {}, None, None
            if info.type in tarfile.REGULAR_TYPES:
                self.hasher = hashlib.sha256()
                self.parts = [] if clean(info.name) in self.keep and info.size <= KEEP_BYTES else None
            else:
                self.hasher = self.parts = None
        self.entry = info
        self.left = info.size
        self.pad = -info.size % 512
        if not self.left:
            self._end_entry()

    def _end_entry(self) -> None:
        info = self.entry
        assert info is not None and self.index is not None
        data = b"".join(self.parts) if self.parts is not None else None
        if info.type == tarfile.XHDTYPE:
            self.pax.update(_pax_records(data or b""))
        elif info.type == tarfile.GNUTYPE_LONGNAME:
            self.long_name = (data or b"").rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type == tarfile.GNUTYPE_LONGLINK:
            self.long_link = (data or b"").rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type != tarfile.XGLTYPE:
            self._add(info, data)
        self.hasher = self.parts = None
        self.entry = None

    def _add(self, info: tarfile.TarInfo, data: bytes | None) -> None:
        assert self.index is not None
        mtime = int(info.mtime)
        perm = info.mode & 0o7777
        if info.type in tarfile.REGULAR_TYPES:
            self.index.add(info.name, Member(stat.S_IFREG | perm, info.size, mtime,
                                             digest=self.hasher.hexdigest(), data=data))
        elif info.islnk():
            target = self.index.members.get(clean(info.linkname))
            if target is None or not stat.S_ISREG(target.mode):
                raise ValueError("a hard link to nothing regular")  # extraction says what it means
            self.index.add(info.name, Member(stat.S_IFREG | perm, target.size, mtime, digest=target.digest,
                                             data=target.data))
        elif info.isdir():
            self.index.add(info.name, Member(stat.S_IFDIR | perm, 0, mtime))
        elif info.issym():
            self.index.add(info.name, Member(stat.S_IFLNK | 0o777, 0, mtime, linkname=info.linkname))
        elif info.ischr() or info.isblk() or info.isfifo():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
            self.index.add(info.name, Member(kind | perm, 0, mtime))


def _pax_records(data: bytes) -> dict[str, str]:
    """A PAX extended header's "LEN key=value\\n" records."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        if length <= 0:
            raise ValueError("a bad PAX record")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class _Spool:
    """The request body as it came: held in memory up to HOLD_BYTES (a cached rebuild
    then never writes it out), in a file beyond that or once extraction needs it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.held: list[bytes] = []
        self.size = 0
        self.fd: int | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.fd is None and self.size <= HOLD_BYTES:
            self.held.append(chunk)
            return
        self._open()
        assert self.fd is not None
        _write_all(self.fd, chunk)

    def _open(self) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            for chunk in self.held:
                _write_all(self.fd, chunk)
            self.held = []

    def to_file(self) -> str:
        """Everything on disk, the file closed; its path."""
        self._open()
        self.close()
        return self.path

    def close(self) -> None:
        if self.fd is not None and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1  # never opened again
        self.held = []


def _spool_and_index(chunks: queue.Queue[bytes | None], spool: _Spool, keep: set[str]) -> Index | None:
    """In a thread: keep the body and index it as it comes."""
    indexer = _Indexer(keep)
    first = True
    while (chunk := chunks.get()) is not None:
        if first and _compressed(chunk[:6]):
            indexer.index = None  # a compressed context is extracted at once
        first = False
        spool.write(chunk)
        if indexer.index is not None:
            indexer.feed(chunk)
    return indexer.finish()


async def from_tar(chunks: AsyncIterator[bytes], tmp_root: str, keep: tuple[str, ...] = ()) -> Context:
    """A context from a tar stream (plain, gzip, bzip2, xz or zstd).

    The stream is kept and indexed as it comes (`keep`: the names whose bytes the
    builder reads, the Dockerfile and .dockerignore); a stream the index cannot read is
    extracted at once, so its errors are reported now."""
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ctx-", dir=tmp_root)
    root = os.path.join(workdir, "context")
    spool = _Spool(os.path.join(workdir, "context.tar"))
    try:
        os.mkdir(root, 0o755)
        feed: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
        indexing = asyncio.ensure_future(asyncio.to_thread(
            _spool_and_index, feed, spool, {clean(k) for k in keep} | {".dockerignore"}))
        sent = 0
        head = b""
        try:
            async for chunk in chunks:
                if len(head) < 6:
                    head += chunk[:6]
                sent += len(chunk)
                if feed.full():
                    await asyncio.to_thread(feed.put, chunk)
                else:
                    feed.put_nowait(chunk)
        finally:
            await asyncio.to_thread(feed.put, None)
            index = await indexing
        # The docker CLI's tar, when it adds a Dockerfile from -f outside the context
        # or from stdin, ends right after the last member's data: no padding and no
        # end-of-archive blocks. dockerd reads it; so do we, by adding them.
        if not _compressed(head):
            spool.write(b"\0" * (-sent % 512 + 1024))
        ctx = Context(root, workdir, index, spool)
        if index is None:
            ctx.index = Index()  # materialize() below extracts it
            await ctx.materialize()
    except BaseException:
        spool.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return ctx


async def _extract(spool: str, root: str) -> None:
    """Extract the spooled tar into root, in the chrooted extraction child."""
    try:
        with open(spool, "rb") as source:
            # the digest argument: the child need not hash a context, nobody asks for it
            result = await run_child(source, root, "sha256:context")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool)
    if "error" in result:
        raise InvalidParameter(f"the build context is not a valid tar archive: {result['error']}")


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
    """A remote tarball (the context), or a plain Dockerfile (returned as bytes). The
    download goes to a file first, never whole into memory."""
    from berth import httpclient

    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="remote-", dir=tmp_root)
    os.close(fd)
    try:
        try:
            got = await httpclient.download(url, path)
        except httpclient.BadStatus as e:
            raise InvalidParameter(f"error downloading remote context {url}: {e.status} {e.status_reason}") from None
        except httpclient.HTTPClientError as e:
            raise InvalidParameter(f"error downloading remote context {url}: {e.reason}") from None
        if got.status != 200:
            raise InvalidParameter(f"error downloading remote context {url}: {got.status} {got.reason}")
        with open(path, "rb") as f:
            head = f.read(512)
        if _looks_like_archive(head):
            return await from_tar(_file_chunks(path), tmp_root), None
        with open(path, "rb") as f:
            return None, f.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _file_chunks(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            yield chunk


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
    from berth.builder.ignore import IgnoreMatcher

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
