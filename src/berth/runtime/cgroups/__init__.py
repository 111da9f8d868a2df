"""Control groups for containers: one interface, a back end per cgroup version.

A `Cgroup` is one container's group, named by a path relative to the cgroup root
("/berth/<id>"). The runtime creates it, applies the `linux.resources` of the bundle,
puts the container's init in it, and later freezes, signals, measures and removes it:

    cg = open_manager("/berth/" + container_id)      # v1 or v2, whichever the host runs
    cg.create_and_apply(parse_resources(spec_doc))   # nothing is left behind on error
    cg.add(init_pid)                                 # before the init execs
    ...
    cg.destroy(kill=True)

The two back ends behave the same through this interface, and one test suite runs
against both (tests/integration/test_cgroups.py):
- `v1.V1Cgroup` makes the group in every cgroup v1 hierarchy mounted under the root
  (one directory per hierarchy, as runc does), and writes the v1 files;
- `v2.V2Cgroup` makes one directory in a cgroup2 mount, enables the controllers it
  needs in the ancestors' cgroup.subtree_control, and converts OCI's values to v2's.

This package owns the cgroup file systems and nothing else: it does not start
processes, and it never decides which group a container gets (the caller names it).
Every write that fails raises CgroupError naming the file and the value; nothing waits
without a timeout.
"""

from __future__ import annotations

import _signal  # not `signal`: see linux.py
import abc
import errno
import os
import time

from berth.errors import SystemError_
from berth.runtime import lazylog
from berth.runtime.cgroups.resources import (
    ResourceError,
    Resources,
    check_kernel_limits,
    parse_resources,
)
from berth.runtime.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Literal

    Backend = Literal["auto", "v1", "v2"]
    FreezerState = Literal["frozen", "thawed"]

__all__ = [
    "CGROUP_ROOT",
    "BlkioEntry",
    "Cgroup",
    "CgroupError",
    "CgroupStats",
    "ResourceError",
    "Resources",
    "detect",
    "open_manager",
    "parse_resources",
]

log = lazylog.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"

# The kernel reports "no limit" as the largest page-aligned counter; anything this big
# is unlimited for every practical purpose.
_UNLIMITED_THRESHOLD = 1 << 62


class CgroupError(SystemError_):
    """A cgroup operation failed on the host; the message names the file or group."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@record(frozen=True)
class BlkioEntry:
    """One device's counter for one kind of I/O ("Read", "Write"… on v1, "read", "write" on v2)."""

    major: int
    minor: int
    op: str
    value: int


@record(frozen=True)
class CgroupStats:
    """What `docker stats` needs from a group; None where the controller is absent."""

    memory_usage: int | None = None  # bytes, page cache included
    memory_max_usage: int | None = None  # bytes; the peak since creation
    memory_limit: int | None = None  # bytes; None when unlimited
    memory_failcnt: int | None = None  # v1: times the limit was hit; v2: memory.events "oom"
    memory_stat: Mapping[str, int] = field(default_factory=dict)  # memory.stat as is
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_percpu_ns: tuple[int, ...] = ()  # v1 only (cpuacct.usage_percpu)
    cpu_periods: int | None = None  # CFS periods, and how many of them were throttled
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None  # None when unlimited
    io_service_bytes: tuple[BlkioEntry, ...] = ()  # bytes read and written, per device
    io_serviced: tuple[BlkioEntry, ...] = ()  # I/O operations, per device
    oom_kills: int = 0


class Cgroup(abc.ABC):
    """One container's control group, on whichever cgroup version the host runs."""

    backend: Literal["v1", "v2"]

    def __init__(self, path: str) -> None:
        self.path = normalize_path(path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    # What each back end provides.

    @abc.abstractmethod
    def create(self) -> None:
        """Make the group's directories (idempotent)."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True while the group's directory is there."""

    @abc.abstractmethod
    def add(self, pid: int) -> None:
        """Move a process (all its threads) into the group."""

    @abc.abstractmethod
    def join_files(self) -> list[str]:
        """The files a process writes "0" to, to move itself into the group (see enter)."""

    @abc.abstractmethod
    def _apply(self, resources: Resources) -> None:
        """Write the resources to the group's files."""

    @abc.abstractmethod
    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process of the group; returns once the kernel says frozen."""

    @abc.abstractmethod
    def thaw(self, timeout: float = 5.0) -> None:
        """Let the group's processes run again; returns once the kernel says thawed."""

    @abc.abstractmethod
    def state(self) -> FreezerState:
        """"frozen" or "thawed" (a group still freezing counts as thawed)."""

    @abc.abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes of the group the OOM killer has killed."""

    @abc.abstractmethod
    def stats(self) -> CgroupStats:
        """Memory, cpu, block I/O and pids counters of the group."""

    @abc.abstractmethod
    def _procs_dir(self) -> str:
        """The directory whose cgroup.procs files list the group's processes."""

    @abc.abstractmethod
    def _directories(self) -> list[str]:
        """Every directory that makes up the group (one per v1 hierarchy)."""

    # What they share.

    def apply(self, resources: Resources) -> None:
        """Write the resources; fields left None keep their current values."""
        check_kernel_limits(resources)
        self._apply(resources)

    def update(self, resources: Resources) -> None:
        """Change the resources of a group whose processes are running.

        Same as apply(): the back ends order their writes (memory before memory+swap,
        cpu period before quota) so that raising and lowering both work.
        """
        self.apply(resources)

    def open_join_files(self) -> list[int]:
        """join_files() opened for writing, for a process that enters with join_through();
        permission is the opener's (the file's credentials), so a process that has since
        entered a user namespace can still use them."""
        fds: list[int] = []
        try:
            for path in self.join_files():
                fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise CgroupError(f"cannot open {e.filename}: {e.strerror}", e.errno) from None
        return fds

    def enter(self) -> None:
        """Move the calling process, which must be single-threaded, into the group."""
        join_through(self.open_join_files())

    def create_and_apply(self, resources: Resources) -> None:
        """create() then apply(); on any error the group is removed again."""
        check_kernel_limits(resources)
        existed = self.exists()
        try:
            self.create()
            self._apply(resources)
        except BaseException:
            if not existed:
                try:
                    self.destroy(kill=True)
                except CgroupError as e:
                    log.warning("cgroup %s: cleaning up after a failed creation: %s", self.path, e)
            raise

    def pids(self) -> list[int]:
        """Every process in the group and in groups below it, sorted."""
        found: set[int] = set()
        top = self._procs_dir()
        if not os.path.isdir(top):
            return []
        for dirpath, _dirs, _files in os.walk(top):
            try:
                text = read_file(os.path.join(dirpath, "cgroup.procs"))
            except CgroupError as e:
                if e.errno == errno.ENOENT:  # a subgroup removed while we walked
                    continue
                raise
            found.update(int(line) for line in text.split())
        return sorted(found)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send a signal to every process of the group.

        The group is frozen first, so that no process can fork a child we would miss,
        then thawed again so the signal takes effect (a frozen process dies only when
        it runs). A group that was frozen before stays frozen, except after SIGKILL.
        """
        if not self.exists():
            return
        was_frozen = self.state() == "frozen"
        try:
            self.freeze()
        except CgroupError:
            pass  # signal them anyway: a group that cannot freeze must stay killable
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # Thaw even when the freeze timed out: a group left FREEZING would hold its
            # processes, SIGKILLed or not, for ever.
            if not was_frozen or sig == _signal.SIGKILL:
                try:
                    self.thaw()
                except CgroupError as e:
                    log.warning("cgroup %s: thawing after a signal: %s", self.path, e)

    def destroy(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Remove the group in every hierarchy; a group that is already gone is fine.

        With kill=True its processes are SIGKILLed first. Removal is retried while
        processes finish exiting; after `timeout` seconds CgroupError names the group
        and the processes still in it. Parents (such as "/berth") are left in place.
        """
        if kill:
            try:
                self.kill_all(_signal.SIGKILL)
            except CgroupError as e:
                # Removal below still works if the processes are gone; if not, it says so.
                log.warning("cgroup %s: killing its processes: %s", self.path, e)
        deadline = time.monotonic() + timeout
        failure: CgroupError | None = None
        for directory in self._directories():
            try:
                _remove_tree(directory, deadline)
            except CgroupError as e:
                failure = failure or e
        if failure is not None:
            remaining = self.pids()
            if remaining:
                raise CgroupError(
                    f"cannot remove cgroup {self.path}: processes {remaining} are still in it",
                    failure.errno,
                ) from failure
            raise failure

    def _wait_for(self, reached: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll until `reached()`, at most `timeout` seconds, then raise naming `what`."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not reached():
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup {self.path}: {what} did not happen within {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def detect(root: str = CGROUP_ROOT) -> Literal["v1", "v2"]:
    """"v2" when the root is itself a cgroup2 mount with controllers, else "v1".

    cgroup.controllers exists only at the top of a cgroup2 file system; a hybrid host
    (v1 hierarchies, plus an empty cgroup2 at /sys/fs/cgroup/unified) is "v1".
    """
    try:
        controllers = read_file(os.path.join(root, "cgroup.controllers"))
    except CgroupError:
        return "v1"
    return "v2" if controllers.split() else "v1"


def open_manager(path: str, backend: Backend = "auto", *, root: str | None = None) -> Cgroup:
    """The group at `path`, handled by the back end the host needs (or the one asked for).

    `root` is where the cgroup file systems are: the directory holding the v1
    hierarchies, or the cgroup2 mount point (/sys/fs/cgroup by default, for both).
    Nothing is created until create() is called.
    """
    top = root or CGROUP_ROOT
    chosen = detect(top) if backend == "auto" else backend
    if chosen == "v1":
        from berth.runtime.cgroups.v1 import V1Cgroup, find_hierarchies

        hierarchies = find_hierarchies(top)
        if not hierarchies:
            raise CgroupError(f"no cgroup v1 hierarchy is mounted under {top}")
        return V1Cgroup(path, hierarchies)
    if chosen == "v2":
        from berth.runtime.cgroups.v2 import V2Cgroup

        if not os.path.exists(os.path.join(top, "cgroup.controllers")):
            raise CgroupError(f"{top} is not a cgroup2 file system")
        return V2Cgroup(path, top)
    raise CgroupError(f"unknown cgroup back end {backend!r} (want auto, v1 or v2)")


# Files, for the back ends.


def normalize_path(path: str) -> str:
    """"/berth/abc" from "berth//abc/"; refuses "..", and the root itself."""
    if not isinstance(path, str) or "\0" in path:
        raise CgroupError(f"invalid cgroup path {path!r}")
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        raise CgroupError("a cgroup path must name a group below the root, not the root itself")
    if ".." in parts:
        raise CgroupError(f"invalid cgroup path {path!r}: '..' is not allowed")
    return "/" + "/".join(parts)


def write_file(path: str, value: str) -> None:
    """Write one value to a cgroup file, which must exist (cgroup files are never created)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}", e.errno) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}", e.errno) from None
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}", e.errno) from None


def read_int(path: str) -> int | None:
    """An integer file; None if absent, or if it says "max" or a v1 "unlimited" value."""
    try:
        text = read_file(path)
    except CgroupError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    if text == "max":
        return None
    value = int(text.split()[0])
    return None if value >= _UNLIMITED_THRESHOLD else value


def read_keyed(path: str) -> dict[str, int]:
    """A "key value" per line file (memory.stat, cpu.stat, memory.events); {} if absent."""
    try:
        text = read_file(path)
    except CgroupError as e:
        if e.errno == errno.ENOENT:
            return {}
        raise
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def _remove_tree(top: str, deadline: float) -> None:
    """rmdir a group and its subgroups, deepest first, retrying while it is busy."""
    if not os.path.isdir(top):
        return
    directories = [dirpath for dirpath, _dirs, _files in os.walk(top)]
    for directory in reversed(directories):
        delay = 0.001
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {directory}: {e.strerror}", e.errno) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


def join_through(fds: list[int]) -> None:
    """Move the calling (single-threaded) process into a group through the files of
    Cgroup.open_join_files(), and close them.

    On cgroup v1 a process that writes "0" to a group's `tasks` file moves only itself
    and takes no global lock, while writing a pid to `cgroup.procs` write-locks the
    kernel's cgroup_threadgroup_rwsem, which waits for an RCU grace period: ~1 ms for
    ten hierarchies against 8-16 ms on this kind of machine."""
    try:
        for fd in fds:
            try:
                os.write(fd, b"0")
            except OSError as e:
                raise CgroupError(f"cannot join the container's cgroup: {e.strerror}", e.errno) from None
    finally:
        for fd in fds:
            os.close(fd)
