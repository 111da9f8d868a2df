"""OCI lifecycle hooks: run one hook with the container's state on its stdin.

A hook that exits non-zero or outlives its timeout fails the step it belongs to
(for prestart, createRuntime, createContainer and startContainer: the create);
poststart and poststop failures are only logged, as the spec says.
"""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

from berth.runtime.oci import Hook


class HookError(Exception):
    pass


def run(kind: str, hook: Hook, state: dict[str, Any]) -> None:
    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        proc = subprocess.Popen([*hook.args] or [hook.path], executable=hook.path, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                close_fds=True)
    except OSError as e:
        raise HookError(f"error running {kind} hook {hook.path}: {e.strerror}") from None
    try:
        _, err = proc.communicate(json.dumps(state).encode(), timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        raise HookError(f"{kind} hook {hook.path} did not finish within {hook.timeout}s") from None
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise HookError(f"error running {kind} hook {hook.path}: exit status {proc.returncode}"
                        + (f": {detail[-1]}" if detail else ""))


def run_all(kind: str, hooks: dict[str, list[Hook]], state: dict[str, Any]) -> None:
    for hook in hooks.get(kind, []):
        run(kind, hook, state)


def state_doc(container_id: str, pid: int, bundle: str, status: str) -> dict[str, Any]:
    return {"ociVersion": "1.2.0", "id": container_id, "pid": pid, "status": status,
            "bundle": bundle, "annotations": {}}
