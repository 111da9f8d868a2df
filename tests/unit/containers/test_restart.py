"""Restart policies: Docker's decisions and back-off, without a daemon."""

from __future__ import annotations

import pytest

from berth.containers.model import RestartPolicy
from berth.containers.restart import (
    INITIAL_DELAY,
    MAX_DELAY,
    RestartTracker,
    restart_at_daemon_start,
    validate_policy,
    wants_restart,
)
from berth.errors import InvalidParameter


def test_on_failure_restarts_exactly_n_times() -> None:
    policy = RestartPolicy("on-failure", 3)
    tracker = RestartTracker()
    delays = [tracker.after_exit(policy, 1, False, ran_for=0.0) for _ in range(5)]
    assert delays == [0.1, 0.2, 0.4, None, None]
    assert tracker.restarts == 3


def test_on_failure_never_restarts_after_success_and_zero_means_unlimited() -> None:
    assert RestartTracker().after_exit(RestartPolicy("on-failure", 0), 0, False, 0.0) is None
    tracker = RestartTracker()
    assert all(tracker.after_exit(RestartPolicy("on-failure", 0), 2, False, 0.0) for _ in range(50))


def test_backoff_doubles_up_to_a_minute_and_resets_after_ten_seconds() -> None:
    policy = RestartPolicy("always")
    tracker = RestartTracker()
    delays = [tracker.after_exit(policy, 0, False, ran_for=1.0) for _ in range(12)]
    assert delays[0] == INITIAL_DELAY
    assert delays[1:4] == [0.2, 0.4, 0.8]
    assert max(d for d in delays if d is not None) == MAX_DELAY
    assert delays[-1] == MAX_DELAY
    assert tracker.after_exit(policy, 0, False, ran_for=10.0) == INITIAL_DELAY


@pytest.mark.parametrize(("name", "code", "manual", "expected"), [
    ("no", 1, False, False),
    ("always", 0, True, True),
    ("unless-stopped", 0, False, True),
    ("unless-stopped", 0, True, False),
    ("on-failure", 0, False, False),
    ("on-failure", 137, False, True),
])
def test_policy_table(name: str, code: int, manual: bool, expected: bool) -> None:
    assert wants_restart(RestartPolicy(name), code, manual, 0) is expected


def test_a_stop_by_the_user_cancels_restarts_until_the_next_start() -> None:
    tracker = RestartTracker(cancelled=True)
    assert tracker.after_exit(RestartPolicy("always"), 0, True, 0.0) is None
    assert tracker.after_exit(RestartPolicy("on-failure"), 1, False, 0.0) is None


def test_daemon_start() -> None:
    always, unless = RestartPolicy("always"), RestartPolicy("unless-stopped")
    assert restart_at_daemon_start(always, 137, manually_stopped=True, started_before=True)
    assert not restart_at_daemon_start(unless, 137, manually_stopped=True, started_before=True)
    assert restart_at_daemon_start(unless, 143, manually_stopped=False, started_before=True)
    assert not restart_at_daemon_start(always, 0, manually_stopped=False, started_before=False)
    assert not restart_at_daemon_start(RestartPolicy("no"), 1, False, True)


@pytest.mark.parametrize(("name", "count", "message"), [
    ("sometimes", 0, "unknown policy 'sometimes'"),
    ("always", 2, "maximum retry count can only be used with 'on-failure'"),
    ("no", -1, "can only be used with 'on-failure' and cannot be negative"),
    ("on-failure", -1, "maximum retry count cannot be negative"),
])
def test_invalid_policies(name: str, count: int, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        validate_policy(RestartPolicy(name, count))


def test_valid_policies() -> None:
    for policy in (RestartPolicy("", 3), RestartPolicy("no"), RestartPolicy("on-failure", 5),
                   RestartPolicy("unless-stopped")):
        validate_policy(policy)
