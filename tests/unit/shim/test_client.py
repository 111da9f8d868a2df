"""berthd's calls to a shim fail with ShimError, whatever way the shim goes away: every
caller handles ShimError, and an OSError escaping instead once ended a container's exit
monitor (and so hung `docker rm -f` of it)."""

import asyncio
import os
import socket
import tempfile
import time

import pytest

from berth.shim import client as shimclient


async def _against(serve: str) -> str:
    """Call a "shim" on a real UNIX socket that answers as `serve` says; the error."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "shim.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        loop = asyncio.get_running_loop()

        def shim() -> None:
            conn, _ = listener.accept()
            if serve == "reset":  # gone with the request unread: the client sees ECONNRESET
                time.sleep(0.1)
            elif serve == "garbage":
                conn.recv(65536)
                conn.sendall(b"\x00not json\n")
            else:
                conn.recv(65536)
            conn.close()

        served = loop.run_in_executor(None, shim)
        try:
            with pytest.raises(shimclient.ShimError) as err:
                await shimclient.call(path, {"op": "wait", "pad": "x" * 1000})
        finally:
            await served
            listener.close()
        return str(err.value)


@pytest.mark.parametrize(("serve", "words"), [
    ("reset", "closed the connection"),
    ("eof", "closed the connection"),
    ("garbage", "not JSON"),
])
def test_a_shim_that_goes_away_is_a_shim_error(serve: str, words: str) -> None:
    assert words in asyncio.run(_against(serve))


def test_a_shim_that_is_not_there_is_a_shim_error() -> None:
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(shimclient.ShimError, match="does not answer"):
            asyncio.run(shimclient.call(os.path.join(d, "none.sock"), {"op": "wait"}))
