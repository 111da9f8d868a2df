"""berthd's side of the shim protocol (see berth.shim.shim): start, talk, attach."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from berth.errors import SystemError_

_PYTHONPATH = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ShimError(Exception):
    pass


class ShimGone(ShimError):
    """The shim does not answer, or went away before its answer was whole."""


@dataclass
class ShimOptions:
    container_id: str
    bundle: str
    state_dir: str
    socket: str
    log_path: str
    stdin: bool
    stdin_once: bool
    runtime: str = ""  # an OCI runtime binary (runc, crun); "" for berth's own
    log_driver: str = "json-file"  # berth.logs.sinks: json-file, local, syslog, none
    log_options: dict[str, str] = field(default_factory=dict)  # checked by berth.logs.drivers


def _shim_argv(opts: ShimOptions) -> list[str]:
    args = ["--id", opts.container_id, "--bundle", opts.bundle, "--state-dir", opts.state_dir,
            "--socket", opts.socket, "--log", opts.log_path]
    if opts.stdin:
        args.append("--stdin")
    if opts.stdin_once:
        args.append("--stdin-once")
    if opts.runtime:
        args += ["--runtime", opts.runtime]
    if opts.log_driver != "json-file":
        args += ["--log-driver", opts.log_driver]
    for key, value in opts.log_options.items():
        args += ["--log-opt", f"{key}={value}"]
    return args


def _ready(line: bytes, opts: ShimOptions) -> int:
    try:
        doc = json.loads(line)
    except ValueError:
        raise SystemError_(f"the shim for {opts.container_id[:12]} exited without a word") from None
    if "error" in doc:
        raise ShimError(doc["error"])
    return int(doc["pid"])


class Launcher:
    """Starts shims: through the zygote when it runs, else as a new process."""

    def __init__(self, exec_root: str) -> None:
        self.socket = os.path.join(exec_root, "zygote.sock")
        self.pidfile = os.path.join(exec_root, "zygote.pid")
        self.proc: asyncio.subprocess.Process | None = None

    def end_earlier_zygote(self) -> int | None:
        """The zygote an earlier berthd on this exec root left running (it dies with its
        berthd, unless that berthd was killed before the zygote could ask to): ended,
        its pid returned. Only the process the pid file names, and only if it is still
        a zygote serving this exec root's socket."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"berth.shim.zygote" not in argv or self.socket.encode() not in argv:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    async def start_zygote(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-m", "berth.shim.zygote", self.socket,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, start_new_session=True,
            env={"PYTHONPATH": _PYTHONPATH, "PATH": os.environ.get("PATH", "")})
        assert self.proc.stdout is not None
        if await self.proc.stdout.readline() != b"ready\n":
            await self.proc.wait()
            self.proc = None
            return
        with open(self.pidfile + ".tmp", "w") as f:
            f.write(f"{self.proc.pid}\n")
        os.rename(self.pidfile + ".tmp", self.pidfile)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self.proc = None
        for path in (self.socket, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    async def spawn(self, opts: ShimOptions) -> tuple[asyncio.subprocess.Process | None, int]:
        """Start a shim; it creates the container. Returns (process if ours, init pid)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket)
            except OSError:
                pass
            else:
                try:
                    writer.write(json.dumps(_shim_argv(opts)).encode() + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
                return None, _ready(line, opts)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-m", "berth.shim.shim", *_shim_argv(opts),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=None, start_new_session=True, env={"PYTHONPATH": _PYTHONPATH, "PATH": os.environ.get("PATH", "")},
        )
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        try:
            return proc, _ready(line, opts)
        except BaseException:
            await proc.wait()
            raise


async def _open(sock: str, doc: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_unix_connection(sock, limit=1 << 20)
    except OSError as e:
        raise ShimGone(f"the container's shim does not answer: {e}") from None
    try:
        writer.write(json.dumps(doc).encode() + b"\n")
        await writer.drain()
    except OSError as e:
        writer.close()
        raise ShimGone(f"the container's shim closed the connection: {e}") from None
    return reader, writer


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The shim's one-line answer; a shim that went away (a reset included) is a ShimError,
    which every caller handles, not an OSError that would end the caller's task."""
    try:
        return await reader.readline()
    except (OSError, ValueError) as e:  # ValueError: a line over the reader's limit
        writer.close()
        raise ShimGone(f"the container's shim closed the connection: {e}") from None


async def call(sock: str, doc: dict[str, Any]) -> dict[str, Any]:
    """One request to the shim listening on `sock`, one answer."""
    reader, writer = await _open(sock, doc)
    try:
        line = await _answer(reader, writer)
    finally:
        writer.close()
    if not line:
        raise ShimGone("the container's shim closed the connection")
    try:
        result = json.loads(line)
    except ValueError:
        raise ShimError(f"the container's shim answered what is not JSON: {line[:80]!r}") from None
    if "error" in result:
        raise ShimError(result["error"])
    return result


async def attach(sock: str, stdin: bool, stdout: bool, stderr: bool, exec_id: str = ""
                 ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The stdio of the container's init, or of one of its exec processes."""
    doc: dict[str, Any] = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
    if exec_id:
        doc["exec"] = exec_id
    reader, writer = await _open(sock, doc)
    line = await _answer(reader, writer)
    if not line.startswith(b'{"ok"'):
        writer.close()
        raise ShimError("the container's shim refused to attach")
    return reader, writer
