"""Containers' output, line by line, prefixed and colored per container as compose v2
prints it (`web-1   | hello`): what `berth compose logs` shows, and what `up` shows
when it stays attached.

Owns: `LogPrinter` (compose v2's log consumer: the `NAME | ` prefix padded to the
longest name seen so far, one color per container taken in turn from compose v2's
rainbow, `exited with code N` status lines) and `LogFollower` (one thread per container
reading `GET /containers/{id}/logs` — or, for `up`, the attach stream — demultiplexing
Docker's 8-byte frames unless the container has a TTY, cutting the output into lines
for the printer, and telling its owner when a container's stream ends).
Must not: decide which containers to follow (the caller does), or print anything but
through its printer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from berth.client.engine import STDERR, Client, ClientError, FrameDecoder, path_escape

# compose v2's rainbow: cyan, yellow, green, magenta, blue, then the same, intense.
_RAINBOW = ("36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1")
_RESET_LINE = "\x1b[2K\r"  # goterm.RESET_LINE, before a status line


def color_code(index: int) -> str:
    """The SGR code of the `index`-th container to register (compose v2's nextColor)."""
    return _RAINBOW[index % len(_RAINBOW)]


def colorize(code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def prefix_for(name: str, width: int, code: str | None) -> str:
    """`NAME` padded to `width` then ` | `, colored when `code` is given."""
    text = f"{name:<{width}} | "
    return colorize(code, text) if code else text


def container_log_name(name: str, project: str, service: str, number: str | int) -> str:
    """The name a container's lines carry: `SERVICE-N` for compose's own names, the
    container's name when the service sets `container_name` (compose v2's
    getContainerNameWithoutProject)."""
    if name == f"{project}-{service}-{number}":
        return name[len(project) + 1:]
    return name


def rfc3339_nano_fixed(now: float | None = None) -> str:
    """jsonmessage.RFC3339NanoFixed of `now`, in the local zone."""
    ts = time.time() if now is None else now
    local = time.localtime(ts)
    nanos = int(round((ts - int(ts)) * 1e9)) % 1_000_000_000
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}{zone}"


class LogPrinter:
    """compose v2's log consumer: prefixes, colors and writes whole lines.

    Thread-safe; each line is written with a single write. `register` a name to fix its
    color and the padding before its first line (the order of registration is the order
    of colors); an unknown name is registered at its first line, as compose v2 does,
    which widens every prefix if it is the longest so far. A name with a space
    (`web-1 post_start`) takes the color of the name before the space.
    """

    def __init__(self, out: BinaryIO, err: BinaryIO | None = None, *, color: bool,
                 prefix: bool = True, timestamps: bool = False) -> None:
        self.out = out
        self.err_out = err if err is not None else out
        self.color = color
        self.prefix = prefix
        self.timestamps = timestamps
        self._codes: dict[str, str | None] = {}
        self._prefixes: dict[str, str] = {}
        self._next_color = 0
        self._lock = threading.Lock()

    @property
    def width(self) -> int:
        return max((len(name) for name in self._codes), default=0) + 1

    def register(self, name: str) -> None:
        with self._lock:
            self._register(name)

    def _register(self, name: str) -> None:
        if name in self._codes:
            return
        root, space, _ = name.partition(" ")
        if space:
            self._register(root)
            code = self._codes[root]
        elif self.color and name:
            code = color_code(self._next_color)
            self._next_color += 1
        else:
            code = None
        self._codes[name] = code
        width = self.width
        self._prefixes = {n: prefix_for(n, width, c) if self.prefix else ""
                          for n, c in self._codes.items()}

    def log(self, name: str, line: bytes) -> None:
        """One line (without its newline) of `name`'s standard output."""
        self._write(self.out, name, line)

    def err(self, name: str, line: bytes) -> None:
        """One line of `name`'s standard error (attached mode keeps the two apart)."""
        self._write(self.err_out, name, line)

    def _write(self, stream: BinaryIO, name: str, line: bytes) -> None:
        with self._lock:
            self._register(name)
            head = self._prefixes[name]
            if self.timestamps:
                head += rfc3339_nano_fixed() + " "
            stream.write(head.encode() + line + b"\n")
            stream.flush()

    def status(self, name: str, message: str) -> None:
        """A line about the container rather than from it: `web-1 exited with code 0`."""
        with self._lock:
            self._register(name)
            text = f"{_RESET_LINE}{name} {message}\n"
            code = self._codes[name]
            self.out.write((colorize(code, text) if code else text).encode())
            self.out.flush()


class LineSplitter:
    """compose v2's splitWriter: bytes in, whole lines (without "\\n") out; `close`
    hands over what is left after the last newline."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self.emit = emit
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
            self.emit(line)

    def close(self) -> None:
        if self.buffer:
            line, self.buffer = self.buffer, b""
            self.emit(line)


@dataclass(frozen=True)
class LogSource:
    """A container to follow: its ID, the name its lines carry, whether it has a TTY
    (None: ask the engine)."""

    id: str
    name: str
    tty: bool | None = None


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail: str = "all"
    timestamps: bool = False
    since: str = ""  # as the API takes it: unix seconds, "" for none
    until: str = ""


class LogFollower:
    """Streams containers' output to a printer, one thread per container.

    `add` starts following a container at once (for `up`: one that was just started,
    or, with `attach=True`, one that is about to be, so that nothing it prints is
    missed). `on_end(source, error)` is called from the container's thread when its
    stream ends — the container exited (when following) or its logs were all read —
    with the client error that ended it, if one did. `wait` returns when every stream
    has ended and raises the first error; `close` ends every stream now.
    """

    def __init__(self, client: Client, printer: LogPrinter, options: LogOptions | None = None,
                 on_end: Callable[[LogSource, ClientError | None], None] | None = None) -> None:
        self.client = client
        self.printer = printer
        self.options = options or LogOptions()
        self.on_end = on_end
        self._threads: list[threading.Thread] = []
        self._responses: list[Any] = []
        self._errors: list[ClientError] = []
        self._lock = threading.Lock()
        self._closed = False

    def add(self, source: LogSource, *, attach: bool = False) -> None:
        """Follow `source` from now on; with `attach`, read the attach stream (stdout and
        stderr kept apart, as `up` prints them) instead of the logs."""
        thread = threading.Thread(target=self._run, args=(source, attach),
                                  name=f"logs-{source.name}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _run(self, source: LogSource, attach: bool) -> None:
        error: ClientError | None = None
        try:
            tty = source.tty
            if tty is None:
                info = self.client.get_json(f"/containers/{path_escape(source.id)}/json") or {}
                tty = bool((info.get("Config") or {}).get("Tty"))
            if attach:
                self._attach(source, tty)
            else:
                self._logs(source, tty)
        except ClientError as exc:
            error = exc
            with self._lock:
                if not self._closed:
                    self._errors.append(exc)
        except OSError:
            pass  # the connection was closed under us (close())
        if self.on_end is not None:
            self.on_end(source, error)

    def _logs(self, source: LogSource, tty: bool) -> None:
        opts = self.options
        params: dict[str, Any] = {
            "stdout": 1, "stderr": 1, "follow": opts.follow or None,
            "tail": opts.tail or None, "timestamps": opts.timestamps or None,
            "since": opts.since or None, "until": opts.until or None,
        }
        resp = self.client.request("GET", f"/containers/{path_escape(source.id)}/logs", params)
        self._track(resp)
        lines = LineSplitter(lambda line: self.printer.log(source.name, line))
        self._pump(resp.iter_chunks(), tty, lines, lines)

    def _attach(self, source: LogSource, tty: bool) -> None:
        params = {"stream": 1, "stdin": 0, "stdout": 1, "stderr": 1}
        conn = self.client.hijack(f"/containers/{path_escape(source.id)}/attach", params)
        self._track(conn)
        out = LineSplitter(lambda line: self.printer.log(source.name, line))
        err = LineSplitter(lambda line: self.printer.err(source.name, line))
        try:
            self._pump(iter(conn.recv, b""), tty, out, err)
        finally:
            conn.close()

    def _track(self, stream: Any) -> None:
        with self._lock:
            if self._closed:
                stream.close()
            self._responses.append(stream)

    @staticmethod
    def _pump(chunks: Iterable[bytes], tty: bool, out: LineSplitter, err: LineSplitter) -> None:
        decoder = None if tty else FrameDecoder()
        for chunk in chunks:
            if decoder is None:
                out.feed(chunk)
                continue
            for stream, payload in decoder.feed(chunk):
                (err if stream == STDERR else out).feed(payload)
        out.close()
        if err is not out:
            err.close()

    def wait(self) -> None:
        """Until every stream has ended; then the first error, if any, is raised."""
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                break
            for thread in alive:
                # short joins so that the main thread still sees SIGINT
                while thread.is_alive():
                    thread.join(0.2)
        with self._lock:
            if self._errors:
                raise self._errors[0]

    def close(self) -> None:
        """End every stream now (their threads see EOF and end)."""
        with self._lock:
            self._closed = True
            streams = list(self._responses)
        for stream in streams:
            sock = getattr(stream, "sock", None) or getattr(getattr(stream, "conn", None), "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
                stream.close()
            except OSError:
                pass


def follow(client: Client, sources: Iterable[LogSource], printer: LogPrinter,
           options: LogOptions | None = None) -> None:
    """Print every source's logs through `printer` (registered first, in the order
    given, so that colors and padding are fixed) until all have ended."""
    sources = list(sources)
    for source in sources:
        printer.register(source.name)
    follower = LogFollower(client, printer, options)
    try:
        for source in sources:
            follower.add(source)
        follower.wait()
    finally:
        follower.close()
