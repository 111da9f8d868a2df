"""berth's default seccomp profile against Docker's, as a table.

Docker's default profile (moby/profiles seccomp/default.json) is kept outside the
repository as reference data, in ../shared/reference/docker-seccomp-default.json; berth
writes its own in berth.runtime.seccomp_default. Each profile is flattened into rows,
one per (syscall, action, errno, arguments, conditions), and the two sets of rows must
be equal except for the differences listed in EXPLAINED, each with its reason. The
resolved sections (what a container on a given architecture, kernel and capability
set gets) are compared the same way.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from berth.runtime.seccomp_default import builtin_profile, resolve

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "docker-seccomp-default.json"

pytestmark = pytest.mark.skipif(not REFERENCE.is_file(), reason=f"no reference data at {REFERENCE}")

# (side that has the row, syscall, condition) -> why berth differs from Docker there.
# Empty: berth's profile allows exactly what Docker's does, under the same conditions.
EXPLAINED: dict[tuple[str, str, str], str] = {}

Row = tuple[str, str]  # (syscall, condition)


def _condition(rule: dict[str, Any]) -> str:
    parts = [rule["action"]]
    if rule.get("errnoRet") is not None:
        parts.append(f"errno={rule['errnoRet']}")
    for arg in rule.get("args") or []:
        parts.append(f"arg{arg['index']} {arg['op'].removeprefix('SCMP_CMP_')} {arg['value']:#x}"
                     + (f"/{arg['valueTwo']:#x}" if arg.get("valueTwo") else ""))
    for side in ("includes", "excludes"):
        for key, value in sorted((rule.get(side) or {}).items()):
            if value:
                parts.append(f"{side[:-1]} {key}={','.join(value) if isinstance(value, list) else value}")
    return "; ".join(parts)


def rows(profile: dict[str, Any]) -> set[Row]:
    """One row per syscall a rule names, with the rule's condition."""
    return {(name, _condition(rule)) for rule in profile["syscalls"] for name in rule["names"]}


def table(only_docker: set[Row], only_berth: set[Row]) -> str:
    lines = [f"{'side':8} {'syscall':28} condition", "-" * 80]
    lines += [f"{'docker':8} {n:28} {c}" for n, c in sorted(only_docker)]
    lines += [f"{'berth':8} {n:28} {c}" for n, c in sorted(only_berth)]
    return "\n".join(lines)


def _diff(docker: set[Row], berth: set[Row]) -> tuple[set[Row], set[Row]]:
    explained_docker = {(n, c) for side, n, c in EXPLAINED if side == "docker"}
    explained_berth = {(n, c) for side, n, c in EXPLAINED if side == "berth"}
    return (docker - berth) - explained_docker, (berth - docker) - explained_berth


@pytest.fixture(scope="module")
def docker_profile() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(REFERENCE.read_text())
    return doc


def test_defaults_and_architectures_are_dockers(docker_profile: dict[str, Any]) -> None:
    ours = builtin_profile()
    assert (ours["defaultAction"], ours["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert (ours["defaultAction"], ours["defaultErrnoRet"]) == (
        docker_profile["defaultAction"], docker_profile["defaultErrnoRet"])
    assert ours["archMap"] == docker_profile["archMap"]
    assert not ours.get("architectures") and not ours.get("flags")


def test_every_rule_is_dockers(docker_profile: dict[str, Any]) -> None:
    only_docker, only_berth = _diff(rows(docker_profile), rows(builtin_profile()))
    assert not only_docker and not only_berth, "berth's default profile differs from Docker's:\n" + table(
        only_docker, only_berth)


def test_every_explained_difference_is_still_a_difference(docker_profile: dict[str, Any]) -> None:
    docker, berth = rows(docker_profile), rows(builtin_profile())
    for side, name, condition in EXPLAINED:
        has, lacks = (docker, berth) if side == "docker" else (berth, docker)
        row = (name, condition)
        assert row in has and row not in lacks, f"EXPLAINED lists {side} {name} [{condition}], not a difference"


CAPS = {
    "docker-default": {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"},
    "none": set(),
    "sys-admin": {"CAP_SYS_ADMIN"},
    "sys-ptrace": {"CAP_SYS_PTRACE"},
    "all-the-rules-name": {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_SYS_BOOT",
                           "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_SYS_NICE", "CAP_SYSLOG", "CAP_BPF",
                           "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_TTY_CONFIG", "CAP_SYS_CHROOT"},
}


@pytest.mark.parametrize("arch, caps, kernel", list(itertools.product(
    ["x86_64", "aarch64", "s390x", "ppc64le", "riscv64"], sorted(CAPS), ["4.4.0", "6.1.0"])))
def test_every_container_gets_what_docker_gives_it(
    docker_profile: dict[str, Any], arch: str, caps: str, kernel: str
) -> None:
    docker = resolve(docker_profile, arch, CAPS[caps], kernel)
    berth = resolve(builtin_profile(), arch, CAPS[caps], kernel)
    assert docker is not None and berth is not None
    assert {k: v for k, v in docker.items() if k != "syscalls"} == {k: v for k, v in berth.items() if k != "syscalls"}
    only_docker, only_berth = rows(docker) - rows(berth), rows(berth) - rows(docker)
    assert not only_docker and not only_berth, table(only_docker, only_berth)
