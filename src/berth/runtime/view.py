"""A container's filesystem as dockerd shows it to `docker cp`, held by a process of its own.

`python -S -m berth.runtime.view ROOT [SOURCE DESTINATION rw|ro]…` takes a mount
namespace of its own that hears nothing from the caller's (slave) and tells it nothing,
binds each SOURCE at DESTINATION inside ROOT (`rootfs.bind_into`: never outside ROOT,
whatever the container does meanwhile), chroots into ROOT, writes "ready" and waits
until its stdin ends. Meanwhile /proc/PID/root is the view; when the process ends, so
do its mounts, even if whoever started it was killed. It imports little: it is started
for every `docker cp`.
"""

from __future__ import annotations

import os
import sys

from berth.runtime import linux, rootfs

READY = b"ready\n"


def hold(root: str, binds: list[tuple[str, str, bool]]) -> None:
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    for source, destination, writable in binds:
        rootfs.bind_into(root, source, destination, writable)
    os.chroot(root)
    os.chdir("/")
    os.write(1, READY)
    while os.read(0, 1 << 12):
        pass


def main() -> None:
    root, rest = sys.argv[1], sys.argv[2:]
    binds = [(rest[i], rest[i + 1], rest[i + 2] == "rw") for i in range(0, len(rest) - 2, 3)]
    try:
        hold(root, binds)
    except (OSError, ValueError) as e:
        os.write(2, f"{e}\n".encode(errors="replace"))
        sys.exit(1)


if __name__ == "__main__":
    main()
