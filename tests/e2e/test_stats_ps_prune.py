"""`docker stats`, `docker top` with ps options, `docker ps` filters and options,
`docker container prune`, `docker system prune` and the counts of `docker system info`,
through the real docker CLI, docker-py and the raw API (course chapter 10 included)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from helpers.api import ApiClient, UnixHTTPConnection
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

# Burns CPU (so CPU % is above 0) after sending a few packets (so NET I/O is too).
BUSY = "ping -c 2 -W 1 $(ip route | awk '/default/ {print $3}') >/dev/null 2>&1; while :; do :; done"
STATS_COLUMNS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def run_detached(docker: Cli, name: str, *args: str) -> str:
    res = docker("run", "-d", "--name", name, *args)
    assert res.returncode == 0, describe(res)
    return res.stdout.strip()


def run_to_exit(docker: Cli, name: str, code: int, *options: str) -> str:
    res = docker("run", "--name", name, *options, "busybox", "sh", "-c", f"exit {code}")
    assert res.returncode == code, describe(res)
    return docker.ok("inspect", "-f", "{{.Id}}", name).strip()


def ps_names(docker: Cli, *args: str) -> list[str]:
    return docker.ok("ps", "--format", "{{.Names}}", *args).split()


def columns(line: str) -> list[str]:
    """A row of a docker table: columns are at least two spaces apart."""
    return re.split(r"\s{2,}", line.strip())


def wait_until(check: Callable[[], bool], timeout: float = 10, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def read_stream_lines(socket_path: str, path: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The first `count` JSON lines of a streamed response, then hang up."""
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return [json.loads(resp.readline()) for _ in range(count)]
    finally:
        conn.close()


# -- stats ---------------------------------------------------------------------------------


def test_stats_no_stream_table(docker: Cli, new_name: Names) -> None:
    """Chapter 10: `docker stats --no-stream`, its columns, and the numbers in them."""
    name = new_name("stats")
    cid = run_detached(docker, name, "-m", "64m", "busybox", "sh", "-c", BUSY)
    time.sleep(2.5)  # the pings are done, the loop has burnt CPU
    out = docker.ok("stats", "--no-stream", name, timeout=30)
    header, row, *rest = out.splitlines()
    assert not rest, out
    assert columns(header) == STATS_COLUMNS, out
    cells = dict(zip(STATS_COLUMNS, columns(row), strict=True))
    assert cells["CONTAINER ID"] == cid[:12]
    assert cells["NAME"] == name
    cpu = float(cells["CPU %"].rstrip("%"))
    assert 1.0 < cpu <= 100.0 * 64, out  # a busy loop (on a shared host: not a whole CPU)
    usage, limit = cells["MEM USAGE / LIMIT"].split(" / ")
    assert limit == "64MiB", out
    assert re.fullmatch(r"[\d.]+(B|KiB|MiB)", usage), out
    assert 0.0 < float(cells["MEM %"].rstrip("%")) < 100.0, out
    rx, tx = cells["NET I/O"].split(" / ")
    assert rx != "0B" and tx != "0B", out  # the pings
    assert re.fullmatch(r"[\d.]+[kMG]?B / [\d.]+[kMG]?B", cells["BLOCK I/O"]), out
    assert cells["PIDS"] == "1", out

    # --format, with docker's field names; and several containers, running or not (-a)
    stopped = new_name("stopped")
    run_to_exit(docker, stopped, 0)
    out = docker.ok("stats", "--no-stream", "-a", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}", timeout=30)
    rows = dict(line.split("|", 1) for line in out.splitlines())
    assert rows[name].endswith(" / 64MiB|1"), out
    assert rows[stopped] == "0B / 0B|0", out
    out = docker.ok("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}}", name, timeout=30)
    assert out.strip() == cid


def test_stats_api_shape(api: ApiClient, berthd: Any, docker: Cli, new_name: Names) -> None:
    name = new_name("statsapi")
    cid = run_detached(docker, name, "--pids-limit", "50", "busybox", "sh", "-c", BUSY)
    time.sleep(1.5)

    started = time.monotonic()
    resp = api.get(f"/containers/{name}/stats?stream=false")
    assert resp.status == 200, resp.body
    assert time.monotonic() - started > 0.8, "stream=false waits for a second sample"
    s = resp.json()
    assert s["name"] == "/" + name and s["id"] == cid
    assert s["read"].endswith("Z") and not s["preread"].startswith("0001-")
    assert list(s) == ["name", "id", "read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats",
                       "cpu_stats", "precpu_stats", "memory_stats", "networks"]
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert set(cpu) == {"cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data"}
    assert set(cpu["cpu_usage"]) >= {"total_usage", "usage_in_kernelmode", "usage_in_usermode"}
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0
    assert cpu["online_cpus"] >= 1
    if "percpu_usage" in cpu["cpu_usage"]:  # cgroup v1
        # two files read one after the other while the container runs: close, not equal
        total = cpu["cpu_usage"]["total_usage"]
        assert abs(sum(cpu["cpu_usage"]["percpu_usage"]) - total) <= total * 0.05
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    mem = s["memory_stats"]
    assert mem["usage"] > 0 and mem["limit"] > mem["usage"] and isinstance(mem["stats"], dict)
    assert "inactive_file" in mem["stats"] or "total_inactive_file" in mem["stats"]
    assert s["pids_stats"] == {"current": 1, "limit": 50}
    assert set(s["blkio_stats"]) == {"io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                                     "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                                     "io_time_recursive", "sectors_recursive"}
    assert s["num_procs"] == 0 and s["storage_stats"] == {}
    eth0 = s["networks"]["eth0"]
    assert set(eth0) == {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                         "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
    assert eth0["rx_packets"] > 0 and eth0["tx_packets"] > 0

    # one-shot: one sample at once, no previous one
    started = time.monotonic()
    one = api.get(f"/containers/{cid}/stats?stream=false&one-shot=true").json()
    assert time.monotonic() - started < 0.8
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in one["precpu_stats"]
    assert one["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    resp = api.get(f"/containers/{cid}/stats?stream=true&one-shot=true")
    assert resp.status == 400 and resp.json()["message"] == "cannot have stream=true and one-shot=true"

    # the stream: a sample a second, each carrying the one before as "pre"
    first, second = read_stream_lines(berthd.socket_path, f"/containers/{cid}/stats", 2)
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]

    resp = api.get("/containers/nosuch/stats?stream=false")
    assert resp.status == 404 and resp.json()["message"] == "No such container: nosuch"


def test_stats_of_a_stopped_container_is_the_zero_shape(api: ApiClient, docker: Cli, new_name: Names) -> None:
    name = new_name("statsoff")
    cid = run_to_exit(docker, name, 0)
    s = api.get(f"/containers/{name}/stats?stream=false").json()
    assert s["name"] == "/" + name and s["id"] == cid
    assert s["read"] == s["preread"] == "0001-01-01T00:00:00Z"
    assert s["memory_stats"] == {} and s["pids_stats"] == {} and "networks" not in s
    assert s["cpu_stats"] == {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                              "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    assert s["blkio_stats"]["io_service_bytes_recursive"] is None


def test_dockerpy_stats_and_top(docker_client: Any, new_name: Names) -> None:
    name = new_name("pystats")
    container = docker_client.containers.run("busybox", ["sh", "-c", BUSY], name=name, detach=True,
                                             mem_limit="32m")
    try:
        time.sleep(1.5)
        s = container.stats(stream=False)
        assert s["id"] == container.id and s["memory_stats"]["limit"] == 32 * 1024 * 1024
        cpu_delta = s["cpu_stats"]["cpu_usage"]["total_usage"] - s["precpu_stats"]["cpu_usage"]["total_usage"]
        system_delta = s["cpu_stats"]["system_cpu_usage"] - s["precpu_stats"]["system_cpu_usage"]
        percent = cpu_delta / system_delta * s["cpu_stats"]["online_cpus"] * 100
        assert 1 < percent <= 100 * s["cpu_stats"]["online_cpus"]
        stream = container.stats(decode=True)
        assert next(stream)["id"] == container.id
        stream.close()

        top = container.top()
        assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert len(top["Processes"]) == 1 and top["Processes"][0][7].startswith("sh -c ping")
        top = container.top(ps_args="-o pid,comm")
        assert top["Titles"] == ["PID", "COMMAND"] and top["Processes"][0][1] == "sh"
    finally:
        container.remove(force=True)


# -- top -------------------------------------------------------------------------------------


def test_top_with_ps_options(docker: Cli, api: ApiClient, new_name: Names) -> None:
    """Chapter 10's `docker top`, and ps options passed through as dockerd passes them."""
    name = new_name("top")
    cid = run_detached(docker, name, "busybox", "sh", "-c", "sleep 300 & sleep 301 & wait")
    assert wait_until(lambda: len(docker.ok("top", name).splitlines()) == 4)
    pid = int(docker.ok("inspect", "-f", "{{.State.Pid}}", name))

    out = docker.ok("top", name).splitlines()
    assert columns(out[0]) == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [columns(line) for line in out[1:]]
    assert [r[7] for r in rows] == ["sh -c sleep 300 & sleep 301 & wait", "sleep 300", "sleep 301"]
    assert rows[0][1] == str(pid) and rows[1][2] == str(pid)

    out = docker.ok("top", name, "-o", "pid,comm").splitlines()
    assert columns(out[0]) == ["PID", "COMMAND"]
    assert [columns(line)[1] for line in out[1:]] == ["sh", "sleep", "sleep"]

    out = docker.ok("top", name, "aux").splitlines()
    assert columns(out[0])[:3] == ["USER", "PID", "%CPU"] and columns(out[0])[-1] == "COMMAND"
    assert len(out) == 4 and columns(out[1])[1] == str(pid)
    assert columns(out[2])[-1] == "sleep 300"  # the last column takes the rest of the line

    # `ps m` adds a thread row (PID "-") after each process: kept after one of ours
    body = api.get(f"/containers/{cid}/top?ps_args={quote('m -o pid,tid,comm')}").json()
    assert body["Titles"] == ["PID", "TID", "COMMAND"]
    assert [row[0] for row in body["Processes"]] == [str(pid), "-", *[row[0] for row in body["Processes"][2:]]]
    assert len(body["Processes"]) == 6

    resp = api.get(f"/containers/{cid}/top?ps_args={quote('-o pid,comm --ppid=PID')}")
    assert resp.status == 400 and resp.json()["message"] == 'specifying "--ppid=PID" is not allowed'
    resp = api.get(f"/containers/{cid}/top?ps_args={quote('-o comm')}")
    assert resp.status == 500 and resp.json()["message"] == "Couldn't find PID field in ps output"
    res = docker("top", name, "--no-such-ps-option")
    assert res.returncode != 0 and "Error response from daemon: ps: " in res.stderr, describe(res)

    docker.ok("stop", "-t", "0", name)
    res = docker("top", name)
    assert res.returncode == 1
    assert res.stderr.strip() == f"Error response from daemon: container {cid} is not running", describe(res)


# -- ps --------------------------------------------------------------------------------------


def test_ps_filters(docker: Cli, berthd: Any, new_name: Names) -> None:
    label = f"berth.test={uuid.uuid4().hex[:8]}"
    net = new_name("psnet")
    docker.ok("network", "create", net)
    try:
        _check_ps_filters(docker, berthd, new_name, label, net)
    finally:
        for name in docker.ok("ps", "-aq", "--filter", f"label={label}").split():
            docker("rm", "-f", name)
        docker("network", "rm", net)


def _check_ps_filters(docker: Cli, berthd: Any, new_name: Names, label: str, net: str) -> None:
    web = new_name("web")
    run_detached(docker, web, "--label", label, "--label", "role=web", "-p", "18080:80", "--expose", "9000-9001",
                 "-v", "/data", "busybox", "sleep", "300")
    other = new_name("other")
    run_detached(docker, other, "--label", label, "--network", net, "busybox", "sleep", "300")
    ok = new_name("ok")
    ok_id = run_to_exit(docker, ok, 0, "--label", label)
    failed = new_name("failed")
    failed_id = run_to_exit(docker, failed, 3, "--label", label)
    created = new_name("created")
    docker.ok("create", "--name", created, "--label", label, "busybox")
    mine = ("--filter", f"label={label}")

    # Chapter 10: counting the exited containers
    res = subprocess.run(f"docker container ls -a -q -f status=exited -f label={label} | wc -l", shell=True,
                         capture_output=True, text=True, env=docker.env, timeout=30)
    assert res.stdout.strip() == "2", res
    assert sorted(docker.ok("container", "ls", "-a", "-q", "-f", "status=exited", *mine).split()) == sorted(
        [ok_id[:12], failed_id[:12]])

    assert ps_names(docker, *mine) == [other, web]  # running only, newest first
    assert ps_names(docker, "-a", *mine) == [created, failed, ok, other, web]
    assert ps_names(docker, "-f", "status=created", *mine) == [created]  # status implies --all
    assert ps_names(docker, "-f", "status=running", "-f", "status=created", *mine) == [created, other, web]
    assert ps_names(docker, "-a", "-f", "exited=3", *mine) == [failed]
    assert ps_names(docker, "-a", "-f", "exited=0", *mine) == [ok]  # never started: not "exited 0"
    assert ps_names(docker, "-f", "exited=0", *mine) == []  # exited does not imply --all
    assert ps_names(docker, "-a", "-f", f"name={web}", *mine) == [web]
    assert ps_names(docker, "-a", "-f", f"name=^/{web[:3]}", *mine) == [web]  # a regular expression
    assert ps_names(docker, "-a", "-f", f"id={ok_id[:10]}") == [ok]
    assert ps_names(docker, "-a", "-f", "label=role=web", *mine) == [web]
    assert ps_names(docker, "-a", "-f", "label=role", *mine) == [web]
    assert ps_names(docker, "-a", "-f", "label=role=db", *mine) == []
    assert ps_names(docker, "-a", "-f", "ancestor=busybox", *mine) == [created, failed, ok, other, web]
    assert ps_names(docker, "-a", "-f", "ancestor=busybox:latest", "-f", f"name={ok}") == [ok]
    assert ps_names(docker, "-a", "-f", f"before={ok}", *mine) == [other, web]
    assert ps_names(docker, "-a", "-f", f"since={ok}", *mine) == [created, failed]
    assert ps_names(docker, "-a", "-f", f"since={web}", "-f", f"before={created}", *mine) == [failed, ok, other]
    assert ps_names(docker, "-a", "-f", "volume=/data", *mine) == [web]
    volume = docker.ok("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", web).strip()
    assert ps_names(docker, "-a", "-f", f"volume={volume}", *mine) == [web]
    assert ps_names(docker, "-f", f"network={net}", *mine) == [other]
    net_id = docker.ok("network", "inspect", "-f", "{{.Id}}", net).strip()
    assert ps_names(docker, "-f", f"network={net_id[:12]}", *mine) == [other]
    assert ps_names(docker, "-f", "network=bridge", *mine) == [web]
    assert ps_names(docker, "-f", "publish=18080", *mine) == [web]
    assert ps_names(docker, "-f", "publish=18000-18100/tcp", *mine) == [web]
    assert ps_names(docker, "-f", "publish=18080/udp", *mine) == []
    assert ps_names(docker, "-f", "expose=80", *mine) == [web]
    assert ps_names(docker, "-f", "expose=9001", *mine) == [web]
    assert ps_names(docker, "-f", "expose=81-8999", *mine) == []
    assert ps_names(docker, "-a", "-f", "health=none", *mine) == [created, failed, ok, other, web]
    assert ps_names(docker, "-a", "-f", "health=healthy", *mine) == []
    assert ps_names(docker, "-a", "-f", "is-task=false", *mine) == [created, failed, ok, other, web]
    assert ps_names(docker, "-a", "-f", "is-task=true", *mine) == []

    # -n / --last and -l count stopped containers too, newest first
    assert ps_names(docker, "-n", "2", *mine) == [created, failed]
    assert ps_names(docker, "--last", "3", "-f", "status=exited", *mine) == [failed, ok]
    assert ps_names(docker, "-l", *mine) == [created]

    errors = {
        ("-f", "color=red"): "invalid filter 'color'",
        ("-f", "status=sleeping"): "invalid filter 'status=sleeping': invalid value for state (sleeping): must be "
                                   "one of created, running, paused, restarting, removing, exited, dead",
        ("-f", "health=sick"): "invalid filter 'health=sick': invalid value for health (sick): must be one of "
                               "none, starting, healthy, unhealthy",
        ("-f", "exited=x"): "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax",
        ("-f", "is-task=maybe"): "invalid filter 'is-task=[maybe]'",
        ("-f", "publish=80:80"): "filter for 'publish' should not contain ':': 80:80",
        ("-f", "expose=90-80"): "error while looking up for expose 90-80: invalid range specified for port: 90-80",
        ("-f", "before=nosuch"): "No such container: nosuch",
    }
    for args, message in errors.items():
        res = docker("ps", *args)
        assert res.returncode == 1, describe(res)
        assert res.stderr.strip() == f"Error response from daemon: {message}", describe(res)


def test_ps_sizes_no_trunc_and_format(docker: Cli, api: ApiClient, new_name: Names) -> None:
    name = new_name("sized")
    cid = run_detached(docker, name, "busybox", "sh", "-c",
                       "dd if=/dev/zero of=/big bs=1024 count=3000 2>/dev/null; sleep 300")
    assert wait_until(lambda: "3.07MB" in docker.ok("ps", "-s", "-f", f"name={name}"), timeout=15)

    out = docker.ok("ps", "-s", "-f", f"name={name}").splitlines()
    assert columns(out[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES", "SIZE"]
    assert re.search(r"3\.07MB \(virtual [\d.]+MB\)$", out[1]), out
    summary = api.get(f"/containers/json?size=1&filters={quote(json.dumps({'name': [name]}))}").json()[0]
    image_size = int(docker.ok("image", "inspect", "-f", "{{.Size}}", "busybox"))
    assert summary["SizeRw"] >= 3000 * 1024 and summary["SizeRootFs"] == summary["SizeRw"] + image_size
    plain = api.get(f"/containers/json?filters={quote(json.dumps({'name': [name]}))}").json()[0]
    assert "SizeRw" not in plain and "SizeRootFs" not in plain

    out = docker.ok("ps", "--no-trunc", "-f", f"name={name}", "--format", "{{.ID}} {{.Command}}")
    assert out.strip() == f'{cid} "sh -c \'dd if=/dev/zero of=/big bs=1024 count=3000 2>/dev/null; sleep 300\'"'
    out = docker.ok("ps", "-f", f"name={name}", "--format", "table {{.ID}}\t{{.Names}}\t{{.Size}}")
    header, row = out.splitlines()
    assert columns(header) == ["CONTAINER ID", "NAMES", "SIZE"]  # .Size asks the daemon for sizes
    assert columns(row)[:2] == [cid[:12], name] and columns(row)[2].startswith("3.07MB (virtual ")
    out = docker.ok("ps", "-f", f"name={name}", "--format", "{{json .}}")
    assert json.loads(out)["Names"] == name


# -- prune and info --------------------------------------------------------------------------


def test_container_prune(docker: Cli, new_name: Names) -> None:
    """Chapter 10: `docker container prune` removes stopped containers, and only those."""
    label = f"berth.prune={uuid.uuid4().hex[:8]}"
    running = new_name("keep")
    run_detached(docker, running, "--label", label, "busybox", "sleep", "300")
    gone = [run_to_exit(docker, new_name("gone"), code, "--label", label) for code in (0, 1)]
    other = new_name("otherlabel")
    run_to_exit(docker, other, 0, "--label", "berth.prune=unrelated")
    docker.ok("create", "--name", new_name("created"), "--label", label, "busybox")
    created_id = docker.ok("ps", "-aq", "--no-trunc", "-f", "status=created", "-f", f"label={label}").strip()

    # until: nothing was created an hour ago
    out = docker.ok("container", "prune", "-f", "--filter", f"label={label}", "--filter", "until=1h")
    assert out == "Total reclaimed space: 0B\n"

    out = docker.ok("container", "prune", "--force", "--filter", f"label={label}")
    lines = out.splitlines()
    assert lines[0] == "Deleted Containers:" and lines[-2] == "" and lines[-1].startswith("Total reclaimed space: ")
    assert sorted(lines[1:-2]) == sorted([*gone, created_id])
    assert docker.ok("ps", "-aq", "-f", f"label={label}").split() == [
        docker.ok("inspect", "-f", "{{.Id}}", running).strip()[:12]]
    assert docker.ok("ps", "-aq", "-f", f"name={other}").strip()  # another label: kept

    out = docker.ok("container", "prune", "-f", "--filter", "label!=berth.prune=unrelated",
                    "--filter", "label=berth.prune")
    assert out == "Total reclaimed space: 0B\n"
    res = docker("container", "prune", "-f", "--filter", "color=red")
    assert res.returncode == 1 and "invalid filter 'color'" in res.stderr, describe(res)
    res = docker("container", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h")
    assert res.returncode == 1 and "more than one until filter specified" in res.stderr, describe(res)

    # the prompt, answered no: nothing goes
    res = docker("container", "prune", "--filter", "label=berth.prune", input="n\n")
    assert res.returncode == 0 and "WARNING! This will remove all stopped containers." in res.stdout
    assert docker.ok("ps", "-aq", "-f", f"name={other}").strip()
    docker.ok("rm", other)


def test_system_prune(docker: Cli, new_name: Names) -> None:
    """`docker system prune` with a label: stopped containers, unused networks and (with
    --volumes) anonymous volumes that carry it; images without it (busybox) stay."""
    label = f"berth.sysprune={uuid.uuid4().hex[:8]}"
    stopped = run_to_exit(docker, new_name("sysgone"), 0, "--label", label)
    running = new_name("syskeep")
    run_detached(docker, running, "--label", label, "busybox", "sleep", "300")
    net = new_name("sysnet")
    docker.ok("network", "create", "--label", label, net)
    volume = new_name("sysvol")
    docker.ok("volume", "create", "--label", label, volume)
    images_before = docker.ok("images", "-q")

    out = docker.ok("system", "prune", "-f", "--filter", f"label={label}")
    assert "Deleted Containers:\n" + stopped + "\n" in out
    assert "Deleted Networks:\n" + net + "\n" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert docker.ok("ps", "-q", "-f", f"name={running}").strip()
    assert docker.ok("images", "-q") == images_before
    assert docker.ok("volume", "ls", "-q", "-f", f"name={volume}").strip() == volume  # not without --volumes

    out = docker.ok("system", "prune", "-a", "--volumes", "-f", "--filter", f"label={label}")
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert docker.ok("images", "-q") == images_before  # -a: unused images with the label (none)
    docker.ok("volume", "rm", volume)  # a named volume: volume prune keeps those

    res = docker("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert res.returncode == 1 and 'The "until" filter is not supported with "--volumes"' in res.stderr
    res = docker("system", "prune", input="n\n")
    assert res.returncode == 0 and "WARNING! This will remove:" in res.stdout
    docker.ok("rm", "-f", running)


def test_system_info_counts(docker: Cli, new_name: Names) -> None:
    fmt = "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}} {{.Images}}"

    def counts() -> list[int]:
        return [int(n) for n in docker.ok("system", "info", "--format", fmt).split()]

    before = counts()
    run_detached(docker, new_name("inforun"), "busybox", "sleep", "300")
    paused = new_name("infopause")
    run_detached(docker, paused, "busybox", "sleep", "300")
    docker.ok("pause", paused)
    run_to_exit(docker, new_name("infostop"), 0)
    docker.ok("create", "--name", new_name("infocreated"), "busybox")
    after = counts()
    assert after == [before[0] + 4, before[1] + 1, before[2] + 1, before[3] + 2, before[4]]
    assert after[4] == len(set(docker.ok("images", "-aq").split()))
    out = docker.ok("info")
    assert (f" Containers: {after[0]}\n  Running: {after[1]}\n  Paused: {after[2]}\n  Stopped: {after[3]}\n"
            f" Images: {after[4]}\n") in out, out
    docker.ok("unpause", paused)


def test_berth_cli_matches_docker(docker: Cli, berth: Cli, new_name: Names) -> None:
    """berth's own CLI, for the same commands: the same table shapes as docker's."""
    label = f"berth.cli={uuid.uuid4().hex[:8]}"
    name = new_name("clirun")
    run_detached(docker, name, "--label", label, "-m", "32m", "busybox", "sh", "-c", "sleep 300 & wait")
    stopped = new_name("clistop")
    stopped_id = run_to_exit(docker, stopped, 2, "--label", label)

    for args in (("ps", "-a", "-f", f"label={label}", "--format", "{{.Names}} {{.Status}}"),
                 ("ps", "-a", "-q", "-f", "exited=2", "-f", f"label={label}"),
                 ("ps", "-n", "1", "-f", f"label={label}", "--format", "table {{.Names}}\t{{.State}}"),
                 ("top", name, "-o", "pid,comm")):
        assert berth.ok(*args) == docker.ok(*args), args
    res = berth("ps", "-f", "status=sleeping")
    assert res.returncode == 1 and res.stderr == docker("ps", "-f", "status=sleeping").stderr

    out = berth.ok("stats", "--no-stream", name, timeout=30)
    header, row = out.splitlines()
    assert columns(header) == STATS_COLUMNS
    assert columns(row)[1] == name and columns(row)[3].endswith(" / 32MiB") and columns(row)[7] == "2"
    out = berth.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name, timeout=30)
    assert out == f"{name} 2\n"

    out = berth.ok("container", "prune", "-f", "--filter", f"label={label}")
    assert out.splitlines()[:3] == ["Deleted Containers:", stopped_id, ""], out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    docker.ok("rm", "-f", name)


def test_stats_streams_a_frame_a_second(docker: Cli, new_name: Names) -> None:
    name = new_name("stream")
    run_detached(docker, name, "busybox", "sleep", "300")
    proc = subprocess.Popen(["docker", "stats", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=docker.env)
    try:
        time.sleep(4)
    finally:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    text = out.decode()
    assert text.count("CONTAINER ID") >= 2, (text, err)
    assert re.search(rf"\n[0-9a-f]{{12}}\s+{name}\s+[\d.]+%", text), text


def test_ps_health_filter(docker: Cli, new_name: Names) -> None:
    label = f"berth.health={uuid.uuid4().hex[:8]}"
    good = new_name("healthy")
    run_detached(docker, good, "--label", label, "--health-cmd", "true", "--health-interval", "1s",
                 "busybox", "sleep", "300")
    bad = new_name("unhealthy")
    run_detached(docker, bad, "--label", label, "--health-cmd", "false", "--health-interval", "1s",
                 "--health-retries", "1", "busybox", "sleep", "300")
    plain = new_name("nocheck")
    run_detached(docker, plain, "--label", label, "busybox", "sleep", "300")
    mine = ("-f", f"label={label}")
    assert wait_until(lambda: ps_names(docker, "-f", "health=healthy", *mine) == [good], timeout=20)
    assert wait_until(lambda: ps_names(docker, "-f", "health=unhealthy", *mine) == [bad], timeout=20)
    assert ps_names(docker, "-f", "health=none", *mine) == [plain]
    assert ps_names(docker, "-f", "health=healthy", "-f", "health=none", *mine) == [plain, good]
    for name in (good, bad, plain):
        docker.ok("rm", "-f", name)
