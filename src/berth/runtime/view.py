"""A container's filesystem as dockerd shows it to `docker cp`, in a mount namespace that
belongs to one thread, as dockerd makes it (its container FS view runs in a goroutine
locked to an OS thread that unshared its mount namespace).

`hold(root, binds, ready, release)` is the whole life of such a thread, and must run in
a thread started for it alone: it takes a mount namespace of its own that hears nothing
from the rest of the process (slave) and tells it nothing, binds each source at its
destination inside `root` (`rootfs.bind_into`: never outside `root`, whatever the
container does meanwhile), and hands over an O_PATH descriptor of `root` as seen there:
through it, the process (and the children it gives the path /proc/PID/fd/N) reach the
view. The thread never changes its root or working directory, so nothing else that may
run in it (a finalizer) is led into the container. When `release` is set, the
descriptor is closed and the thread ends; its namespace, and every mount of the view,
end with it, whatever becomes of the process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError

from berth.runtime import linux, rootfs


def open_view(root: str, binds: Sequence[tuple[str, str, bool]]) -> int:
    """In the calling thread (one of the view's own, see above): the namespace, the
    binds (source, destination, writable; a deeper one after the one it lies in), and
    a descriptor of `root` as the view has it."""
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("a view of a container needs a thread of its own")
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    for source, destination, writable in binds:
        rootfs.bind_into(root, source, destination, writable)
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def hold(root: str, binds: Sequence[tuple[str, str, bool]], ready: Future[int], release: threading.Event) -> None:
    """A view thread: `ready` gets the descriptor (or the error), which stays open until
    `release` is set."""
    try:
        fd = open_view(root, binds)
    except Exception as e:  # noqa: BLE001  (handed to the waiting caller)
        with contextlib.suppress(InvalidStateError):  # the caller gave up waiting
            ready.set_exception(e)
        return
    try:
        with contextlib.suppress(InvalidStateError):
            ready.set_result(fd)
        release.wait()
    finally:
        os.close(fd)
