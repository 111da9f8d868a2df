"""The one clock: Docker's timestamps, RFC 3339 in UTC with nine fraction digits, so
they order as text.

A module of its own, with nothing but `time` behind it: the runtime's commands and the
shim stamp times too, and every layer above reads the time here rather than from a store.
"""

from __future__ import annotations

import time


def format_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_time(stamp: str) -> int:
    """RFC 3339 with up to nanoseconds, UTC ('Z'), to ns since the epoch."""
    main, _, frac = stamp.rstrip("Z").partition(".")
    secs = int(time.mktime(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) - time.timezone)
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def now_rfc3339() -> str:
    """The current time as Docker writes it in records (Created, StartedAt, …)."""
    return format_time(time.time_ns())
