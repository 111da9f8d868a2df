"""`docker top`: the container's processes as the host's `ps` shows them.

dockerd's way: host `ps` with the client's arguments (-ef by default), its rows kept
for the container's processes (their pids come from the container manager). Without
a `ps` on the host, the default columns are made from /proc. The result is a typed
table; the API writes Docker's JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import time
from dataclasses import dataclass

from berth.containers.manager import ContainerManager
from berth.errors import InvalidParameter, SystemError_

_PS_ASSIGNMENT = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
DEFAULT_PS_ARGS = "-ef"


@dataclass(frozen=True)
class ProcessTable:
    """`ps` columns and one row of them per process; the last column takes the rest."""

    titles: list[str]
    processes: list[list[str]]


async def top(containers: ContainerManager, ref: str, ps_args: str = "") -> ProcessTable:
    """The processes of container `ref`, as `ps <ps_args>` shows them."""
    ps_args = ps_args or DEFAULT_PS_ARGS
    check_ps_args(ps_args)
    pids = await containers.top(ref)
    args = ps_args.split(" ")
    try:
        code, output, error = await _run_ps([*args, "-q" + ",".join(str(p) for p in pids)])
        if code != 0:
            # some options (f, for one) do not go with -q: list everything, filter below
            code, output, error = await _run_ps(args)
    except FileNotFoundError:
        if ps_args != DEFAULT_PS_ARGS:
            raise SystemError_("ps: exec: \"ps\": executable file not found in $PATH") from None
        return process_table(pids)
    if code != 0:
        first = error.decode(errors="replace").split("\n", 1)[0]
        raise SystemError_(f"ps: {first or f'exit status {code}'}")
    return parse_ps_output(output.decode(errors="replace"), set(pids))


def check_ps_args(ps_args: str) -> None:
    """dockerd refuses to let the client rename the PID column (`-o pid=…`): the rows
    are picked by it."""
    for key, value in _PS_ASSIGNMENT.findall(ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')


async def _run_ps(args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        output, error = await asyncio.wait_for(proc.communicate(), 30)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, output, error


def _ascii_fields(line: str) -> list[str]:
    """Fields split on ASCII white space only, as dockerd splits ps output."""
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps_output(output: str, pids: set[int]) -> ProcessTable:
    """`ps` output cut to the rows of these pids (and, after such a row, the thread
    rows of `ps m`, whose PID is "-"); the last column takes the rest of its line."""
    lines = output.split("\n")
    titles = _ascii_fields(lines[0])
    if "PID" not in titles:
        raise SystemError_("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    rows: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        fields = _ascii_fields(line)
        if len(fields) <= pid_index:
            continue
        row = [*fields[:len(titles) - 1], " ".join(fields[len(titles) - 1:])]
        if fields[pid_index] == "-":
            if keep_threads:
                rows.append(row)
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise SystemError_(f"Unexpected pid '{fields[pid_index]}': strconv.Atoi: parsing "
                               f"{json.dumps(fields[pid_index])}: invalid syntax") from None
        keep_threads = pid in pids
        if keep_threads:
            rows.append(row)
    return ProcessTable(titles, rows)


def process_table(pids: list[int]) -> ProcessTable:
    """`docker top`'s default columns (ps -ef) for these host pids, read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        boot = time.time() - float(f.read().split()[0])
    rows = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        comm = stat[stat.find(b"(") + 1:stat.rfind(b")")].decode(errors="replace")
        ppid = int(fields[1])
        cpu_secs = (int(fields[11]) + int(fields[12])) // ticks
        started = boot + int(fields[19]) / ticks
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        rows.append([user, str(pid), str(ppid), "0", time.strftime("%H:%M", time.localtime(started)), "?",
                     time.strftime("%H:%M:%S", time.gmtime(cpu_secs)), cmdline or f"[{comm}]"])
    return ProcessTable(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], rows)
