"""Restart policies and health checks, through the docker CLI and the API: Docker's
back-off and restart counts, what a daemon restart brings back, probes turning a
container healthy or unhealthy, and the events and `docker ps` text that say so."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def inspect(docker: Cli, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(docker.ok("inspect", name))[0]
    return doc


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events(docker: Cli, name: str, since: float) -> list[str]:
    time.sleep(1.05 - time.time() % 1)  # --until in whole seconds: let this second pass
    out = docker.ok("events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}",
                    "--filter", f"container={name}", "--format", "{{.Action}}")
    return out.splitlines()


# Restart policies.


def test_on_failure_3_restarts_exactly_3_times(docker: Cli, new_name: Names) -> None:
    name = new_name("rp")
    t0 = time.time()
    docker.ok("run", "-d", "--name", name, "--restart", "on-failure:3", "busybox", "sh", "-c", "exit 3")
    wait_for("three restarts and a stop", lambda: (lambda d: d["RestartCount"] == 3 and d["State"]["Status"] == "exited")(
        inspect(docker, name)))
    time.sleep(1.5)  # a fourth restart would have come within 0.8 s
    doc = inspect(docker, name)
    assert (doc["RestartCount"], doc["State"]["Status"], doc["State"]["ExitCode"]) == (3, "exited", 3)
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    actions = [a for a in events(docker, name, t0) if a in ("start", "die")]
    assert actions == ["start", "die"] * 4


def test_on_failure_does_not_restart_after_exit_0(docker: Cli, new_name: Names) -> None:
    name = new_name("rp")
    docker.ok("run", "-d", "--name", name, "--restart", "on-failure", "busybox", "true")
    wait_for("the exit", lambda: inspect(docker, name)["State"]["Status"] == "exited")
    time.sleep(0.5)
    doc = inspect(docker, name)
    assert (doc["RestartCount"], doc["State"]["Status"]) == (0, "exited")


def test_always_backs_off_shows_restarting_and_stop_ends_it(docker: Cli, new_name: Names) -> None:
    name = new_name("rp")
    docker.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "true")
    seen: list[tuple[str, bool, bool]] = []

    def restarting() -> bool:
        state = inspect(docker, name)["State"]
        seen.append((state["Status"], state["Restarting"], state["Running"]))
        return state["Status"] == "restarting"

    wait_for("the restarting state", restarting)
    assert seen[-1] == ("restarting", True, True)  # Docker's Running stays true while restarting
    wait_for("a few restarts", lambda: inspect(docker, name)["RestartCount"] >= 4)
    docker.ok("stop", name)
    doc = inspect(docker, name)
    count = doc["RestartCount"]
    assert doc["State"]["Status"] == "exited" and not doc["State"]["Restarting"]
    time.sleep(2)  # the back-off is under 2 s here: a restart would have happened
    doc = inspect(docker, name)
    assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", count)
    # a start by the user brings the policy back
    docker.ok("start", name)
    wait_for("restarts after the user's start", lambda: inspect(docker, name)["RestartCount"] > count)
    docker.ok("rm", "-f", name)


def test_unless_stopped_stays_down_after_kill(docker: Cli, new_name: Names) -> None:
    name = new_name("rp")
    docker.ok("run", "-d", "--name", name, "--restart", "unless-stopped", "busybox", "sleep", "300")
    docker.ok("kill", name)
    wait_for("the exit", lambda: inspect(docker, name)["State"]["Status"] == "exited")
    time.sleep(1)
    doc = inspect(docker, name)
    assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", 0)


def test_update_restart_policy_of_a_running_container(docker: Cli, new_name: Names) -> None:
    name = new_name("rp")
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; exit 7")
    docker.ok("update", "--restart", "on-failure:1", name)
    assert inspect(docker, name)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    docker.ok("update", "--memory", "64m", "--memory-swap", "-1", name)  # keeps the policy
    assert inspect(docker, name)["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    wait_for("one restart and the final exit", lambda: (lambda d: d["RestartCount"] == 1 and d["State"]["Status"] == "exited")(
        inspect(docker, name)))
    res = docker("update", "--restart", "sometimes", name)
    assert res.returncode != 0


def test_restart_with_rm_is_refused(docker: Cli, api: ApiClient, new_name: Names) -> None:
    res = docker("run", "--rm", "--restart", "always", "busybox", "true")
    assert res.returncode != 0 and "cannot specify both --restart and --rm" in res.stderr, describe(res)
    r = api.post_json("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                             "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    assert r.status == 400 and "can't create 'AutoRemove' container with restart policy" in r.json()["message"]
    name = new_name("rp")
    docker.ok("create", "--rm", "--name", name, "busybox", "true")
    res = docker("update", "--restart", "always", name)
    assert res.returncode != 0 and "AutoRemove is enabled" in res.stderr, describe(res)
    r = api.post_json("/containers/create", {"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "bogus"}}})
    assert r.status == 400 and "unknown policy 'bogus'" in r.json()["message"]


# Health checks.


def test_failing_health_check_turns_unhealthy(docker: Cli, new_name: Names) -> None:
    name = new_name("hc")
    t0 = time.time()
    docker.ok("run", "-d", "--name", name, "--health-cmd", "echo probing; exit 1", "--health-interval", "200ms",
              "--health-retries", "2", "busybox", "sleep", "300")
    assert "(health: starting)" in docker.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    wait_for("unhealthy", lambda: inspect(docker, name)["State"]["Health"]["Status"] == "unhealthy")
    h = inspect(docker, name)["State"]["Health"]
    assert h["FailingStreak"] >= 2
    assert 2 <= len(h["Log"]) <= 5
    assert h["Log"][-1]["ExitCode"] == 1
    assert "(unhealthy)" in docker.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    config = inspect(docker, name)["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "echo probing; exit 1"], "Interval": 200_000_000, "Retries": 2}
    assert docker.ok("ps", "-q", "--filter", "health=unhealthy", "--filter", f"name={name}").strip()
    assert "health_status: unhealthy" in events(docker, name, t0)
    docker.ok("rm", "-f", name)




def test_probe_output_is_logged(docker: Cli, new_name: Names) -> None:
    name = new_name("hc")
    docker.ok("run", "-d", "--name", name, "--health-cmd", "echo probing; exit 1", "--health-interval", "200ms",
              "busybox", "sleep", "300")
    try:
        wait_for("a probe", lambda: bool(inspect(docker, name)["State"]["Health"]["Log"]))
        assert inspect(docker, name)["State"]["Health"]["Log"][0]["Output"] == "probing\n"
    finally:
        docker.ok("rm", "-f", name)


def test_passing_health_check_turns_healthy(docker: Cli, new_name: Names) -> None:
    name = new_name("hc")
    t0 = time.time()
    docker.ok("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "200ms",
              "busybox", "sleep", "300")
    wait_for("healthy", lambda: inspect(docker, name)["State"]["Health"]["Status"] == "healthy")
    assert "(healthy)" in docker.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert "health_status: healthy" in events(docker, name, t0)
    docker.ok("rm", "-f", name)


def test_probe_exceeding_its_timeout_fails(docker: Cli, new_name: Names) -> None:
    name = new_name("hc")
    docker.ok("run", "-d", "--name", name, "--health-cmd", "sleep 10", "--health-timeout", "300ms",
              "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "300")
    wait_for("unhealthy", lambda: inspect(docker, name)["State"]["Health"]["Status"] == "unhealthy")
    last = inspect(docker, name)["State"]["Health"]["Log"][-1]
    assert (last["ExitCode"], last["Output"]) == (-1, "Health check exceeded timeout (300ms)")
    docker.ok("rm", "-f", name)


def test_image_healthcheck_is_inherited_and_no_healthcheck_disables_it(docker: Cli, new_name: Names) -> None:
    src, tag = new_name("hc"), f"hc-image-{uuid.uuid4().hex[:8]}"
    docker.ok("create", "--name", src, "--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "300")
    docker.ok("commit", src, tag)
    try:
        image = json.loads(docker.ok("image", "inspect", tag))[0]
        assert image["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
        inherits, disabled = new_name("hc"), new_name("hc")
        docker.ok("run", "-d", "--name", inherits, "--health-retries", "4", tag)
        config = inspect(docker, inherits)["Config"]["Healthcheck"]
        assert config == {"Test": ["CMD-SHELL", "true"], "Interval": 200_000_000, "Retries": 4}
        wait_for("healthy", lambda: inspect(docker, inherits)["State"]["Health"]["Status"] == "healthy")
        docker.ok("run", "-d", "--name", disabled, "--no-healthcheck", tag)
        doc = inspect(docker, disabled)
        assert doc["Config"]["Healthcheck"]["Test"] == ["NONE"] and "Health" not in doc["State"]
        assert "(" not in docker.ok("ps", "--filter", f"name={disabled}", "--format", "{{.Status}}")
        docker.ok("rm", "-f", inherits, disabled, src)
    finally:
        docker("rmi", "-f", tag)


# Across a daemon restart.


@pytest.mark.timeout(120)
def test_restart_policies_across_a_daemon_restart(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> None:
    with private_daemon(berth_root, berthd, busybox_tar, prefix="rh") as (daemon, docker):
        run = ("run", "-d", "--stop-timeout", "1")
        docker.ok(*run, "--name", "always-up", "--restart", "always", "busybox", "sleep", "300")
        docker.ok(*run, "--name", "always-stopped", "--restart", "always", "busybox", "sleep", "300")
        docker.ok(*run, "--name", "unless-up", "--restart", "unless-stopped", "busybox", "sleep", "300")
        docker.ok(*run, "--name", "unless-stopped", "--restart", "unless-stopped", "busybox", "sleep", "300")
        docker.ok(*run, "--name", "none", "busybox", "sleep", "300")
        docker.ok("create", "--name", "never-started", "--restart", "always", "busybox", "sleep", "300")
        docker.ok("stop", "-t", "1", "always-stopped", "unless-stopped")
        assert daemon.stop() == 0  # stops the rest, not by hand
        daemon.start()
        status = {n: docker.ok("inspect", "-f", "{{.State.Status}}", n).strip()
                  for n in ("always-up", "always-stopped", "unless-up", "unless-stopped", "none", "never-started")}
        assert status == {"always-up": "running", "always-stopped": "running", "unless-up": "running",
                          "unless-stopped": "exited", "none": "exited", "never-started": "created"}


def test_wait_returns_at_the_exit_of_a_container_that_restarts(docker: Cli, new_name: Names) -> None:
    """dockerd's `wait` (not-running, and next-exit as `run` uses it) ends at the exit even
    when the restart policy brings the container back; it does not wait through restarts."""
    name = new_name("rw")
    try:
        docker.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 3")
        res = docker("wait", name, timeout=20)
        assert res.returncode == 0 and res.stdout.strip() == "3", describe(res)
        wait_for("the restart", lambda: inspect(docker, name)["RestartCount"] >= 1)
    finally:
        docker("rm", "-f", name)
    attached = new_name("ra")
    try:
        res = docker("run", "--name", attached, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3",
                     timeout=20)
        assert res.returncode == 3, describe(res)
        wait_for("the restarts, then the stop", lambda: (lambda d: d["RestartCount"] == 2 and d["State"]["Status"] == "exited")(
            inspect(docker, attached)))
    finally:
        docker("rm", "-f", attached)
