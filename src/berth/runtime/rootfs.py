"""The container's filesystem view: mounts from the spec, /dev, pivot_root, masked paths.

Runs inside the container's new mount namespace, before the user's process starts.
Every path taken from the spec or the image is resolved with `secure_join`, so a
symlink in the image cannot point a mount outside the container's root.
"""

from __future__ import annotations

import errno
import os
import stat

from berth.runtime import linux
from berth.runtime.oci import Device, Mount, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    # option: (clear?, flag)
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID), "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC),
    "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK), "nomand": (True, linux.MS_MANDLOCK),
    "noatime": (False, linux.MS_NOATIME), "atime": (True, linux.MS_NOATIME),
    "nodiratime": (False, linux.MS_NODIRATIME), "diratime": (True, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME), "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}

DEFAULT_DEVICES = [
    Device("/dev/null", "c", 1, 3), Device("/dev/zero", "c", 1, 5), Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8), Device("/dev/urandom", "c", 1, 9), Device("/dev/tty", "c", 5, 0),
]
_DEV_SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                 ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
                 ("pts/ptmx", "/dev/ptmx")]


def parse_mount_options(options: list[str]) -> tuple[int, int, str]:
    """Split OCI mount options into (flags, propagation flags, data string)."""
    flags = 0
    propagation = 0
    data = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, flag = _FLAG_OPTIONS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """Resolve `unsafe` inside `root` as if root were "/": symlinks cannot leave it."""
    parts = unsafe.split("/")[::-1]  # a stack: the next part is last
    current = ""
    followed = 0
    while parts:
        part = parts.pop()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current) if current else ""
            continue
        candidate = f"{current}/{part}"
        try:
            st = os.lstat(root + candidate)
        except (FileNotFoundError, NotADirectoryError):
            current = candidate
            continue
        if stat.S_ISLNK(st.st_mode):
            followed += 1
            if followed > 255:
                raise OSError(errno.ELOOP, f"too many symlinks under {unsafe}")
            target = os.readlink(root + candidate)
            if target.startswith("/"):
                current = ""
            parts.extend(reversed(target.split("/")))
            continue
        current = candidate
    return root + current if current else root


class MountTypeError(NotADirectoryError):
    """A bind of a file onto a directory or the reverse, in runc's words."""

    def __init__(self, source: str, destination: str) -> None:
        super().__init__(errno.ENOTDIR, "not a directory")
        self.source, self.destination = source, destination

    def __str__(self) -> str:
        return (f'error mounting "{self.source}" to rootfs at "{self.destination}": not a directory: '
                "Are you trying to mount a directory onto a file (or vice-versa)? "
                "Check if the specified host path exists and is the expected type")


def _make_mountpoint(target: str, source_is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    if source_is_dir:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _cgroup_mounts(root: str = "") -> dict[str, str]:
    """This process's cgroup v1 hierarchies: mount point -> path of its own cgroup there
    (mount points inside the container's `root` left out: a /sys bound there has them)."""
    own: dict[frozenset[str], str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers:
                own[frozenset(controllers.split(","))] = path
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = (right.split() + ["", "", ""])[:3]
            if fstype != "cgroup":
                continue
            mount_point = left.split()[4]
            if root and mount_point.startswith(root.rstrip("/") + "/"):
                continue
            names = frozenset(o for o in options.split(",") if o not in ("rw", "ro") and
                              (o.startswith("name=") or "=" not in o))
            for wanted, own_path in own.items():
                if wanted and wanted <= names:
                    out[mount_point] = own_path
    return out


def _mount_cgroup(target: str, flags: int, root: str = "") -> None:
    """runc's `cgroup` mount: the container's own cgroups at /sys/fs/cgroup."""
    _make_mountpoint(target, True)
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        linux.mount("cgroup2", target, "cgroup2", flags)
        return
    linux.mount("tmpfs", target, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
    for mount_point, path in sorted(_cgroup_mounts(root).items()):
        dest = os.path.join(target, os.path.basename(mount_point))
        os.makedirs(dest, exist_ok=True)
        linux.mount(mount_point + path, dest, None, linux.MS_BIND)
        linux.mount(None, dest, None, linux.MS_REMOUNT | linux.MS_BIND | flags)
    # as runc: the tmpfs itself stays writable; the hierarchies in it follow the options


def _mount_one(root: str, m: Mount) -> None:
    target = secure_join(root, m.destination)
    flags, propagation, data = parse_mount_options(m.options)
    if m.type == "cgroup":
        _mount_cgroup(target, flags, root)
        return
    is_bind = bool(flags & linux.MS_BIND) or m.type == "bind"
    if is_bind:
        flags |= linux.MS_BIND
        source = m.source or ""
        _make_mountpoint(target, os.path.isdir(source))
        try:
            linux.mount(source, target, None, flags & (linux.MS_BIND | linux.MS_REC))
        except NotADirectoryError:
            raise MountTypeError(source, m.destination) from None
        # A bind mount ignores other flags until it is remounted with them.
        extra = flags & ~(linux.MS_BIND | linux.MS_REC)
        if extra:
            _remount_bind(target, extra)
    else:
        _make_mountpoint(target, True)
        try:
            linux.mount(m.source or m.type, target, m.type, flags, data or None)
        except PermissionError:
            if m.type != "sysfs":
                raise
            # as runc: in a user namespace that does not own the network namespace
            # (one the container joined) sysfs cannot be mounted; the host's /sys is bound
            linux.mount("/sys", target, None, linux.MS_BIND | linux.MS_REC)
            _remount_bind(target, flags)
    if propagation:
        linux.mount(None, target, None, propagation)


# the flags a mount made in a more privileged namespace keeps in a user namespace's copy
# of it: statvfs's ST_* bits, which are the MS_* bits of the same names
_LOCKED_FLAGS = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC


def _remount_bind(target: str, flags: int) -> None:
    """Remount the bind at `target` with `flags`; in a user namespace the source's locked
    flags are kept (the kernel refuses to clear them), as runc keeps them."""
    try:
        linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | flags)
    except PermissionError:
        locked = os.statvfs(target).f_flag & _LOCKED_FLAGS
        if not locked & ~flags:
            raise
        linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | flags | locked)


def _make_devices(root: str, devices: list[Device], bind: bool) -> None:
    """mknod each device; in a user namespace (no mknod there) bind the host's node."""
    old = os.umask(0)
    try:
        for dev in devices:
            target = secure_join(root, dev.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                os.unlink(target)
            if bind:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o000))
                linux.mount(dev.path, target, None, linux.MS_BIND)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(dev.type)
            if kind is None:
                raise OSError(errno.EINVAL, f"device {dev.path}: unknown type {dev.type!r}")
            os.mknod(target, kind | (dev.file_mode & 0o7777), os.makedev(dev.major, dev.minor))
            os.chown(target, dev.uid, dev.gid)
    finally:
        os.umask(old)
    for src, dst in _DEV_SYMLINKS:
        link = secure_join(root, dst)
        if not os.path.lexists(link):
            os.symlink(src, link)


def prepare_rootfs(spec: Spec, in_userns: bool = False,
                   before_pivot: Callable[[], None] | None = None,
                   before_cgroup: Callable[[], None] | None = None) -> None:
    """Mount everything the spec asks for under the root, then make it "/".

    A `cgroup` mount shows the cgroups this process is in, so `before_cgroup` is called
    first (the caller may still be placing it); such a mount is made after the others
    when none of them lies above or below it, so they need not wait."""
    root = os.path.realpath(spec.root_path)
    # as runc: the host's mounts stay visible as slaves unless the spec says otherwise
    propagation = _PROPAGATION.get(spec.root_propagation, linux.MS_SLAVE | linux.MS_REC)
    linux.mount(None, "/", None, propagation | linux.MS_REC)
    linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    dev_is_tmpfs = False
    deferred = []
    for i, m in enumerate(spec.mounts):
        if m.type == "cgroup" and before_cgroup is not None:
            if not _overlaps(m.destination, [later.destination for later in spec.mounts[i + 1:]]):
                deferred.append(m)
                continue
            before_cgroup()
        _mount_one(root, m)
        if m.destination.rstrip("/") == "/dev" and m.type == "tmpfs":
            dev_is_tmpfs = True
    if deferred:
        assert before_cgroup is not None
        before_cgroup()
        for m in deferred:
            _mount_one(root, m)
    if dev_is_tmpfs:
        seen = {d.path for d in spec.devices}
        _make_devices(root, [d for d in DEFAULT_DEVICES if d.path not in seen] + spec.devices, in_userns)
    if before_pivot is not None:
        before_pivot()
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")


def _overlaps(destination: str, others: list[str]) -> bool:
    """Whether any of `others` is `destination`, above it or below it."""
    mine = os.path.normpath("/" + destination.lstrip("/"))
    for other in others:
        theirs = os.path.normpath("/" + other.lstrip("/"))
        if theirs == mine or mine.startswith(theirs.rstrip("/") + "/") or theirs.startswith(mine + "/"):
            return True
    return False


def finish_rootfs(spec: Spec) -> None:
    """After sysctls are written (as runc orders it): read-only and masked paths, read-only root."""
    for path in spec.readonly_paths:
        _make_readonly(path)
    for path in spec.masked_paths:
        _mask(path)
    if spec.root_readonly:
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def _mask(path: str) -> None:
    try:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
        else:
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


def _make_readonly(path: str) -> None:
    try:
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_REC)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


# -- a view of a container's filesystem from outside it (`docker cp`) ------------------------


def bind_into(root: str, source: str, destination: str, writable: bool) -> None:
    """Bind `source` (a host path) at `destination` inside `root`, read-only unless
    `writable`, as dockerd builds its view of a container for `docker cp`: in a mount
    namespace of the caller's own (the mount must not propagate anywhere).

    The container may be running meanwhile, so its directories can turn into symlinks
    under us: the target is resolved with `secure_join`, then opened one name at a time
    without following symlinks (missing names made on the way), and the bind goes onto
    that open descriptor. Whatever the container does, the mount lands inside `root`."""
    resolved = secure_join(root, destination)
    names = [n for n in resolved[len(root):].split("/") if n]
    if not names:
        raise ValueError(f"mount destination {destination} resolves to the container's root")
    fd = _open_beneath(root, names, os.path.isdir(source))
    try:
        on_fd = f"/proc/self/fd/{fd}"
        try:
            linux.mount(source, on_fd, None, linux.MS_BIND | linux.MS_REC)
        except NotADirectoryError:
            raise MountTypeError(source, destination) from None
        # A remount or a propagation change needs the path: the kernel refuses them on a
        # /proc/self/fd link. The path leads to the mount just made (it covers the name).
        target = os.readlink(on_fd)
        if not writable:
            linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        linux.mount(None, target, None, linux.MS_PRIVATE | linux.MS_REC)
    finally:
        os.close(fd)


def _open_beneath(root: str, names: list[str], leaf_is_dir: bool) -> int:
    """An O_PATH descriptor of root/names[0]/…/names[-1], never through a symlink; the
    missing directories (and the leaf: a directory or an empty file) are made."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(names):
            directory = i < len(names) - 1 or leaf_is_dir
            if directory:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            else:
                try:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o644, dir_fd=fd))
                except FileExistsError:
                    pass
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if i < len(names) - 1 else 0)
            child = os.open(name, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, f"{'/'.join(names)} turned into a symlink")
        return fd
    except BaseException:
        os.close(fd)
        raise
