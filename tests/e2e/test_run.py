"""`docker run`: output, exit codes, stdio, and the process's environment."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe, import_image

pytestmark = pytest.mark.usefixtures("busybox")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_echo_prints_exactly_its_output(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "echo", "hi")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hi\n"


def test_exit_code_is_the_containers(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "sh", "-c", "exit 7")
    assert res.returncode == 7, describe(res)
    assert res.stdout == ""


def test_command_is_pid_1(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "cat", "/proc/1/cmdline")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "cat\0/proc/1/cmdline\0"


def test_hostname_is_the_short_container_id(docker: Cli, new_name: Callable[[str], str]) -> None:
    name = new_name("host")
    res = docker("run", "--name", name, "busybox", "hostname")
    assert res.returncode == 0, describe(res)
    hostname = res.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", hostname), res.stdout
    full_id = docker.ok("inspect", "-f", "{{.Id}}", name).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", full_id), full_id
    assert hostname == full_id[:12]


def test_stdin_is_piped_with_i(docker: Cli) -> None:
    res = docker("run", "-i", "--rm", "busybox", "cat", input="hello\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hello\n"


def test_stdin_is_closed_without_i(docker: Cli) -> None:
    # Without -i the container's stdin is not attached: cat sees end of file at once.
    res = docker("run", "--rm", "busybox", "cat", input="ignored\n", timeout=30)
    assert res.returncode == 0, describe(res)
    assert res.stdout == ""


def test_tty_output_has_crlf(docker: Cli) -> None:
    # With -t the container writes to a terminal, whose line discipline adds the CR.
    res = docker("run", "--rm", "-t", "busybox", "sh", "-c", "echo hi; test -t 1 && echo tty")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hi\r\ntty\r\n"


def test_stdout_and_stderr_stay_separate(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "out\n"
    assert res.stderr == "err\n"


def test_large_output_arrives_whole(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "sh", "-c", "seq 1 20000")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "".join(f"{i}\n" for i in range(1, 20001))


# Environment, working directory, user, entrypoint.


def test_env_option_sets_a_variable(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "-e", "FOO=bar", "busybox", "sh", "-c", "echo $FOO")
    assert out == "bar\n"


def test_default_environment(docker: Cli) -> None:
    # The image sets no ENV: Docker supplies PATH, HOME and HOSTNAME.
    out = docker.ok("run", "--rm", "busybox", "sh", "-c", 'echo "$PATH|$HOME|$HOSTNAME"')
    path, home, hostname = out.rstrip("\n").split("|")
    assert path == DEFAULT_PATH
    assert home == "/root"
    assert re.fullmatch(r"[0-9a-f]{12}", hostname), out


@pytest.fixture(scope="module")
def env_image(docker: Cli, busybox_tar: Path) -> Iterator[str]:
    ref = "berth-envtest:latest"
    res = import_image(docker, busybox_tar, ref, "ENV GREETING=from-image", "ENV PATH=/bin:/sbin")
    assert res.returncode == 0, describe(res)
    yield ref
    docker("rmi", "-f", ref)


def test_image_env_reaches_the_container(docker: Cli, env_image: str) -> None:
    out = docker.ok("run", "--rm", env_image, "sh", "-c", 'echo "$GREETING|$PATH"')
    assert out == "from-image|/bin:/sbin\n"


def test_env_option_overrides_image_env(docker: Cli, env_image: str) -> None:
    out = docker.ok("run", "--rm", "-e", "GREETING=from-cli", env_image, "sh", "-c", "echo $GREETING")
    assert out == "from-cli\n"


def test_workdir(docker: Cli) -> None:
    assert docker.ok("run", "--rm", "-w", "/tmp", "busybox", "pwd") == "/tmp\n"


def test_missing_workdir_is_created(docker: Cli) -> None:
    assert docker.ok("run", "--rm", "-w", "/made/for/you", "busybox", "pwd") == "/made/for/you\n"


def test_user_by_name(docker: Cli) -> None:
    assert docker.ok("run", "--rm", "-u", "nobody", "busybox", "id", "-u") == "65534\n"


def test_user_by_numbers(docker: Cli) -> None:
    # Docker puts the primary group among the supplementary groups too.
    out = docker.ok("run", "--rm", "-u", "1234:1234", "busybox", "id")
    assert out == "uid=1234 gid=1234 groups=1234\n"


def test_entrypoint_option(docker: Cli) -> None:
    assert docker.ok("run", "--rm", "--entrypoint", "echo", "busybox", "hi") == "hi\n"


def test_image_cmd_is_the_default_command(docker: Cli) -> None:
    # CMD ["sh"] with stdin "echo from-sh" on -i: the image's default command runs.
    res = docker("run", "--rm", "-i", "busybox", input="echo from-sh\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "from-sh\n"


# What the container sees of the system.


def test_ps_sees_only_the_containers_processes(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "busybox", "ps", "-o", "pid,comm")
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"], out
    assert [line.split() for line in lines[1:]] == [["1", "ps"]], out


def test_sys_is_read_only(docker: Cli) -> None:
    res = docker("run", "--rm", "busybox", "touch", "/sys/x")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr, describe(res)


def test_dev_has_the_standard_nodes(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "busybox", "ls", "-1", "/dev")
    entries = set(out.split())
    expected = {"null", "zero", "random", "urandom", "tty", "full", "pts", "shm"}
    assert expected <= entries, f"missing from /dev: {sorted(expected - entries)}"
    script = (
        "for n in null zero random urandom tty full; do test -c /dev/$n || echo notchar $n; done; "
        "test -d /dev/pts && test -d /dev/shm && echo dirs-ok; "
        "head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok"
    )
    out = docker.ok("run", "--rm", "busybox", "sh", "-c", script)
    assert out.split("\n") == ["dirs-ok", " 00 00 00 00", "null-ok", ""], out


def test_proc_and_dev_mounts(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "busybox", "cat", "/proc/mounts")
    fstypes = {}
    for line in out.splitlines():
        _src, target, fstype, *_ = line.split()
        fstypes[target] = fstype
    assert fstypes.get("/") == "overlay", out
    assert fstypes.get("/proc") == "proc", out
    assert fstypes.get("/dev/pts") == "devpts", out
    assert fstypes.get("/dev/shm") == "tmpfs", out
    assert fstypes.get("/sys") == "sysfs", out


def test_loopback_is_up(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "busybox", "ip", "link", "show", "lo")
    flags = re.search(r"<([^>]*)>", out)
    assert flags and "UP" in flags.group(1).split(","), out


def test_containers_from_one_image_do_not_share_writes(
    docker: Cli, new_name: Callable[[str], str]
) -> None:
    writer = new_name("writer")
    docker.ok("run", "--name", writer, "busybox", "sh", "-c", "echo x > /marker && cat /marker")
    res = docker("run", "--rm", "busybox", "cat", "/marker")
    assert res.returncode == 1, describe(res)
    assert "No such file or directory" in res.stderr


def test_rootfs_changes_survive_a_restart(docker: Cli, new_name: Callable[[str], str]) -> None:
    name = new_name("persist")
    docker.ok(
        "run", "--name", name, "busybox", "sh", "-c",
        "test -e /marker && cat /marker || echo first > /marker",
    )
    out = docker.ok("start", "-a", name)
    assert out == "first\n"
