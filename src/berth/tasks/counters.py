"""A task's cgroup counters: decoded from the shim's `stats` answer, or read here from
the bundle's own `linux.cgroupsPath` when the shim is one that predates that op.

Also the one correction both need: the shim's exec forker sits in the container's
cgroup (shim/forker.py) and is no process of the user's, so it is left out of the pids
counts, as the note the shim keeps beside exit.json says. Reading blocks: callers run
`read_bundle_counters` and `without_forker` in a thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from berth.runtime import cgroups
from berth.runtime.cgroups import BlkioEntry, CgroupStats
from berth.shim.backends import read_basics


def decode(doc: dict[str, Any]) -> CgroupStats:
    """The shim's JSON of a CgroupStats (runtime.record.asdict of one) back as the record."""
    fields = {f.name for f in dataclasses.fields(CgroupStats)}
    values = {k: v for k, v in doc.items() if k in fields}
    for key in ("io_service_bytes", "io_serviced"):
        values[key] = tuple(BlkioEntry(int(e["major"]), int(e["minor"]), str(e["op"]), int(e["value"]))
                            for e in values.get(key) or ())
    if "cpu_percpu_ns" in values:
        values["cpu_percpu_ns"] = tuple(int(v) for v in values["cpu_percpu_ns"] or ())
    if "memory_stat" in values:
        values["memory_stat"] = {str(k): int(v) for k, v in (values["memory_stat"] or {}).items()}
    return CgroupStats(**values)


def encode(stats: CgroupStats) -> dict[str, Any]:
    """What the shim sends (the inverse of `decode`; for tests and the shim's doc)."""
    from berth.runtime.record import asdict

    doc: dict[str, Any] = asdict(stats)
    doc["memory_stat"] = dict(doc.get("memory_stat") or {})
    return json.loads(json.dumps(doc))  # tuples as lists, as on the wire


def read_bundle_counters(bundle: str) -> CgroupStats | None:
    """The counters of the cgroup the bundle names; None when it has none or it is gone."""
    path = read_basics(bundle).cgroups_path
    if not path:
        return None
    cg = cgroups.open_manager(path)
    if not cg.exists():
        return None
    try:
        return cg.stats()
    except cgroups.CgroupError:
        if not cg.exists():
            return None
        raise


def without_forker(counters: CgroupStats, state_dir: str) -> CgroupStats:
    try:
        with open(os.path.join(state_dir, "forker")) as f:
            note = json.load(f)
    except (OSError, ValueError):
        return counters
    current = counters.pids_current
    limit = counters.pids_limit
    return dataclasses.replace(
        counters, pids_current=current - 1 if current else current,
        pids_limit=limit - 1 if limit and note.get("pids_limit_raised") else limit)
