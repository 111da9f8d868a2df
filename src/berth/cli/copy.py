"""``berth cp``: copy files between a container and the local filesystem.

Uses the archive endpoints (``HEAD``/``GET``/``PUT /containers/{id}/archive``)
and reproduces docker's naming rules (moby's PrepareArchiveCopy): copying into
an existing directory keeps the source's name, copying to a new path renames
the top entry, a directory never replaces a file.  ``plan_copy`` and
``rebase_tar`` are pure; the rest does the I/O.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from typing import IO, Any

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import human_size
from berth.client.engine import APIError, ClientError, path_escape

GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27


class CopyError(Exception):
    pass


def split_cp_arg(arg: str) -> tuple[str, str]:
    """``container:path`` → (container, path); local paths give ("", path)."""
    if arg.startswith("/"):
        return "", arg
    ctr, sep, path = arg.partition(":")
    if not sep or ctr.startswith("."):
        return "", arg
    return ctr, path


def split_dir_entry(path: str) -> tuple[str, str]:
    """archive.SplitPathDirEntry: (parent, base) keeping a trailing "/." as base "."."""
    clean = os.path.normpath(path) if not path.endswith("/.") else os.path.normpath(path[:-2]) + "/."
    if clean.endswith("/."):
        return clean[:-2] or "/", "."
    parent, base = os.path.split(clean)
    return parent or ".", base


def _asserts_directory(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.")


def plan_copy(
    src_path: str, src_is_dir: bool, dst_path: str, dst_exists: bool, dst_is_dir: bool, rebase: str = ""
) -> tuple[str, tuple[str, str] | None]:
    """moby's PrepareArchiveCopy: (directory to extract into, (old, new) top-entry rename or None)."""
    _, src_base = split_dir_entry(src_path)
    dst_parent, dst_base = split_dir_entry(dst_path)
    if rebase:
        src_base = rebase
    if dst_exists and dst_is_dir:
        return dst_path, None
    if dst_exists and src_is_dir:
        raise CopyError("cannot copy directory")
    if dst_exists:
        return dst_parent, (src_base, dst_base)
    if src_is_dir:
        return dst_parent, (src_base, dst_base)
    if _asserts_directory(dst_path):
        raise CopyError("no such directory")
    return dst_parent, (src_base, dst_base)


def rebase_name(name: str, old: str, new: str) -> str:
    """Rename the top path component ``old`` of a tar entry to ``new``."""
    stripped = name[2:] if name.startswith("./") and old != "." else name
    if stripped == old or stripped.rstrip("/") == old:
        return new + ("/" if stripped.endswith("/") else "")
    if stripped.startswith(old + "/"):
        return new + stripped[len(old) :]
    return name


def rebase_tar(src: IO[bytes], dst: IO[bytes], rename: tuple[str, str] | None) -> None:
    import tarfile

    with tarfile.open(fileobj=src, mode="r|*") as tin, tarfile.open(fileobj=dst, mode="w|") as tout:
        for member in tin:
            if rename is not None:
                member.name = rebase_name(member.name, *rename)
                if member.islnk() and member.linkname:
                    member.linkname = rebase_name(member.linkname, *rename)
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)


def _stat_header(value: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.b64decode(value))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _container_stat(cli: CliContext, ctr: str, path: str) -> dict[str, Any] | None:
    resp = cli.client.head(f"/containers/{path_escape(ctr)}/archive", {"path": path})
    if resp.status == 404:
        return None
    if resp.status >= 400:
        raise APIError(resp.status, resp.head.reason or f"status {resp.status}")
    return _stat_header(resp.header("x-docker-container-path-stat"))


class _Counter(io.RawIOBase):
    """A readable wrapper that counts the bytes read through it."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.total += n
        return n


def copy_from_container(cli: CliContext, ctr: str, src: str, dst: str, flags: ParsedFlags) -> None:
    import tarfile
    import tempfile

    rebase = ""
    if flags["follow-link"]:
        stat = _container_stat(cli, ctr, src)
        if stat and int(stat.get("mode") or 0) & GO_MODE_SYMLINK:
            target = str(stat.get("linkTarget") or "")
            if not target.startswith("/"):
                target = os.path.join(split_dir_entry(src)[0], target)
            rebase = split_dir_entry(src)[1]
            src = target
    resp = cli.client.request("GET", f"/containers/{path_escape(ctr)}/archive", {"path": src})
    stat = _stat_header(resp.header("x-docker-container-path-stat"))
    if dst == "-":
        sys.stdout.flush()
        for chunk in resp.iter_chunks():
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    dst = os.path.abspath(dst) + ("/" if dst.endswith("/") else "")
    src_is_dir = bool(int(stat.get("mode") or 0) & GO_MODE_DIR)
    dst_exists = os.path.exists(dst.rstrip("/") or "/")
    dst_is_dir = os.path.isdir(dst.rstrip("/") or "/")
    if not dst_exists:
        parent = os.path.dirname(dst.rstrip("/"))
        if not os.path.isdir(parent):
            raise CliExit(f"lstat {parent}: no such file or directory", 1)
    try:
        into, rename = plan_copy(src, src_is_dir, dst.rstrip("/") if dst_exists else dst, dst_exists, dst_is_dir, rebase)
    except CopyError as exc:
        raise CliExit(str(exc), 1) from None
    if rebase:
        # the archive is named after the link's target; it must carry the link's name
        target_base = split_dir_entry(src)[1]
        rename = (target_base, rename[1] if rename is not None else rebase)
    counter = _Counter(resp.iter_chunks())
    with tempfile.TemporaryFile() as spool:
        rebase_tar(io.BufferedReader(counter), spool, rename)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            tar.extractall(into.rstrip("/") or "/", filter="tar")
    if not flags["quiet"]:
        cli.err(f"Successfully copied {human_size(counter.total, 3)} to {dst.rstrip('/') if dst != '/' else dst}")


def copy_to_container(cli: CliContext, ctr: str, src: str, dst: str, flags: ParsedFlags) -> None:
    import tarfile
    import tempfile

    stat = _container_stat(cli, ctr, dst)
    dst_info_path = dst
    if stat and int(stat.get("mode") or 0) & GO_MODE_SYMLINK:
        target = str(stat.get("linkTarget") or "")
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(dst)[0], target)
        dst_info_path = target
        stat = _container_stat(cli, ctr, target)
    dst_exists = stat is not None
    dst_is_dir = bool(stat and int(stat.get("mode") or 0) & GO_MODE_DIR)
    params = {"path": "", "noOverwriteDirNonDir": "true", "copyUIDGID": "true" if flags["archive"] else None}
    if src == "-":
        if not dst_is_dir:
            raise CliExit(f'destination "{ctr}:{dst}" must be a directory', 1)
        params["path"] = dst_info_path
        body: Any = iter(lambda: sys.stdin.buffer.read(65536), b"")
        cli.client.request("PUT", f"/containers/{path_escape(ctr)}/archive", params, raw_body=body).read()
        return
    src_abs = os.path.abspath(src) + ("/." if src.endswith("/.") else "")
    follow = flags["follow-link"]
    check = src_abs[:-2] if src_abs.endswith("/.") else src_abs
    if not os.path.lexists(check):
        raise CliExit(f"lstat {check}: no such file or directory", 1)
    rebase = ""
    if follow and os.path.islink(check):
        rebase = os.path.basename(check)
        check = os.path.realpath(check)
    src_is_dir = os.path.isdir(check) if (follow or not os.path.islink(check)) else False
    try:
        into, rename = plan_copy(src_abs, src_is_dir, dst_info_path, dst_exists, dst_is_dir, rebase)
    except CopyError as exc:
        raise CliExit(str(exc), 1) from None
    spool = tempfile.TemporaryFile()
    try:
        parent, base = split_dir_entry(src_abs)
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            arc = rebase or base
            if rename is not None:
                arc = rebase_name(arc, rename[0], rename[1])
            tar.add(check if base != "." else parent, arcname=arc if base != "." else ".", recursive=True)
        size = tar.offset
        spool.truncate(size)
        spool.seek(0)
        params["path"] = into
        chunks = iter(lambda: spool.read(65536), b"")
        cli.client.request("PUT", f"/containers/{path_escape(ctr)}/archive", params, raw_body=chunks).read()
    finally:
        spool.close()
    if not flags["quiet"]:
        cli.err(f"Successfully copied {human_size(size, 3)} to {ctr}:{dst_info_path}")


def run_cp(cli: CliContext, flags: ParsedFlags) -> int:
    import tarfile

    if not cli.stdout_is_tty():
        flags.values["quiet"] = True  # docker shows progress only on a terminal
    src_ctr, src = split_cp_arg(flags.args[0])
    dst_ctr, dst = split_cp_arg(flags.args[1])
    if src_ctr and dst_ctr:
        raise CliExit("copying between containers is not supported", 1)
    if not src_ctr and not dst_ctr:
        raise CliExit("must specify at least one container source", 1)
    try:
        if src_ctr:
            copy_from_container(cli, src_ctr, src, dst, flags)
        else:
            copy_to_container(cli, dst_ctr, src, dst, flags)
    except (OSError, tarfile.TarError) as exc:
        raise CliExit(str(exc), 1) from None
    except ClientError:
        raise
    return 0


def make_cp(name: str = "cp") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        short="Copy files/folders between a container and the local filesystem",
        run=run_cp,
        aliases_text="berth container cp, berth cp",
        args=("exact", 2, 2),
    )
    cmd.long = (
        "Copy files/folders between a container and the local filesystem\n\n"
        "Use '-' as the source to read a tar archive from stdin\n"
        "and extract it to a directory destination in a container.\n"
        "Use '-' as the destination to stream a tar archive of a\n"
        "container source to stdout."
    )
    cmd.flags.add("archive", "a", "bool", "Archive mode (copy all uid/gid information)")
    cmd.flags.add("follow-link", "L", "bool", "Always follow symbol link in SRC_PATH")
    cmd.flags.add(
        "quiet", "q", "bool",
        "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached",
    )
    return cmd
