"""Moving bytes between the local terminal and a container.

Copies a hijacked attach/exec connection to stdout/stderr (demultiplexing
Docker's frames unless the container has a TTY), copies stdin to it (and
half-closes the socket at EOF), puts the terminal in raw mode for ``-it``
and restores it on every way out, recognises the detach keys (ctrl-p
ctrl-q by default), and keeps the container's TTY size in step with the
terminal.  The pure part — the detach keys' parser and matcher — is
berth.stdstream's, which berthd uses too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from berth.client.engine import STDERR, STDOUT, FrameDecoder, Hijacked
from berth.stdstream import DEFAULT_DETACH_KEYS, EscapeScanner


class RawTerminal:
    """Put a terminal fd in raw mode; restore it on ``restore`` (idempotent)."""

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self._termios = termios
        self._saved: list[Any] | None = termios.tcgetattr(fd)
        tty.setraw(fd, termios.TCSANOW)

    def restore(self) -> None:
        if self._saved is not None:
            try:
                self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)
            except Exception:
                pass
            self._saved = None


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(height, width) of the terminal on ``fd``, or None when it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def is_terminal(fd: int) -> bool:
    """os.isatty, False when ``fd`` is not open."""
    try:
        return os.isatty(fd)
    except OSError:
        return False


def terminal_width(fd: int = 1) -> int:
    """Columns of the terminal on ``fd``; 80 when it is not one."""
    size = terminal_size(fd)
    return size[1] if size else 80


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[written:]


class Streamer:
    """Pump one hijacked connection until the container's output ends.

    ``run`` returns "detached" if the user typed the detach keys, else "done".
    """

    def __init__(
        self,
        conn: Hijacked,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        detach_keys: bytes = DEFAULT_DETACH_KEYS,
        raw_terminal: bool = False,
    ) -> None:
        self.conn = conn
        self.tty = tty
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.detach_keys = detach_keys
        self.raw_terminal = raw_terminal
        self._raw: RawTerminal | None = None
        self._done = threading.Event()
        self._detached = False
        self._input_done = threading.Event()

    def restore_terminal(self) -> None:
        if self._raw is not None:
            self._raw.restore()

    def run(self) -> str:
        if self.raw_terminal and self.stdin and self.tty and os.isatty(0):
            self._raw = RawTerminal(0)
        try:
            if self.stdin:
                reader = threading.Thread(target=self._pump_input, name="stdin", daemon=True)
                reader.start()
            if self.stdout or self.stderr:
                output = threading.Thread(target=self._pump_output, name="stdout", daemon=True)
                output.start()
                self._wait(self._done)
            else:
                self._wait(self._input_done)
        finally:
            self.restore_terminal()
        return "detached" if self._detached else "done"

    @staticmethod
    def _wait(event: threading.Event) -> None:
        # poll so that signal handlers get a chance to run in the main thread
        while not event.wait(0.2):
            pass

    def _pump_output(self) -> None:
        try:
            decoder = None if self.tty else FrameDecoder()
            out_fd = sys.stdout.fileno()
            err_fd = sys.stderr.fileno()
            while True:
                data = self.conn.recv()
                if not data:
                    break
                if decoder is None:
                    if self.stdout:
                        write_all(out_fd, data)
                    continue
                for stream, payload in decoder.feed(data):
                    if stream == STDOUT and self.stdout:
                        write_all(out_fd, payload)
                    elif stream == STDERR and self.stderr:
                        write_all(err_fd, payload)
                    elif stream not in (STDOUT, STDERR):
                        write_all(out_fd, payload)
        except OSError:
            pass
        finally:
            self.restore_terminal()
            self._done.set()

    def _pump_input(self) -> None:
        matcher = EscapeScanner(self.detach_keys) if self.tty and self.detach_keys else None
        try:
            while True:
                try:
                    data = os.read(0, 32768)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                if matcher is not None:
                    data, detach = matcher.feed(data)
                    if data:
                        self.conn.send(data)
                    if detach:
                        self._detached = True
                        self.restore_terminal()
                        self._done.set()
                        self._input_done.set()
                        return
                    continue
                self.conn.send(data)
        except OSError:
            pass
        self.conn.close_write()
        self._input_done.set()


class ResizeMonitor:
    """Send the terminal size now and on every SIGWINCH."""

    def __init__(self, resize: Callable[[int, int], None], fd: int = 1) -> None:
        self.resize = resize
        self.fd = fd
        self._previous: Any = None

    def start(self) -> None:
        self._send()
        try:
            self._previous = signal.signal(signal.SIGWINCH, self._on_winch)
        except ValueError:
            self._previous = None

    def stop(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGWINCH, self._previous)
            self._previous = None

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=self._send, daemon=True).start()

    def _send(self) -> None:
        size = terminal_size(self.fd)
        if size is None:
            return
        height, width = size
        try:
            self.resize(height, width)
        except Exception:
            pass


# docker forwards every signal it can catch except these (ForwardAllSignals)
_NOT_PROXIED = ("SIGCHLD", "SIGPIPE", "SIGURG", "SIGWINCH", "SIGKILL", "SIGSTOP")


class SignalProxy:
    """Forward the signals the CLI receives to the container (``--sig-proxy``)."""

    def __init__(self, kill: Callable[[str], None]) -> None:
        self.kill = kill
        self._previous: dict[int, Any] = {}

    def start(self) -> None:
        skip = {getattr(signal, name) for name in _NOT_PROXIED if hasattr(signal, name)}
        for signum in signal.valid_signals():
            if signum in skip:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):
                pass

    def stop(self) -> None:
        for signum, handler in self._previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError):
                pass
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        try:
            name = signal.Signals(signum).name.removeprefix("SIG")  # docker sends "INT", "TERM" …
        except ValueError:
            name = str(signum)  # real-time signals go by number
        threading.Thread(target=self._forward, args=(name,), daemon=True).start()

    def _forward(self, name: str) -> None:
        try:
            self.kill(name)
        except Exception:
            pass
