"""Apply one layer tar to a directory, safely; run as its own process by layers.store.

`python -m berth.layers.extract DEST [DIGEST]` reads a tar (plain, gzip, bzip2, xz or zstd)
on stdin, chroots into DEST and extracts it there, so no name, symlink or hard link in
the archive can reach outside DEST: inside the chroot "/" *is* DEST. It prints one JSON
line: {"diff_id": "sha256:…", "size": N} (the digest of the uncompressed tar, and the
bytes of its regular files, which is what Docker calls a layer's size), or
{"error": "…"} and exits 1. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) become
overlayfs whiteouts (a 0/0 character device, the trusted.overlay.opaque xattr).
When the caller passes the DIGEST of a plain tar it already verified (a content-store
blob, immutable once published), the tar is not hashed again and DIGEST is echoed.
For a daemon with remapped user namespaces (`--userns-remap`) a third argument, ID
MAPS (`encode_id_maps`), translates every owner in the archive to the host id it is in
the containers' user namespace, and directories the archive leaves out (DEST itself
too) belong to the containers' root: what the layer holds is then what a container sees.
gzip goes through isal (the stdlib when isal is missing), zstd through zstandard; both
are imported before the chroot, which would hide them.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import stat
import sys
import sysconfig
import tarfile
import threading
from typing import IO, Any, cast

try:
    from isal import igzip as _gzip
except ImportError:  # isal is optional: the stdlib decodes gzip too, only slower
    _gzip = gzip  # type: ignore[misc]
try:
    import zstandard
except ImportError:
    zstandard = None  # type: ignore[assignment]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DECODE_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError, OSError, EOFError, ValueError, lzma.LZMAError,
    *((zstandard.ZstdError,) if zstandard is not None else ()))

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
COPY_CHUNK = 8 << 20  # reads, copies and hashing go by this much at a time
OVERFLOW_ID = 65534  # what the kernel shows for an id a user namespace does not map


class _Tar(tarfile.TarFile):
    """A TarFile that, on a plain archive in a regular file, copies each member's bytes
    with copy_file_range from the archive's own fd: the kernel moves them, not Python."""

    source_fd: int | None = None
    copybufsize: int | None  # set by TarFile.__init__; typeshed leaves it out

    def makefile(self, tarinfo: tarfile.TarInfo,
                 targetpath: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> None:
        if self.source_fd is None or tarinfo.sparse is not None:
            super().makefile(tarinfo, targetpath)
            return
        with open(targetpath, "wb") as target:
            offset, left = tarinfo.offset_data, tarinfo.size
            while left > 0:
                n = os.copy_file_range(self.source_fd, target.fileno(), min(left, 1 << 30), offset)
                if n == 0:
                    raise tarfile.ReadError("unexpected end of data")
                offset += n
                left -= n


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


class _Peek:
    def __init__(self, raw: IO[bytes], head: bytes) -> None:
        self.raw = raw
        self.head = head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            if len(data) < n:
                data += self.raw.read(n - len(data))
            return data
        return self.raw.read(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def child_env() -> dict[str, str]:
    """The environment of a `python -S -m berth.layers.…` child: berth's sources and this
    interpreter's site-packages (where isal and zstandard live), nothing else."""
    paths = [os.path.dirname(os.path.dirname(os.path.dirname(__file__)))]
    paths += [p for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))
              if p not in paths]
    return {"PYTHONPATH": os.pathsep.join(paths)}


IdRange = tuple[int, int, int]  # container id, host id, size


class Owners:
    """Container ids to host ids, for an archive extracted into a remapped daemon's store."""

    def __init__(self, uids: list[IdRange], gids: list[IdRange]) -> None:
        self.uids, self.gids = uids, gids
        self.root = self.host(0, 0)

    def host(self, uid: int, gid: int) -> tuple[int, int]:
        return _to_host(self.uids, uid), _to_host(self.gids, gid)

    def container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host ids as the container sees them: 65534 (the overflow id) when unmapped."""
        return _to_container(self.uids, uid), _to_container(self.gids, gid)


def _to_host(ranges: list[IdRange], value: int) -> int:
    for inside, host, size in ranges:
        if inside <= value < inside + size:
            return host + value - inside
    raise ValueError(f"Container ID {value} cannot be mapped to a host ID")


def _to_container(ranges: list[IdRange], value: int) -> int:
    for inside, host, size in ranges:
        if host <= value < host + size:
            return inside + value - host
    return OVERFLOW_ID


def encode_id_maps(uids: list[IdRange], gids: list[IdRange]) -> str:
    """The ID MAPS argument: "u:0:100000:65536,g:0:100000:65536"."""
    return ",".join([f"u:{a}:{b}:{c}" for a, b, c in uids] + [f"g:{a}:{b}:{c}" for a, b, c in gids])


def decode_id_maps(text: str) -> Owners | None:
    if not text:
        return None
    uids: list[IdRange] = []
    gids: list[IdRange] = []
    for item in text.split(","):
        kind, a, b, c = item.split(":")
        (uids if kind == "u" else gids).append((int(a), int(b), int(c)))
    return Owners(uids, gids)


async def run_child(source: IO[bytes], dest: str, digest: str, id_maps: str = "") -> dict[str, Any]:
    """The parent's side: extract `source` into the directory `dest` in a child of this
    module, and return its answer ({"diff_id", "size"} or {"error"}). A cancelled caller
    takes the child down with it. `id_maps` (`encode_id_maps`): owners are translated."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-m", "berth.layers.extract", dest, digest, *([id_maps] if id_maps else []),
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
    try:
        doc = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        doc = None
    if not isinstance(doc, dict) or (proc.returncode != 0 and "error" not in doc):
        return {"error": "the archive ended early"}
    return doc


def decompressed(raw: IO[bytes]) -> IO[bytes]:
    head = raw.read(6)
    src = _Peek(raw, head)
    if head.startswith(b"\x1f\x8b"):
        return _gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[call-overload,arg-type,return-value]
    if head.startswith(ZSTD_MAGIC):
        if zstandard is None:
            raise ValueError("zstd-compressed data, but the zstandard module is not installed")
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], src), read_across_frames=True)
        return cast(IO[bytes], reader)
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src, "rb")  # type: ignore[call-overload]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src, "rb")  # type: ignore[arg-type]
    return src  # type: ignore[return-value]


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def apply(stream: IO[bytes], owners: Owners | None = None) -> int:
    """Extract a tar stream into the current root (the caller has chrooted)."""
    with _Tar.open(fileobj=stream, mode="r|", bufsize=COPY_CHUNK) as tar:  # type: ignore[call-overload]
        return apply_tar(tar, owners)


def _make_parents(path: str, owners: Owners | None) -> None:
    """The directories above a member that the archive left out (0755; the containers'
    root owns them when `owners` remaps ids)."""
    if owners is None:
        os.makedirs(path, exist_ok=True)
        return
    if lstat_or_none(path) is not None:
        return
    _make_parents(os.path.dirname(path), owners)
    os.mkdir(path, 0o755)
    os.chown(path, *owners.root)


def apply_tar(tar: _Tar, owners: Owners | None = None) -> int:
    """Extract an open tar into the current root (the caller has chrooted); returns the
    layer's size as Docker counts it: the bytes of its regular files. With `owners`, each
    member's owner is the host id its container id is."""
    tar.copybufsize = COPY_CHUNK
    content = 0
    for member in tar:
        if member.isreg():
            content += member.size
        if owners is not None:
            member.uid, member.gid = owners.host(member.uid, member.gid)
        path = _clean(member.name)
        base = os.path.basename(path)
        parent = os.path.dirname(path)
        if base == OPAQUE:
            _make_parents(parent, owners)
            os.setxattr(parent, "trusted.overlay.opaque", b"y")
            continue
        if base.startswith(WHITEOUT):
            target = os.path.join(parent, base[len(WHITEOUT):])
            _make_parents(parent, owners)
            remove_path(target)
            os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            if owners is not None:
                os.chown(target, member.uid, member.gid)
            continue
        if path == "/":
            continue
        member.name = path
        if member.islnk():
            member.linkname = _clean(member.linkname)
        existing = lstat_or_none(path)
        if existing is not None and not (stat.S_ISDIR(existing.st_mode) and member.isdir()):
            remove_path(path)
        if owners is not None:
            _make_parents(parent, owners)
        if member.islnk():
            hard_link(member.linkname, path)
            continue
        tar.extract(member, "/", set_attrs=True, numeric_owner=True, filter="fully_trusted")
    return content


def hard_link(target: str, path: str) -> None:
    """A hard link to a file already extracted (a symlink at `target` is linked, not
    followed, as Docker does); one to anything else is refused."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        os.link(target, path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(f"invalid hardlink {path!r} -> {target!r}: no such file in the archive") from None
    except IsADirectoryError:
        raise ValueError(f"invalid hardlink {path!r} -> {target!r}: it is a directory") from None


def lstat_or_none(path: str) -> os.stat_result | None:
    """lstat, or None when nothing is there (also when a parent is not a directory)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove_path(path: str) -> None:
    st = lstat_or_none(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


def main() -> None:
    dest = sys.argv[1]
    known = sys.argv[2] if len(sys.argv) > 2 else None
    try:
        owners = decode_id_maps(sys.argv[3] if len(sys.argv) > 3 else "")
        os.chroot(dest)
        os.chdir("/")
        if owners is not None:
            os.chown("/", *owners.root)
        # members get their own modes (set after creation); a parent the archive leaves
        # out is made 0755, as Docker's unpacking makes it
        os.umask(0o022)
        if _is_plain_file(0):
            digest, size = extract_file(0, known, owners)
        else:
            stream = _Hashing(decompressed(sys.stdin.buffer))
            size = apply(stream, owners)  # type: ignore[arg-type]
            while stream.read(COPY_CHUNK):
                pass  # the tar's end padding counts in its digest
            digest = "sha256:" + stream.hash.hexdigest()
    except DECODE_ERRORS as e:
        print(json.dumps({"error": f"invalid tar archive: {e}"}), flush=True)
        sys.exit(1)
    print(json.dumps({"diff_id": digest, "size": size}), flush=True)


def _is_plain_file(fd: int) -> bool:
    """Whether `fd` is a regular file, read from its start, holding an uncompressed tar."""
    if not stat.S_ISREG(os.fstat(fd).st_mode) or os.lseek(fd, 0, os.SEEK_CUR) != 0:
        return False
    head = os.pread(fd, 6, 0)
    return not (head.startswith((b"\x1f\x8b", ZSTD_MAGIC, b"BZh", b"\xfd7zXZ\x00")))


def extract_file(fd: int, known: str | None = None, owners: Owners | None = None) -> tuple[str, int]:
    """Extract the plain tar in regular file `fd`, hashing it in a second thread
    meanwhile (unless its digest is `known`); member bytes go file to file by
    copy_file_range. The digest covers the whole file, end padding included, as the
    stream path's does."""
    length = os.fstat(fd).st_size
    hasher = hashlib.sha256()
    hashing = threading.Thread(target=_hash_file, args=(fd, 0 if known else length, hasher))
    hashing.start()
    try:
        with open(fd, "rb", buffering=1 << 16, closefd=False) as raw, \
                _Tar.open(fileobj=raw, mode="r:") as tar:
            assert isinstance(tar, _Tar)
            tar.source_fd = fd
            size = apply_tar(tar, owners)
    finally:
        hashing.join()
    return known or "sha256:" + hasher.hexdigest(), size


def _hash_file(fd: int, size: int, hasher: hashlib._Hash) -> None:
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        n = os.preadv(fd, [view], offset)
        if n == 0:
            break
        hasher.update(view[:n])  # hashlib lets go of the GIL for large updates
        offset += n


if __name__ == "__main__":
    main()
