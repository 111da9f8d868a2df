"""Writing an OCI bundle's config.json for a container, as Docker's daemon does.

The defaults are Docker's: the same mounts, masked and read-only paths, and
namespaces. Callers give the resolved pieces (root path, user ids, environment);
this module decides no policy beyond Docker's defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass
class BundleRequest:
    root: str
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    hostname: str
    terminal: bool
    console_size: tuple[int, int] = (0, 0)
    readonly_root: bool = False
    files: dict[str, str] = field(default_factory=dict)  # container path -> host file
    network_namespace: str | None = None  # a path to join, else a new one


def build_config(req: BundleRequest) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]
    for dest, src in req.files.items():
        mounts.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", "path": req.network_namespace} if req.network_namespace
                      else {"type": "network"})
    process: dict[str, Any] = {
        "terminal": req.terminal,
        "user": {"uid": req.uid, "gid": req.gid, "additionalGids": req.additional_gids},
        "args": req.args,
        "env": req.env,
        "cwd": req.cwd or "/",
    }
    if req.terminal and req.console_size != (0, 0):
        process["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
    return {
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": req.root, "readonly": req.readonly_root},
        "hostname": req.hostname,
        "mounts": mounts,
        "linux": {"namespaces": namespaces, "maskedPaths": MASKED_PATHS, "readonlyPaths": READONLY_PATHS},
    }


def write_bundle(bundle: str, config: dict[str, Any]) -> None:
    os.makedirs(bundle, mode=0o700, exist_ok=True)
    path = os.path.join(bundle, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(config, f)
    os.rename(path + ".tmp", path)
