"""`docker events` and `GET /events`: what berthd reports for containers, images,
volumes and networks, in Docker's order and shape, through the real docker CLI,
docker-py, berth and raw HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stamp(t: float) -> str:
    """A time as `--since`/`--until` take it (and pass it on unchanged): Unix seconds."""
    return f"{t:.6f}"


def cli_events(cli: Cli, since: float, until: float, *args: str) -> list[dict[str, Any]]:
    out = cli.ok("events", "--since", stamp(since), "--until", stamp(until), "--format", "{{json .}}", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["Action"] for e in events]


def test_docker_run_shows_create_attach_start_die_destroy(docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    time.sleep(1.01 - time.time() % 1)  # run and ask within one second: the case that bit
    docker.ok("run", "--rm", "--name", name, "busybox", "true")
    # at once: the CLI sends `--until 0s` in whole seconds, and berthd takes it as now,
    # not as the start of this second (which would cut the run just done)
    out = docker.ok("events", "--since", "1m", "--until", "0s", "--filter", "type=container",
                    "--filter", f"container={name}", "--format", "{{.Action}}")
    assert out.split() == ["create", "attach", "start", "die", "destroy"]


def test_default_format_and_templates(docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    t0 = time.time()
    cid = docker.ok("create", "--name", name, "--label", "tier=web", "busybox", "true").strip()
    docker.ok("rm", name)
    t1 = time.time()
    window = ("--since", stamp(t0), "--until", stamp(t1), "--filter", f"container={name}")
    lines = docker.ok("events", *window).splitlines()
    assert len(lines) == 2, lines
    assert f" container create {cid} (image=busybox, name={name}, tier=web)" in lines[0]
    assert f" container destroy {cid} " in lines[1]
    out = docker.ok("events", *window, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert out.splitlines() == [f"container create {name}", f"container destroy {name}"]
    doc = json.loads(docker.ok("events", *window, "--format", "{{json .}}").splitlines()[0])
    assert doc["status"] == "create" and doc["id"] == cid and doc["from"] == "busybox"
    assert doc["Type"] == "container" and doc["Actor"]["ID"] == cid
    assert doc["Actor"]["Attributes"] == {"image": "busybox", "name": name, "tier": "web"}
    assert doc["scope"] == "local"
    assert doc["time"] == doc["timeNano"] // 10**9 and t0 <= doc["timeNano"] / 1e9 <= t1
    # label and event filters
    assert docker.ok("events", *window, "--filter", "label=tier=web", "--format", "{{.Action}}").split() == [
        "create", "destroy"]
    assert docker.ok("events", *window, "--filter", "label=tier=db", "--format", "{{.Action}}").split() == []
    assert docker.ok("events", *window, "--filter", "event=destroy", "--format", "{{.Action}}").split() == [
        "destroy"]


def test_stop_pause_rename_restart_kill(docker: Cli, new_name: Names) -> None:
    name, renamed = new_name("ev"), new_name("ev")
    t0 = time.time()
    cid = docker.ok("run", "-d", "--name", name, "busybox", "sleep", "60").strip()
    docker.ok("pause", name)
    docker.ok("unpause", name)
    docker.ok("rename", name, renamed)
    docker.ok("stop", "-t", "1", renamed)  # sleep as PID 1 ignores SIGTERM: killed after 1 s
    docker.ok("start", renamed)
    docker.ok("kill", "-s", "USR1", renamed)  # ignored as well
    docker.ok("rm", "-f", renamed)
    events = cli_events(docker, t0, time.time(), "--filter", f"container={cid}")
    got = [(e["Action"], e["Actor"]["Attributes"].get("signal", e["Actor"]["Attributes"].get("exitCode", "")))
           for e in events]
    assert got == [
        ("create", ""), ("start", ""), ("pause", ""), ("unpause", ""), ("rename", ""),
        ("kill", "15"), ("kill", "9"), ("die", "137"), ("stop", ""),
        ("start", ""), ("kill", "10"),
        ("kill", "9"), ("die", "137"), ("destroy", ""),
    ]
    rename = events[4]["Actor"]["Attributes"]
    assert rename["oldName"] == f"/{name}" and rename["name"] == renamed
    die = events[7]["Actor"]["Attributes"]
    assert die["execDuration"].isdigit()


def test_restart_event(docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    t0 = time.time()
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "60")
    docker.ok("restart", "-t", "0", name)
    docker.ok("rm", "-f", name)
    got = actions(cli_events(docker, t0, time.time(), "--filter", f"container={name}"))
    assert got == ["create", "start", "kill", "kill", "die", "stop", "start", "restart",
                   "kill", "die", "destroy"]


def test_docker_py_events(docker_client: Any, docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    t0 = time.time()
    res = docker("run", "--name", name, "busybox", "sh", "-c", "exit 3")
    assert res.returncode == 3, describe(res)
    docker.ok("rm", name)
    t1 = time.time()
    stream = docker_client.api.events(since=t0, until=t1, decode=True, filters={"container": name})
    events = list(stream)
    assert actions(events) == ["create", "attach", "start", "die", "destroy"]
    die = events[3]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == name
    # the high-level client, with the event type as a filter
    got = list(docker_client.events(since=t0, until=t1, decode=True,
                                    filters={"type": "container", "event": ["start", "die"]}))
    assert [e["Action"] for e in got if e["Actor"]["Attributes"].get("name") == name] == ["start", "die"]


def test_live_stream_sees_new_events(docker_client: Any, docker: Cli) -> None:
    volume = unique("evlive")
    stream = docker_client.events(decode=True, filters={"volume": volume})
    seen: list[dict[str, Any]] = []

    def read() -> None:
        for ev in stream:
            seen.append(ev)
            if len(seen) == 2:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    docker.ok("volume", "create", volume)
    docker.ok("volume", "rm", volume)
    reader.join(10)
    stream.close()
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in seen] == [
        ("volume", "create", volume), ("volume", "destroy", volume)]
    assert seen[0]["Actor"]["Attributes"] == {"driver": "local"}


def test_stream_ends_at_until(api: ApiClient, docker: Cli) -> None:
    volume = unique("evuntil")
    until = time.time() + 1.5

    def later() -> None:
        time.sleep(0.5)
        docker.ok("volume", "create", volume)
        docker.ok("volume", "rm", volume)

    worker = threading.Thread(target=later)
    worker.start()
    filters = urllib.parse.quote(json.dumps({"volume": [volume]}))
    began = time.monotonic()
    resp = api.get(f"/events?until={stamp(until)}&filters={filters}", timeout=10)
    took = time.monotonic() - began
    worker.join()
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    lines = [json.loads(line) for line in resp.body.splitlines()]
    assert [e["Action"] for e in lines] == ["create", "destroy"]
    assert 1.0 < took < 5


def test_images_tag_untag_delete_and_commit(docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    repo = unique("evimg")
    t0 = time.time()
    docker.ok("tag", "busybox", f"{repo}:one")
    docker.ok("rmi", f"{repo}:one")
    cid = docker.ok("create", "--name", name, "busybox", "true").strip()
    image_id = docker.ok("commit", "-m", "hello", name, f"{repo}:two").strip()
    docker.ok("rm", name)
    docker.ok("rmi", f"{repo}:two")
    events = cli_events(docker, t0, time.time())
    busybox_id = docker.ok("image", "inspect", "--format", "{{.Id}}", "busybox").strip()
    mine = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"].get("name"))
            for e in events if e["Actor"]["ID"] in (busybox_id, image_id) or e["Actor"]["ID"] == cid]
    assert mine == [
        ("image", "tag", busybox_id, f"{repo}:one"),
        ("image", "untag", busybox_id, busybox_id),
        ("container", "create", cid, name),
        ("image", "create", image_id, image_id),
        ("image", "tag", image_id, f"{repo}:two"),
        ("container", "commit", cid, name),
        ("container", "destroy", cid, name),
        ("image", "untag", image_id, image_id),
        ("image", "delete", image_id, image_id),
    ]
    commit = next(e for e in events if e["Action"] == "commit")["Actor"]["Attributes"]
    assert commit["imageID"] == image_id and commit["imageRef"] == f"{repo}:two" and commit["comment"] == "hello"
    tagged = next(e for e in events if e["Action"] == "tag")
    assert tagged["status"] == "tag" and tagged["id"] == busybox_id and "from" not in tagged
    # the image filter: by repository (tag and container events name it), or by ID
    by_repo = cli_events(docker, t0, time.time(), "--filter", f"image={repo}")
    assert actions(by_repo) == ["tag", "tag"]
    by_id = cli_events(docker, t0, time.time(), "--filter", f"image={image_id}")
    assert actions(by_id) == ["create", "tag", "untag", "delete"]


def test_volumes_create_mount_unmount_destroy(docker: Cli) -> None:
    volume = unique("evvol")
    t0 = time.time()
    docker.ok("volume", "create", volume)
    cid = docker.ok("run", "-d", "-v", f"{volume}:/data", "busybox", "true").strip()
    docker.ok("wait", cid)
    docker.ok("rm", cid)
    docker.ok("volume", "rm", volume)
    events = cli_events(docker, t0, time.time(), "--filter", f"volume={volume}")
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("volume", a, volume) for a in ("create", "mount", "unmount", "destroy")]
    assert events[1]["Actor"]["Attributes"] == {
        "container": cid, "destination": "/data", "driver": "local", "propagation": "", "read/write": "true"}
    assert events[2]["Actor"]["Attributes"] == {"container": cid, "driver": "local"}
    assert "status" not in events[0] and "id" not in events[0]


def test_networks_create_connect_disconnect_destroy(docker: Cli, new_name: Names) -> None:
    network = unique("evnet")
    name = new_name("ev")
    t0 = time.time()
    net_id = docker.ok("network", "create", network).strip()
    cid = docker.ok("run", "-d", "--name", name, "busybox", "sleep", "60").strip()
    docker.ok("network", "connect", network, name)
    docker.ok("network", "disconnect", network, name)
    docker.ok("rm", "-f", name)
    docker.ok("network", "rm", network)
    t1 = time.time()
    events = cli_events(docker, t0, t1, "--filter", f"network={network}")
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("network", a, net_id) for a in ("create", "connect", "disconnect", "destroy")]
    assert events[1]["Actor"]["Attributes"] == {"container": cid, "name": network, "type": "bridge"}
    assert events[0]["Actor"]["Attributes"] == {"name": network, "type": "bridge"}
    # the container's start joined the default bridge, its end left it
    bridge = [e for e in cli_events(docker, t0, t1, "--filter", "network=bridge")
              if e["Actor"]["Attributes"].get("container") == cid]
    assert actions(bridge) == ["connect", "disconnect"]


def test_berth_cli_events(berth: Cli, docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    t0 = time.time()
    docker.ok("create", "--name", name, "busybox", "true")
    docker.ok("rm", name)
    t1 = time.time()
    out = berth.ok("events", "--since", stamp(t0), "--until", stamp(t1), "--filter", f"container={name}",
                   "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert out.splitlines() == [f"container create {name}", f"container destroy {name}"]
    docs = [json.loads(line) for line in berth.ok(
        "events", "--since", stamp(t0), "--until", stamp(t1), "--filter", f"container={name}",
        "--format", "json").splitlines()]
    assert actions(docs) == ["create", "destroy"]
    plain = berth.ok("events", "--since", stamp(t0), "--until", stamp(t1), "--filter", f"container={name}")
    assert " container create " in plain and f"name={name})" in plain


def test_unknown_filter_is_ignored_and_bad_json_refused(api: ApiClient, docker: Cli, new_name: Names) -> None:
    name = new_name("ev")
    t0 = time.time()
    docker.ok("create", "--name", name, "busybox", "true")
    docker.ok("rm", name)
    t1 = time.time()
    # dockerd 28 takes filter keys it does not know, and ignores them
    filters = urllib.parse.quote(json.dumps({"nonsense": {"x": True}, "container": {name: True}}))
    resp = api.get(f"/events?since={stamp(t0)}&until={stamp(t1)}&filters={filters}")
    assert resp.status == 200
    assert [json.loads(line)["Action"] for line in resp.body.splitlines()] == ["create", "destroy"]
    resp = api.get(f"/events?until={stamp(t1)}&filters=%7Bnope")
    assert resp.status == 400 and resp.json() == {"message": "invalid filter"}


def test_bad_times(api: ApiClient, docker: Cli) -> None:
    res = docker("events", "--since", "yesterday")
    assert res.returncode != 0
    assert 'failed to parse value as time or duration: "yesterday"' in res.stderr
    resp = api.get("/events?since=1m")
    assert resp.status == 400
    assert resp.json() == {"message": "invalid value for 'since': strconv.ParseInt: parsing \"1m\": invalid syntax"}
    resp = api.get("/events?since=20&until=10")
    assert resp.status == 400
    assert resp.json() == {"message": "`since` time (20) cannot be after `until` time (10)"}
    res = docker("events", "--since", "2s", "--until", "1m")
    assert res.returncode != 0 and "cannot be after `until` time" in res.stderr


def test_info_counts_listeners(docker_client: Any, api: ApiClient) -> None:
    before = api.get("/info").json()["NEventsListener"]
    stream = docker_client.events(decode=True)
    deadline = time.monotonic() + 5
    while api.get("/info").json()["NEventsListener"] != before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get("/info").json()["NEventsListener"] == before + 1
    stream.close()
    deadline = time.monotonic() + 5
    while api.get("/info").json()["NEventsListener"] != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.get("/info").json()["NEventsListener"] == before
