"""berth-shim: keeps one container's process, stdio and logs, independently of berthd.

berthd starts one shim per container start, forked from its zygote. The shim has the
container created (berth's runtime does it in a short-lived child of the shim, which
keeps the shim's own memory small: shim/backends.py; or runc/crun), prints one JSON
line on stdout (`{"pid": N}` or `{"error": "..."}`), and then serves berthd on a UNIX
socket until told to delete.
It is the init's parent (a child subreaper), so it sees the exit status; it owns the
stdio pipes or the pty master, writes the log file, and records the exit atomically
in `exit.json`, so a restarted berthd can learn what happened while it was away.

It also runs the container's `docker exec` processes: each is created through an exec
forker (shim/forker.py) that sits in the container's cgroups, so that no cgroup
write delays it, and is then the shim's child (by reparenting) like the init: the
shim keeps its stdio and its exit status too, under the exec's ID.

Protocol on the socket: each connection sends one JSON line, the request:
  {"op": "exec", "id", "process", "stdin"} -> {"pid"}: an exec process, created, not started
  {"op": "start"}                         -> {"ok": true} | {"error": ...}
  {"op": "state"}                         -> {"pid", "status", "exit_code"?}
  {"op": "wait"}                          -> {"exit_code", "finished_at"} once exited
  {"op": "kill", "signal": N}             -> {"ok": true}
  {"op": "resize", "height": H, "width": W}
  {"op": "stats"}                         -> {"cgroup": counters | null}: the container's cgroup
                                             (runtime.cgroups.CgroupStats as a dict), read from
                                             the bundle's linux.cgroupsPath, whichever runtime
  {"op": "delete"}                        -> the shim exits (the container must be gone);
                                             an exec's record goes (it must have exited)
  {"op": "attach", "stdin", "stdout", "stderr"}
        -> the connection becomes the stream: output in Docker's framing (raw with a
           terminal) from the shim; stdin bytes to it; it closes when the container's
           output ends.
start, state, wait, kill, resize, attach, close-stdin and delete take "exec": ID to mean
an exec process instead of the init.
It is deliberately stdlib-only and single-threaded (a selectors loop): it starts fast.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any, NoReturn

from berth.stdstream import STDERR, STDOUT, encode_frame


class ShimCreateError(Exception):
    pass


class Client:
    """One connection from berthd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        self.request: dict[str, Any] | None = None
        self.attached: Proc | None = None  # the process whose stdio this connection carries
        self.want_stdout = self.want_stderr = self.want_stdin = False
        self.close_after_flush = False
        self.closed = False
        self.read_closed = False  # the client half-closed: only its output still flows
        self.registered = True


class Proc:
    """One process the shim keeps: the container's init, or an exec process."""

    def __init__(self, exec_id: str = "") -> None:
        self.exec_id = exec_id
        self.pid = 0
        self.status = "created"
        self.tty = False
        self.stdin_once = True
        self.want_stdin = False  # berthd keeps its stdin open
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self.outputs: dict[int, int] = {}  # fd -> stream
        self.pty_master: int | None = None
        self.exited = False
        self.raw_status = 0
        self.exit_deadline = 0.0
        self.exit_code: int | None = None
        self.finished_at: str | None = None
        self.oom_killed = False
        self.waiters: list[Client] = []
        self.log: Any = None
        self.created: Any = None  # an exec's process.Created, until it starts

    def exit_doc(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "finished_at": self.finished_at, "pid": self.pid,
                "oom_killed": self.oom_killed}

    def open_stdio(self, stdin: bool) -> tuple[int | None, int | None, int | None]:
        """Pipes for a process without a terminal: the ends it gets (stdin, out, err)."""
        self.want_stdin = stdin
        if self.tty:
            return None, None, None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin_r = None
        if stdin:
            stdin_r, self.stdin_w = os.pipe()
        self.outputs[out_r] = STDOUT
        self.outputs[err_r] = STDERR
        return stdin_r, out_w, err_w

    def watch_output(self, sel: selectors.BaseSelector, master: int | None) -> None:
        if self.tty:
            if master is None:
                raise ShimCreateError("the runtime did not hand over the process's terminal")
            self.pty_master = master
            self.outputs[master] = STDOUT
            if self.stdin_w is None and self.want_stdin:
                self.stdin_w = master
        for fd in self.outputs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, ("output", (self, fd)))
        if self.stdin_w is not None and not self.tty:
            os.set_blocking(self.stdin_w, False)


class Shim:
    def __init__(self, args: Options) -> None:
        self.args = args
        self.init = Proc()
        self.execs: dict[str, Proc] = {}
        self.by_pid: dict[int, Proc] = {}
        self.clients: list[Client] = []
        self.runtime: Any = None
        self.cgroups_path = ""
        self.forker: socket.socket | None = None
        self.forker_pid = 0
        self.pids_raised = False  # pids.max is one above the user's limit, for the forker
        self.running = True
        # Made here, in the shim's own process: an epoll instance made at import, in the
        # zygote, would be one kernel object shared by every shim forked from it, and each
        # event of one shim would wake the others (a start slowed with every running one).
        self.sel = selectors.DefaultSelector()

    @property
    def pid(self) -> int:
        return self.init.pid

    # -- creation -------------------------------------------------------------------

    def create(self) -> None:
        from berth.runtime import linux
        from berth.shim import backends

        linux.set_child_subreaper()
        basics = backends.read_basics(self.args.bundle)  # the runtime parses the whole spec
        self.cgroups_path = basics.cgroups_path
        init = self.init
        init.tty = basics.terminal
        init.stdin_once = self.args.stdin_once
        if self.args.runtime:
            root = os.path.join(os.path.dirname(os.path.dirname(self.args.state_dir)),
                                "runtime-" + os.path.basename(self.args.runtime))
            self.runtime = backends.OciCliRuntime(self.args.runtime, root, self.args.id,
                                                  self.args.bundle, self.args.state_dir)
        else:
            self.runtime = backends.BerthRuntime(self.args.id, self.args.bundle)
        if self.args.log or self.args.log_driver not in ("json-file", "local", "none"):
            from berth.logs.sinks import open_sink

            options = dict(opt.partition("=")[::2] for opt in self.args.log_opt)
            try:
                init.log = open_sink(self.args.log_driver, self.args.log, options)
            except (OSError, ValueError) as e:
                raise ShimCreateError(str(e)) from None
        stdin_r, out_w, err_w = init.open_stdio(self.args.stdin)
        try:
            init.pid, master = self.runtime.create(basics, stdin_r, -1 if out_w is None else out_w,
                                                   -1 if err_w is None else err_w)
        except backends.RuntimeError_ as e:
            raise ShimCreateError(str(e)) from None
        finally:
            for fd in (out_w, err_w, stdin_r):
                if fd is not None:
                    os.close(fd)
        self.by_pid[init.pid] = init
        init.watch_output(self.sel, master)

    def create_exec(self, exec_id: str, doc: dict[str, Any], stdin: bool) -> Proc:
        """An exec process, created in the running container and waiting for start."""
        from berth.runtime import process

        if self.init.exited or self.init.status != "running":
            raise ShimCreateError("the container is not running")
        if exec_id in self.execs:
            raise ShimCreateError(f"exec {exec_id} exists already")
        p = Proc(exec_id)
        p.tty = bool(doc.get("terminal"))
        stdin_r, out_w, err_w = p.open_stdio(stdin)
        try:
            stdio = process.Stdio(stdin_r, -1 if out_w is None else out_w, -1 if err_w is None else err_w)
            try:
                p.created = process.exec_through(self._forker(), doc, stdio)
            except OSError:  # the forker died (killed by someone): a new one, once
                self._drop_forker()
                p.created = process.exec_through(self._forker(), doc, stdio)
        except (process.CreateError, OSError, ShimCreateError) as e:  # the last: no forker
            for ours in [*p.outputs, *([p.stdin_w] if p.stdin_w is not None else [])]:
                os.close(ours)
            raise ShimCreateError(str(e)) from None
        finally:
            for fd in (out_w, err_w, stdin_r):
                if fd is not None:
                    os.close(fd)
        p.pid = p.created.pid
        self.execs[exec_id] = p
        self.by_pid[p.pid] = p
        p.watch_output(self.sel, p.created.pty_master)
        return p

    def _forker(self) -> socket.socket:
        if self.forker is not None:
            return self.forker
        from berth.shim import forker

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                keep = theirs.fileno()
                os.closerange(3, keep)
                os.closerange(keep + 1, 1 << 16)
                forker.serve(theirs, self.init.pid, self.args.bundle, self.cgroups_path)
            finally:
                os._exit(1)
        theirs.close()
        answer = ours.recv(65536)
        doc = json.loads(answer) if answer else {"error": "the exec forker exited"}
        if "error" in doc:
            ours.close()
            os.waitpid(pid, 0)
            raise ShimCreateError(doc["error"])
        self.forker, self.forker_pid = ours, pid
        self._account_forker(True)
        return ours

    def _account_forker(self, present: bool) -> None:
        """The forker is one of the container's processes to the kernel, not to its user:
        its pids limit is raised by one while it runs, and berthd (stats) learns from
        the `forker` file beside exit.json to leave it out."""
        path = self.cgroups_path
        try:
            if path:
                from berth.runtime import cgroups
                from berth.runtime.cgroups.resources import parse_resources

                cg = cgroups.open_manager(path)
                limit = cg.stats().pids_limit
                if limit and present != self.pids_raised:
                    cg.update(parse_resources({"pids": {"limit": limit + (1 if present else -1)}}))
                    self.pids_raised = present
            self._write_marker()
        except Exception:  # noqa: BLE001  (accounting must not fail an exec)
            traceback.print_exc()

    def _write_marker(self) -> None:
        marker = os.path.join(self.args.state_dir, "forker")
        if self.forker is not None:
            with open(marker + ".tmp", "w") as f:
                json.dump({"pid": self.forker_pid, "pids_limit_raised": self.pids_raised}, f)
            os.rename(marker + ".tmp", marker)
        elif os.path.exists(marker):
            os.unlink(marker)

    def _drop_forker(self) -> None:
        if self.forker is None:
            return
        self.forker.close()
        self.forker = None
        try:
            os.kill(self.forker_pid, signal.SIGKILL)
            os.waitpid(self.forker_pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.forker_pid = 0
        self._account_forker(False)

    # -- the loop -------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(wake_r, selectors.EVENT_READ, ("signal", wake_r))
        self.reap()
        while self.running:
            timeout = None
            for p in self._procs():
                if p.exited and p.exit_code is None:
                    left = max(0.0, p.exit_deadline - time.monotonic())
                    timeout = left if timeout is None else min(timeout, left)
            for key, mask in self.sel.select(timeout):
                try:
                    self.dispatch(key, mask, listener, wake_r)
                except Exception:  # noqa: BLE001  (one bad event must not lose the container)
                    traceback.print_exc()
            for p in self._procs():
                try:
                    self.maybe_finish(p)
                except Exception:  # noqa: BLE001
                    traceback.print_exc()

    def _procs(self) -> list[Proc]:
        return [self.init, *self.execs.values()]

    def dispatch(self, key: selectors.SelectorKey, mask: int, listener: socket.socket, wake_r: int) -> None:
        kind, obj = key.data
        if kind == "listen":
            self.accept(listener)
        elif kind == "signal":
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            self.reap()
        elif kind == "output":
            self.read_output(*obj)
        elif kind == "client":
            if mask & selectors.EVENT_READ:
                self.client_readable(obj)
            if mask & selectors.EVENT_WRITE and not obj.closed:
                self.client_flush(obj)
        elif kind == "stdin":
            self.flush_stdin(obj)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.forker_pid:
                self.forker_pid = 0
                if self.forker is not None:
                    self.forker.close()
                    self.forker = None
                if not self.init.exited:
                    self._account_forker(False)
                continue
            p = self.by_pid.pop(pid, None)
            if p is not None and not p.exited:
                p.exited = True
                p.raw_status = status
                # Output ends when the last writer in the container closes; if some
                # process outside it holds a pipe, stop waiting after a while.
                p.exit_deadline = time.monotonic() + 2.0

    def maybe_finish(self, p: Proc) -> None:
        if not p.exited or p.exit_code is not None:
            return
        if p.outputs and time.monotonic() < p.exit_deadline:
            return
        for fd in list(p.outputs):
            self.drain_output(p, fd)
            self.close_output(p, fd)
        code = os.waitstatus_to_exitcode(p.raw_status)
        if p is self.init:
            self._drop_forker()  # it is in the container's cgroups, which go now
            try:
                p.oom_killed = self.runtime.oom_killed()
                self.runtime.delete()
            except Exception:  # noqa: BLE001  (clean-up trouble must not hide the exit)
                traceback.print_exc()
        p.exit_code = 128 - code if code < 0 else code
        p.finished_at = _now()
        p.status = "stopped"
        if p.log:
            p.log.close()
            p.log = None
        if p is self.init:
            self.write_exit_file()
        for c in p.waiters:
            self.reply(c, p.exit_doc(), close=True)
        p.waiters.clear()
        for c in self.clients:
            if c.attached is p:
                c.close_after_flush = True
                self.client_flush(c)

    def write_exit_file(self) -> None:
        """Atomic (a rename) but not synced: it must outlive berthd and this shim, not the
        machine, whose reboot ends the container anyway (berthd reads a torn file as no
        file). A sync here cost ~30 ms per container when many stop at once."""
        path = os.path.join(self.args.state_dir, "exit.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.init.exit_doc(), f)
        os.rename(tmp, path)

    # -- process output -------------------------------------------------------------

    def read_output(self, p: Proc, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            self.close_output(p, fd)
            return
        self.emit(p, p.outputs[fd], data)

    def drain_output(self, p: Proc, fd: int) -> None:
        while fd in p.outputs:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self.emit(p, p.outputs[fd], data)

    def close_output(self, p: Proc, fd: int) -> None:
        if fd not in p.outputs:
            return
        del p.outputs[fd]
        self.sel.unregister(fd)
        if fd != p.pty_master:
            os.close(fd)

    def emit(self, p: Proc, stream: int, data: bytes) -> None:
        if p.log:
            p.log.write("stdout" if stream == STDOUT else "stderr", data)
        framed = data if p.tty else encode_frame(stream, data)
        for c in self.clients:
            if c.attached is p and not c.closed and (c.want_stdout if stream == STDOUT else c.want_stderr):
                c.outbuf += framed
                self.client_flush(c)

    # -- stdin ------------------------------------------------------------------------

    def write_stdin(self, p: Proc, data: bytes) -> None:
        if p.stdin_w is None:
            return
        p.stdin_buf += data
        self.flush_stdin(p)

    def flush_stdin(self, p: Proc) -> None:
        if p.stdin_w is None:
            return
        while p.stdin_buf:
            try:
                n = os.write(p.stdin_w, p.stdin_buf)
            except BlockingIOError:
                break
            except OSError:
                p.stdin_buf.clear()
                break
            del p.stdin_buf[:n]
        self._watch_stdin(p, bool(p.stdin_buf))

    def _watch_stdin(self, p: Proc, on: bool) -> None:
        if p.stdin_w is None or p.tty:
            return
        try:
            self.sel.get_key(p.stdin_w)
            registered = True
        except KeyError:
            registered = False
        if on and not registered:
            self.sel.register(p.stdin_w, selectors.EVENT_WRITE, ("stdin", p))
        elif not on and registered:
            self.sel.unregister(p.stdin_w)

    def close_stdin(self, p: Proc) -> None:
        if p.stdin_w is None or p.tty:
            return  # a terminal has no half-close
        self.flush_stdin(p)
        self._watch_stdin(p, False)
        os.close(p.stdin_w)
        p.stdin_w = None

    # -- clients ------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        c = Client(sock)
        self.clients.append(c)
        self.sel.register(sock, selectors.EVENT_READ, ("client", c))

    def client_readable(self, c: Client) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        p = c.attached
        if p is not None:
            if data:
                if c.want_stdin:
                    self.write_stdin(p, data)
                return
            # As moby: a client's leaving closes stdin only with StdinOnce and no terminal
            # (a detach, ctrl-p ctrl-q, leaves a terminal's shell running).
            if c.want_stdin and p.stdin_once and not p.tty:
                self.close_stdin(p)
            c.want_stdin = False
            c.read_closed = True
            self._set_events(c)
            if not c.outbuf and c.close_after_flush:
                self.drop(c)
            return
        if not data:
            self.drop(c)
            return
        c.inbuf += data
        if b"\n" not in c.inbuf:
            if len(c.inbuf) > 1 << 20:
                self.drop(c)
            return
        line, _, rest = c.inbuf.partition(b"\n")
        c.inbuf = b""
        try:
            req = json.loads(line)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            self.reply(c, {"error": "malformed request"}, close=True)
            return
        self.handle(c, op, req, rest)

    def handle(self, c: Client, op: str, req: dict[str, Any], rest: bytes) -> None:
        if op == "exec":
            try:
                p = self.create_exec(str(req["id"]), req["process"], bool(req.get("stdin")))
            except (KeyError, TypeError, ShimCreateError) as e:
                self.reply(c, {"error": str(e) if isinstance(e, ShimCreateError) else "malformed exec request"},
                           close=True)
                return
            self.reply(c, {"pid": p.pid}, close=True)
            return
        exec_id = req.get("exec")
        if exec_id:
            target = self.execs.get(str(exec_id))
            if target is None:
                self.reply(c, {"error": f"no such exec: {exec_id}"}, close=True)
                return
        else:
            target = self.init
        if op == "attach":
            c.attached = target
            c.want_stdin = bool(req.get("stdin"))
            c.want_stdout = bool(req.get("stdout"))
            c.want_stderr = bool(req.get("stderr"))
            if rest and c.want_stdin:
                self.write_stdin(target, rest)
            if target.exit_code is not None:
                c.close_after_flush = True
            c.outbuf += b'{"ok":true}\n'
            self.client_flush(c)
        elif op == "start":
            if target.status != "created":
                self.reply(c, {"error": "container is not in the created state"}, close=True)
                return
            try:
                if target is self.init:
                    self.runtime.start()
                else:
                    from berth.runtime import process

                    created, target.created = target.created, None
                    process.start(created)
            except Exception as e:  # noqa: BLE001  (any runtime failure goes back to berthd)
                self.reply(c, {"error": f"start failed: {e}"}, close=True)
                return
            target.status = "running"
            self.reply(c, {"ok": True}, close=True)
        elif op == "state":
            doc: dict[str, Any] = {"pid": target.pid, "status": target.status}
            if target.exit_code is not None:
                doc.update(target.exit_doc())
            self.reply(c, doc, close=True)
        elif op == "wait":
            if target.exit_code is not None:
                self.reply(c, target.exit_doc(), close=True)
            else:
                target.waiters.append(c)
        elif op == "kill":
            try:
                if target.exit_code is None and not target.exited:
                    os.kill(target.pid, int(req.get("signal", signal.SIGKILL)))
                self.reply(c, {"ok": True}, close=True)
            except ProcessLookupError:
                self.reply(c, {"ok": True}, close=True)
            except (OSError, ValueError) as e:
                self.reply(c, {"error": f"kill failed: {e}"}, close=True)
        elif op == "resize":
            if target.pty_master is not None and target.exit_code is None:
                from berth.runtime import linux

                try:
                    linux.set_window_size(target.pty_master, int(req["height"]), int(req["width"]))
                except (OSError, KeyError, ValueError):
                    pass
            self.reply(c, {"ok": True}, close=True)
        elif op in ("pause", "resume", "update", "pids"):
            if self.init.exit_code is not None:
                self.reply(c, {"error": "container is not running"}, close=True)
                return
            try:
                if op == "update":
                    resources = req.get("resources") or {}
                    pids = resources.get("pids") if isinstance(resources, dict) else None
                    if isinstance(pids, dict) and isinstance(pids.get("limit"), int):
                        limit = pids["limit"]
                        raise_it = self.forker is not None and limit > 0
                        resources = {**resources, "pids": {**pids, "limit": limit + 1 if raise_it else limit}}
                        self.pids_raised = raise_it
                    self.runtime.update(resources)
                    self._write_marker()
                    self.reply(c, {"ok": True}, close=True)
                elif op == "pids":
                    pids = [pid for pid in self.runtime.pids() if pid != self.forker_pid]
                    self.reply(c, {"pids": pids}, close=True)
                else:
                    getattr(self.runtime, op)()
                    self.init.status = "paused" if op == "pause" else "running"
                    self.reply(c, {"ok": True}, close=True)
            except Exception as e:  # noqa: BLE001
                self.reply(c, {"error": str(e)}, close=True)
        elif op == "stats":
            try:
                self.reply(c, {"cgroup": self.cgroup_counters()}, close=True)
            except Exception as e:  # noqa: BLE001  (a failed read goes back to berthd)
                self.reply(c, {"error": f"stats failed: {e}"}, close=True)
        elif op == "close-stdin":
            self.close_stdin(target)
            self.reply(c, {"ok": True}, close=True)
        elif op == "delete":
            if target.exit_code is None:
                self.reply(c, {"error": "container is still running" if target is self.init
                               else "exec process is still running"}, close=True)
                return
            self.reply(c, {"ok": True}, close=True)
            if target is self.init:
                self.running = False
            else:
                del self.execs[target.exec_id]
                if target.pty_master is not None:
                    os.close(target.pty_master)
                    target.pty_master = None
                if target.stdin_w is not None:
                    os.close(target.stdin_w)
                    target.stdin_w = None
        else:
            self.reply(c, {"error": f"unknown op {op!r}"}, close=True)

    def cgroup_counters(self) -> dict[str, Any] | None:
        """The counters of the container's cgroup; None when it has none or it is gone.
        Imported here, at the first stats, not at start: most shims never need them."""
        if not self.cgroups_path:
            return None
        from berth.runtime import cgroups
        from berth.runtime.record import asdict

        cg = cgroups.open_manager(self.cgroups_path)
        if not cg.exists():
            return None
        try:
            counters = cg.stats()
        except cgroups.CgroupError:
            if not cg.exists():
                return None
            raise
        doc: dict[str, Any] = asdict(counters)
        doc["memory_stat"] = dict(doc.get("memory_stat") or {})
        return doc

    def reply(self, c: Client, doc: dict[str, Any], close: bool = False) -> None:
        c.outbuf += json.dumps(doc).encode() + b"\n"
        c.close_after_flush = close
        self.client_flush(c)

    def client_flush(self, c: Client) -> None:
        while c.outbuf:
            try:
                n = c.sock.send(c.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.drop(c)
                return
            del c.outbuf[:n]
        p = c.attached
        if not c.outbuf and c.close_after_flush and not (p is not None and c.want_stdin and p.exit_code is None):
            self.drop(c)
            return
        self._set_events(c)

    def _set_events(self, c: Client) -> None:
        if c.closed:
            return
        # a half-closed socket is readable forever: watching it would spin this loop
        events = (0 if c.read_closed else selectors.EVENT_READ) | (selectors.EVENT_WRITE if c.outbuf else 0)
        if events and c.registered:
            self.sel.modify(c.sock, events, ("client", c))
        elif events:
            self.sel.register(c.sock, events, ("client", c))
            c.registered = True
        elif c.registered:
            self.sel.unregister(c.sock)
            c.registered = False

    def drop(self, c: Client) -> None:
        if c.closed:
            return
        c.closed = True
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        if c in self.clients:
            self.clients.remove(c)
        for p in self._procs():
            if c in p.waiters:
                p.waiters.remove(c)


def _now() -> str:
    from berth.clock import format_time

    return format_time(time.time_ns())


USAGE = """usage: berth-shim --id ID --bundle DIR --state-dir DIR --socket PATH [options]

  --id ID             the container's ID
  --bundle DIR        its OCI bundle
  --state-dir DIR     where exit.json is written
  --socket PATH       the UNIX socket to serve berthd on
  --log PATH          the log file path ('' for none)
  --log-driver NAME   json-file (default), local, syslog or none
  --log-opt KEY=VAL   a log driver option (repeatable)
  --stdin             keep the container's stdin open
  --stdin-once        close stdin when the attached client does
  --runtime BINARY    an OCI runtime binary (runc, crun); default: berth's own
"""


class Options:
    """The shim's command line (berthd writes it: berth.shim.client._shim_argv)."""

    def __init__(self) -> None:
        self.id = self.bundle = self.state_dir = self.socket = self.log = self.runtime = ""
        self.log_driver = "json-file"
        self.log_opt: list[str] = []
        self.stdin = self.stdin_once = False


_VALUED = {"--id": "id", "--bundle": "bundle", "--state-dir": "state_dir", "--socket": "socket",
           "--log": "log", "--log-driver": "log_driver", "--runtime": "runtime"}
_FLAGS = {"--stdin": "stdin", "--stdin-once": "stdin_once"}


def parse_args(argv: list[str]) -> Options:
    """argparse's grammar for these options (--opt VALUE or --opt=VALUE), not argparse:
    its parse alone made ~1 MiB of the zygote's pages the shim's own, for good."""
    opts = Options()
    rest = iter(argv)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if name in _FLAGS and not eq:
            setattr(opts, _FLAGS[name], True)
        elif name in _VALUED or name == "--log-opt":
            if not eq:
                following = next(rest, None)
                if following is None:
                    _usage_error(f"argument {name}: expected one argument")
                value = following
            if name == "--log-opt":
                opts.log_opt.append(value)
            else:
                setattr(opts, _VALUED[name], value)
        else:
            _usage_error(f"unrecognized argument: {arg}")
    missing = [f"--{key.replace('_', '-')}" for key in ("id", "bundle", "state_dir", "socket") if not getattr(opts, key)]
    if missing:
        _usage_error(f"the following arguments are required: {', '.join(missing)}")
    return opts


def _usage_error(message: str) -> NoReturn:
    sys.stderr.write(USAGE.splitlines()[0] + f"\nberth-shim: error: {message}\n")
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    shim = Shim(args)
    out = sys.stdout
    sock_path = args.socket
    try:
        if os.path.lexists(sock_path):
            os.unlink(sock_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        os.chmod(sock_path, 0o600)
        listener.listen(64)
        shim.create()
    except Exception as e:  # report every failure to berthd as one line
        out.write(json.dumps({"error": str(e)}) + "\n")
        out.flush()
        try:
            os.unlink(sock_path)
        except OSError:
            pass
        os._exit(1)
    out.write(json.dumps({"pid": shim.pid}) + "\n")
    out.flush()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    # what goes wrong from here on is kept beside exit.json for berthd to report
    errors = os.open(os.path.join(args.state_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(errors, 2)
    os.close(errors)
    shim.serve(listener)
    try:
        os.unlink(sock_path)
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
