"""What a berth test session leaves behind on the host, and whether it should not.

A session snapshots the host before its private berthd starts and again after the
daemon has stopped; anything new that a container engine creates (mounts, veth links,
named network namespaces, cgroups, shim and container processes) is a leak.

The reading of the host (`take_snapshot`) is kept apart from the judgement
(`diff_snapshots`), which is pure so that unit tests can feed it fake snapshots.

Several berth daemons may run on one machine at once (other developers' test
sessions). Whatever names our temp root is certainly ours. Things that cannot be
attributed to one daemon (a veth link, a cgroup directory) are leaks too, unless
another berth daemon was running at either snapshot: then they are only "doubtful",
reported but not failed on, since that daemon may legitimately own them.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
NETNS_DIR = "/run/netns"

_DAEMON_NAMES = ("berthd", "berth-shim")
MARKER_VAR = "BERTH_TEST_SESSION"  # set in berthd's environment; its children inherit it


@dataclass(frozen=True)
class Snapshot:
    """What an engine may leave on the host, as comparable strings."""

    mounts: frozenset[str] = frozenset()  # "MOUNTPOINT FSTYPE SOURCE"
    veths: frozenset[str] = frozenset()  # link names
    netns: frozenset[str] = frozenset()  # names under /run/netns
    cgroups: frozenset[str] = frozenset()  # cgroup directories whose path mentions berth
    processes: Mapping[int, str] = field(default_factory=dict)  # pid -> cmdline, ours only
    foreign_daemons: Mapping[int, str] = field(default_factory=dict)  # other berths' pids


@dataclass
class LeakReport:
    leaks: list[str] = field(default_factory=list)
    doubtful: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.leaks)

    def describe(self) -> str:
        lines: list[str] = []
        if self.leaks:
            lines.append("left behind by this session's berthd:")
            lines += [f"  {item}" for item in self.leaks]
        if self.doubtful:
            lines.append("new, but another berth daemon was running, so maybe not ours:")
            lines += [f"  {item}" for item in self.doubtful]
        return "\n".join(lines)


# The judgement, pure.


def _tolerated_parent(path: str) -> bool:
    """True for a parent group such as /sys/fs/cgroup/memory/berth.

    Docker, too, leaves its parent cgroup (".../docker") in place when its containers
    are gone; only the per-container groups below it (or named for a container, like
    "berth-<id>.scope") are leaks, and they are reported on their own. A parent is the
    highest berth-named directory of its path, and is named for no container.
    """
    rel = path.removeprefix(CGROUP_ROOT).strip("/").split("/")
    if "berth" in "/".join(rel[:-1]).lower():
        return False
    if _CONTAINER_ID.search(rel[-1]):
        return False
    return True


_CONTAINER_ID = re.compile(r"[0-9a-f]{12,}")


def diff_snapshots(before: Snapshot, after: Snapshot, own_root: str) -> LeakReport:
    """Compare two snapshots of the host; own_root is the session's temp directory."""
    report = LeakReport()
    others_running = bool(before.foreign_daemons) or bool(after.foreign_daemons)

    def judge(kind: str, items: Iterable[str], *, always_ours: bool = False) -> None:
        for item in sorted(items):
            text = f"{kind}: {item}"
            if always_ours or own_root in item or not others_running:
                report.leaks.append(text)
            else:
                report.doubtful.append(text)

    judge("mount", after.mounts - before.mounts)
    judge("veth", after.veths - before.veths)
    judge("netns", after.netns - before.netns)
    new_cgroups = after.cgroups - before.cgroups
    judge("cgroup", {c for c in new_cgroups if not _tolerated_parent(c)})
    new_procs = {
        f"pid {pid}: {cmd}"
        for pid, cmd in after.processes.items()
        if before.processes.get(pid) != cmd
    }
    judge("process", new_procs, always_ours=True)
    return report


# Reading the host.


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> frozenset[str]:
    entries = set()
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            entries.add(f"{fields[4]} {fields[sep + 1]} {fields[sep + 2]}")
    return frozenset(entries)


def unescape_mountinfo(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space, and so on)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_veths() -> frozenset[str]:
    try:
        out = subprocess.run(
            ["ip", "-o", "link", "show", "type", "veth"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    names = set()
    for line in out.splitlines():
        m = re.match(r"\d+:\s+([^:@\s]+)", line)
        if m:
            names.add(m.group(1))
    return frozenset(names)


def read_netns(directory: str = NETNS_DIR) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except FileNotFoundError:
        return frozenset()


def read_cgroups(root: str = CGROUP_ROOT) -> frozenset[str]:
    found = set()
    try:
        controllers = os.listdir(root)
    except FileNotFoundError:
        return frozenset()
    for controller in controllers:
        top = os.path.join(root, controller)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        if "berth" in controller.lower():  # a cgroup v2 root: no controller directories
            found.add(top)
        for dirpath, dirnames, _files in os.walk(top):
            for d in dirnames:
                path = os.path.join(dirpath, d)
                if "berth" in path.removeprefix(root).lower():
                    found.add(path)
    return frozenset(found)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    cmdline: str
    environ: bytes
    pidns: str


def read_processes() -> dict[int, ProcInfo]:
    procs: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read()
            except PermissionError:
                environ = b""
            try:
                pidns = os.readlink(f"/proc/{pid}/ns/pid")
            except OSError:
                pidns = ""
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError, OSError):
            continue  # gone while we looked
        if not cmdline:
            continue  # kernel threads and zombies
        procs[pid] = ProcInfo(pid, ppid, cmdline, environ, pidns)
    return procs


def own_processes(
    procs: Mapping[int, ProcInfo], own_root: str, marker: str
) -> dict[int, ProcInfo]:
    """Processes of this session's engine: naming our root, carrying the marker in their
    environment (berthd's and whatever it spawns), and all their descendants."""
    entry = f"{MARKER_VAR}={marker}".encode()
    ours = {
        pid
        for pid, p in procs.items()
        if own_root in p.cmdline or entry in p.environ.split(b"\0")
    }
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    stack = list(ours)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in ours:
                ours.add(child)
                stack.append(child)
    ours.discard(os.getpid())
    return {pid: procs[pid] for pid in ours}


def container_processes(
    procs: Mapping[int, ProcInfo], own_root: str, marker: str, daemon_pid: int | None
) -> dict[int, str]:
    """Of our processes, the shims and whatever runs in another pid namespace. A berthd's
    zygote (its child, berth.shim.zygote) lives as long as that berthd and is no
    container's; the shims forked from it keep its command line and are counted."""
    host_ns = os.readlink("/proc/self/ns/pid")
    result = {}
    for pid, p in own_processes(procs, own_root, marker).items():
        if pid == daemon_pid or _is_zygote(p, procs):
            continue
        if "shim" in p.cmdline or (p.pidns and p.pidns != host_ns):
            result[pid] = p.cmdline
    return result


def _is_zygote(p: ProcInfo, procs: Mapping[int, ProcInfo]) -> bool:
    parent = procs.get(p.ppid)
    return "berth.shim.zygote" in p.cmdline and parent is not None and "berthd" in parent.cmdline


def foreign_daemons(procs: Mapping[int, ProcInfo], own_root: str) -> dict[int, str]:
    found = {}
    for pid, p in procs.items():
        if own_root in p.cmdline or pid == os.getpid():
            continue
        words = p.cmdline.split()
        if any(os.path.basename(w) in _DAEMON_NAMES for w in words[:3]):
            found[pid] = p.cmdline
    return found


def take_snapshot(own_root: str, marker: str) -> Snapshot:
    procs = read_processes()
    return Snapshot(
        mounts=read_mounts(),
        veths=read_veths(),
        netns=read_netns(),
        cgroups=read_cgroups(),
        processes={pid: p.cmdline for pid, p in own_processes(procs, own_root, marker).items()},
        foreign_daemons=foreign_daemons(procs, own_root),
    )
