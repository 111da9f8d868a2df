"""berth-shim: keeps one container's process, stdio and logs, independently of berthd.

berthd starts one shim per container start. The shim creates the container through
the runtime (`berth.runtime.process`), prints one JSON line on stdout (`{"pid": N}` or
`{"error": "..."}`), and then serves berthd on a UNIX socket until told to delete.
It is the init's parent (a child subreaper), so it sees the exit status; it owns the
stdio pipes or the pty master, writes the log file, and records the exit atomically
in `exit.json`, so a restarted berthd can learn what happened while it was away.

Protocol on the socket: each connection sends one JSON line, the request:
  {"op": "start"}                         -> {"ok": true} | {"error": ...}
  {"op": "state"}                         -> {"pid", "status", "exit_code"?}
  {"op": "wait"}                          -> {"exit_code", "finished_at"} once exited
  {"op": "kill", "signal": N}             -> {"ok": true}
  {"op": "resize", "height": H, "width": W}
  {"op": "delete"}                        -> the shim exits (the container must be gone)
  {"op": "attach", "stdin", "stdout", "stderr"}
        -> the connection becomes the stream: output in Docker's framing (raw with a
           terminal) from the shim; stdin bytes to it; it closes when the container's
           output ends.
It is deliberately stdlib-only and single-threaded (a selectors loop): it starts fast.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

SEL = selectors.DefaultSelector()
STDOUT, STDERR = 1, 2


def _encode_frame(stream: int, data: bytes) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


class ShimCreateError(Exception):
    pass


class Client:
    """One connection from berthd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        self.request: dict[str, Any] | None = None
        self.attached = False
        self.want_stdout = self.want_stderr = self.want_stdin = False
        self.close_after_flush = False
        self.closed = False
        self.read_closed = False  # the client half-closed: only its output still flows
        self.registered = True


class Shim:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pid = 0
        self.status = "created"
        self.exit_code: int | None = None
        self.finished_at: str | None = None
        self.init_exited = False
        self.raw_status = 0
        self.tty = False
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self.outputs: dict[int, int] = {}  # fd -> stream
        self.pty_master: int | None = None
        self.clients: list[Client] = []
        self.waiters: list[Client] = []
        self.runtime: Any = None
        self.oom_killed = False
        self.log: Any = None
        self.exit_deadline = 0.0
        self.running = True

    # -- creation -------------------------------------------------------------------

    def create(self) -> None:
        from berth.runtime import backends, linux, oci

        linux.set_child_subreaper()
        spec = oci.load_bundle(self.args.bundle)
        self.tty = spec.process.terminal
        if self.args.exec_pid:
            # docker exec: a process in the running container, described by --process
            with open(self.args.process) as f:
                self.tty = bool(json.load(f).get("terminal"))
            self.runtime = backends.ExecRuntime(self.args.exec_pid, self.args.cgroup, self.args.process)
        elif self.args.runtime:
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
                self.log = open_sink(self.args.log_driver, self.args.log, options)
            except (OSError, ValueError) as e:
                raise ShimCreateError(str(e)) from None
        stdin_r = out_w = err_w = None
        if not self.tty:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if self.args.stdin:
                stdin_r, self.stdin_w = os.pipe()
        try:
            self.pid, master = self.runtime.create(spec, stdin_r, -1 if out_w is None else out_w,
                                                   -1 if err_w is None else err_w)
        except backends.RuntimeError_ as e:
            raise ShimCreateError(str(e)) from None
        finally:
            for fd in (out_w, err_w, stdin_r):
                if fd is not None:
                    os.close(fd)
        if self.tty:
            if master is None:
                raise ShimCreateError("the runtime did not hand over the container's terminal")
            self.pty_master = master
            self.outputs[self.pty_master] = STDOUT
            if self.args.stdin:
                self.stdin_w = self.pty_master
        else:
            self.outputs[out_r] = STDOUT
            self.outputs[err_r] = STDERR
        for fd in self.outputs:
            os.set_blocking(fd, False)
            SEL.register(fd, selectors.EVENT_READ, ("output", fd))
        if self.stdin_w is not None and not self.tty:
            os.set_blocking(self.stdin_w, False)

    # -- the loop -------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        SEL.register(listener, selectors.EVENT_READ, ("listen", None))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        SEL.register(wake_r, selectors.EVENT_READ, ("signal", wake_r))
        self.reap()
        while self.running:
            timeout = None
            if self.init_exited and self.exit_code is None:
                timeout = max(0.0, self.exit_deadline - time.monotonic())
            for key, mask in SEL.select(timeout):
                try:
                    self.dispatch(key, mask, listener, wake_r)
                except Exception:  # noqa: BLE001  (one bad event must not lose the container)
                    traceback.print_exc()
            try:
                self.maybe_finish()
            except Exception:  # noqa: BLE001
                traceback.print_exc()

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
            self.read_output(obj)
        elif kind == "client":
            if mask & selectors.EVENT_READ:
                self.client_readable(obj)
            if mask & selectors.EVENT_WRITE and not obj.closed:
                self.client_flush(obj)
        elif kind == "stdin":
            self.flush_stdin()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and not self.init_exited:
                self.init_exited = True
                self.raw_status = status
                # Output ends when the last writer in the container closes; if some
                # process outside it holds a pipe, stop waiting after a while.
                self.exit_deadline = time.monotonic() + 2.0

    def maybe_finish(self) -> None:
        if not self.init_exited or self.exit_code is not None:
            return
        if self.outputs and time.monotonic() < self.exit_deadline:
            return
        for fd in list(self.outputs):
            self.drain_output(fd)
            self.close_output(fd)
        code = os.waitstatus_to_exitcode(self.raw_status)
        try:
            self.oom_killed = self.runtime.oom_killed()
            self.runtime.delete()
        except Exception:  # noqa: BLE001  (clean-up trouble must not hide the exit)
            traceback.print_exc()
        self.exit_code = 128 - code if code < 0 else code
        self.finished_at = _now()
        self.status = "stopped"
        if self.log:
            self.log.close()
            self.log = None
        self.write_exit_file()
        for c in self.waiters:
            self.reply(c, self.exit_doc(), close=True)
        self.waiters.clear()
        for c in self.clients:
            if c.attached:
                c.close_after_flush = True
                self.client_flush(c)

    def exit_doc(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "finished_at": self.finished_at, "pid": self.pid,
                "oom_killed": self.oom_killed}

    def write_exit_file(self) -> None:
        path = os.path.join(self.args.state_dir, "exit.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.exit_doc(), f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    # -- container output -----------------------------------------------------------

    def read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            self.close_output(fd)
            return
        self.emit(self.outputs[fd], data)

    def drain_output(self, fd: int) -> None:
        while fd in self.outputs:
            before = fd in self.outputs
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data or not before:
                return
            self.emit(self.outputs[fd], data)

    def close_output(self, fd: int) -> None:
        if fd not in self.outputs:
            return
        del self.outputs[fd]
        SEL.unregister(fd)
        if fd != self.pty_master:
            os.close(fd)

    def emit(self, stream: int, data: bytes) -> None:
        if self.log:
            self.log.write("stdout" if stream == STDOUT else "stderr", data)
        framed = data if self.tty else _encode_frame(stream, data)
        for c in self.clients:
            if c.attached and not c.closed and (c.want_stdout if stream == STDOUT else c.want_stderr):
                c.outbuf += framed
                self.client_flush(c)

    # -- stdin ------------------------------------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        if self.stdin_w is None:
            return
        self.stdin_buf += data
        self.flush_stdin()

    def flush_stdin(self) -> None:
        if self.stdin_w is None:
            return
        while self.stdin_buf:
            try:
                n = os.write(self.stdin_w, self.stdin_buf)
            except BlockingIOError:
                break
            except OSError:
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        self._watch_stdin(bool(self.stdin_buf))

    def _watch_stdin(self, on: bool) -> None:
        if self.stdin_w is None or self.tty:
            return
        try:
            SEL.get_key(self.stdin_w)
            registered = True
        except KeyError:
            registered = False
        if on and not registered:
            SEL.register(self.stdin_w, selectors.EVENT_WRITE, ("stdin", None))
        elif not on and registered:
            SEL.unregister(self.stdin_w)

    def close_stdin(self) -> None:
        if self.stdin_w is None or self.tty:
            return  # a terminal has no half-close
        self.flush_stdin()
        self._watch_stdin(False)
        os.close(self.stdin_w)
        self.stdin_w = None

    # -- clients ------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        c = Client(sock)
        self.clients.append(c)
        SEL.register(sock, selectors.EVENT_READ, ("client", c))

    def client_readable(self, c: Client) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if c.attached:
            if data:
                if c.want_stdin:
                    self.write_stdin(data)
                return
            # As moby: a client's leaving closes stdin only with StdinOnce and no terminal
            # (a detach, ctrl-p ctrl-q, leaves a terminal's shell running).
            if c.want_stdin and self.args.stdin_once and not self.tty:
                self.close_stdin()
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
            if len(c.inbuf) > 65536:
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
        if op == "attach":
            c.attached = True
            c.want_stdin = bool(req.get("stdin"))
            c.want_stdout = bool(req.get("stdout"))
            c.want_stderr = bool(req.get("stderr"))
            if rest and c.want_stdin:
                self.write_stdin(rest)
            if self.exit_code is not None:
                c.close_after_flush = True
            c.outbuf += b'{"ok":true}\n'
            self.client_flush(c)
        elif op == "start":
            if self.status != "created":
                self.reply(c, {"error": "container is not in the created state"}, close=True)
                return
            try:
                self.runtime.start()
            except Exception as e:  # noqa: BLE001  (any runtime failure goes back to berthd)
                self.reply(c, {"error": f"start failed: {e}"}, close=True)
                return
            self.status = "running"
            self.reply(c, {"ok": True}, close=True)
        elif op == "state":
            doc: dict[str, Any] = {"pid": self.pid, "status": self.status}
            if self.exit_code is not None:
                doc.update(self.exit_doc())
            self.reply(c, doc, close=True)
        elif op == "wait":
            if self.exit_code is not None:
                self.reply(c, self.exit_doc(), close=True)
            else:
                self.waiters.append(c)
        elif op == "kill":
            try:
                if self.exit_code is None:
                    os.kill(self.pid, int(req.get("signal", signal.SIGKILL)))
                self.reply(c, {"ok": True}, close=True)
            except ProcessLookupError:
                self.reply(c, {"ok": True}, close=True)
            except (OSError, ValueError) as e:
                self.reply(c, {"error": f"kill failed: {e}"}, close=True)
        elif op == "resize":
            if self.pty_master is not None and self.exit_code is None:
                from berth.runtime import linux

                try:
                    linux.set_window_size(self.pty_master, int(req["height"]), int(req["width"]))
                except (OSError, KeyError, ValueError):
                    pass
            self.reply(c, {"ok": True}, close=True)
        elif op in ("pause", "resume", "update", "pids"):
            if self.exit_code is not None:
                self.reply(c, {"error": "container is not running"}, close=True)
                return
            try:
                if op == "update":
                    self.runtime.update(req.get("resources") or {})
                    self.reply(c, {"ok": True}, close=True)
                elif op == "pids":
                    self.reply(c, {"pids": self.runtime.pids()}, close=True)
                else:
                    getattr(self.runtime, op)()
                    self.status = "paused" if op == "pause" else "running"
                    self.reply(c, {"ok": True}, close=True)
            except Exception as e:  # noqa: BLE001
                self.reply(c, {"error": str(e)}, close=True)
        elif op == "close-stdin":
            self.close_stdin()
            self.reply(c, {"ok": True}, close=True)
        elif op == "delete":
            if self.exit_code is None:
                self.reply(c, {"error": "container is still running"}, close=True)
                return
            self.reply(c, {"ok": True}, close=True)
            self.running = False
        else:
            self.reply(c, {"error": f"unknown op {op!r}"}, close=True)

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
        if not c.outbuf and c.close_after_flush and not (c.attached and c.want_stdin and self.exit_code is None):
            self.drop(c)
            return
        self._set_events(c)

    def _set_events(self, c: Client) -> None:
        if c.closed:
            return
        # a half-closed socket is readable forever: watching it would spin this loop
        events = (0 if c.read_closed else selectors.EVENT_READ) | (selectors.EVENT_WRITE if c.outbuf else 0)
        if events and c.registered:
            SEL.modify(c.sock, events, ("client", c))
        elif events:
            SEL.register(c.sock, events, ("client", c))
            c.registered = True
        elif c.registered:
            SEL.unregister(c.sock)
            c.registered = False

    def drop(self, c: Client) -> None:
        if c.closed:
            return
        c.closed = True
        try:
            SEL.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        if c in self.clients:
            self.clients.remove(c)
        if c in self.waiters:
            self.waiters.remove(c)


def _now() -> str:
    from berth.logs.jsonfile import format_time

    return format_time(time.time_ns())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="berth-shim")
    p.add_argument("--id", required=True)
    p.add_argument("--bundle", required=True)
    p.add_argument("--state-dir", required=True, help="where exit.json is written")
    p.add_argument("--socket", required=True, help="the UNIX socket to serve berthd on")
    p.add_argument("--log", default="", help="the log file path ('' for none)")
    p.add_argument("--log-driver", default="json-file", help="json-file, local, syslog or none")
    p.add_argument("--log-opt", action="append", default=[], help="a log driver option, KEY=VALUE (repeatable)")
    p.add_argument("--stdin", action="store_true", help="keep the container's stdin open")
    p.add_argument("--stdin-once", action="store_true", help="close stdin when the attached client does")
    p.add_argument("--runtime", default="", help="an OCI runtime binary (runc, crun); default: berth's own")
    p.add_argument("--exec-pid", type=int, default=0, help="exec mode: the pid of the container's init")
    p.add_argument("--process", default="", help="exec mode: the OCI process JSON to run")
    p.add_argument("--cgroup", default="", help="exec mode: the container's cgroup path")
    args = p.parse_args(argv)
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
