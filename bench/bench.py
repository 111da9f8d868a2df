"""Benchmark berth against dockerd through the real docker CLI.

Run it through ``bench/run`` (which does the set-up first).  For each engine the
harness starts a private daemon under a fresh ``/tmp/berth-bench.*`` directory
(its own socket, data root, exec root and pidfile), imports the offline busybox
rootfs as ``busybox:latest`` with ``docker import``, times every scenario with the
``docker`` client, then stops the daemon by its PID, unmounts whatever is left
under the temporary directory and removes it.

To add a scenario, append a :class:`Scenario` to ``SCENARIOS``: ``argv`` is what
follows ``docker`` on the command line; ``setup``/``cleanup`` run once around the
measured loop and ``after_each`` after every run (none of them is timed).

``--runtime`` adds the scenarios of ``bench/runtime.py`` after the docker CLI table:
the OCI runtimes run directly (berth-runtime, runc, crun) and the shims' memory per
container (berth's shim, containerd-shim). They are listed by ``--list`` and can be
picked with ``--scenario`` like the others.

``--images`` adds the scenarios of ``bench/images.py``: ``docker save`` and ``docker
load`` throughput of a 200 MB image, and layer extraction against GNU tar, in MB/s.

``--volumes`` adds the scenario of ``bench/volumes.py``: ``docker run --rm -v
<fresh volume>:/data`` of an image with 1 GB under /data, so that every run copies
it up into the new volume (checked once per engine), in ms. It runs 5 + 1 warm-up
unless ``--runs``/``--warmup`` are given.

``--network`` adds the scenarios of ``bench/network.py``: connection rate (ab, requests/s)
and throughput (iperf3, Gbit/s) through a port published on 127.0.0.1, and iperf3 between
two containers on a user-defined bridge, with each engine in a network namespace of its
own (default bridge and firewall rules; dockerd with iptables and its userland proxy).
It runs 5 + 1 warm-up of 5 s each unless ``--runs``/``--warmup``/``--net-seconds`` are given.

``--build`` adds the scenarios of ``bench/build.py``: ``docker build`` with the classic builder
(DOCKER_BUILDKIT=0) of a 10-step Dockerfile with a 50 MB COPY, cold (image and cache removed
before each run) and fully cached, in ms. It runs 5 + 1 warm-up unless ``--runs``/``--warmup``
are given.

``--distribution`` adds the scenarios of ``bench/distribution.py`` (issue 16): ``docker push``
and ``docker pull`` of a 200 MB, 5-layer image through Debian's docker-registry and through
berth-registry, berth and dockerd alternating in the same run, with ``skopeo copy`` as the
limit, in MB/s. It runs 3 times unless ``--runs`` is given.

``--compose`` adds the scenarios of ``bench/compose.py`` (issue 17): ``compose up -d`` and
``compose down`` of a 10-service busybox project (two networks, a volume each), berth compose
on berthd vs Compose v2 2.40.3 on dockerd, with Compose v2 on berthd and ``docker compose``
through berth's plugin beside, in ms. It runs 5 + 1 warm-up unless ``--runs``/``--warmup`` are
given.

``--containers-bench`` adds the scenarios of ``bench/containers.py`` (issue 7): ``docker exec C
true`` latency, ``docker logs`` of 200,000 lines, and ``docker ps`` / ``docker ps -a`` with 500
containers of which 200 run, in ms, with the targets beside. It runs 20 + 2 warm-up unless
``--runs``/``--warmup`` are given. (``--containers N`` is the shim-memory scenario's count.)
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
IMAGE = "busybox:latest"


@dataclass
class Scenario:
    name: str
    argv: list[str]
    setup: list[list[str]] = field(default_factory=list)
    after_each: list[list[str]] = field(default_factory=list)
    cleanup: list[list[str]] = field(default_factory=list)


SCENARIOS: list[Scenario] = [
    Scenario("run-rm-true", ["run", "--rm", "busybox", "true"]),
    # More go here, e.g.:
    # Scenario(
    #     "exec-true",
    #     ["exec", "bench-exec", "true"],
    #     setup=[["run", "-d", "--name", "bench-exec", "busybox", "sleep", "3600"]],
    #     cleanup=[["rm", "-f", "bench-exec"]],
    # ),
    # Scenario(
    #     "create-rm",
    #     ["create", "--name", "bench-create", "busybox", "true"],
    #     after_each=[["rm", "bench-create"]],
    # ),
]


# --------------------------------------------------------------------------- util


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 2.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def ping(sock_path: str) -> bool:
    conn = _UnixHTTPConnection(sock_path)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp.startswith(prefix) or mp == str(base):
                out.append(mp)
    return out


def unmount_all_under(base: Path) -> list[str]:
    """Unmount everything below base, deepest first.  Returns what is left."""
    for _ in range(5):
        left = mounts_under(base)
        if not left:
            return []
        for mp in sorted(set(left), key=len, reverse=True):
            r = subprocess.run(["umount", mp], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)
    return mounts_under(base)


# ---------------------------------------------- a scenario module run on its own


def standalone_parser(prog: str, doc: str, runs: int, warmup: int,
                      scenarios: list[tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    """The options every bench/<module>.py takes when run on its own (the module adds its
    own, then calls parse_standalone)."""
    ap = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--warmup", type=int, default=warmup)
    if scenarios:
        ap.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        choices=[name for name, _ in scenarios])  # fmt: skip
    ap.add_argument("--no-dockerd", action="store_true", help="measure berth only")
    ap.add_argument("--no-berthd", action="store_true", help="measure dockerd only")
    ap.add_argument("--docker", default=shutil.which("docker"))
    ap.add_argument("--dockerd", default=shutil.which("dockerd"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return ap


def parse_standalone(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    if not args.docker:
        ap.error("no docker CLI on PATH")
    return args


def run_standalone(args: argparse.Namespace, body: Callable[[Path, Path], bool]) -> int:
    """body(tmp, rootfs_tar) in a fresh /tmp/berth-bench.* directory holding the busybox
    rootfs tar; SIGTERM and SIGHUP end it as Ctrl-C does; the directory is removed after
    (unless --keep, or something stays mounted below it). Exit status 0 when body is True."""

    def _bye(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _bye)
    signal.signal(signal.SIGHUP, _bye)
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench.", dir="/tmp"))
    try:
        rootfs = tmp / "busybox-rootfs.tar"
        subprocess.run(["bash", str(ROOT / "scripts" / "make-busybox-rootfs"), str(rootfs)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return 0 if body(tmp, rootfs) else 1
    finally:
        remove_tmp(tmp, args.keep)


def remove_tmp(tmp: Path, keep: bool) -> None:
    """The run's temporary directory goes, unless kept or something stays mounted in it."""
    left = unmount_all_under(tmp)
    if left:
        log(f"could not unmount {left}; leaving {tmp} in place")
    elif keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def processes_of(base: Path, sids: set[int]) -> list[int]:
    """PIDs (not ours) whose session is one of `sids` or whose command line
    mentions the temporary directory `base`: the daemons we started and what
    they left behind (containerd, shims)."""
    me = os.getpid()
    needle = str(base).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        sid = int(fields[3])
        if fields[0] == "Z":
            continue
        if sid in sids or needle in cmdline:
            found.append(pid)
    return found


def terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            log(f"pid {pid} ignored SIGTERM; sending SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ------------------------------------------------------------------------ engines


class Engine:
    """A private daemon serving the Engine API on its own socket."""

    name = "engine"
    start_timeout = 30.0

    def __init__(self, workdir: Path, docker: str, docker_config: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True)
        self.sock = self.dir / "engine.sock"
        self.pidfile = self.dir / "engine.pid"
        self.data_root = self.dir / "data"
        self.exec_root = self.dir / "exec"
        self.logfile = self.dir / "daemon.log"
        self.docker = docker
        self.docker_config = docker_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.note = ""

    # subclasses
    def command(self) -> list[str]:
        raise NotImplementedError

    def rejected_flag(self) -> bool:
        """Called when the daemon exited at start-up; may drop an optional flag
        and return True to have the start retried."""
        return False

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.docker_config)
        env["DOCKER_CLI_HINTS"] = "false"
        return env

    def start(self) -> None:
        while True:
            self.data_root.mkdir(exist_ok=True)
            self.exec_root.mkdir(exist_ok=True)
            cmd = self.command()
            log(f"starting {self.name}: {' '.join(cmd)}")
            with open(self.logfile, "ab") as logf:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.dir,
                )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if ping(str(self.sock)):
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                if self.rejected_flag():
                    continue
                raise BenchError(
                    f"{self.name} exited with status {rc} during start-up; log:\n"
                    + tail(self.logfile)
                )
            raise BenchError(
                f"{self.name} did not answer GET /_ping on {self.sock} within "
                f"{self.start_timeout:.0f}s; log:\n" + tail(self.logfile)
            )

    def stop(self) -> None:
        sids: set[int] = set()
        if self.proc is not None:
            sids.add(self.proc.pid)  # start_new_session: sid == pid
            terminate([self.proc.pid], grace=20)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        left = processes_of(self.dir, sids)
        if left:
            log(f"{self.name}: stopping leftover processes {left}")
            terminate(left, grace=10)

    def docker_cmd(self, argv: list[str], *, check: bool = True, timeout: float = 300) -> str:
        r = subprocess.run(
            [self.docker, *argv],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise BenchError(
                f"`docker {' '.join(argv)}` against {self.name} failed "
                f"(exit {r.returncode}):\n{(r.stderr or r.stdout).strip()}"
            )
        return r.stdout

    def server_version(self) -> str:
        try:
            out = self.docker_cmd(
                ["version", "--format", "{{.Server.Version}}"], check=False, timeout=30
            ).strip()
        except subprocess.TimeoutExpired:
            out = ""
        return out or "?"


OWN_BRIDGE = "own"  # --berthd-bridge's default: a bridge of the harness's own, as dockerd gets


def _taken_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes and address networks (every table)."""
    out = ""
    for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"]):
        out += subprocess.run(cmd, capture_output=True, text=True, check=False).stdout + "\n"
    found = []
    for word in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", out):
        try:
            found.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    return [n for n in found if n.prefixlen > 0]


class OwnBridge:
    """A bridge the harness makes for one engine's default network and removes after.

    Never the host's docker0 (dockerd's ``--bridge=none`` deletes a docker0 it finds, that of
    the host's own dockerd) and never berth0. dockerd needs it made, with its gateway address,
    on a subnet free on the host; berthd makes the bridge it is given itself (and its firewall
    rules, which go with it here too)."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}{os.urandom(4).hex()}"  # within IFNAMSIZ
        self.made = False

    def make(self) -> str:
        """Create it with a gateway on a free 10.199.N.0/24; the gateway's CIDR."""
        taken = _taken_ipv4_networks()
        for n in range(256):
            subnet = ipaddress.IPv4Network(f"10.199.{n}.0/24")
            if not any(subnet.overlaps(t) for t in taken):
                break
        else:
            raise BenchError("no free /24 in 10.199.0.0/16 for a bridge of the bench's own")
        gateway = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        subprocess.run(["ip", "link", "add", self.name, "type", "bridge"], check=True)
        self.made = True
        subprocess.run(["ip", "addr", "add", gateway, "dev", self.name], check=True)
        subprocess.run(["ip", "link", "set", self.name, "up"], check=True)
        return gateway

    def remove(self, berth_firewall: bool = False) -> None:
        """Delete the bridge (and the rules berthd made for it), if there is one."""
        subprocess.run(["ip", "link", "del", self.name], capture_output=True, check=False)
        self.made = False
        if berth_firewall:
            try:
                from berth.network.firewall import Firewall

                Firewall().remove_network(self.name)
            except Exception as e:  # noqa: BLE001 - best effort, and said
                log(f"removing the firewall rules of {self.name}: {e}")


class Berthd(Engine):
    name = "berth"

    def __init__(
        self, workdir: Path, docker: str, docker_config: Path, bridge: str, extra: list[str]
    ) -> None:
        super().__init__(workdir, docker, docker_config)
        self.own_bridge = OwnBridge("bbb") if bridge == OWN_BRIDGE else None
        self.bridge = self.own_bridge.name if self.own_bridge else bridge
        self.extra = extra

    def stop(self) -> None:
        super().stop()
        if self.own_bridge is not None:
            self.own_bridge.remove(berth_firewall=True)

    def command(self) -> list[str]:
        berthd = str(VENV_BIN / "berthd")
        cmd = [
            berthd,
            "-H", self.host,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
        ]  # fmt: skip
        if self.bridge:
            cmd.append(f"--bridge={self.bridge}")
        return cmd + self.extra

    def rejected_flag(self) -> bool:
        text = tail(self.logfile, 10)
        if (
            self.bridge
            and "--bridge" in text
            and re.search(r"unrecognized argument|unknown (flag|option)|no such option", text)
        ):
            log("berthd does not know --bridge; retrying without it")
            self.note = f"berthd without --bridge={self.bridge} (flag not supported)"
            self.bridge = ""
            return True
        return False


class Dockerd(Engine):
    name = "dockerd"

    def __init__(self, workdir: Path, docker: str, docker_config: Path, dockerd: str) -> None:
        super().__init__(workdir, docker, docker_config)
        self.dockerd = dockerd
        self.config_file = self.dir / "daemon.json"
        self.config_file.write_text("{}\n")
        self.own_bridge = OwnBridge("bbd")

    makes_bridge = True  # False where the command line gives dockerd its own default (docker0)

    def start(self) -> None:
        if self.makes_bridge and not self.own_bridge.made:
            self.own_bridge.make()
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.own_bridge.made:
            self.own_bridge.remove()

    def command(self) -> list[str]:
        return [
            self.dockerd,
            "--config-file", str(self.config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
            f"--bridge={self.own_bridge.name}",  # never none: that deletes the host's docker0
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
        ]  # fmt: skip


# ---------------------------------------------------------------------- measuring


@dataclass
class Result:
    times_ms: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.times_ms)

    def stats(self) -> tuple[float, float, float]:
        t = self.times_ms
        return statistics.median(t), min(t), max(t)


def measure(engine: Engine, sc: Scenario, runs: int, warmup: int) -> Result:
    res = Result()
    env = engine.env()
    try:
        for argv in sc.setup:
            engine.docker_cmd(argv)
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            r = subprocess.run(
                [engine.docker, *sc.argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )
            elapsed = (time.perf_counter() - t0) * 1000.0
            if r.returncode != 0:
                res.error = f"exit {r.returncode}: {r.stderr.strip()[-500:]}"
                break
            if i >= warmup:
                res.times_ms.append(elapsed)
            for argv in sc.after_each:
                engine.docker_cmd(argv)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        res.error = str(exc)
    finally:
        for argv in sc.cleanup:
            try:
                engine.docker_cmd(argv, check=False)
            except subprocess.TimeoutExpired:
                pass
    return res


def run_engine(
    engine: Engine, rootfs: Path, scenarios: list[Scenario], runs: int, warmup: int
) -> tuple[dict[str, Result], str]:
    results: dict[str, Result] = {}
    try:
        engine.start()
        version = engine.server_version()
        log(f"{engine.name} {version} is up; importing {IMAGE}")
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(rootfs), IMAGE])
        for sc in scenarios:
            log(f"{engine.name}: {sc.name}: {warmup} warm-up + {runs} runs")
            res = measure(engine, sc, runs, warmup)
            if res.error:
                log(f"{engine.name}: {sc.name}: FAILED: {res.error}")
            results[sc.name] = res
    except BenchError as exc:
        log(f"{engine.name}: {exc}")
        for sc in scenarios:
            results.setdefault(sc.name, Result(error=str(exc)))
        version = "?"
    finally:
        engine.stop()
    return results, version


# ------------------------------------------------------------------------- report


def fmt_stats(res: Result | None) -> list[str]:
    if res is None:
        return ["-", "-", "-"]
    if not res.ok:
        return ["FAILED", "", ""]
    return [f"{v:.1f}" for v in res.stats()]


def print_table(
    scenarios: list[Scenario],
    berth: dict[str, Result],
    docker: dict[str, Result] | None,
) -> None:
    header = ["scenario", "berth median", "min", "max"]
    if docker is not None:
        header += ["dockerd median", "min", "max", "berth/dockerd"]
    rows = [header]
    for sc in scenarios:
        b = berth.get(sc.name)
        row = [sc.name, *fmt_stats(b)]
        if docker is not None:
            d = docker.get(sc.name)
            row += fmt_stats(d)
            if b is not None and d is not None and b.ok and d.ok:
                row.append(f"{b.stats()[0] / d.stats()[0]:.2f}x")
            else:
                row.append("-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    print(line(rows[0]))
    print("  ".join("-" * w for w in widths))
    for r in rows[1:]:
        print(line(r))


# ------------------------------------- scenario groups (bench/<module>.py, by flag)


@dataclass(frozen=True)
class Group:
    """The scenarios of one bench/<module>.py, run by bench/run when its flag is given;
    the module's results go under its name in --json and its files in tmp/<module>."""

    module: str
    flag: str
    options: Callable[[argparse.Namespace], dict[str, object]]  # the module's run counts
    bridge: bool = True  # whether berthd gets --berthd-bridge (network's needs its bridge)

    @property
    def attr(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def scenarios(self) -> list[tuple[str, str]]:
        """(name, description); the module is imported late: it imports this one."""
        return list(importlib.import_module(self.module).SCENARIOS)

    def run(self, args: argparse.Namespace, tmp: Path, rootfs: Path, names: list[str],
            json_out: dict[str, object]) -> bool:
        mod = importlib.import_module(self.module)
        kwargs: dict[str, object] = {
            **self.options(args), "scenarios": tuple(names), "docker": args.docker,
            "dockerd": None if args.no_dockerd else args.dockerd, "berthd_args": args.berthd_arg,
            "json_out": json_out,
        }  # fmt: skip
        if self.bridge:
            kwargs["berthd_bridge"] = args.berthd_bridge
        return bool(mod.run(mod.Options(**kwargs), tmp / self.module, rootfs))


# --volumes copies 1 GB per run, --network, --build and --compose runs take seconds: they use the
# smaller counts (volume_runs, volume_warmup) unless --runs/--warmup are given.
GROUPS = (
    Group("runtime", "--runtime", lambda a: {"runs": a.runs, "warmup": a.warmup, "containers": a.containers}),
    Group("images", "--images", lambda a: {"runs": min(a.runs, 3)}),
    Group("volumes", "--volumes", lambda a: {"runs": a.volume_runs, "warmup": a.volume_warmup}),
    # berthd with its default bridge whatever --berthd-bridge says: the scenarios publish ports on it
    Group("network", "--network", lambda a: {"runs": a.volume_runs, "warmup": a.volume_warmup,
                                             "seconds": a.net_seconds}, bridge=False),
    Group("build", "--build", lambda a: {"runs": a.volume_runs, "warmup": a.volume_warmup}),
    Group("containers", "--containers-bench", lambda a: {"runs": a.runs, "warmup": a.warmup}),
    Group("distribution", "--distribution", lambda a: {"runs": a.distribution_runs}),
    Group("compose", "--compose", lambda a: {"runs": a.volume_runs, "warmup": a.volume_warmup}),
)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Time docker CLI scenarios against a private berthd and a private dockerd.",
    )
    ap.add_argument(
        "--runs", type=int, default=None,
        help="measured runs per scenario (20; 5 for --volumes, --network, --build and --compose)",
    )  # fmt: skip
    ap.add_argument(
        "--warmup", type=int, default=None,
        help="untimed warm-up runs (2; 1 for --volumes, --network, --build and --compose)",
    )  # fmt: skip
    ap.add_argument("--no-dockerd", action="store_true", help="measure berth only")
    ap.add_argument(
        "--scenario", action="append", default=[], metavar="NAME",
        help="run only this scenario (repeatable); see --list",
    )  # fmt: skip
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument(
        "--runtime", action="store_true",
        help="also run bench/runtime.py's scenarios: berth-runtime vs runc/crun, shim memory",
    )  # fmt: skip
    ap.add_argument(
        "--images", action="store_true",
        help="also run bench/images.py's scenarios: save/load and layer extraction MB/s",
    )  # fmt: skip
    ap.add_argument(
        "--volumes", action="store_true",
        help="also run bench/volumes.py's scenario: copy-up of 1 GB into a fresh named volume",
    )  # fmt: skip
    ap.add_argument(
        "--network", action="store_true",
        help="also run bench/network.py's scenarios: published-port connection rate and "
        "throughput, container-to-container throughput",
    )  # fmt: skip
    ap.add_argument(
        "--build", action="store_true",
        help="also run bench/build.py's scenarios: classic-builder docker build, cold and cached",
    )  # fmt: skip
    ap.add_argument(
        "--containers-bench", action="store_true",
        help="also run bench/containers.py's scenarios: docker exec latency, docker logs of "
        "200,000 lines, docker ps with 500 containers",
    )  # fmt: skip
    ap.add_argument(
        "--distribution", action="store_true",
        help="also run bench/distribution.py's scenarios: docker push and pull of a 200 MB, "
        "5-layer image through docker-registry and berth-registry (skopeo the limit), MB/s",
    )  # fmt: skip
    ap.add_argument(
        "--compose", action="store_true",
        help="also run bench/compose.py's scenarios: compose up -d and down of a 10-service project, "
        "berth compose on berthd vs Compose v2 on dockerd",
    )  # fmt: skip
    ap.add_argument(
        "--net-seconds", type=float, default=5.0, metavar="S",
        help="length of each --network run in seconds (5)",
    )  # fmt: skip
    ap.add_argument(
        "--containers", type=int, default=10, metavar="N",
        help="idle containers per engine for the shim-memory scenario (10)",
    )  # fmt: skip
    ap.add_argument("--docker", default=shutil.which("docker"), help="docker CLI to use")
    ap.add_argument("--dockerd", default=shutil.which("dockerd"), help="dockerd to compare with")
    ap.add_argument(
        "--berthd-bridge", default=OWN_BRIDGE, metavar="VALUE",
        help=f"pass --bridge=VALUE to berthd (default: {OWN_BRIDGE}, a bridge of the bench's own "
        "made and removed around the run, as dockerd gets one; none for no default bridge; "
        "'' to pass nothing); dropped if berthd does not know the flag",
    )  # fmt: skip
    ap.add_argument(
        "--berthd-arg", action="append", default=[], metavar="ARG",
        help="extra argument for berthd (repeatable), e.g. --berthd-arg=--debug",
    )  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args(argv)
    # --volumes copies 1 GB per run, --network runs last seconds: fewer runs unless asked for.
    args.volume_runs = 5 if args.runs is None else args.runs
    args.volume_warmup = 1 if args.warmup is None else args.warmup
    args.distribution_runs = 3 if args.runs is None else args.runs  # each run pushes 200 MB 6 times
    args.runs = 20 if args.runs is None else args.runs
    args.warmup = 2 if args.warmup is None else args.warmup

    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.name}\tdocker {' '.join(sc.argv)}")
        for g in GROUPS:
            for name, description in g.scenarios():
                print(f"{name}\t{description} (with {g.flag})")
        return 0
    scenarios = SCENARIOS
    # the scenarios of each group to run, by module
    chosen = {g.module: [name for name, _ in g.scenarios()] if getattr(args, g.attr) else [] for g in GROUPS}
    if args.scenario:
        known = {sc.name for sc in SCENARIOS} | {name for g in GROUPS for name, _ in g.scenarios()}
        unknown = [n for n in args.scenario if n not in known]
        if unknown:
            ap.error(f"unknown scenario(s): {', '.join(unknown)} (see --list)")
        scenarios = [sc for sc in SCENARIOS if sc.name in args.scenario]
        chosen = {g.module: [name for name, _ in g.scenarios() if name in args.scenario] for g in GROUPS}
    if args.containers < 1:
        ap.error("--containers must be >= 1")
    if min(args.runs, args.volume_runs) < 1 or min(args.warmup, args.volume_warmup) < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    if args.net_seconds <= 0:
        ap.error("--net-seconds must be > 0")
    if not args.docker:
        ap.error("no docker CLI on PATH (the benchmark drives the real docker client)")
    if os.geteuid() != 0:
        ap.error("run as root: the daemons create namespaces, mounts and cgroups")
    if not (VENV_BIN / "berthd").exists():
        ap.error(f"{VENV_BIN / 'berthd'} missing: run scripts/setup first")

    # SIGTERM/SIGHUP -> normal exit, so that the finally-block cleans up.
    def _bye(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _bye)
    signal.signal(signal.SIGHUP, _bye)

    tmp = Path(tempfile.mkdtemp(prefix="berth-bench.", dir="/tmp"))
    engines: list[Engine] = []
    try:
        docker_config = tmp / "docker-config"
        docker_config.mkdir()
        rootfs = tmp / "busybox-rootfs.tar"
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "make-busybox-rootfs"), str(rootfs)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        client = subprocess.run(
            [args.docker, "version", "--format", "{{.Client.Version}}"],
            capture_output=True, text=True, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"},
        ).stdout.strip() or "?"  # fmt: skip

        group_json: dict[str, dict[str, object]] = {g.module: {} for g in GROUPS if chosen[g.module]}

        def run_groups() -> bool:
            ok = True
            for g in GROUPS:
                if chosen[g.module]:
                    ok = g.run(args, tmp, rootfs, chosen[g.module], group_json[g.module]) and ok
            return ok

        if not scenarios:  # only the groups' scenarios
            ok = run_groups()
            if args.json:
                out = {"runs": args.runs, "warmup": args.warmup, **group_json}
                Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
            return 0 if ok else 1

        berth_engine = Berthd(
            tmp / "berthd", args.docker, docker_config, args.berthd_bridge, args.berthd_arg
        )
        engines.append(berth_engine)
        berth_res, berth_ver = run_engine(berth_engine, rootfs, scenarios, args.runs, args.warmup)

        docker_res: dict[str, Result] | None = None
        docker_ver = ""
        docker_note = ""
        if args.no_dockerd:
            docker_note = "dockerd skipped (--no-dockerd)"
        elif not args.dockerd:
            docker_note = "dockerd not installed: apt-get install docker.io to compare"
        else:
            d = Dockerd(tmp / "dockerd", args.docker, docker_config, dockerd=args.dockerd)
            engines.append(d)
            docker_res, docker_ver = run_engine(d, rootfs, scenarios, args.runs, args.warmup)

        print()
        print(
            f"docker CLI {client}; berthd {berth_ver}"
            + (f"; dockerd {docker_ver}" if docker_res is not None else "")
            + f"; {args.runs} runs + {args.warmup} warm-up; times in ms (wall clock of the CLI)"
        )
        if berth_engine.note:
            print(f"note: {berth_engine.note}")
        print_table(scenarios, berth_res, docker_res)
        if docker_note:
            print(docker_note)

        groups_ok = run_groups()

        if args.json:
            out = {
                "runs": args.runs,
                "warmup": args.warmup,
                "docker_cli": client,
                "engines": {"berth": berth_ver, **({"dockerd": docker_ver} if docker_res else {})},
                "scenarios": {
                    sc.name: {
                        "argv": ["docker", *sc.argv],
                        **{
                            name: {"times_ms": r.times_ms, "error": r.error}
                            for name, res in (("berth", berth_res), ("dockerd", docker_res or {}))
                            if (r := res.get(sc.name)) is not None
                        },
                    }
                    for sc in scenarios
                },
                **group_json,
            }
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")

        all_res = list(berth_res.values()) + list((docker_res or {}).values())
        return 0 if all(r.ok for r in all_res) and groups_ok else 1
    finally:
        for e in engines:
            e.stop()  # idempotent; covers an interrupt in the middle of a run
        remove_tmp(tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
