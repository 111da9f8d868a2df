"""A container init that fails reports why, even when it exits with the runtime's last word
to it unread: closing a SEQPACKET socket with data queued resets the channel, and the next
read reports ECONNRESET once before it returns the init's queued error."""

import json
import socket

from berth.runtime.process import _receive


def test_the_error_of_an_init_that_left_our_word_unread_is_still_read() -> None:
    ours, init = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    error = json.dumps({"error": "linux.seccomp: unknown action SCMP_ACT_BOGUS"}).encode()
    init.send(error)
    ours.send(b"placed")  # the init never reads it
    init.close()
    try:
        assert _receive(ours) == (error, [])
        assert _receive(ours) == (b"", [])  # then the end, as from any init that exited
    finally:
        ours.close()
