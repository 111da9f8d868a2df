"""HostConfig as Docker keeps it: every field given at create comes back from inspect
(with dockerd's normalisations), and the namespace modes do what they say.

The field list below is the HostConfig schema of Engine API 1.51 (its `Resources` part
included), written out by hand; the walk fails when inspect leaves one out or answers
another value than dockerd would. --pid, --ipc and --uts are checked from inside the
containers (whose namespaces, what /dev/shm is shared), --device-cgroup-rule in the
devices cgroup (cgroup v1 here).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import docker as docker_py
import pytest

from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

# Engine API 1.51, definitions HostConfig and Resources: every property.
HOSTCONFIG_FIELDS = (
    "CpuShares", "Memory", "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota",
    "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules",
    "DeviceRequests", "KernelMemoryTCP", "MemoryReservation", "MemorySwap", "MemorySwappiness", "NanoCpus",
    "OomKillDisable", "Init", "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumeDriver", "VolumesFrom", "Mounts", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode",
    "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj",
    "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "StorageOpt", "Tmpfs",
    "UTSMode", "UsernsMode", "ShmSize", "Sysctls", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths",
)

# Fields this walk sets elsewhere, or that dockerd refuses on this host (see the tests below).
ELSEWHERE = {
    "Links": "test_links.py",
    "Cgroup": "no value but \"\" is valid on Linux",
    "StorageOpt": "refused on overlay2 over ext4: test_storage_opt_is_refused",
    "IOMaximumIOps": "refused on Linux: test_bad_values_get_dockers_errors",
    "IOMaximumBandwidth": "refused on Linux: test_bad_values_get_dockers_errors",
    "AutoRemove": "conflicts with a restart policy: test_the_other_half",
    "NanoCpus": "conflicts with CpuPeriod and CpuQuota: test_the_other_half",
    "Privileged": "changes MaskedPaths and ReadonlyPaths: test_the_other_half",
}

BLKIO = "/sys/fs/cgroup/blkio"
DOCKER_MASKED = ["/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                 "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@pytest.fixture
def low(docker_client: Any) -> Any:
    return docker_client.api


@pytest.fixture
def created(low: Any) -> Iterator[Callable[..., str]]:
    """Create through docker-py's low-level API with a raw HostConfig; removed after."""
    made: list[str] = []

    def create(name: str, host_config: dict[str, Any], **kwargs: Any) -> str:
        kwargs.setdefault("command", ["sleep", "300"])
        cid = low.create_container("busybox", name=name, host_config=host_config, **kwargs)["Id"]
        made.append(cid)
        return str(cid)

    yield create
    for cid in made:
        try:
            low.remove_container(cid, force=True)
        except docker_py.errors.NotFound:
            pass


def _donor(docker: Cli, new_name: Names, *options: str) -> tuple[str, str]:
    name = new_name("donor")
    cid = docker.ok("run", "-d", "--name", name, *options, "busybox", "sleep", "300").strip()
    return name, cid


def test_inspect_round_trips_every_hostconfig_field(
    docker: Cli, low: Any, created: Callable[..., str], new_name: Names, new_net: Names, tmp_path: Any,
) -> None:
    donor, donor_id = _donor(docker, new_name, "--ipc", "shareable")
    net = new_net("hc")
    docker.ok("network", "create", net)
    source = tmp_path / "src"
    source.mkdir()
    given: dict[str, Any] = {
        "CpuShares": 512, "Memory": 64 << 20, "CgroupParent": "/berth-hc-test",
        "BlkioWeight": 300,
        "BlkioWeightDevice": [{"Path": "/dev/loop0", "Weight": 200}],
        "BlkioDeviceReadBps": [{"Path": "/dev/loop0", "Rate": 1048576}],
        "BlkioDeviceWriteBps": [{"Path": "/dev/loop0", "Rate": 2097152}],
        "BlkioDeviceReadIOps": [{"Path": "/dev/loop0", "Rate": 100}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/loop0", "Rate": 200}],
        "CpuPeriod": 100000, "CpuQuota": 50000,
        "CpuRealtimePeriod": 1000000, "CpuRealtimeRuntime": 950000,
        "CpusetCpus": "0", "CpusetMems": "0",
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rw"}],
        "DeviceCgroupRules": ["c 42:* rmw"],
        "DeviceRequests": [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                            "Options": {}}],
        "KernelMemoryTCP": 8 << 20,
        "MemoryReservation": 32 << 20, "MemorySwap": 128 << 20, "MemorySwappiness": 10,
        "OomKillDisable": True, "Init": True, "PidsLimit": 64,
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "CpuCount": 1, "CpuPercent": 50,
        "Binds": [f"{source}:/data:ro"], "ContainerIDFile": "/tmp/hc.cid",
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
        "NetworkMode": net,
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "VolumeDriver": "local", "VolumesFrom": [f"{donor}:ro"],
        "Mounts": [{"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576}}],
        "ConsoleSize": [24, 80], "Annotations": {"org.example.note": "hi"},
        "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["CAP_MKNOD"], "CgroupnsMode": "private",
        "Dns": ["10.0.0.53"], "DnsOptions": ["ndots:2"], "DnsSearch": ["example.test"],
        "ExtraHosts": ["db.example:10.1.2.3"], "GroupAdd": ["audio"],
        "IpcMode": f"container:{donor}", "OomScoreAdj": 100, "PidMode": f"container:{donor}",
        "PublishAllPorts": True, "ReadonlyRootfs": True, "SecurityOpt": ["no-new-privileges"],
        "Tmpfs": {"/run": "rw,size=65536k"}, "UTSMode": "host", "UsernsMode": "host",
        "ShmSize": 32 << 20, "Sysctls": {"net.ipv4.ip_forward": "1"}, "Runtime": "runc",
        "Isolation": "default",
        "MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": ["/proc/sys"],
    }
    assert set(given) | set(ELSEWHERE) == set(HOSTCONFIG_FIELDS), "the walk must cover the whole schema"
    cid = created(new_name("hc"), given)
    got = low.inspect_container(cid)["HostConfig"]
    # dockerd's normalisations: names of other containers become their IDs; Linux
    # discards CpuPercent
    want = dict(given, IpcMode=f"container:{donor_id}", PidMode=f"container:{donor_id}", CpuPercent=0)
    # ...and what this kernel cannot do (cgroup v1 without a proportional I/O scheduler)
    if not os.path.exists(f"{BLKIO}/blkio.weight"):
        want["BlkioWeight"] = 0
    if not os.path.exists(f"{BLKIO}/blkio.weight_device"):
        want["BlkioWeightDevice"] = []
    wrong = {k: (got.get(k, "<absent>"), v) for k, v in want.items() if got.get(k, "<absent>") != v}
    assert not wrong, f"inspect answered differently (got, want): {wrong}"
    omitted_when_empty = {"StorageOpt"}
    missing = [f for f in HOSTCONFIG_FIELDS if f not in got and f not in omitted_when_empty]
    assert not missing, f"inspect leaves out {missing}"


def test_the_other_half(low: Any, created: Callable[..., str], new_name: Names) -> None:
    """The fields that conflict with the walk's values, and the defaults dockerd fills in."""
    cid = created(new_name("hc"), {"AutoRemove": True, "NanoCpus": 500_000_000, "Privileged": True})
    got = low.inspect_container(cid)["HostConfig"]
    assert (got["AutoRemove"], got["NanoCpus"], got["Privileged"]) == (True, 500_000_000, True)
    assert got["MaskedPaths"] is None and got["ReadonlyPaths"] is None  # privileged: none
    plain = low.inspect_container(created(new_name("hc"), {}))["HostConfig"]
    assert plain["IpcMode"] == "private"  # the daemon's default-ipc-mode
    assert plain["CgroupnsMode"] == "host"  # cgroup v1 (dockerd's default there)
    assert plain["PidMode"] == "" and plain["UTSMode"] == "" and plain["Isolation"] == ""
    assert plain["NetworkMode"] == "bridge"
    assert (plain["MaskedPaths"], plain["ReadonlyPaths"]) == (DOCKER_MASKED, DOCKER_READONLY)
    assert "Init" not in plain and "Annotations" not in plain  # Go's omitempty


@pytest.mark.parametrize(("field", "value", "message"), [
    ("IpcMode", "bogus", "invalid IPC mode: bogus"),
    ("IpcMode", "container:", "invalid IPC mode: container:"),
    ("PidMode", "bogus", "invalid PID mode: bogus"),
    ("UTSMode", "container:x", "invalid UTS mode: container:x"),
    ("CgroupnsMode", "bogus", "invalid cgroup namespace mode: bogus"),
    ("Isolation", "hyperv", "invalid isolation (hyperv): linux only supports 'default'"),
    ("IOMaximumIOps", 10, "invalid option: QoS maximum IOPs configuration is not supported on linux"),
    ("IOMaximumBandwidth", 10, "invalid option: QoS maximum bandwidth configuration is not supported on linux"),
    ("Annotations", {"": "x"}, "invalid Annotations: the empty string is not permitted as an annotation key"),
])
def test_bad_values_get_dockers_errors(
    low: Any, docker_client: Any, new_name: Names, field: str, value: Any, message: str,
) -> None:
    name = new_name("bad")
    with pytest.raises(docker_py.errors.APIError) as err:
        low.create_container("busybox", name=name, host_config={field: value})
    assert err.value.status_code == 400 and message in str(err.value.explanation)
    assert not docker_client.containers.list(all=True, filters={"name": name}), "nothing half-made"


def test_uts_host_with_a_hostname_is_refused(docker: Cli, new_name: Names) -> None:
    res = docker("create", "--name", new_name("uts"), "--uts", "host", "-h", "mine", "busybox")
    assert res.returncode != 0 and "conflicting options: hostname and the UTS mode" in res.stderr, describe(res)


def test_storage_opt_is_refused(docker: Cli, new_name: Names) -> None:
    res = docker("create", "--name", new_name("so"), "--storage-opt", "size=1G", "busybox")
    assert res.returncode != 0, describe(res)
    assert "--storage-opt is supported only for overlay over xfs with 'pquota' mount option" in res.stderr


def _create_warnings(cli: Cli, *args: str) -> list[str]:
    res = cli("create", *args)
    assert res.returncode == 0, describe(res)
    return [line for line in res.stderr.splitlines() if line.startswith("WARNING: ")]


@pytest.mark.parametrize("client", ["docker", "berth"])
def test_create_warns_of_what_it_discards(request: pytest.FixtureRequest, low: Any, new_name: Names,
                                          client: str) -> None:
    # dockerd's create answers Warnings for what it drops or cannot honour, and the
    # CLI prints each as a WARNING line on stderr
    cli: Cli = request.getfixturevalue(client)
    want = ["WARNING: OOM killer is disabled for the container, but no memory limit is set, "
            "this can result in the system running out of resources."]
    if not os.path.exists(f"{BLKIO}/blkio.weight"):  # cgroup v1 without a proportional I/O scheduler
        want.append("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                    "Weight discarded.")
    got = _create_warnings(cli, "--name", new_name("warn"), "--blkio-weight", "300", "--oom-kill-disable", "busybox")
    assert got == want
    got = _create_warnings(cli, "--name", new_name("warn"), "--network", "host", "-p", "18089:80",
                           "--oom-kill-disable", "busybox")
    assert got == [want[0], "WARNING: Published ports are discarded when using host network mode"]
    assert _create_warnings(cli, "--name", new_name("warn"), "-m", "64m", "--oom-kill-disable", "busybox") == []
    answer = low.create_container("busybox", name=new_name("warn"), host_config={"CpuPercent": 50})
    assert answer["Warnings"] == ["linux does not support CPU percent. Percent discarded."]


# PID namespace.


def test_pid_host_shows_the_hosts_processes(docker: Cli) -> None:
    here = os.getpid()
    out = docker.ok("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                    f"test -d /proc/{here} && echo sees-host; cat /proc/1/comm")
    assert "sees-host" in out
    with open("/proc/1/comm") as f:
        assert out.split()[-1] == f.read().strip()  # pid 1 is the host's init, not ours
    own = docker.ok("run", "--rm", "busybox", "sh", "-c", f"test -d /proc/{here} || echo private")
    assert "private" in own


def test_pid_container_shares_the_donors_processes(docker: Cli, new_name: Names) -> None:
    donor, _ = _donor(docker, new_name)
    out = docker.ok("run", "--rm", "--pid", f"container:{donor}", "busybox", "ps", "-o", "pid,args")
    assert "sleep 300" in out, out
    docker.ok("stop", "-t", "0", donor)
    res = docker("run", "--rm", "--pid", f"container:{donor}", "busybox", "true")
    assert res.returncode != 0 and "is not running" in res.stderr, describe(res)


# IPC namespace and /dev/shm.


def _ns(docker: Cli, kind: str, *options: str) -> str:
    return docker.ok("run", "--rm", *options, "busybox", "readlink", f"/proc/self/ns/{kind}").strip()


def test_ipc_host_and_private(docker: Cli) -> None:
    host = os.readlink("/proc/self/ns/ipc")
    assert _ns(docker, "ipc", "--ipc", "host") == host
    assert _ns(docker, "ipc", "--ipc", "private") != host
    assert _ns(docker, "ipc") != host


def test_ipc_none_has_no_dev_shm(docker: Cli) -> None:
    out = docker.ok("run", "--rm", "--ipc", "none", "busybox", "sh", "-c",
                    "grep -c ' /dev/shm ' /proc/mounts; true")
    assert out.strip() == "0"
    with_shm = docker.ok("run", "--rm", "busybox", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts")
    assert with_shm.strip() == "1"


def test_ipc_container_shares_namespace_and_dev_shm(docker: Cli, new_name: Names) -> None:
    donor, donor_id = _donor(docker, new_name, "--ipc", "shareable")
    docker.ok("exec", donor, "sh", "-c", "echo from-donor > /dev/shm/note")
    donor_ns = docker.ok("exec", donor, "readlink", "/proc/self/ns/ipc").strip()
    out = docker.ok("run", "--rm", "--ipc", f"container:{donor}", "busybox", "sh", "-c",
                    "readlink /proc/self/ns/ipc; cat /dev/shm/note")
    assert out.split() == [donor_ns, "from-donor"]
    private, _ = _donor(docker, new_name)
    res = docker("run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    assert res.returncode != 0 and "non-shareable IPC" in res.stderr, describe(res)
    docker.ok("restart", "-t", "0", donor)  # a new run, a new /dev/shm, still shareable
    out = docker.ok("run", "--rm", "--ipc", f"container:{donor}", "busybox", "sh", "-c",
                    "ls /dev/shm | wc -l; readlink /proc/self/ns/ipc")
    assert out.split() == ["0", docker.ok("exec", donor, "readlink", "/proc/self/ns/ipc").strip()]
    docker.ok("rm", "-f", donor)
    assert not any(donor_id in line for line in open("/proc/self/mountinfo")), "its /dev/shm stays mounted"


# UTS namespace.


def test_uts_host_has_the_hosts_name(docker: Cli, new_name: Names) -> None:
    name = new_name("uts")
    out = docker.ok("run", "--name", name, "--uts", "host", "busybox", "hostname")
    assert out.strip() == socket.gethostname()
    assert docker.ok("inspect", "-f", "{{.HostConfig.UTSMode}}", name).strip() == "host"
    assert _ns(docker, "uts", "--uts", "host") == os.readlink("/proc/self/ns/uts")


# Device cgroup rules.


def test_device_cgroup_rule_is_enforced(docker: Cli, new_name: Names) -> None:
    """Major 42 has no driver: opening a node of it is refused by the devices cgroup
    (EPERM) unless a rule allows it, and then the kernel finds no device (ENXIO)."""
    script = "mknod /dev/d42 c 42 0 && cat /dev/d42"
    denied = docker("run", "--rm", "busybox", "sh", "-c", script)
    assert "Operation not permitted" in denied.stderr, describe(denied)
    allowed = docker("run", "--rm", "--device-cgroup-rule", "c 42:* rmw", "busybox", "sh", "-c", script)
    assert "No such device or address" in allowed.stderr, describe(allowed)
    name = new_name("dcr")
    cid = docker.ok("run", "-d", "--name", name, "--device-cgroup-rule", "c 42:* rmw", "busybox",
                    "sleep", "300").strip()
    rules = open(f"/sys/fs/cgroup/devices/berth/{cid}/devices.list").read().split("\n")
    assert "c 42:* rwm" in rules
    assert docker.ok("inspect", "-f", "{{json .HostConfig.DeviceCgroupRules}}", name).strip() == '["c 42:* rmw"]'


def test_bad_device_cgroup_rule_fails_the_start(low: Any, created: Callable[..., str], new_name: Names) -> None:
    cid = created(new_name("dcr"), {"DeviceCgroupRules": ["bogus"]})
    with pytest.raises(docker_py.errors.APIError) as err:
        low.start(cid)
    assert "invalid device cgroup rule format: 'bogus'" in str(err.value.explanation)
    assert low.inspect_container(cid)["State"]["Running"] is False


def _a_disk() -> tuple[str, str]:
    """A whole block device of the host: its /dev path and "major:minor"."""
    for name in sorted(os.listdir("/sys/block")):
        path = f"/dev/{name}"
        if os.path.exists(path) and not name.startswith(("loop", "ram", "zram")):
            with open(f"/sys/block/{name}/dev") as f:
                return path, f.read().strip()
    pytest.skip("no block device on this host")


def test_blkio_device_limits_reach_the_cgroup(docker: Cli, new_name: Names) -> None:
    disk, numbers = _a_disk()
    name = new_name("blk")
    cid = docker.ok("run", "-d", "--name", name, "--device-read-bps", f"{disk}:1mb",
                    "--device-write-iops", f"{disk}:100", "busybox", "sleep", "300").strip()
    group = f"{BLKIO}/berth/{cid}"
    assert open(f"{group}/blkio.throttle.read_bps_device").read().split("\n")[0] == f"{numbers} 1048576"
    assert open(f"{group}/blkio.throttle.write_iops_device").read().split("\n")[0] == f"{numbers} 100"
    res = docker("run", "--rm", "--device-read-bps", "/dev/no-such-disk:1mb", "busybox", "true")
    assert res.returncode != 0 and "no such file or directory" in res.stderr, describe(res)


def test_runtime_as_requested(docker: Cli, new_name: Names) -> None:
    name = new_name("rt")
    docker.ok("create", "--name", name, "--runtime", "runc", "busybox")
    assert docker.ok("inspect", "-f", "{{.HostConfig.Runtime}}", name).strip() == "runc"


def test_berth_cli_has_the_same_flags(berth: Cli, new_name: Names) -> None:
    with open("/proc/1/comm") as f:
        host_init = f.read().strip()
    assert berth.ok("run", "--rm", "--pid", "host", "busybox", "cat", "/proc/1/comm").strip() == host_init
    name = new_name("bcli")
    berth.ok("create", "--name", name, "--ipc", "shareable", "--uts", "host", "--device-cgroup-rule", "c 42:* rmw",
             "--isolation", "default", "busybox")
    out = berth.ok("inspect", "-f", "{{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}} {{.HostConfig.Isolation}} "
                   "{{json .HostConfig.DeviceCgroupRules}}", name)
    assert out.strip() == 'shareable host default ["c 42:* rmw"]'


def test_cgroup_parent_places_the_container(docker: Cli, new_name: Names) -> None:
    parent = f"berth-cgp-{new_name('p')}"
    name = new_name("cgp")
    try:
        cid = docker.ok("run", "-d", "--name", name, "--cgroup-parent", f"/{parent}", "--memory", "64m",
                        "busybox", "sleep", "300").strip()
        group = f"/sys/fs/cgroup/memory/{parent}/{cid}"
        assert open(f"{group}/memory.limit_in_bytes").read().strip() == str(64 << 20)
        assert "sleep 300" in docker.ok("top", name)
        assert docker.ok("inspect", "-f", "{{.HostConfig.CgroupParent}}", name).strip() == f"/{parent}"
        docker.ok("rm", "-f", name)
        assert not os.path.exists(group)
    finally:
        docker("rm", "-f", name)
        for hierarchy in os.listdir("/sys/fs/cgroup"):  # the parent stays, as under dockerd
            path = f"/sys/fs/cgroup/{hierarchy}/{parent}"
            if os.path.isdir(path):
                os.rmdir(path)
