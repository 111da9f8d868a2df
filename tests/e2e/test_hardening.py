"""A hardened berthd, as the CIS Docker Benchmark asks for it and docker-bench-security
checks it: dockerd's options `--icc=false`, `--no-new-privileges`, `--default-ulimit`,
`--userland-proxy=false`, `--live-restore` and `--log-level`, given in a daemon.json
read through `--config-file` (docker-bench reads dockerd's command line and its config
file), and containers run with the course's hardened flags.

The docker-bench checks of section 2 (daemon configuration) and 5 (container runtime)
are written here as our own assertions, each reading what docker-bench reads (the
daemon's command line, the config file, `docker info`, `docker inspect`, `docker port`)
and judging it as docker-bench's shell does; README's table lists the results.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.cli import Cli, describe, import_image
from helpers.daemon import BerthDaemon, DaemonStartError, private_daemon
from helpers.dockerd import running_dockerd

pytestmark = pytest.mark.usefixtures("busybox")

Names = Callable[[str], str]

HARDENED_JSON: dict[str, object] = {
    "icc": False,
    "log-level": "info",
    "live-restore": True,
    "userland-proxy": False,
    "no-new-privileges": True,
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
}
# the course's hardened `docker run` flags
HARDENED_RUN = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--pids-limit", "64", "--memory", "64m", "--cpus", "0.5", "-u", "1000:1000")
HTTP_GET = r"printf 'GET /hostname HTTP/1.0\r\n\r\n'"


@dataclass
class Hardened:
    daemon: BerthDaemon
    docker: Cli
    config_file: Path


@pytest.fixture(scope="module")
def hardened(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> Iterator[Hardened]:
    path = berth_root / f"hd{uuid.uuid4().hex[:6]}-daemon.json"
    path.write_text(json.dumps(HARDENED_JSON))
    with private_daemon(berth_root, berthd, busybox_tar, "--config-file", str(path), prefix="hd") as (daemon, docker):
        yield Hardened(daemon, docker, path)


def _server(docker: Cli, name: str, *flags: str) -> str:
    """A hardened container serving its /etc over HTTP on 8080 (exposed) and 9090 (not);
    its address on the default bridge."""
    docker.ok("run", "-d", "--name", name, "--hostname", name, "--expose", "8080", *HARDENED_RUN, *flags,
              "busybox", "sh", "-c", "httpd -p 9090 -h /etc && exec httpd -f -p 8080 -h /etc")
    return docker.ok("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()


def _fetch(docker: Cli, ip: str, port: int, *flags: str, tries: int = 1) -> str:
    """What a GET of http://ip:port/hostname from a new container answers ("" for nothing)."""
    script = (f"for i in $(seq {tries}); do {HTTP_GET} | nc -w 2 {ip} {port} && exit 0; sleep 0.3; done; exit 1")
    res = docker("run", "--rm", *flags, "busybox", "sh", "-c", script)
    return res.stdout if res.returncode == 0 else ""


# --icc=false, and --link


def test_icc_false_cuts_the_default_bridge_but_links_open_exposed_ports(hardened: Hardened) -> None:
    docker = hardened.docker
    options = json.loads(docker.ok("network", "inspect", "-f", "{{json .Options}}", "bridge"))
    assert options["com.docker.network.bridge.enable_icc"] == "false"
    server = f"hd-srv-{uuid.uuid4().hex[:6]}"
    ip = _server(docker, server)
    try:
        # the server answers through its own loopback, so it is up: the bridge cuts the rest
        assert server in docker.ok("exec", server, "sh", "-c", f"{HTTP_GET} | nc -w 2 127.0.0.1 8080")
        assert _fetch(docker, ip, 8080) == ""
        linked = ("--link", f"{server}:srv")
        assert server in _fetch(docker, ip, 8080, *linked, tries=5)
        assert _fetch(docker, ip, 9090, *linked) == ""  # not exposed: the link does not open it
    finally:
        docker("rm", "-f", server)


def test_icc_is_on_by_default(docker: Cli, new_name: Names) -> None:
    name = new_name("icc")
    ip = _server(docker, name)
    assert name in _fetch(docker, ip, 9090, tries=15)
    options = json.loads(docker.ok("network", "inspect", "-f", "{{json .Options}}", "bridge"))
    assert options["com.docker.network.bridge.enable_icc"] == "true"


# --no-new-privileges and --default-ulimit: the daemon's defaults, under the container's own


def _status(docker: Cli, *flags: str) -> str:
    return docker.ok("run", "--rm", *flags, "busybox", "grep", "NoNewPrivs", "/proc/self/status").split()[-1]


def test_no_new_privileges_is_the_daemon_default(hardened: Hardened, docker: Cli) -> None:
    assert _status(hardened.docker) == "1"
    assert _status(hardened.docker, "--security-opt", "no-new-privileges=false") == "0"
    assert _status(docker) == "0"  # a berthd without the option
    name = f"hd-nnp-{uuid.uuid4().hex[:6]}"
    hardened.docker.ok("create", "--name", name, "busybox", "true")
    try:  # as dockerd, the default is not written into the container's SecurityOpt
        assert hardened.docker.ok("inspect", "-f", "{{json .HostConfig.SecurityOpt}}", name).strip() == "null"
    finally:
        hardened.docker("rm", "-f", name)


def test_default_ulimits_apply_unless_the_container_sets_its_own(hardened: Hardened) -> None:
    docker = hardened.docker
    limits = "ulimit -Sn; ulimit -Hn"
    assert docker.ok("run", "--rm", "busybox", "sh", "-c", limits).split() == ["1024", "2048"]
    assert docker.ok("run", "--rm", "--ulimit", "nofile=512:768", "busybox", "sh", "-c", limits).split() == [
        "512", "768"]
    # as dockerd 20.10: written into HostConfig at create, after the container's own
    own, other = f"hd-ul-{uuid.uuid4().hex[:6]}", f"hd-ul-{uuid.uuid4().hex[:6]}"
    docker.ok("create", "--name", own, "--ulimit", "nproc=10:20", "busybox", "true")
    docker.ok("create", "--name", other, "--ulimit", "nofile=10:20", "busybox", "true")
    try:
        assert json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.Ulimits}}", own)) == [
            {"Name": "nproc", "Soft": 10, "Hard": 20}, {"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert json.loads(docker.ok("inspect", "-f", "{{json .HostConfig.Ulimits}}", other)) == [
            {"Name": "nofile", "Soft": 10, "Hard": 20}]
    finally:
        docker("rm", "-f", own, other)


# --userland-proxy=false


def _connects(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
        except OSError:
            return False
        return True


def _published(docker: Cli, name: str) -> int:
    docker.ok("run", "-d", "--name", name, "-p", "8080", "busybox", "sh", "-c",
              "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 8080 -h /w")
    return int(docker.ok("port", name, "8080/tcp").splitlines()[0].rpartition(":")[2])


def test_userland_proxy_false_leaves_no_ipv6_relay(hardened: Hardened, docker: Cli, new_name: Names) -> None:
    on, off = new_name("proxy"), f"hd-px-{uuid.uuid4().hex[:6]}"
    port_on = _published(docker, on)
    port_off = _published(hardened.docker, off)
    try:
        assert _connects("::1", port_on)  # berthd's relay, as docker-proxy
        assert _connects("127.0.0.1", port_off)  # the kernel's DNAT still serves IPv4
        assert not _connects("::1", port_off)
    finally:
        hardened.docker("rm", "-f", off)


# bad values stop the daemon, with dockerd's words


@pytest.mark.parametrize(("config", "flags", "message"), [
    ({"icc": "no"}, (), "icc must be true or false"),
    ({"icc": False}, ("--icc=false",), "specified both as a flag and in the configuration file: icc: "
                                       "(from flag: false, from file: false)"),
    ({}, ("--default-ulimit", "nofile=300:200"), "ulimit soft limit must be less than or equal to hard limit"),
    ({"default-ulimits": {"nofile": {"Name": "nofile", "Soft": "x", "Hard": 1}}}, (), "whole numbers"),
    ({}, ("--userland-proxy=maybe",), 'parse error on "maybe"'),
])
def test_bad_hardening_options_stop_the_daemon(berth_root: Path, berthd: BerthDaemon, config: dict[str, object],
                                               flags: tuple[str, ...], message: str) -> None:
    name = f"hb{uuid.uuid4().hex[:6]}"
    path = berth_root / f"{name}-daemon.json"
    path.write_text(json.dumps(config))
    daemon = BerthDaemon(berth_root, marker=berthd.marker, name=name,
                         extra_args=["--config-file", str(path), *flags])
    with pytest.raises(DaemonStartError, match=re.escape(message)):
        daemon.start()


# docker-bench-security, sections 2 and 5, as it judges them


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def _effective_arg(argv: list[str], option: str) -> str:
    """get_docker_effective_command_line_args: the last word of the command line that
    starts with `option` ("" for none); -l and --log-level are one."""
    words = ["-l=" + w[len("--log-level="):] if w.startswith("--log-level=") else w for w in argv]
    found = [w for w in words if w.startswith(option)]
    return found[-1] if found else ""


def _file_arg(config: dict[str, object], key: str) -> str:
    """get_docker_configuration_file_args with jq: the key's value as jq -r prints it."""
    if key not in config:
        return ""
    value = config[key]
    return ("true" if value else "false") if isinstance(value, bool) else (
        value if isinstance(value, str) else json.dumps(value))


def section_2(argv: list[str], config: dict[str, object], docker: Cli) -> dict[str, str]:
    info = docker.ok("info")
    results: dict[str, str] = {"2.1": "INFO"}
    results["2.2"] = "PASS" if "false" in _effective_arg(argv, "--icc") or "false" in _file_arg(config, "icc") \
        else "WARN"
    level = _file_arg(config, "log-level") or _effective_arg(argv, "-l")
    results["2.3"] = "PASS" if not level or "info" in level else "WARN"
    results["2.4"] = "WARN" if "false" in _effective_arg(argv, "--iptables") or "false" in _file_arg(
        config, "iptables") else "PASS"
    insecure = _file_arg(config, "insecure-registries")
    results["2.5"] = "WARN" if _effective_arg(argv, "--insecure-registry") or insecure not in ("", "[]") else "PASS"
    results["2.6"] = "WARN" if "Storage Driver: aufs" in info else "PASS"
    tcp = any(w.startswith(("-H=tcp://", "tcp://")) for w in argv) or "tcp://" in json.dumps(config.get("hosts"))
    results["2.7"] = "INFO" if not tcp else ("PASS" if _file_arg(config, "tlsverify") == "true" else "WARN")
    results["2.8"] = "PASS" if _file_arg(config, "default-ulimits") not in ("", "{}") or _effective_arg(
        argv, "--default-ulimit") else "INFO"
    results["2.9"] = "PASS" if _file_arg(config, "userns-remap") or _effective_arg(argv, "--userns-remap") \
        else "WARN"
    results["2.10"] = "WARN" if _file_arg(config, "cgroup-parent") or _effective_arg(argv, "--cgroup-parent") \
        else "PASS"
    results["2.11"] = "PASS"  # no dm.basesize: berth has no devicemapper
    results["2.12"] = "PASS" if _file_arg(config, "authorization-plugins") not in ("", "[]") or _effective_arg(
        argv, "--authorization-plugin") else "WARN"
    results["2.13"] = "WARN" if "json-file" in docker.ok("info", "--format", "{{ .LoggingDriver }}") else "PASS"
    results["2.14"] = "PASS" if _effective_arg(argv, "--no-new-privileges") or "true" in _file_arg(
        config, "no-new-privileges") else "WARN"
    results["2.15"] = "PASS" if "Live Restore Enabled: true" in info else "WARN"
    results["2.16"] = "PASS" if "false" in _file_arg(config, "userland-proxy") or _effective_arg(
        argv, "--userland-proxy=false") else "WARN"
    options = docker.ok("info", "--format", "{{ .SecurityOptions }}")
    results["2.17"] = "PASS" if "name=seccomp,profile=default" in options else "INFO"
    results["2.18"] = "INFO"  # deprecated for engines after 19.03
    return results


def _inspect(docker: Cli, name: str, template: str) -> str:
    return docker.ok("inspect", "--format", template, name).strip()


def section_5(docker: Cli, name: str, config: dict[str, object], argv: list[str]) -> dict[str, str]:
    """docker-bench's container checks of one running container."""
    r: dict[str, str] = {}
    r["5.1"] = "PASS" if docker.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive" else "WARN"
    apparmor = _inspect(docker, name, "AppArmorProfile={{ .AppArmorProfile }}")
    r["5.2"] = "WARN" if apparmor in ("AppArmorProfile=", "AppArmorProfile=[]", "AppArmorProfile=<no value>",
                                      "AppArmorProfile=unconfined") else "PASS"
    secopt = _inspect(docker, name, "SecurityOpt={{ .HostConfig.SecurityOpt }}")
    r["5.3"] = "WARN" if secopt in ("SecurityOpt=", "SecurityOpt=[]", "SecurityOpt=<no value>") else "PASS"
    capadd = _inspect(docker, name, "CapAdd={{ .HostConfig.CapAdd }}")
    r["5.4"] = "PASS" if capadd in ("CapAdd=", "CapAdd=[]", "CapAdd=<no value>", "CapAdd=<nil>") else "WARN"
    r["5.5"] = "WARN" if _inspect(docker, name, "{{ .HostConfig.Privileged }}") == "true" else "PASS"
    mounts = _inspect(docker, name, "{{ .Mounts }}")
    r["5.6"] = "PASS" if mounts == "[]" else "CHECK"
    ps = docker("exec", name, "ps")
    r["5.7"] = "PASS" if ps.returncode == 0 and "sshd" not in ps.stdout else "WARN"
    ports = [line.rpartition(":")[2] for line in docker.ok("port", name).splitlines()]
    r["5.8"] = "WARN" if any(p.isdigit() and int(p) < 1025 for p in ports) else "PASS"
    r["5.9"] = "INFO"  # manual
    r["5.10"] = "WARN" if _inspect(docker, name, "NetworkMode={{ .HostConfig.NetworkMode }}") == \
        "NetworkMode=host" else "PASS"
    r["5.11"] = "WARN" if _inspect(docker, name, "{{ .HostConfig.Memory }}") == "0" else "PASS"
    cpu = (_inspect(docker, name, "{{ .HostConfig.CpuShares }}"), _inspect(docker, name, "{{ .HostConfig.NanoCpus }}"))
    r["5.12"] = "WARN" if cpu == ("0", "0") else "PASS"
    r["5.13"] = "WARN" if _inspect(docker, name, "{{ .HostConfig.ReadonlyRootfs }}") == "false" else "PASS"
    binds = [line.split()[-1].partition(":")[0] for line in docker.ok("port", name).splitlines()]
    r["5.14"] = "WARN" if "0.0.0.0" in binds else "PASS"
    retries = _inspect(docker, name, "{{ .HostConfig.RestartPolicy.MaximumRetryCount }}")
    r["5.15"] = "WARN" if int(retries) > 5 else "PASS"
    r["5.16"] = "WARN" if _inspect(docker, name, "PidMode={{.HostConfig.PidMode }}") == "PidMode=host" else "PASS"
    r["5.17"] = "WARN" if _inspect(docker, name, "IpcMode={{.HostConfig.IpcMode }}") == "IpcMode=host" else "PASS"
    devices = _inspect(docker, name, "Devices={{ .HostConfig.Devices }}")
    r["5.18"] = "PASS" if devices in ("Devices=", "Devices=[]", "Devices=<no value>") else "INFO"
    ulimits = _inspect(docker, name, "Ulimits={{ .HostConfig.Ulimits }}")
    r["5.19"] = "INFO" if ulimits in ("Ulimits=", "Ulimits=[]", "Ulimits=<no value>") else "PASS"
    propagation = _inspect(docker, name, "Propagation={{range $mnt := .Mounts}} {{json $mnt.Propagation}} {{end}}")
    r["5.20"] = "WARN" if "shared" in propagation else "PASS"
    r["5.21"] = "WARN" if _inspect(docker, name, "UTSMode={{.HostConfig.UTSMode }}") == "UTSMode=host" else "PASS"
    r["5.22"] = "WARN" if "seccomp:unconfined" in secopt or "seccomp=unconfined" in secopt else "PASS"
    r["5.23"] = r["5.24"] = "NOTE"
    r["5.25"] = "PASS" if _inspect(docker, name, "CgroupParent={{.HostConfig.CgroupParent }}x") == \
        "CgroupParent=x" else "WARN"
    daemon_nnp = _effective_arg(argv, "--no-new-privileges") or "true" in _file_arg(config, "no-new-privileges")
    r["5.26"] = "PASS" if daemon_nnp or "no-new-privileges" in secopt else "WARN"
    health = docker("inspect", "--format", "{{ .Id }}: Health={{ .State.Health.Status }}", name)
    r["5.27"] = "PASS" if health.returncode == 0 else "WARN"
    r["5.28"] = "INFO"
    r["5.29"] = "WARN" if _inspect(docker, name, "{{.HostConfig.PidsLimit }}") in ("0", "<nil>", "-1") else "PASS"
    bridge_options = docker.ok("network", "inspect", "--format", "{{ .Options }}", "bridge")
    r["5.30"] = "INFO" if "com.docker.network.bridge.name:docker0" in bridge_options else "PASS"
    r["5.31"] = "WARN" if "host" in _inspect(docker, name, "{{ .HostConfig.UsernsMode }}").lower() else "PASS"
    r["5.32"] = "WARN" if "docker.sock" in mounts else "PASS"
    return r


# What docker-bench says of berthd with the options above and a container run with the
# course's flags (and of dockerd 20.10 configured the same way, reasoned from
# docker-bench's logic: the same except 2.17, where dockerd 20.10 reports its profile
# as "default"). WARNs left: 2.9 (userns-remap), 2.12 (authorization plugin), 2.13
# (json-file logging) and 5.2/5.27 (no AppArmor on this host; no health check).
EXPECTED_2 = {"2.1": "INFO", "2.2": "PASS", "2.3": "PASS", "2.4": "PASS", "2.5": "PASS", "2.6": "PASS",
              "2.7": "INFO", "2.8": "PASS", "2.9": "WARN", "2.10": "PASS", "2.11": "PASS", "2.12": "WARN",
              "2.13": "WARN", "2.14": "PASS", "2.15": "PASS", "2.16": "PASS", "2.17": "INFO", "2.18": "INFO"}
EXPECTED_5 = {"5.1": "PASS", "5.2": "WARN", "5.3": "PASS", "5.4": "PASS", "5.5": "PASS", "5.6": "PASS",
              "5.7": "PASS", "5.8": "PASS", "5.9": "INFO", "5.10": "PASS", "5.11": "PASS", "5.12": "PASS",
              "5.13": "PASS", "5.14": "PASS", "5.15": "PASS", "5.16": "PASS", "5.17": "PASS", "5.18": "PASS",
              "5.19": "PASS", "5.20": "PASS", "5.21": "PASS", "5.22": "PASS", "5.23": "NOTE", "5.24": "NOTE",
              "5.25": "PASS", "5.26": "PASS", "5.27": "WARN", "5.28": "INFO", "5.29": "PASS", "5.30": "PASS",
              "5.31": "PASS", "5.32": "PASS"}


def test_docker_bench_daemon_section(hardened: Hardened) -> None:
    assert hardened.daemon.pid is not None
    argv = _cmdline(hardened.daemon.pid)
    assert "--config-file" in argv  # what docker-bench follows to the daemon.json
    config = json.loads(hardened.config_file.read_text())
    assert section_2(argv, config, hardened.docker) == EXPECTED_2


def test_docker_bench_container_section(hardened: Hardened) -> None:
    docker = hardened.docker
    assert hardened.daemon.pid is not None
    argv = _cmdline(hardened.daemon.pid)
    config = json.loads(hardened.config_file.read_text())
    name = f"hd-bench-{uuid.uuid4().hex[:6]}"
    res = docker("run", "-d", "--name", name, *HARDENED_RUN, "busybox", "sleep", "600")
    assert res.returncode == 0, describe(res)
    try:
        assert section_5(docker, name, config, argv) == EXPECTED_5
    finally:
        docker("rm", "-f", name)


def test_dockerd_configured_the_same_way_has_the_same_warnings(busybox_tar: Path) -> None:
    """The oracle: dockerd 20.10 with the same daemon.json and the same container. The
    test harness runs dockerd with --iptables=false (it must not touch the host's
    iptables), with which dockerd refuses icc=false: so its 2.2 and 2.4 differ for that
    reason only; 2.17 is dockerd naming its seccomp profile "default" in docker info."""
    config = {k: v for k, v in HARDENED_JSON.items() if k != "icc"}
    with running_dockerd(config) as d:
        res = import_image(d.cli, busybox_tar, "busybox:latest")
        assert res.returncode == 0, describe(res)
        assert d.proc is not None
        argv = _cmdline(d.proc.pid)
        theirs = section_2(argv, config, d.cli)
        name = f"hd-oracle-{uuid.uuid4().hex[:6]}"
        res = d.cli("run", "-d", "--name", name, *HARDENED_RUN, "busybox", "sleep", "600")
        assert res.returncode == 0, describe(res)
        try:
            theirs |= section_5(d.cli, name, config, argv)
        finally:
            d.cli("rm", "-f", name)
    ours = EXPECTED_2 | EXPECTED_5
    differences = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert differences == {"2.2": ("PASS", "WARN"), "2.4": ("PASS", "WARN"), "2.17": ("INFO", "PASS")}


def test_icc_is_set_again_at_every_start(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path) -> None:
    """As dockerd makes its default bridge anew at each start, the option applies to a
    default bridge that an earlier run made with inter-container traffic on."""
    with private_daemon(berth_root, berthd, busybox_tar, prefix="hi") as (daemon, docker):
        icc = "{{index .Options \"com.docker.network.bridge.enable_icc\"}}"
        assert docker.ok("network", "inspect", "-f", icc, "bridge").strip() == "true"
        daemon.stop()
        daemon.extra_args = ["--icc=false"]
        daemon.start()
        assert docker.ok("network", "inspect", "-f", icc, "bridge").strip() == "false"
        server = f"hi-srv-{uuid.uuid4().hex[:6]}"
        ip = _server(docker, server)
        assert server in docker.ok("exec", server, "sh", "-c", f"{HTTP_GET} | nc -w 2 127.0.0.1 8080")
        assert _fetch(docker, ip, 8080) == ""
        docker("rm", "-f", server)
