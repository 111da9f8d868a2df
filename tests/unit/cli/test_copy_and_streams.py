"""``cp`` naming rules, and the attach streamer over a socket pair."""

import socket
import threading
from typing import Any

import pytest

from berth.cli.copy import CopyError, plan_copy, rebase_name, split_cp_arg, split_dir_entry
from berth.cli.streams import Streamer
from berth.client.engine import Hijacked, _Conn, encode_frame


def test_split_cp_arg() -> None:
    assert split_cp_arg("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_cp_arg("/abs:path") == ("", "/abs:path")
    assert split_cp_arg("./file:name") == ("", "./file:name")
    assert split_cp_arg("plain") == ("", "plain")


def test_split_dir_entry() -> None:
    assert split_dir_entry("/etc/hosts") == ("/etc", "hosts")
    assert split_dir_entry("/etc/") == ("/", "etc")
    assert split_dir_entry("/etc/.") == ("/etc", ".")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # into an existing directory: keep the source name
        (("/etc/f", False, "/dst", True, True), ("/dst", None)),
        # onto an existing file: rename the entry
        (("/etc/f", False, "/dst/g", True, False), ("/dst", ("f", "g"))),
        # a directory to a new path: it takes the new name
        (("/etc", True, "/dst/new", False, False), ("/dst", ("etc", "new"))),
        # a file to a new path
        (("/etc/f", False, "/dst/new", False, False), ("/dst", ("f", "new"))),
        # a followed symlink keeps the link's name
        (("/etc/target", False, "/dst/new", False, False, "link"), ("/dst", ("link", "new"))),
    ],
)
def test_plan_copy(args: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert plan_copy(*args) == expected


def test_plan_copy_errors() -> None:
    with pytest.raises(CopyError, match="cannot copy directory"):
        plan_copy("/etc", True, "/dst/file", True, False)
    with pytest.raises(CopyError, match="no such directory"):
        plan_copy("/etc/f", False, "/dst/nodir/", False, False)


def test_rebase_name() -> None:
    assert rebase_name("etc", "etc", "new") == "new"
    assert rebase_name("etc/sub/x", "etc", "new") == "new/sub/x"
    assert rebase_name("./etc/x", "etc", "new") == "new/x"
    assert rebase_name("other/x", "etc", "new") == "other/x"


def _pair() -> tuple[Hijacked, socket.socket]:
    a, b = socket.socketpair()
    return Hijacked(_Conn(a)), b


def test_streamer_demultiplexes_stdout_and_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    conn, daemon = _pair()

    def serve() -> None:
        daemon.sendall(encode_frame(1, b"out\n") + encode_frame(2, b"err\n"))
        daemon.shutdown(socket.SHUT_WR)

    threading.Thread(target=serve).start()
    assert Streamer(conn, tty=False, stdin=False, stdout=True, stderr=True).run() == "done"
    out, err = capfd.readouterr()
    assert out == "out\n" and err == "err\n"
    daemon.close()


def test_streamer_passes_tty_output_raw(capfd: pytest.CaptureFixture[str]) -> None:
    conn, daemon = _pair()
    daemon.sendall(b"raw\r\n")
    daemon.shutdown(socket.SHUT_WR)
    assert Streamer(conn, tty=True, stdin=False, stdout=True, stderr=True).run() == "done"
    assert capfd.readouterr().out == "raw\r\n"
    daemon.close()
