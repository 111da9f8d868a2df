"""An upgrade in place: a data root made by an older berthd, with a container running
under live-restore, is adopted by this work tree's berthd, and a user sees everything
as it was: the container still running with its logs, the images (a built one too),
volumes and user networks, and the exited containers, which start again."""

from __future__ import annotations

import http.client
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import Cli, describe, import_image
from helpers.daemon import BerthDaemon
from helpers.upgrade import OldSourceUnavailable, old_source, upgrade_in_place

# The last commit before issue 15 restructured the house (task service, content store,
# network drivers, thin API, programs as packages): the data roots, records and shims
# out in the field are this commit's, so this is the version an upgrade starts from.
OLD_COMMIT = "623d42e"

NET = "upnet"
VOLUME = "upvol"
BUILT = "upgrade-built:v1"
COUNTER = "i=1; while true; do echo $i; i=$((i+1)); sleep 0.2; done"
DOCKERFILE = """\
FROM busybox
RUN echo built-by-old > /built.txt
COPY hello.txt /hello.txt
CMD ["cat", "/hello.txt"]
"""

_STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z (.*)")


def _stamped_counts(logs: str) -> list[tuple[float, int]]:
    """`docker logs -t` of the counter: (seconds since the epoch, counter) per line."""
    out = []
    for line in logs.splitlines():
        m = _STAMPED.fullmatch(line)
        assert m, f"not a timestamped counter line: {line!r}"
        seconds = datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
        out.append((seconds + float("0." + (m.group(2) or "0")), int(m.group(3))))
    return out


def _http_get(port: int, path: str) -> str:
    """GET from the published port on the host's loopback (http.client: no proxy)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, f"GET {path} on 127.0.0.1:{port}: {resp.status} {body!r}"
        return body
    finally:
        conn.close()


def _wait_for_http(port: int, path: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _http_get(port, path)
        except (OSError, AssertionError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _inspect(docker: Cli, *args: str) -> Any:
    return json.loads(docker.ok(*args))[0]


def _images(docker: Cli) -> dict[str, str]:
    out = docker.ok("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    return dict(line.split() for line in out.splitlines())


def _network_view(docker: Cli) -> tuple[str, str, dict[str, str]]:
    """The user network as `docker network inspect` shows it: ID, driver and the
    attached containers' IPv4 addresses by container ID."""
    net = _inspect(docker, "network", "inspect", NET)
    return net["Id"], net["Driver"], {cid: c["IPv4Address"] for cid, c in net["Containers"].items()}


@pytest.mark.timeout(120)
def test_data_root_of_the_previous_release_is_adopted(
    berth_root: Path, berthd: BerthDaemon, busybox_tar: Path
) -> None:
    try:
        old_src = old_source(OLD_COMMIT, berth_root / f"old-{OLD_COMMIT}")
    except OldSourceUnavailable as e:
        pytest.skip(str(e))
    with upgrade_in_place(berth_root, berthd.marker, old_src, "--live-restore") as upgrade:
        docker = upgrade.docker
        build = Cli("docker", {**docker.env, "DOCKER_BUILDKIT": "0"})

        # The old berthd makes a data root with something of everything.
        upgrade.old.start()
        res = import_image(docker, busybox_tar, "busybox:latest")
        assert res.returncode == 0, describe(res)
        context = berth_root / f"{upgrade.old.name}-context"
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "hello.txt").write_text("copied-by-old\n")
        build.ok("build", "-t", BUILT, str(context), timeout=120)
        docker.ok("volume", "create", VOLUME)
        docker.ok("run", "--rm", "-v", f"{VOLUME}:/data", "busybox",
                  "sh", "-c", "echo written-before-upgrade > /data/note")
        docker.ok("network", "create", NET)
        running = docker.ok(
            "run", "-d", "--name", "up-running", "--network", NET, "-v", f"{VOLUME}:/data",
            "-p", "127.0.0.1::8080", "busybox",
            "sh", "-c", f"httpd -p 8080 -h /data && {COUNTER}").strip()
        exited = docker("run", "--name", "up-exited", "busybox", "sh", "-c", "echo ran; exit 3")
        assert (exited.returncode, exited.stdout) == (3, "ran\n"), describe(exited)
        assert docker.ok("run", "--name", "up-built", BUILT) == "copied-by-old\n"

        port_line = docker.ok("port", "up-running", "8080/tcp").strip()
        host, _, port_text = port_line.rpartition(":")
        assert host == "127.0.0.1", port_line
        port = int(port_text)
        assert _wait_for_http(port, "/note") == "written-before-upgrade\n"
        before = _inspect(docker, "container", "inspect", "up-running")
        images_before = _images(docker)
        assert {"busybox:latest", BUILT} <= set(images_before), images_before
        net_before = _network_view(docker)
        assert net_before[2].keys() == {running}, net_before
        volume_before = _inspect(docker, "volume", "inspect", VOLUME)
        time.sleep(1)  # a few counter lines before the upgrade
        logs_before = docker.ok("logs", "-t", "up-running")

        # The upgrade: the old berthd stops (its containers run on), the new one starts.
        assert upgrade.stop_old_for_upgrade() == 0, upgrade.old.log_tail(3000)
        time.sleep(1)
        upgrade.new.start()

        # The running container, adopted.
        ps = docker.ok("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        assert [line.split()[:3] for line in ps.splitlines()] == [[running, "up-running", "Up"]], ps
        after = _inspect(docker, "container", "inspect", "up-running")
        for key in ("Status", "Running", "Pid", "StartedAt"):
            assert after["State"][key] == before["State"][key], (key, before["State"], after["State"])
        logs_after = docker.ok("logs", "-t", "up-running")
        assert logs_after.startswith(logs_before), "the logs written before the upgrade changed"
        stamped = _stamped_counts(logs_after)
        counts = [count for _, count in stamped]
        assert counts == list(range(1, len(counts) + 1)), f"the log lost lines: {counts}"
        assert len(counts) > len(logs_before.splitlines()), "nothing logged across the upgrade"
        gaps = [b[0] - a[0] for a, b in zip(stamped, stamped[1:], strict=False)]
        assert max(gaps) < 2, f"the counter paused for {max(gaps):.1f} s"
        deadline = time.monotonic() + 5
        while len(docker.ok("logs", "up-running").split()) <= len(counts):
            assert time.monotonic() < deadline, "the log stopped growing after the upgrade"
            time.sleep(0.2)

        # Images, volume and network, as before.
        assert _images(docker) == images_before
        assert docker.ok("image", "inspect", "-f", "{{.Id}}", BUILT).strip() == images_before[BUILT]
        assert VOLUME in docker.ok("volume", "ls", "-q").split()
        assert _inspect(docker, "volume", "inspect", VOLUME) == volume_before
        assert NET in docker.ok("network", "ls", "--format", "{{.Name}}").split()
        assert _network_view(docker) == net_before

        import docker as docker_py

        client = docker_py.DockerClient(base_url=upgrade.new.host, timeout=30)
        try:
            seen = client.containers.get("up-running")
            assert seen.status == "running"
            address = seen.attrs["NetworkSettings"]["Networks"][NET]["IPAddress"]
            assert address == before["NetworkSettings"]["Networks"][NET]["IPAddress"] != ""
        finally:
            client.close()

        # What runs inside still works: exec, the published port, the volume.
        docker.ok("exec", "up-running", "sh", "-c", "echo written-after-upgrade > /data/after")
        assert docker.ok("port", "up-running", "8080/tcp").strip() == port_line
        assert _http_get(port, "/note") == "written-before-upgrade\n"
        assert _http_get(port, "/after") == "written-after-upgrade\n"

        # The adopted container stops and goes away like any other.
        docker.ok("stop", "-t", "1", "up-running")
        state = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", running).split()
        assert state == ["exited", "137"]
        docker.ok("rm", "up-running")
        assert _network_view(docker)[2] == {}

        # The containers that had exited are listed, and start again.
        listed = docker.ok("ps", "-a", "--format", "{{.Names}} {{.Image}} {{.Status}}")
        rows = {line.split()[0]: line.split()[1:3] for line in listed.splitlines()}
        assert rows == {"up-exited": ["busybox", "Exited"], "up-built": [BUILT, "Exited"]}, listed
        assert "Exited (3)" in listed and "Exited (0)" in listed, listed
        docker.ok("start", "up-exited")
        assert docker.ok("wait", "up-exited").strip() == "3"
        assert docker.ok("logs", "up-exited") == "ran\nran\n"
        assert docker.ok("start", "-a", "up-built") == "copied-by-old\n"
        shown = docker.ok("run", "--rm", "-v", f"{VOLUME}:/data", BUILT,
                          "cat", "/built.txt", "/data/note", "/data/after")
        assert shown == "built-by-old\nwritten-before-upgrade\nwritten-after-upgrade\n"
