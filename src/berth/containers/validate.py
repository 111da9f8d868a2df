"""Checks of a container's host configuration, with Docker's messages, at create and update.

The API parses the request into typed records; this module refuses what dockerd
refuses (memory and CPU ranges, unknown capabilities, ulimits and security options),
with dockerd's wording, so that the API need not know the runtime's tables. It checks
and raises InvalidParameter; it changes nothing and knows no JSON.
"""

from __future__ import annotations

import os

from berth.containers.manager import security_options
from berth.containers.model import HostConfig
from berth.errors import InvalidParameter
from berth.runtime import capabilities
from berth.runtime.rlimits import DOCKER_ULIMIT_NAMES

MIN_MEMORY = 6 * 1024 * 1024
SECURITY_OPTIONS = ("seccomp", "no-new-privileges", "apparmor", "label", "systempaths", "mask", "unmask")


def check_ulimit_name(name: str) -> None:
    if name not in DOCKER_ULIMIT_NAMES:
        raise InvalidParameter(f"invalid ulimit type: {name}")


def check_ulimit_range(name: str, soft: int, hard: int) -> None:
    if soft > hard and hard != -1:
        raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")


def _shared_with(mode: str, kinds: tuple[str, ...]) -> bool:
    """Whether a namespace mode is one of `kinds` or "container:<name|id>"."""
    kind, sep, other = mode.partition(":")
    return (kind == "container" and bool(sep) and bool(other)) or (not sep and mode in kinds)


def check_namespace_modes(host: HostConfig) -> None:
    """IpcMode, PidMode, UTSMode, CgroupnsMode, Isolation: the values dockerd knows."""
    if not _shared_with(host.ipc_mode, ("", "host", "private", "none", "shareable")):
        raise InvalidParameter(f"invalid IPC mode: {host.ipc_mode}")
    if not _shared_with(host.pid_mode, ("", "host")):
        raise InvalidParameter(f"invalid PID mode: {host.pid_mode}")
    if host.uts_mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {host.uts_mode}")
    if host.cgroupns_mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {host.cgroupns_mode}")
    if host.isolation.lower() not in ("", "default"):
        raise InvalidParameter(f"invalid isolation ({host.isolation}): linux only supports 'default'")


def check_host_config(host: HostConfig) -> None:
    """Refuse what Docker's daemon refuses at create (and at update), with its messages."""
    check_namespace_modes(host)
    if host.io_maximum_bandwidth:
        raise InvalidParameter("invalid option: QoS maximum bandwidth configuration is not supported on linux")
    if host.io_maximum_iops:
        raise InvalidParameter("invalid option: QoS maximum IOPs configuration is not supported on linux")
    if (host.cpu_realtime_period and host.cpu_realtime_runtime
            and host.cpu_realtime_runtime > host.cpu_realtime_period):
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")
    if "" in host.annotations:
        raise InvalidParameter("invalid Annotations: the empty string is not permitted as an annotation key")
    if host.memory and host.memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if host.memory_swap > 0 and host.memory and host.memory_swap < host.memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if host.memory_swap and not host.memory:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if host.nano_cpus and (host.cpu_quota or host.cpu_period):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    ncpu = os.cpu_count() or 1
    if host.nano_cpus < 0 or host.nano_cpus > ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if host.cpu_shares < 0:
        raise InvalidParameter("invalid CPU shares: must be a positive number")
    if host.blkio_weight and not 10 <= host.blkio_weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if host.oom_score_adj < -1000 or host.oom_score_adj > 1000:
        raise InvalidParameter(f"Invalid value {host.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    capabilities.normalize_docker_caps(host.cap_add)  # InvalidParameter for an unknown name
    capabilities.normalize_docker_caps(host.cap_drop)
    for opt, (key, _value) in zip(host.security_opt, security_options(host.security_opt), strict=True):
        if key not in SECURITY_OPTIONS:
            raise InvalidParameter(f"invalid --security-opt: {opt!r}")
