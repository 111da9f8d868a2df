"""A pre-forked shim factory: container starts do not pay for a new interpreter.

berthd starts one zygote (`python -S -m berth.shim.zygote SOCKET`) with the shim's
modules already imported. For each container start berthd connects, sends one JSON
line (the shim's argv), and the zygote forks twice: the grandchild becomes the shim,
with the connection as its stdout, so berthd reads the shim's "ready" line from it;
the middle child exits at once, so shims are nobody's zombies and outlive the zygote.
The zygote dies with berthd (parent-death signal) and is single-threaded, so forking
it is safe. It freezes its objects (gc.freeze) before it serves: a page of the
zygote's that a shim writes to becomes the shim's own memory, and a full collection
in a shim would write to every object it tracks.
"""

from __future__ import annotations

import gc
import json
import os
import shutil  # noqa: F401  (and with it zlib, bz2, lzma: ~20 ms a shim would pay)
import signal
import socket
import sys

import berth.logs.jsonfile  # noqa: F401  (preloaded for the shims)
import berth.logs.sinks  # noqa: F401
import berth.runtime.capabilities  # noqa: F401
import berth.runtime.cgroups  # noqa: F401
import berth.runtime.cgroups.resources  # noqa: F401
import berth.runtime.cgroups.v1  # noqa: F401
import berth.runtime.cgroups.v2  # noqa: F401
import berth.runtime.oci  # noqa: F401
import berth.runtime.process  # noqa: F401
import berth.runtime.rlimits  # noqa: F401
import berth.runtime.rootfs  # noqa: F401
import berth.runtime.seccomp  # noqa: F401
import berth.runtime.userns  # noqa: F401
import berth.shim.backends  # noqa: F401
from berth.runtime import linux
from berth.shim import shim


def _serve_one(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
            if len(data) > 1 << 20:
                return
        try:
            argv = json.loads(data)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise ValueError("argv must be a list of strings")
        except ValueError as e:
            conn.sendall(json.dumps({"error": f"zygote: bad request: {e}"}).encode() + b"\n")
            return
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
                if os.fork() != 0:
                    os._exit(0)
                os.setsid()
                linux.set_parent_death_signal(0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                os.dup2(conn.fileno(), 1)
                conn.close()
                sys.stdout = os.fdopen(1, "w", closefd=False)
                shim.main(argv)
            finally:
                os._exit(1)
        os.waitpid(pid, 0)


def main() -> None:
    path = sys.argv[1]
    linux.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() == 1:
        sys.exit(0)  # berthd is already gone
    if os.path.lexists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(128)
    gc.collect()
    gc.freeze()  # no collection in a shim writes to these objects (see above)
    # What a shim writes of these pages is the same in every shim (reference counts,
    # code warming up): on a host that runs KSM, the kernel keeps one copy of each.
    linux.mark_mergeable()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        try:
            _serve_one(listener)
        except OSError as e:
            sys.stderr.write(f"berth zygote: {e}\n")


if __name__ == "__main__":
    main()
