"""The exec forker: one small process per container, inside the container's cgroups,
that forks the setup process of each `docker exec`.

On cgroup v1 the first write of a pid to a `cgroup.procs` file of a burst waits for an
RCU grace period (~12 ms on this kind of machine); runc pays it on every exec. A process
that moves itself (cgroups.join_through) costs ~1 ms for ten hierarchies, one forked by
a member of the container's cgroups nothing: it is born in them. So the container's
shim forks this process on the container's first exec, it joins the cgroups once, and
from then on each exec's setup process is its child: it joins the
container's namespaces, forks the exec'd process (into the pid namespace) and exits;
the exec'd process is then reparented to the shim, a child subreaper, which reaps it as
it reaps the container's init.

Protocol (SOCK_SEQPACKET, from the shim): one message per exec, JSON
{"process": OCI process, "stdio": [stdin?, stdout?, stderr?]} with the fds: the
channel of process.exec_in()'s handshake first, then the stdio fds present. The
forker answers nothing; the setup process talks on the channel. It dies with the shim
(parent-death signal), and the shim kills it before it removes the container's cgroups.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import NoReturn

from berth.runtime import linux, oci, process


def serve(sock: socket.socket, init_pid: int, bundle: str, cgroup_path: str) -> NoReturn:
    """Run in a fresh child of the shim; never returns."""
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        spec = oci.load_bundle(bundle)  # parsed here: the shim keeps no spec (shim/backends.py)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # setup processes are reaped by the kernel
        if cgroup_path:
            from berth.runtime import cgroups

            cgroups.open_manager(cgroup_path).enter()
        sock.send(b'{"ready": true}')
    except BaseException as e:  # noqa: BLE001  (the shim reports it and runs execs the slow way)
        try:
            sock.send(json.dumps({"error": f"exec forker: {e}"}).encode())
        finally:
            os._exit(1)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)  # the shim is gone
        if not fds:
            continue
        chan = socket.socket(fileno=fds[0])
        try:
            doc = json.loads(msg)
            present = [bool(x) for x in doc["stdio"]]
            proc = oci.parse_spec({"root": {"path": spec.root_path}, "process": doc["process"]}, bundle).process
            rest = iter(fds[1:])
            stdio = process.Stdio(next(rest) if present[0] else None, next(rest) if present[1] else -1,
                                  next(rest) if present[2] else -1)
        except (ValueError, KeyError, TypeError, IndexError, StopIteration) as e:  # SpecError is a ValueError
            _refuse(chan, fds, f"exec failed: {e}")
            continue
        try:
            pid = os.fork()
        except OSError as e:  # the container's pids limit, most likely
            _refuse(chan, fds, f"exec failed: fork: {e.strerror}")
            continue
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            process.exec_setup(init_pid, spec, proc, stdio, chan)  # never returns
        chan.close()
        for fd in fds[1:]:
            os.close(fd)


def _refuse(chan: socket.socket, fds: list[int], message: str) -> None:
    try:
        chan.send(json.dumps({"error": message}).encode())
    except OSError:
        pass
    chan.close()
    for fd in fds[1:]:
        os.close(fd)
