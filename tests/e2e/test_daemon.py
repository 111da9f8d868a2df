"""The daemon process itself: its pidfile, and one daemon per data root."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from helpers.daemon import BerthDaemon


def test_pidfile_holds_the_daemons_pid(berthd: BerthDaemon) -> None:
    assert berthd.pidfile.read_text().strip() == str(berthd.pid)


@pytest.mark.timeout(60)
def test_second_daemon_on_the_same_data_root_refuses(
    berthd: BerthDaemon, berth_root: Path
) -> None:
    # Everything of its own except the data root.
    second = BerthDaemon(berth_root, marker=berthd.marker, name=f"b2{uuid.uuid4().hex[:6]}")
    second.data_root = berthd.data_root
    proc = second.launch()
    try:
        status = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        second.stop(timeout=5)
    output = second.log_since(0)
    assert status is not None, "a second berthd on the same data root kept running:\n" + output
    assert status != 0
    assert str(berthd.data_root) in output or any(
        word in output.lower() for word in ("already running", "in use", "locked")
    ), output
    assert len(output) < 2000 and "Traceback" not in output, output
    # The first daemon is unharmed and still serves.
    assert berthd.ping()
    assert Path(berthd.socket_path).exists()
    assert berthd.pidfile.read_text().strip() == str(berthd.pid)
