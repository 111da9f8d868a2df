"""berth-runtime against runc and crun: the same bundle must give the container the
same view of itself.

Each bundle starts from `runc spec`'s config.json, made non-interactive, and runs
/probe.sh, which prints what the container sees: its capability sets, seccomp and
no_new_privs status, `id`, its mount table, the cgroup limit files under
/sys/fs/cgroup, hostname, rlimits, environment, working directory, whether chmod is
allowed and a sysctl. Every bundle runs under `berth-runtime run`, `runc run` and
(when it runs here) `crun run`, each with its own rootfs copy, container id and
`--root`; berth's output must equal each oracle's once the normalizations below are
applied. Each normalization is a documented, legitimate difference; anything else
fails the test with a diff of the two views.
"""

from __future__ import annotations

import copy
import difflib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from helpers.bundles import Lab, crun_unusable_reason, open_lab, runc_spec_default

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="runtimes need root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
]

PROBE_SCRIPT = r"""#!/bin/sh
echo "== status"; grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status
echo "== id"; id
echo "== mountinfo"; cat /proc/self/mountinfo
echo "== cgroup"
for f in memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us pids/pids.max; do
    printf '%s=' "$f"; cat "/sys/fs/cgroup/$f" 2>/dev/null || echo '(absent)'
done
echo "== hostname"; hostname
echo "== rlimits"; ulimit -n; ulimit -Hn; grep 'open files' /proc/self/limits
echo "== env"; env | sort
echo "== cwd"; pwd
echo "== chmod"; chmod 0755 /probe.sh 2>&1; echo "exit $?"
echo "== sysctl"; printf 'kernel.shm_rmid_forced='; cat /proc/sys/kernel/shm_rmid_forced
"""

MiB = 1024 * 1024
USERNS_HOST_ID = 100000
ONLY_CHOWN_KILL = ["CAP_CHOWN", "CAP_KILL"]


# The bundles.


@dataclass
class Case:
    """One bundle: how it differs from the plain one."""

    name: str
    adjust: Callable[[dict[str, Any], Lab], None] = lambda config, lab: None
    owner: tuple[int, int] | None = None  # chown the rootfs copy to this


def plain(config: dict[str, Any]) -> None:
    """runc spec's default, adjusted: no terminal, the probe, and a writable root and
    no no_new_privs, so that the read-only and no-new-privileges bundles each change
    one thing."""
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/probe.sh"]
    config["process"]["noNewPrivileges"] = False
    config["root"]["readonly"] = False


def _readonly(c: dict[str, Any], lab: Lab) -> None:
    c["root"]["readonly"] = True


def _caps(c: dict[str, Any], lab: Lab) -> None:
    c["process"]["capabilities"] = {
        s: list(ONLY_CHOWN_KILL) for s in ("bounding", "effective", "permitted")
    }


def _userns(c: dict[str, Any], lab: Lab) -> None:
    c["linux"]["namespaces"].append({"type": "user"})
    mapping = [{"containerID": 0, "hostID": USERNS_HOST_ID, "size": 65536}]
    c["linux"]["uidMappings"] = mapping
    c["linux"]["gidMappings"] = mapping


def _seccomp(c: dict[str, Any], lab: Lab) -> None:
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            # busybox's chmod reaches the kernel as chmod or fchmodat, depending on libc
            {"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }


DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def _default_seccomp(c: dict[str, Any], lab: Lab) -> None:
    """What berthd writes for a default container: Docker's capabilities and berth's
    default profile (Docker's allow-list) for them."""
    from berth.runtime.seccomp_default import default_profile

    c["process"]["capabilities"] = {s: list(DOCKER_CAPS) for s in ("bounding", "effective", "permitted")}
    c["linux"]["seccomp"] = default_profile(os.uname().machine, set(DOCKER_CAPS))


def _cgroups(c: dict[str, Any], lab: Lab) -> None:
    c["linux"]["cgroupsPath"] = lab.cgroup_path("limits")
    c["linux"]["resources"].update({
        "memory": {"limit": 64 * MiB},
        "cpu": {"quota": 50000, "period": 100000},
        "pids": {"limit": 30},
    })  # fmt: skip


def _nnp(c: dict[str, Any], lab: Lab) -> None:
    c["process"]["noNewPrivileges"] = True


def _rlimits(c: dict[str, Any], lab: Lab) -> None:
    c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]


def _sysctl(c: dict[str, Any], lab: Lab) -> None:
    c["linux"]["sysctl"] = {"kernel.shm_rmid_forced": "1"}  # an ipc-namespace sysctl


def _hostname(c: dict[str, Any], lab: Lab) -> None:
    c["hostname"] = "difftest-host"


def _env_cwd(c: dict[str, Any], lab: Lab) -> None:
    c["process"]["env"] += ["DIFFTEST=one two  three", "EMPTY=", "HOME=/home/difftest"]
    c["process"]["cwd"] = "/srv/difftest"  # not in the image: the runtime creates it


CASES = [
    Case("plain"),
    Case("readonly-root", _readonly),
    Case("dropped-caps", _caps),
    Case("userns", _userns, owner=(USERNS_HOST_ID, USERNS_HOST_ID)),
    Case("seccomp", _seccomp),
    Case("default-seccomp", _default_seccomp),
    Case("cgroup-limits", _cgroups),
    Case("no-new-privileges", _nnp),
    Case("rlimits", _rlimits),
    Case("sysctl", _sysctl),
    Case("hostname", _hostname),
    Case("env-cwd", _env_cwd),
]


# What the container saw, and the normalizations.

MOUNT_FLAGS = ("nosuid", "nodev", "noexec")


def parse_sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def normalize_mounts(lines: list[str], masked: set[str]) -> list[str]:
    """mountinfo as sorted "MOUNTPOINT FSTYPE ro|rw[,nosuid][,nodev][,noexec]" lines.

    Dropped: mount and parent ids, major:minor, the root within the source, sources,
    super-block options and optional fields (peer groups): they name host objects and
    differ from run to run. The order is dropped too: runc applies readonlyPaths before
    maskedPaths and berth the other way round; the resulting tree is the same.

    A masked file is a bind mount of some /dev/null over it: runc (and berth) take the
    container's /dev/null, on the /dev tmpfs, so the mount shows "tmpfs rw,nosuid";
    crun takes the host's, read-only, so "devtmpfs ro". The spec asks only that the
    path be masked, so a masked file shows as "MOUNTPOINT (masked)".

    In a user namespace device nodes cannot be made, so the runtimes bind the host's
    (/dev/null and the rest): runc and berth with no extra flags, crun with nosuid and
    noexec. The spec does not say, so those binds keep only ro/rw.
    """
    out = []
    for line in lines:
        fields = line.split()
        sep = fields.index("-")
        mount_point = fields[4]
        if mount_point in masked and fields[3] == "/null":
            out.append(f"{mount_point} (masked)")
            continue
        fstype = fields[sep + 1]
        opts = fields[5].split(",")
        kept = ["ro" if "ro" in opts else "rw"]
        if not (fstype == "devtmpfs" and mount_point.startswith("/dev/")):
            kept += [o for o in MOUNT_FLAGS if o in opts]
        out.append(f"{mount_point} {fstype} {','.join(kept)}")
    return sorted(out)


def view(output: str, config: dict[str, Any]) -> dict[str, list[str]]:
    sections = parse_sections(output)
    masked = set(config["linux"].get("maskedPaths", []))
    sections["mountinfo"] = normalize_mounts(sections.get("mountinfo", []), masked)
    if not config["linux"].get("cgroupsPath"):
        # With no cgroupsPath the runtime picks the group (the spec leaves it to the
        # implementation): runc and crun make one named after the container, berth
        # leaves the container in its caller's group. The limit files then show
        # different groups, so they are compared only for bundles that name one.
        sections.pop("cgroup", None)
    return sections


def describe_diff(oracle: str, expected: dict[str, list[str]], got: dict[str, list[str]]) -> str:
    lines = []
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key, ["(section missing)"]), got.get(key, ["(section missing)"])
        if a != b:
            lines.append(f"[{key}]")
            lines += difflib.unified_diff(a, b, oracle, "berth", n=1, lineterm="")
    return "\n".join(lines)


# The runs.


@pytest.fixture(scope="module")
def base_config() -> dict[str, Any]:
    config = runc_spec_default()
    plain(config)
    return config


@pytest.fixture(scope="module")
def crun_reason() -> str | None:
    return crun_unusable_reason()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with open_lab("berth-difftest-") as lab:
        yield lab


@dataclass
class Run:
    config: dict[str, Any]
    output: str


_runs: dict[tuple[str, str], Run] = {}


def run_case(lab: Lab, base: dict[str, Any], case: Case, runtime: str) -> Run:
    """Run the case's bundle under one runtime, once per session."""
    key = (case.name, runtime)
    if key not in _runs:
        config = copy.deepcopy(base)
        case.adjust(config, lab)
        bundle = lab.bundle(f"{case.name}-{runtime}", config, script=PROBE_SCRIPT, owner=case.owner)
        rt = lab.runtime(runtime)
        result = rt.run(bundle, lab.container_id(f"{case.name}-{runtime}"))
        if result.returncode != 0 or "== sysctl" not in result.stdout:
            pytest.fail(
                f"{runtime} run of the {case.name} bundle exited {result.returncode}:\n"
                f"{result.stderr.strip()}\n{result.stdout.strip()}",
                pytrace=False,
            )
        _runs[key] = Run(config, result.stdout)
    return _runs[key]


@pytest.mark.parametrize("oracle", ["runc", "crun"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_view_as_oracle(
    lab: Lab, base_config: dict[str, Any], crun_reason: str | None, case: Case, oracle: str
) -> None:
    if oracle == "crun" and crun_reason is not None:
        pytest.skip(crun_reason)
    expected = run_case(lab, base_config, case, oracle)
    got = run_case(lab, base_config, case, "berth")
    want, have = view(expected.output, expected.config), view(got.output, got.config)
    if have != want:
        pytest.fail(
            f"the {case.name} bundle: berth-runtime's container differs from {oracle}'s:\n"
            + describe_diff(oracle, want, have),
            pytrace=False,
        )


def test_bundles_do_what_they_say(lab: Lab, base_config: dict[str, Any]) -> None:
    """The oracle's views show each bundle's setting took effect, so that agreeing
    with it means something (a probe that printed nothing would agree too)."""
    seen = {c.name: parse_sections(run_case(lab, base_config, c, "runc").output) for c in CASES}
    # runc spec's sets: CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE
    assert "CapBnd:\t0000000020000420" in seen["plain"]["status"]
    assert "Seccomp:\t0" in seen["plain"]["status"]
    assert "CapBnd:\t0000000000000021" in seen["dropped-caps"]["status"]  # CHOWN | KILL
    assert seen["plain"]["chmod"] == ["exit 0"]
    assert seen["seccomp"]["chmod"][-1] == "exit 1"
    assert "Operation not permitted" in seen["seccomp"]["chmod"][0]
    assert "Seccomp:\t2" in seen["seccomp"]["status"]
    assert "Seccomp:\t2" in seen["default-seccomp"]["status"]
    assert seen["default-seccomp"]["chmod"] == ["exit 0"]
    assert "CapBnd:\t00000000a80425fb" in seen["default-seccomp"]["status"]
    assert "NoNewPrivs:\t1" in seen["no-new-privileges"]["status"]
    assert "NoNewPrivs:\t0" in seen["plain"]["status"]
    assert seen["cgroup-limits"]["cgroup"] == [
        f"memory/memory.limit_in_bytes={64 * MiB}",
        "cpu/cpu.cfs_quota_us=50000",
        "cpu/cpu.cfs_period_us=100000",
        "pids/pids.max=30",
    ]
    assert seen["rlimits"]["rlimits"][:2] == ["1024", "2048"]
    assert seen["sysctl"]["sysctl"] == ["kernel.shm_rmid_forced=1"]
    assert seen["hostname"]["hostname"] == ["difftest-host"]
    assert seen["env-cwd"]["cwd"] == ["/srv/difftest"]
    assert "DIFFTEST=one two  three" in seen["env-cwd"]["env"]
    root_line = next(m for m in normalize_mounts(seen["readonly-root"]["mountinfo"], set())
                     if m.startswith("/ "))  # fmt: skip
    assert root_line.split()[2].startswith("ro")
    assert seen["userns"]["id"][0].startswith("uid=0(root)")
