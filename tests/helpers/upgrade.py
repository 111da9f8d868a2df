"""An upgrade in place, for tests: a berthd of an older commit of this repository, and
the berthd of the work tree after it on the same data root, exec root, socket and bridge.

The old source comes from git (`git archive`), never from the work tree, and runs with
the work tree's interpreter and venv, its package put first on PYTHONPATH. Its shims are
spawned from its own package directory, so after the upgrade the new berthd talks to old
shims, as it does on a host upgraded under live-restore. Nothing here kills processes by
name: every daemon is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cli import Cli
from .daemon import REPO, VENV_BIN, BerthDaemon, DaemonStartError, docker_environment

PYTHON = VENV_BIN / "python"
_DEFAULT_NETWORKS = {"bridge", "host", "none"}


class OldSourceUnavailable(Exception):
    """The commit is not in this clone (a shallow clone, an archive without .git)."""


def old_source(commit: str, into: Path) -> Path:
    """`src/` of `commit`, extracted below `into`; returns the directory to put on PYTHONPATH."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True, text=True,
    )
    if known.returncode != 0:
        raise OldSourceUnavailable(
            f"commit {commit} is not in the clone at {REPO} (shallow clone?): "
            + (known.stderr.strip() or f"git exited {known.returncode}")
        )
    into.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", commit, "src"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout,
                           capture_output=True, text=True)
    archive.stdout.close()
    archive_err = archive.stderr.read().decode(errors="replace") if archive.stderr else ""
    if archive.wait() != 0 or untar.returncode != 0:
        raise RuntimeError(f"git archive {commit} src | tar -x failed: {archive_err}{untar.stderr}")
    src = into / "src"
    # The old package must win over the venv's editable install of the new one.
    found = subprocess.run(
        [str(PYTHON), "-c", "import berth; print(berth.__file__)"],
        capture_output=True, text=True, env={"PYTHONPATH": str(src)},
    )
    assert found.stdout.strip() == str(src / "berth" / "__init__.py"), (
        f"the old source does not shadow the installed berth: {found.stdout!r} {found.stderr!r}")
    return src


@dataclass
class Upgrade:
    """The same daemon (names, directories, bridge) before and after the upgrade."""

    old: BerthDaemon
    new: BerthDaemon
    docker: Cli

    def stop_old_for_upgrade(self, timeout: float = 20.0) -> int:
        """SIGTERM to the old berthd, as a package upgrade stops the service. Unlike
        BerthDaemon.stop() it leaves the default bridge: the new berthd takes it over."""
        proc = self.old.proc
        assert proc is not None, "the old berthd was never started"
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(
                f"the old berthd (pid {proc.pid}) ignored SIGTERM for {timeout} s"
            ) from None

    def running(self) -> BerthDaemon | None:
        for daemon in (self.new, self.old):
            if daemon.proc is not None and daemon.proc.poll() is None and daemon.ping():
                return daemon
        return None


@contextlib.contextmanager
def upgrade_in_place(root: Path, marker: str, old_src: Path,
                     *extra_args: str) -> Iterator[Upgrade]:
    """An old berthd (not started) and the new one that follows it. Afterwards, through
    whichever of them serves (the new one is started if neither does), every container
    with its anonymous volumes, every volume and user network is removed, and the
    daemon is stopped with its bridge."""
    old = BerthDaemon(root, marker=marker, name=f"up{uuid.uuid4().hex[:6]}",
                      extra_args=list(extra_args),
                      program=[str(PYTHON), "-m", "berth.daemon.main"],
                      extra_env={"PYTHONPATH": str(old_src)})
    new = BerthDaemon(root, marker=marker, name=old.name, bridge=old.bridge,
                      extra_args=list(extra_args))
    config = root / f"{old.name}-docker-config"
    config.mkdir()
    upgrade = Upgrade(old, new, Cli("docker", docker_environment(new, config)))
    try:
        yield upgrade
    except BaseException:
        # both daemons wrote to the same log: what the old one did, then the new one
        print(upgrade.new.log_tail(20_000), file=sys.stderr)
        raise
    finally:
        _clean_up(upgrade)


def _clean_up(upgrade: Upgrade) -> None:
    daemon = upgrade.running()
    if daemon is None and upgrade.old.proc is not None:
        try:
            upgrade.new.start()
            daemon = upgrade.new
        except DaemonStartError as e:
            print(f"cannot start berthd to clean up after the upgrade test: {e}", file=sys.stderr)
    if daemon is None:
        upgrade.old.remove_bridge()
        return
    docker = upgrade.docker
    ids = docker("ps", "-aq").stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids)
    volumes = docker("volume", "ls", "-q").stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)
    networks = set(docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    for name in sorted(networks - _DEFAULT_NETWORKS):
        docker("network", "rm", name)
    daemon.stop()
