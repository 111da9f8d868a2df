"""Resource-usage samples of running containers, for `docker stats`.

A `Sample` joins what is read at one moment: the kernel's counters for the container's
cgroup (`CgroupStats`, which the task service reads, whichever runtime runs the
container and whichever cgroup back end the host runs), the host's total
CPU time (the denominator of docker's CPU %), and the counters of the container's
network interfaces. Those come from /proc/<pid>/net/dev, which lists the interfaces of
the network namespace that pid lives in, so no namespace has to be entered.

This module reads files and nothing else: it never touches a cgroup, and it does not
know Docker's JSON (api/containers.py writes that). Reading blocks: callers run
`take_sample` in a thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from berth.runtime.cgroups import BlkioEntry, CgroupStats

# The sample's parts, for those who render it (the API) without loading the runtime's code.
__all__ = ["BlkioEntry", "CgroupStats", "InterfaceCounters", "Sample", "take_sample"]


@dataclass(frozen=True)
class InterfaceCounters:
    """One network interface's counters, as /proc/net/dev has them."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True)
class Sample:
    read_ns: int  # when it was taken, ns since the epoch
    cgroup: CgroupStats
    system_cpu_ns: int  # CPU time of the whole host since boot, all CPUs together
    online_cpus: int
    machine_memory: int  # bytes; what "no memory limit" amounts to
    networks: dict[str, InterfaceCounters] = field(default_factory=dict)  # by name in the container


def parse_proc_stat(text: str, ticks_per_second: int = 100) -> tuple[int, int]:
    """/proc/stat: (the host's CPU time in ns, the number of CPUs), as dockerd counts them.

    The time is the sum of the first seven fields of the "cpu" line (user, nice,
    system, idle, iowait, irq, softirq); steal and guest time are left out.
    """
    total = cpus = 0
    for line in text.splitlines():
        if not line.startswith("cpu"):
            break  # the cpu lines come first
        fields = line.split()
        if fields[0] == "cpu":
            total = sum(int(v) for v in fields[1:8]) * 1_000_000_000 // ticks_per_second
        elif fields[0][3:].isdigit():
            cpus += 1
    return total, cpus


def parse_net_dev(text: str) -> dict[str, InterfaceCounters]:
    """/proc/net/dev: after two title lines, "name: 8 receive then 8 transmit counters"."""
    found = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) < 16 or not all(v.isdigit() for v in values[:16]):
            continue
        n = [int(v) for v in values[:16]]
        found[name.strip()] = InterfaceCounters(
            rx_bytes=n[0], rx_packets=n[1], rx_errors=n[2], rx_dropped=n[3],
            tx_bytes=n[8], tx_packets=n[9], tx_errors=n[10], tx_dropped=n[11],
        )
    return found


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def take_sample(counters: CgroupStats, pid: int, interfaces: Collection[str]) -> Sample:
    """`counters` (the container's cgroup, just read) with the host's CPU time and the
    named interfaces of `pid`'s network namespace."""
    read_ns = time.time_ns()
    with open("/proc/stat") as f:
        system_cpu_ns, online_cpus = parse_proc_stat(f.read(), os.sysconf("SC_CLK_TCK"))
    networks: dict[str, InterfaceCounters] = {}
    if interfaces:
        try:
            with open(f"/proc/{pid}/net/dev") as f:
                networks = {name: c for name, c in parse_net_dev(f.read()).items() if name in interfaces}
        except OSError:
            pass  # the process has just exited; its counters went with it
    return Sample(read_ns=read_ns, cgroup=counters, system_cpu_ns=system_cpu_ns, online_cpus=online_cpus,
                  machine_memory=machine_memory(), networks=networks)

