"""Running a piece of a test in a forked child, so process state (capabilities, limits,
namespaces) changes there and never in the pytest process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def run_forked(fn: Callable[[], object]) -> str:
    """Run `fn` in a forked child with stdout on a pipe; return what the child printed.

    `fn` may exec a program (its output comes back) or return a JSON-able value.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.dup2(w, 1)
            out = json.dumps({"result": fn()})
        except BaseException as e:
            out = json.dumps({"error": f"{type(e).__name__}: {e}"})
            code = 1
        os.write(1, out.encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    os.waitpid(pid, 0)
    return data


def in_child(fn: Callable[[], object]) -> Any:
    """`fn`'s return value, computed in a forked child; AssertionError if it raised."""
    doc = json.loads(run_forked(fn))
    if "error" in doc:
        raise AssertionError(f"in the child: {doc['error']}")
    return doc["result"]
