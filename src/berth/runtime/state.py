"""The runtime's record of one container, kept under `--root` between commands.

`<root>/<id>/state.json` (written atomically) and `<root>/<id>/exec.fifo` while the
container is created but not started. The status is derived, as runc derives it:
the init is gone → stopped; the FIFO still exists → created; the cgroup is frozen →
paused; else running. The init's start time guards against a reused PID.
"""

from __future__ import annotations

import os

from berth.runtime import leanjson
from berth.runtime.record import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any



class StateError(Exception):
    pass


@record
class ContainerState:
    id: str
    pid: int
    pid_start: int
    bundle: str
    rootfs: str
    created: str
    cgroup_path: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    owner: str = ""


def check_id(cid: str) -> None:
    if not cid or cid in (".", "..") or not all(c.isalnum() or c in "_+-." for c in cid):
        raise StateError(f"invalid container id format: {cid!r}")


def container_dir(root: str, cid: str) -> str:
    check_id(cid)
    return os.path.join(root, cid)


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (in clock ticks since boot), or 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[19]) if len(rest) > 19 else 0


def save(root: str, st: ContainerState) -> None:
    d = container_dir(root, st.id)
    tmp = os.path.join(d, "state.json.tmp")
    # Atomic (a reader sees the old file or the new one), not fsynced: this is the state
    # of processes, which a power loss ends too; after it a state.json lost or cut short
    # reads as a container that does not exist. (An fsync cost ~1 ms of each create on disk.)
    with open(tmp, "w") as f:
        leanjson.dump(asdict(st), f)
    os.rename(tmp, os.path.join(d, "state.json"))


def load(root: str, cid: str) -> ContainerState:
    d = container_dir(root, cid)
    try:
        with open(os.path.join(d, "state.json")) as f:
            doc: dict[str, Any] = leanjson.load(f)
    except FileNotFoundError:
        raise StateError(f"container does not exist: {cid}") from None
    except ValueError as e:
        raise StateError(f"state of container {cid} is unreadable: {e}") from None
    return ContainerState(**doc)


def status(root: str, st: ContainerState, frozen: bool = False) -> str:
    if st.pid <= 0 or process_start_time(st.pid) != st.pid_start:
        return "stopped"
    try:
        with open(f"/proc/{st.pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return "stopped"
    except OSError:
        return "stopped"
    if os.path.exists(os.path.join(container_dir(root, st.id), "exec.fifo")):
        return "created"
    return "paused" if frozen else "running"


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []
