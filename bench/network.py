"""Networking throughput: connection rate and throughput through a published port, and
container-to-container throughput, berth against dockerd.

Run through ``bench/run --network`` (``bench/run --list`` names the scenarios), or on its
own: ``.venv/bin/python bench/network.py [--runs N] [--warmup N] [--seconds S]
[--no-dockerd] [--no-berthd] [--keep]``.

Each engine runs inside a network namespace made for the bench (``ip netns add
berthbench-<pid>-<engine>``, ``lo`` brought up), with its default bridge and its
firewall rules: berthd with no ``--bridge`` (its default bridge, its nftables tables),
dockerd with its defaults (``docker0``, its iptables rules, the userland proxy on), so
that the bridges and rules live and die with the namespace and the host is untouched.
The daemon is started as::

    unshare --mount --propagation slave -- sh netns-exec.sh /run/netns/NS CGDIR DAEMON...

which, in a private mount namespace, keeps the host's ``/sys/fs/cgroup`` (an rbind),
enters the network namespace, mounts a sysfs of that namespace on ``/sys`` (so
``/sys/class/net`` shows its devices, as under ``ip netns exec``) and moves the cgroup
mounts back under it before exec'ing the daemon. The load clients (ab, iperf3) run in
the engine's namespace (``nsenter --net``), so "the host's 127.0.0.1" is that
namespace's loopback. The namespace is deleted afterwards.

The test image ``bench-net:latest`` is busybox plus Debian's ``iperf3`` with the
libraries ``ldd`` lists and ``/www/index.html`` (612 bytes), imported with ``docker
import`` into both engines. Scenarios, each the median of the runs (higher is better):

- ``net-conn-rate``: ``ab -c 8 -t S`` (no ``-k``: a new connection per request) against
  ``docker run -d -p 127.0.0.1:18080:80 bench-net httpd -f -p 80 -h /www``, requests/s.
- ``net-port-throughput``: ``iperf3 -c 127.0.0.1 -p 15201 -t S`` against ``docker run
  -d -p 127.0.0.1:15201:5201 bench-net iperf3 -s``, Gbit/s (receiver side).
- ``net-c2c-throughput``: on ``docker network create bnet``, ``docker run -d --name
  bnet-cli --network bnet bench-net iperf3 -c <bnet-srv's IP> -t S -J`` from a client
  container to the ``iperf3 -s`` of ``bnet-srv``, then ``docker wait`` and ``docker logs``
  for its report, Gbit/s (receiver side, as iperf3 measures it: the client container's
  start is not counted). Detached, because while a client is attached berth's shim
  keeps a core busy (seen with berthd 0.1.0), and that would be measured instead.

Runs default to 5 after 1 warm-up of S = 5 seconds each. ``apt-get install iperf3
apache2-utils`` is run first when ``iperf3`` or ``ab`` is missing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the rootfs maker

NET_IMAGE = "bench-net:latest"
HTTP_PORT = 18080
IPERF_PORT = 15201
AB_CONCURRENCY = 8
DEFAULT_RUNS = 5
DEFAULT_WARMUP = 1
DEFAULT_SECONDS = 5.0
INDEX_HTML = (b"<!DOCTYPE html>\n<html><head><title>bench</title></head><body>\n"
              + b"x" * 512 + b"\n</body></html>\n")  # fmt: skip
INDEX_HTML = INDEX_HTML + b"." * (612 - len(INDEX_HTML))

SCENARIOS = [
    ("net-conn-rate", "ab, a new connection per request, against busybox httpd published on "
                      "127.0.0.1, requests/s: berth vs dockerd"),
    ("net-port-throughput", "iperf3 through a port published on 127.0.0.1, Gbit/s: berth vs "
                            "dockerd"),
    ("net-c2c-throughput", "iperf3 between two containers on one user-defined bridge network, "
                           "Gbit/s: berth vs dockerd"),
]  # fmt: skip
UNITS = {"net-conn-rate": "req/s", "net-port-throughput": "Gbit/s",
         "net-c2c-throughput": "Gbit/s"}  # fmt: skip

# Run under `unshare --mount --propagation slave`: $1 the netns path, $2 an empty
# directory for the cgroup mounts while /sys is replaced, then the command.
NETNS_EXEC = r"""set -eu
ns=$1; cg=$2; shift 2
mkdir -p "$cg"
mount --rbind /sys/fs/cgroup "$cg"
exec nsenter --net="$ns" -- sh -euc '
cg=$1; shift
mount -t sysfs sysfs /sys
mount --move "$cg" /sys/fs/cgroup
rmdir "$cg" 2>/dev/null || true
exec "$@"' sh "$cg" "$@"
"""


# --------------------------------------------------------------------- tools


def ensure_tools() -> None:
    """iperf3 and ab (apache2-utils) from Debian, installed when missing."""
    missing = [pkg for tool, pkg in (("iperf3", "iperf3"), ("ab", "apache2-utils"))
               if not shutil.which(tool)]  # fmt: skip
    if not missing:
        return
    bench.log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise bench.BenchError(f"`{' '.join(cmd)}` failed:\n{(r.stderr or r.stdout)[-1500:]}")


def _ldd_paths(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            paths.append(m.group(1))
    return paths


def net_rootfs(tmp: Path, rootfs_tar: Path) -> Path:
    """busybox's rootfs plus iperf3, its libraries and /www/index.html."""
    out = tmp / "net-rootfs.tar"
    iperf3 = shutil.which("iperf3")
    if not iperf3:
        raise bench.BenchError("iperf3 not installed")
    files = {"usr/bin/iperf3": os.path.realpath(iperf3)}
    for path in _ldd_paths(iperf3):
        files[path.lstrip("/")] = os.path.realpath(path)
    with tarfile.open(rootfs_tar) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        names = set()
        for m in src:
            names.add(m.name.rstrip("/").removeprefix("./"))
            tar.addfile(m, src.extractfile(m) if m.isreg() else None)

        def add_dirs(path: str) -> None:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in names:
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
                    names.add(d)

        for name, real in sorted(files.items()):
            add_dirs(name)
            info = tar.gettarinfo(real, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(real, "rb") as f:
                tar.addfile(info, f)
            names.add(name)
        add_dirs("www/index.html")
        info = tarfile.TarInfo("www/index.html")
        info.size, info.mode, info.mtime = len(INDEX_HTML), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(INDEX_HTML))
    bench.log(f"wrote {out} (busybox + iperf3 and {len(files) - 1} libraries + /www/index.html)")
    return out


# --------------------------------------------------------------------- namespaces


class Netns:
    """A named network namespace (ip netns) made for the bench, lo up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"
        self.created = False

    def create(self) -> None:
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            raise bench.BenchError(f"ip netns add {self.name}: {r.stderr.strip()}")
        self.created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def inode(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return None

    def argv(self, cmd: list[str]) -> list[str]:
        """cmd run in this network namespace (nothing else changed)."""
        return ["nsenter", f"--net={self.path}", "--", *cmd]

    def delete(self) -> None:
        if not self.created:
            return
        ino = self.inode()
        if ino is not None:
            left = _pids_in_netns(ino)
            if left:
                bench.log(f"netns {self.name}: stopping leftover processes {left}")
                bench.terminate(left, grace=10)
        r = subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            bench.log(f"ip netns delete {self.name}: {r.stderr.strip()}")
        self.created = False


def _pids_in_netns(inode: int) -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                found.append(int(entry))
        except OSError:
            continue
    return found


class _InNetns:
    """Mixin: the daemon runs in `self.netns` (see NETNS_EXEC)."""

    netns: Netns
    dir: Path

    def wrap(self, cmd: list[str]) -> list[str]:
        script = self.dir / "netns-exec.sh"
        script.write_text(NETNS_EXEC)
        return ["unshare", "--mount", "--propagation", "slave", "--", "sh", str(script),
                self.netns.path, str(self.dir / "cgroup-move"), *cmd]  # fmt: skip


class NetBerthd(_InNetns, bench.Berthd):
    def __init__(self, workdir: Path, docker: str, config: Path, extra: list[str],
                 netns: Netns) -> None:  # fmt: skip
        super().__init__(workdir, docker, config, "", extra)  # no --bridge: its default bridge
        self.netns = netns

    def command(self) -> list[str]:
        return self.wrap(super().command())


class NetDockerd(_InNetns, bench.Dockerd):
    makes_bridge = False  # docker0, in the engine's own network namespace
    def __init__(self, workdir: Path, docker: str, config: Path, dockerd: str,
                 netns: Netns) -> None:  # fmt: skip
        super().__init__(workdir, docker, config, dockerd)
        self.netns = netns

    def command(self) -> list[str]:
        # dockerd's defaults: docker0, iptables, ip-forward, masquerade, userland proxy.
        return self.wrap([
            self.dockerd,
            "--config-file", str(self.config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
        ])  # fmt: skip


# --------------------------------------------------------------------- measuring


@dataclass
class Rate:
    values: list[float] = field(default_factory=list)
    error: str = ""
    detail: list[str] = field(default_factory=list)  # per-run notes (failed requests etc.)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.values)

    def median(self) -> float:
        return statistics.median(self.values)


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    if r.returncode != 0:
        raise bench.BenchError(
            f"`{' '.join(cmd)}` failed (exit {r.returncode}):\n"
            f"{(r.stderr.strip() + chr(10) + r.stdout.strip()).strip()[-1500:]}"
        )
    return r.stdout


def ab_rate(netns: Netns, seconds: float) -> tuple[float, str]:
    url = f"http://127.0.0.1:{HTTP_PORT}/index.html"
    # -t before -n: -t implies -n 50000, a later -n lifts that cap.
    cmd = netns.argv(["ab", "-q", "-c", str(AB_CONCURRENCY), "-t", f"{seconds:g}",
                      "-n", "10000000", url])  # fmt: skip
    out = _run(cmd, timeout=seconds + 60)
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    length = re.search(r"Document Length:\s+(\d+)", out)
    if not m or not complete:
        raise bench.BenchError(f"cannot read ab's output:\n{out[-1500:]}")
    problems = []
    if length and int(length.group(1)) != len(INDEX_HTML):
        problems.append(f"document length {length.group(1)}, expected {len(INDEX_HTML)}")
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx responses")
    if failed and int(failed.group(1)):
        problems.append(f"{failed.group(1)} failed requests")
    if problems:
        raise bench.BenchError(f"ab: {', '.join(problems)} of {complete.group(1)}:\n{out[-1500:]}")
    return float(m.group(1)), f"{complete.group(1)} requests"


def iperf_gbps(cmd: list[str], seconds: float, env: dict[str, str] | None = None
               ) -> tuple[float, str]:  # fmt: skip
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=seconds + 60)  # fmt: skip
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError:
        data = {}
    if r.returncode != 0 or data.get("error") or "end" not in data:
        raise bench.BenchError(
            f"`{' '.join(cmd)}` failed (exit {r.returncode}): "
            f"{data.get('error') or (r.stderr.strip() + ' ' + r.stdout.strip()).strip()[-1500:]}"
        )
    received = data["end"]["sum_received"]
    retr = data["end"].get("sum_sent", {}).get("retransmits")
    return received["bits_per_second"] / 1e9, f"{received['bytes']} bytes, {retr} retransmits"


def _repeat(name: str, engine: bench.Engine, runs: int, warmup: int,
            once: object) -> Rate:  # fmt: skip
    """Call once() warmup + runs times; the first call is retried for up to 20 s while
    the server in the container comes up."""
    res = Rate()
    assert callable(once)
    bench.log(f"{engine.name}: {name}: {warmup} warm-up + {runs} runs")
    for i in range(warmup + runs):
        deadline = time.monotonic() + (20 if i == 0 else 0)
        while True:
            try:
                value, note = once()
                break
            except bench.BenchError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
        if i >= warmup:
            res.values.append(value)
            res.detail.append(note)
    bench.log(f"{engine.name}: {name}: {', '.join(f'{v:.2f}' for v in res.values)}")
    return res


def measure_engine(engine: bench.Engine, netns: Netns, image_tar: Path, names: list[str],
                   runs: int, warmup: int, seconds: float) -> tuple[dict[str, Rate], str]:  # fmt: skip
    results: dict[str, Rate] = {}
    version = "?"
    env = engine.env()
    containers: list[str] = []
    networks: list[str] = []

    def docker(*argv: str, timeout: float = 120) -> str:
        return engine.docker_cmd(list(argv), timeout=timeout)

    def scenario(name: str, body: object) -> None:
        assert callable(body)
        try:
            results[name] = body()
        except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
            results[name] = Rate(error=str(exc))
            bench.log(f"{engine.name}: {name}: FAILED: {exc}")
        finally:
            for c in containers:
                engine.docker_cmd(["rm", "-f", c], check=False, timeout=120)
            containers.clear()
            for n in networks:
                engine.docker_cmd(["network", "rm", n], check=False, timeout=120)
            networks.clear()

    def conn_rate() -> Rate:
        containers.append("bnet-http")
        docker("run", "-d", "--name", "bnet-http", "-p", f"127.0.0.1:{HTTP_PORT}:80", NET_IMAGE,
               "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
        return _repeat("net-conn-rate", engine, runs, warmup, lambda: ab_rate(netns, seconds))

    def port_throughput() -> Rate:
        containers.append("bnet-iperf")
        docker("run", "-d", "--name", "bnet-iperf", "-p", f"127.0.0.1:{IPERF_PORT}:5201",
               NET_IMAGE, "iperf3", "-s")  # fmt: skip
        cmd = netns.argv(["iperf3", "-c", "127.0.0.1", "-p", str(IPERF_PORT), "-t", f"{seconds:g}",
                          "-J"])  # fmt: skip
        return _repeat("net-port-throughput", engine, runs, warmup,
                       lambda: iperf_gbps(cmd, seconds))  # fmt: skip

    def c2c_throughput() -> Rate:
        networks.append("bnet")
        docker("network", "create", "bnet")
        containers.append("bnet-srv")
        docker("run", "-d", "--name", "bnet-srv", "--network", "bnet", NET_IMAGE, "iperf3", "-s")
        ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    "bnet-srv").strip()  # fmt: skip
        if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip):
            raise bench.BenchError(f"bnet-srv's IP address on bnet: {ip!r}")

        # A detached client container per run, its report read with `docker logs` (berth
        # has no `docker exec` yet, and an attached `docker run` costs berth a busy core,
        # which would be measured instead of the network). iperf3 times itself: the
        # container's start is not counted.
        def once() -> tuple[float, str]:
            engine.docker_cmd(["rm", "-f", "bnet-cli"], check=False)
            docker("run", "-d", "--name", "bnet-cli", "--network", "bnet", NET_IMAGE,
                   "iperf3", "-c", ip, "-t", f"{seconds:g}", "-J")  # fmt: skip
            status = docker("wait", "bnet-cli", timeout=seconds + 60).strip()
            cmd = [engine.docker, "logs", "bnet-cli"]
            try:
                value = iperf_gbps(cmd, seconds, env)
            except bench.BenchError as exc:
                raise bench.BenchError(f"iperf3 client exited {status}: {exc}") from None
            docker("rm", "bnet-cli")
            return value

        containers.append("bnet-cli")
        return _repeat("net-c2c-throughput", engine, runs, warmup, once)

    bodies = {"net-conn-rate": conn_rate, "net-port-throughput": port_throughput,
              "net-c2c-throughput": c2c_throughput}  # fmt: skip
    try:
        netns.create()
        engine.start()
        version = engine.server_version()
        bench.log(f"{engine.name} {version} is up in netns {netns.name}; importing {NET_IMAGE}")
        docker("import", "--change", 'CMD ["sh"]', str(image_tar), NET_IMAGE, timeout=300)
        for name in names:
            scenario(name, bodies[name])
        engine.docker_cmd(["rmi", NET_IMAGE], check=False, timeout=120)
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
        bench.log(f"{engine.name}: {exc}")
        for name in names:
            results.setdefault(name, Rate(error=str(exc)))
    finally:
        engine.stop()
        netns.delete()
    return results, version


# --------------------------------------------------------------------- report


def _cell(r: Rate | None, unit: str) -> str:
    if r is None:
        return "-"
    if not r.ok:
        return "FAILED"
    fmt = "{:.0f}" if unit == "req/s" else "{:.2f}"
    return f"{fmt.format(r.median())} ({fmt.format(min(r.values))}-{fmt.format(max(r.values))})"


def _ratio(a: Rate | None, b: Rate | None) -> str:
    if a is None or b is None or not a.ok or not b.ok or not b.median():
        return "-"
    return f"{a.median() / b.median():.2f}x"


def print_rows(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    seconds: float = DEFAULT_SECONDS
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/network.py --no-berthd)
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    names = [name for name, _ in SCENARIOS if name in options.scenarios]
    if not names or not options.docker:
        return True
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        ensure_tools()
        image_tar = net_rootfs(tmp, rootfs_tar)
    except (bench.BenchError, OSError, subprocess.CalledProcessError) as exc:
        bench.log(f"network: {exc}")
        print(f"\nnetwork: FAILED before measuring: {exc}")
        options.json_out["error"] = str(exc)
        return False
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    tag = f"berthbench-{os.getpid()}"
    engines: list[bench.Engine] = []
    if options.berthd:
        engines.append(NetBerthd(tmp / "berthd", options.docker, config, options.berthd_args,
                                 Netns(f"{tag}-berth")))  # fmt: skip
    if options.dockerd:
        engines.append(NetDockerd(tmp / "dockerd", options.docker, config, options.dockerd,
                                  Netns(f"{tag}-dockerd")))  # fmt: skip
    results: dict[str, dict[str, Rate]] = {name: {} for name in names}
    versions: dict[str, str] = {}
    for engine in engines:
        assert isinstance(engine, _InNetns)
        by_name, versions[engine.name] = measure_engine(
            engine, engine.netns, image_tar, names, options.runs, options.warmup, options.seconds
        )
        for name, r in by_name.items():
            results[name][engine.name] = r

    print()
    print(", ".join(f"{'berthd' if n == 'berth' else n} {v}" for n, v in versions.items())
          + f"; networking, each engine in its own network namespace with its default bridge "
          f"and firewall (dockerd: iptables, userland proxy); {options.seconds:g} s per run, "
          f"median (min-max) of {options.runs} runs after {options.warmup} warm-up; higher is "
          "better")  # fmt: skip
    rows = [["scenario", "unit", "berth", "dockerd", "berth/dockerd"]]
    for name in names:
        b, d = results[name].get("berth"), results[name].get("dockerd")
        rows.append([name, UNITS[name], _cell(b, UNITS[name]), _cell(d, UNITS[name]),
                     _ratio(b, d)])  # fmt: skip
    print_rows(rows)
    if not options.dockerd:
        print("dockerd not installed (or skipped): measured on berth only")
    for name in names:
        for engine_name, r in results[name].items():
            if r.error:
                print(f"{name} {engine_name}: {r.error}")
        b, d = results[name].get("berth"), results[name].get("dockerd")
        options.json_out[name] = {
            "unit": UNITS[name],
            "seconds": options.seconds,
            "runs": options.runs,
            "warmup": options.warmup,
            **{engine_name: {"values": r.values, "median": r.median() if r.ok else None,
                             "detail": r.detail, "error": r.error}
               for engine_name, r in results[name].items()},
            "ratio": (b.median() / d.median()) if b and d and b.ok and d.ok and d.median() else None,
        }  # fmt: skip
    options.json_out["engines"] = versions
    return all(r.ok for by_engine in results.values() for r in by_engine.values())


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/network.py", __doc__, DEFAULT_RUNS, DEFAULT_WARMUP, SCENARIOS)
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of each run")
    ap.add_argument("--berthd-arg", action="append", default=[], metavar="ARG")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = bench.parse_standalone(ap, argv)
    if args.seconds <= 0:
        ap.error("--seconds must be > 0")
    if os.geteuid() != 0:
        ap.error("run as root: the daemons create namespaces, bridges and firewall rules")

    def body(tmp: Path, rootfs: Path) -> bool:
        json_out: dict[str, object] = {}
        options = Options(
            runs=args.runs, warmup=args.warmup, seconds=args.seconds,
            scenarios=tuple(args.scenario) or tuple(name for name, _ in SCENARIOS),
            docker=args.docker, dockerd=None if args.no_dockerd else args.dockerd,
            berthd=not args.no_berthd, berthd_args=args.berthd_arg, json_out=json_out,
        )  # fmt: skip
        ok = run(options, tmp / "network", rootfs)
        if args.json:
            Path(args.json).write_text(json.dumps({"network": json_out}, indent=2) + "\n")
        return ok

    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
