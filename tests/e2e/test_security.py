"""Isolation: capabilities, seccomp, no-new-privileges, read-only root, masked and
read-only /proc paths, devices, sysctls, --privileged, --runtime and --init.

Docker's defaults are the reference: the capability set 0xa80425fb, its default seccomp
profile (mount and unshare refused unless CAP_SYS_ADMIN is added), /proc/kcore masked,
/proc/sys read-only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker as docker_py
import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

DEFAULT_CAPS = "00000000a80425fb"
MKNOD = "mknod /dev/x c 1 8"
MOUNT_TMPFS = "mkdir -p /mnt && mount -t tmpfs none /mnt"
NO_CHMOD_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}
    ],
}


def status_field(text: str, field: str) -> str:
    """The value of FIELD in a /proc/<pid>/status text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    raise AssertionError(f"no {field} in {text!r}")


def run_sh(docker: Cli, script: str, *options: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", *options, "busybox", "sh", "-c", script)


def container_status(docker: Cli, *options: str) -> str:
    res = docker("run", "--rm", *options, "busybox", "cat", "/proc/self/status")
    assert res.returncode == 0, describe(res)
    return res.stdout


# Capabilities.


def test_default_capabilities(docker: Cli) -> None:
    status = container_status(docker)
    assert status_field(status, "CapEff") == DEFAULT_CAPS
    assert status_field(status, "CapPrm") == DEFAULT_CAPS
    assert status_field(status, "CapBnd") == DEFAULT_CAPS
    assert status_field(status, "CapInh") == "0000000000000000"
    assert status_field(status, "CapAmb") == "0000000000000000"
    assert status_field(status, "NoNewPrivs") == "0"
    assert status_field(status, "Seccomp") == "2"


def test_mknod_allowed_by_default(docker: Cli) -> None:
    res = run_sh(docker, f"{MKNOD} && ls -l /dev/x")
    assert res.returncode == 0, describe(res)
    assert res.stdout.startswith("crw"), res.stdout


def test_cap_drop_mknod(docker: Cli) -> None:
    res = run_sh(docker, MKNOD, "--cap-drop", "MKNOD")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr


def test_cap_drop_lowers_capeff(docker: Cli) -> None:
    # CAP_MKNOD is bit 27: a80425fb without it is a00425fb.
    status = container_status(docker, "--cap-drop", "MKNOD")
    assert status_field(status, "CapEff") == "00000000a00425fb"


def test_mount_and_unshare_refused_by_default(docker: Cli) -> None:
    res = run_sh(docker, MOUNT_TMPFS)
    assert res.returncode != 0, describe(res)
    assert "mount" in res.stderr
    res = run_sh(docker, "unshare -m true")
    assert res.returncode != 0, describe(res)
    assert "unshare" in res.stderr


def test_cap_add_sys_admin_allows_mount(docker: Cli) -> None:
    # Docker's default seccomp profile allows mount and unshare to CAP_SYS_ADMIN (on a
    # host without AppArmor: docker-default would still deny mount).
    res = run_sh(
        docker, f"{MOUNT_TMPFS} && mount | grep ' /mnt ' && unshare -m true && echo ok",
        "--cap-add", "SYS_ADMIN",
    )
    assert res.returncode == 0, describe(res)
    assert res.stdout.startswith("none on /mnt type tmpfs"), res.stdout
    assert res.stdout.endswith("ok\n")


def test_cap_add_unknown_is_refused(docker: Cli) -> None:
    res = docker("run", "--rm", "--cap-add", "BOGUS", "busybox", "true")
    assert res.returncode == 125, describe(res)
    assert 'unknown capability: "CAP_BOGUS"' in res.stderr


def test_non_root_user_has_no_effective_capabilities(docker: Cli) -> None:
    # Docker sets no ambient or inheritable capabilities: a non-root process has none
    # in effect; what --cap-add adds only widens the bounding set.
    status = container_status(docker, "--user", "1000:1000", "--cap-add", "NET_ADMIN")
    assert status_field(status, "CapEff") == "0000000000000000"
    assert status_field(status, "CapPrm") == "0000000000000000"
    assert status_field(status, "CapAmb") == "0000000000000000"
    # CAP_NET_ADMIN is bit 12.
    assert status_field(status, "CapBnd") == "00000000a80435fb"
    assert status_field(status, "Uid").split()[:2] == ["1000", "1000"]


def test_privileged(docker: Cli) -> None:
    host_bounding = status_field(Path("/proc/self/status").read_text(), "CapBnd")
    res = run_sh(docker, "cat /proc/self/status; mount | grep ' /sys '", "--privileged")
    assert res.returncode == 0, describe(res)
    assert status_field(res.stdout, "CapEff") == host_bounding
    assert status_field(res.stdout, "Seccomp") == "0"
    sys_line = res.stdout.splitlines()[-1]
    assert sys_line.startswith("sysfs on /sys type sysfs (rw,"), sys_line


def test_sys_is_read_only_by_default(docker: Cli) -> None:
    res = run_sh(docker, "mount | grep ' /sys '")
    assert res.returncode == 0, describe(res)
    assert res.stdout.startswith("sysfs on /sys type sysfs (ro,"), res.stdout


# Seccomp.


def test_seccomp_profile_refuses_chmod(docker: Cli, tmp_path: Path) -> None:
    profile = tmp_path / "no-chmod.json"
    profile.write_text(json.dumps(NO_CHMOD_PROFILE))
    res = run_sh(docker, "chmod 600 /etc/passwd", "--security-opt", f"seccomp={profile}")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr
    # Everything else is allowed: that profile has no mount rule, the capabilities decide.
    res = run_sh(docker, "touch /f && echo ok", "--security-opt", f"seccomp={profile}")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "ok\n"


def test_seccomp_unconfined(docker: Cli) -> None:
    status = container_status(docker, "--security-opt", "seccomp=unconfined")
    assert status_field(status, "Seccomp") == "0"
    assert status_field(status, "CapEff") == DEFAULT_CAPS


def test_seccomp_profile_that_is_not_json(docker: Cli, tmp_path: Path) -> None:
    # The docker CLI reads the file and refuses it before asking the daemon.
    profile = tmp_path / "broken.json"
    profile.write_text('{"defaultAction": ')
    res = docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "true")
    assert res.returncode == 125, describe(res)
    assert "seccomp profile" in res.stderr


def test_seccomp_profile_with_an_unknown_action(
    docker: Cli, tmp_path: Path, new_name: Names
) -> None:
    # Valid JSON that the daemon cannot turn into a filter: docker run fails with 125.
    profile = tmp_path / "bad-action.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_BOGUS"}))
    name = new_name("badsec")
    res = docker("run", "--name", name, "--security-opt", f"seccomp={profile}", "busybox", "true")
    assert res.returncode == 125, describe(res)
    assert "Error response from daemon" in res.stderr
    assert "SCMP_ACT_BOGUS" in res.stderr
    running = docker("inspect", "-f", "{{.State.Running}}", name)
    assert running.returncode != 0 or running.stdout.strip() == "false"


def test_no_new_privileges(docker: Cli) -> None:
    status = container_status(docker, "--security-opt", "no-new-privileges")
    assert status_field(status, "NoNewPrivs") == "1"


def test_apparmor_option(docker: Cli, new_name: Names) -> None:
    """On a host without AppArmor the option is ignored, as dockerd ignores it; with it,
    the container's processes run under the profile (attr/current inside names it)."""
    from berth.runtime import apparmor

    name = new_name("aa")
    if apparmor.enabled():
        res = docker("run", "--name", name, "--security-opt", "apparmor=unconfined", "busybox",
                     "cat", "/proc/self/attr/current")
        assert res.returncode == 0, describe(res)
        assert res.stdout.strip() == "unconfined"
        expected = "unconfined"
    else:
        res = docker("run", "--name", name, "--security-opt", "apparmor=berth-no-such-profile",
                     "busybox", "echo", "ran")
        assert res.returncode == 0 and res.stdout.strip() == "ran", describe(res)
        expected = ""
    assert docker.ok("inspect", "-f", "{{.AppArmorProfile}}", name).strip() == expected


# Filesystem: read-only root, masked and read-only /proc paths, devices, sysctls.


def test_read_only_root(docker: Cli) -> None:
    res = run_sh(docker, "touch /x", "--read-only")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr
    res = run_sh(docker, "touch /tmp/x", "--read-only")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr


def test_read_only_root_with_tmpfs_tmp(docker: Cli) -> None:
    res = run_sh(docker, "touch /tmp/x && echo ok; touch /y", "--read-only", "--tmpfs", "/tmp")
    assert res.stdout == "ok\n", describe(res)
    assert "Read-only file system" in res.stderr


def test_masked_paths(docker: Cli) -> None:
    # /proc/kcore (absent on some kernels), /proc/timer_list and /sys/firmware are masked:
    # their content cannot be read, even with CAP_SYS_RAWIO.
    script = "cat /proc/kcore 2>/dev/null | wc -c; wc -c < /proc/timer_list; ls /sys/firmware | wc -l"
    res = run_sh(docker, script, "--cap-add", "SYS_RAWIO")
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["0", "0", "0"]
    assert len(Path("/proc/timer_list").read_bytes()) > 0
    # --privileged masks nothing.
    res = run_sh(docker, "wc -c < /proc/timer_list; ls /sys/firmware | wc -l", "--privileged")
    assert res.returncode == 0, describe(res)
    counts = res.stdout.split()
    assert int(counts[0]) > 0
    assert int(counts[1]) == len(list(Path("/sys/firmware").iterdir()))


def test_proc_sys_is_read_only(docker: Cli) -> None:
    res = run_sh(docker, "echo 1 > /proc/sys/kernel/shm_rmid_forced")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr


def test_device_is_usable_under_its_new_name(docker: Cli) -> None:
    res = run_sh(docker, "echo hi > /dev/mynull && ls -l /dev/mynull && cat /dev/mynull",
                 "--device", "/dev/null:/dev/mynull")
    assert res.returncode == 0, describe(res)
    fields = res.stdout.split()
    assert fields[0].startswith("crw"), res.stdout
    assert fields[4:6] == ["1,", "3"], res.stdout


def test_sysctl_is_set_inside(docker: Cli) -> None:
    host = Path("/proc/sys/kernel/shm_rmid_forced").read_text().strip()
    res = docker("run", "--rm", "--sysctl", "kernel.shm_rmid_forced=1", "busybox",
                 "cat", "/proc/sys/kernel/shm_rmid_forced")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "1\n"
    # An IPC-namespaced sysctl: the host keeps its own value.
    assert Path("/proc/sys/kernel/shm_rmid_forced").read_text().strip() == host


# Runtimes and init.


def test_runtime_runc(docker: Cli, new_name: Names) -> None:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    name = new_name("runc")
    res = docker("run", "--name", name, "--runtime", "runc", "busybox", "cat", "/proc/self/status")
    assert res.returncode == 0, describe(res)
    assert status_field(res.stdout, "CapEff") == DEFAULT_CAPS
    assert status_field(res.stdout, "Seccomp") == "2"
    assert docker.ok("inspect", "-f", "{{.HostConfig.Runtime}}", name).strip() == "runc"


def test_init_is_pid_1(docker: Cli) -> None:
    if not any(Path(p).exists() for p in ("/usr/bin/tini", "/usr/bin/tini-static",
                                          "/usr/bin/docker-init")):
        pytest.skip("Debian's tini is not installed")
    res = docker("run", "--rm", "--init", "busybox", "sh", "-c",
                 "cat /proc/1/cmdline; echo; echo $$")
    assert res.returncode == 0, describe(res)
    cmdline, pid = res.stdout.splitlines()
    assert cmdline.split("\0")[:4] == ["/sbin/docker-init", "--", "sh", "-c"], cmdline
    assert pid != "1"


# docker-py.


def test_dockerpy_cap_drop(docker_client: Any) -> None:
    with pytest.raises(docker_py.errors.ContainerError) as excinfo:
        docker_client.containers.run("busybox", ["sh", "-c", MKNOD], cap_drop=["MKNOD"],
                                     remove=True)
    assert b"Operation not permitted" in excinfo.value.stderr
    out = docker_client.containers.run("busybox", ["grep", "CapEff", "/proc/self/status"],
                                       cap_add=["SYS_ADMIN"], remove=True)
    # CAP_SYS_ADMIN is bit 21.
    assert out.split() == [b"CapEff:", b"00000000a82425fb"]
