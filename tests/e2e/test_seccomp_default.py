"""The default seccomp profile is Docker's allow-list, and the daemon's --seccomp-profile.

A busybox shell cannot make keyctl, add_key or setns itself, so a small static probe
(tests/helpers/syscall_probe.c, built here with `gcc -static`) is bind-mounted into the
container: it makes each call named on its command line and prints its errno. Each
call's arguments make it fail harmlessly once past the filter (ENOENT, EBADF, ...), so
EPERM means the filter refused it.

The bundle berth writes is compared with Docker's default profile, kept as reference
data in ../shared/reference/docker-seccomp-default.json (not part of the repository).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, DaemonStartError, private_daemon

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

PROBE_SOURCE = Path(__file__).resolve().parents[1] / "helpers" / "syscall_probe.c"
REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "docker-seccomp-default.json"
CALLS = ["keyctl", "add_key", "unshare", "mount", "umount2", "setns", "socket_vsock", "socket_inet",
         "personality_bsd", "userfaultfd", "ptrace"]
NO_CHMOD_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    # A name libseccomp does not know is skipped, as runc skips it: the rest still applies.
    "syscalls": [{"names": ["no_such_call", "chmod", "fchmod", "fchmodat", "fchmodat2"],
                  "action": "SCMP_ACT_ERRNO"}],
}


@pytest.fixture(scope="module")
def probe(berth_root: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: run scripts/setup with BERTH_SETUP_PEERS=1 (it installs gcc and libc6-dev)")
    out = berth_root / f"syscall-probe-{uuid.uuid4().hex[:6]}"
    res = subprocess.run(["gcc", "-static", "-Os", "-o", str(out), str(PROBE_SOURCE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def run_probe(docker: Cli, probe: Path, *options: str) -> dict[str, int]:
    res = docker("run", "--rm", "-v", f"{probe}:/probe:ro", *options, "busybox", "/probe", *CALLS)
    assert res.returncode == 0, describe(res)
    return {name: int(code) for name, code in (line.split() for line in res.stdout.splitlines())}


def test_default_container_is_refused_what_dockers_profile_refuses(docker: Cli, probe: Path) -> None:
    assert run_probe(docker, probe) == {
        "keyctl": errno.EPERM, "add_key": errno.EPERM, "unshare": errno.EPERM, "mount": errno.EPERM,
        "umount2": errno.EPERM, "setns": errno.EPERM, "socket_vsock": errno.EPERM, "socket_inet": 0,
        "personality_bsd": errno.EPERM, "userfaultfd": errno.EPERM,
        "ptrace": errno.ESRCH,  # allowed since kernel 4.8, as in Docker's profile
    }


def test_cap_sys_admin_opens_mount_and_namespaces_but_not_keyrings(docker: Cli, probe: Path) -> None:
    seen = run_probe(docker, probe, "--cap-add", "SYS_ADMIN")
    assert {k: seen[k] for k in ("unshare", "mount", "umount2", "setns")} == {
        "unshare": 0, "mount": errno.ENOENT, "umount2": errno.ENOENT, "setns": errno.EBADF}
    assert {k: seen[k] for k in ("keyctl", "add_key", "socket_vsock", "personality_bsd")} == {
        "keyctl": errno.EPERM, "add_key": errno.EPERM, "socket_vsock": errno.EPERM, "personality_bsd": errno.EPERM}


def test_unconfined_container_reaches_the_kernel(docker: Cli, probe: Path) -> None:
    # The probe tells the filter's EPERM from the kernel's own answers.
    seen = run_probe(docker, probe, "--security-opt", "seccomp=unconfined")
    assert seen["keyctl"] == errno.ENOKEY
    assert seen["add_key"] == errno.EINVAL
    assert seen["personality_bsd"] == 0


def _rows(section: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(name, rule["action"], json.dumps([rule.get("errnoRet"), rule.get("args")], sort_keys=True))
            for rule in section["syscalls"] for name in rule["names"]}


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"no reference data at {REFERENCE}")
@pytest.mark.parametrize("cap_add", [[], ["SYS_ADMIN"], ["SYS_PTRACE", "SYS_TIME"]])
def test_the_bundle_is_dockers_allow_list(
    docker: Cli, berthd: BerthDaemon, new_name: Names, cap_add: list[str]
) -> None:
    from berth.runtime.seccomp_default import resolve

    name = new_name("sdef")
    options = [a for cap in cap_add for a in ("--cap-add", cap)]
    cid = docker.ok("run", "-d", "--name", name, *options, "busybox", "sleep", "60").strip()
    config = json.loads((berthd.exec_root / "containers" / cid / "config.json").read_text())
    docker.ok("rm", "-f", name)
    section = config["linux"]["seccomp"]
    assert (section["defaultAction"], section["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", errno.EPERM)
    docker_section = resolve(json.loads(REFERENCE.read_text()), os.uname().machine,
                             set(config["process"]["capabilities"]["bounding"]))
    assert docker_section is not None
    assert section["architectures"] == docker_section["architectures"]
    assert _rows(section) == _rows(docker_section)


def test_info_shows_the_builtin_profile(docker: Cli, berth: Cli) -> None:
    assert json.loads(docker.ok("info", "-f", "{{json .SecurityOptions}}")) == ["name=seccomp,profile=builtin"]
    for cli in (docker, berth):
        out = cli.ok("info")
        assert " Security Options:\n  seccomp\n   Profile: builtin\n" in out, out


@pytest.fixture(scope="module")
def no_chmod_daemon(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> Iterator[tuple[Path, Cli]]:
    profile = berth_root / f"no-chmod-{uuid.uuid4().hex[:6]}.json"
    profile.write_text(json.dumps(NO_CHMOD_PROFILE))
    with private_daemon(berth_root, berthd, busybox_tar, "--seccomp-profile", str(profile), prefix="sc") as (_, docker):
        yield profile, docker


def test_daemon_profile_applies_to_containers_naming_none(no_chmod_daemon: tuple[Path, Cli], probe: Path) -> None:
    _, docker = no_chmod_daemon
    res = docker("run", "--rm", "busybox", "chmod", "600", "/etc/passwd")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr
    # That profile allows everything else: keyctl reaches the kernel.
    assert run_probe(docker, probe)["keyctl"] == errno.ENOKEY
    # seccomp=builtin asks for the default whatever the daemon's is.
    res = docker("run", "--rm", "--security-opt", "seccomp=builtin", "busybox", "chmod", "600", "/etc/passwd")
    assert res.returncode == 0, describe(res)
    assert run_probe(docker, probe, "--security-opt", "seccomp=builtin")["keyctl"] == errno.EPERM


def test_info_shows_the_daemon_profile(no_chmod_daemon: tuple[Path, Cli]) -> None:
    profile, docker = no_chmod_daemon
    info = json.loads(docker.ok("info", "-f", "{{json .}}"))
    assert info["SecurityOptions"] == [f"name=seccomp,profile={profile}"]
    assert info["Warnings"] == ["WARNING: daemon is not using the default seccomp profile"]
    res = docker("info")
    assert f"  seccomp\n   Profile: {profile}\n" in res.stdout, res.stdout
    assert "WARNING: daemon is not using the default seccomp profile" in res.stderr


def test_daemon_json_unconfined(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path, probe: Path) -> None:
    path = berth_root / f"sc{uuid.uuid4().hex[:6]}-daemon.json"
    path.write_text(json.dumps({"seccomp-profile": "unconfined"}))
    with private_daemon(berth_root, berthd, busybox_tar, "--config-file", str(path), prefix="sc") as (_, docker):
        assert json.loads(docker.ok("info", "-f", "{{json .SecurityOptions}}")) == ["name=seccomp,profile=unconfined"]
        assert "Seccomp:\t0\n" in docker.ok("run", "--rm", "busybox", "cat", "/proc/self/status")
        assert run_probe(docker, probe)["keyctl"] == errno.ENOKEY


def test_daemon_profile_with_an_unknown_action_fails_each_start(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    # dockerd reads the file at start and decodes it for each container, whose start
    # fails in the runtime: the container stays created, nothing runs.
    profile = berth_root / f"bogus-{uuid.uuid4().hex[:6]}.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_BOGUS"}))
    with private_daemon(berth_root, berthd, busybox_tar, "--seccomp-profile", str(profile), prefix="sc") as (_, docker):
        res = docker("run", "--name", "bogus", "busybox", "true")
        assert res.returncode == 125, describe(res)
        assert "Error response from daemon" in res.stderr and "SCMP_ACT_BOGUS" in res.stderr, res.stderr
        assert docker.ok("inspect", "-f", "{{.State.Status}}", "bogus").strip() == "created"
        res = docker("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "echo", "ok")
        assert res.returncode == 0 and res.stdout == "ok\n", describe(res)


def test_missing_profile_file_stops_the_daemon(berth_root: Path, berthd: BerthDaemon) -> None:
    missing = berth_root / "no-such-profile.json"
    daemon = BerthDaemon(berth_root, marker=berthd.marker, name=f"sc{uuid.uuid4().hex[:6]}",
                         extra_args=["--seccomp-profile", str(missing)])
    with pytest.raises(DaemonStartError, match=rf"opening seccomp profile \({missing}\) failed: open {missing}: "
                                               "no such file or directory"):
        daemon.start()
    assert daemon.proc is not None and daemon.proc.returncode not in (0, None)
