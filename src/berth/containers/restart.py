"""Restart policies: whether a container that exited is started again, and when.

Pure decisions, no I/O and no clock: the manager asks a container's `RestartTracker`
at each exit and sleeps the delay it answers, and asks `restart_at_daemon_start` for
the containers it finds stopped when berthd starts. The rules are Docker's restart
manager's:

- `no` never restarts; `always` always; `unless-stopped` unless the user stopped it;
  `on-failure[:N]` after a non-zero exit, at most N times (0: no limit).
- A stop or kill by the user cancels restarting, whatever the policy, until the user
  starts the container again; a daemon start still brings back `always` containers.
- The first restart waits 100 ms, each next one twice as long, up to a minute; a run
  of 10 s or more starts the back-off over.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.containers.model import RestartPolicy
from berth.errors import InvalidParameter

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
BACKOFF_FACTOR = 2
RESET_AFTER = 10.0  # seconds of running that reset the back-off
POLICIES = ("no", "always", "on-failure", "unless-stopped")


def validate_policy(policy: RestartPolicy) -> None:
    """Refuse a policy as Docker's daemon does, with its messages."""
    name, count = policy.name, policy.maximum_retry_count
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            message = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise InvalidParameter(message + (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif name != "":
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of "
                               "'no', 'always', 'on-failure', or 'unless-stopped'")


def wants_restart(policy: RestartPolicy, exit_code: int, manually_stopped: bool, restarts: int) -> bool:
    """The policy's answer for a container that exited with `exit_code` after `restarts`
    restarts (Docker's ShouldRestart, without the back-off)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restarts < limit)
    return False


def restart_at_daemon_start(policy: RestartPolicy, exit_code: int, manually_stopped: bool,
                            started_before: bool) -> bool:
    """Whether berthd, starting, starts a stopped container again. A container never
    started stays created; the restart count starts over with the daemon."""
    return started_before and wants_restart(policy, exit_code, manually_stopped, 0)


@dataclass
class RestartTracker:
    """One container's restart state since the user last started it: berthd keeps it
    in memory, so a daemon restart starts it over (as dockerd's restart manager)."""

    restarts: int = 0
    delay: float = 0.0
    cancelled: bool = False  # the user stopped or killed it

    def after_exit(self, policy: RestartPolicy, exit_code: int, manually_stopped: bool,
                   ran_for: float) -> float | None:
        """The delay before the next start, or None when the container stays stopped."""
        if policy.name in ("", "no") or self.cancelled:
            return None
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = INITIAL_DELAY if self.delay == 0 else min(self.delay * BACKOFF_FACTOR, MAX_DELAY)
        if not wants_restart(policy, exit_code, manually_stopped, self.restarts):
            return None
        self.restarts += 1
        return self.delay
