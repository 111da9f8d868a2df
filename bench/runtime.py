"""Benchmark berth's OCI runtime and shim against runc, crun and containerd-shim.

Two measurements, each printed as a table in bench.py's style:

runtime-run-true
    `berth-runtime run`, `runc run` and `crun run` (when crun runs here) of the same
    prepared bundle running busybox `true`, timed as wall clock of the runtime
    command; N runs after warm-up, median/min/max in ms and ratios to crun and runc.
    The bundle is `runc spec`'s default made non-interactive, with a cgroupsPath of
    its own per run and Docker's explicit device rules, so that every runtime makes,
    fills and removes a cgroup, as it would under a daemon.
    Below the table, the floor of a runtime written in Python: the launcher's own
    interpreter (its #! line) starting and exiting, then starting and importing
    ctypes (what any Python runtime needs for mount, pivot_root and unshare), timed
    the same way.

shim-memory
    N idle `sleep 3600` containers started with the real docker CLI against a
    private berthd, then (when dockerd is installed) against a private dockerd; for
    each container, the process that is the parent of its init (berth's shim, or
    containerd-shim-runc-v2) is measured from /proc/PID/smaps_rollup. Reported: the
    mean RSS and PSS per container. PSS charges shared pages to each sharer in part,
    so it is the better measure of what one more container costs. A floor row: as
    many children forked from a process holding the zygote's modules, which run no
    code after the fork (a shim that has not yet done anything). Then, unless
    --no-ksm, the same containers again with the host's samepage merging on (berth's
    shims offer their memory to KSM; ksmd merges only memory so offered): ksmd is
    started for that measurement, and /sys/kernel/mm/ksm is put back as it was.

Run it through `bench/run --runtime` (after the docker CLI scenarios), or on its own:
`.venv/bin/python bench/runtime.py [--runs N] [--containers N] [--no-dockerd]`.

crun 1.8 refuses a hybrid cgroup layout while hugetlb is attached only to the
cgroup v2 hierarchy; when that is the case and /sys/fs/cgroup/hugetlb is not
mounted, this mounts hugetlb there as a v1 hierarchy and leaves it (harmless; the
output says so).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the rootfs maker

MiB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUNTIMES = ("berth", "runc", "crun")

# Docker's device rules (moby's oci.DefaultSpec): deny all, then the usual devices.
_DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": major, "minor": minor, "access": access}
    for t, major, minor, access in [
        ("c", None, None, "m"), ("b", None, None, "m"),
        ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
        ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"),
        ("c", 136, None, "rwm"), ("c", 10, 200, "rwm"),
    ]
]  # fmt: skip

SCENARIOS = [
    ("runtime-run-true", "berth-runtime / runc / crun `run` of a busybox `true` bundle"),
    ("shim-memory", "RSS and PSS of the shim per idle container: berth vs containerd-shim"),
]


@dataclass
class Timing:
    times_ms: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.times_ms)

    def stats(self) -> tuple[float, float, float]:
        return statistics.median(self.times_ms), min(self.times_ms), max(self.times_ms)


@dataclass
class ShimMemory:
    shim: str = ""
    rss_kib: list[int] = field(default_factory=list)
    pss_kib: list[int] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.rss_kib)


# --------------------------------------------------------------------- tables


def print_rows(rows: list[list[str]]) -> None:
    """bench.py's table style: first column left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    print(line(rows[0]))
    print("  ".join("-" * w for w in widths))
    for r in rows[1:]:
        print(line(r))


def ratio(a: Timing | None, b: Timing | None) -> str:
    if a is None or b is None or not a.ok or not b.ok:
        return "-"
    return f"{a.stats()[0] / b.stats()[0]:.2f}x"


def print_timings(timings: dict[str, Timing], runs: int, warmup: int, notes: list[str],
                  floors: dict[str, Timing] | None = None) -> None:  # fmt: skip
    print(f"runtime-run-true: {runs} runs + {warmup} warm-up; times in ms (wall clock of `RUNTIME run`)")
    for note in notes:
        print(f"note: {note}")
    rows = [["runtime", "median", "min", "max", "vs crun", "vs runc"]]
    for name in RUNTIMES:
        t = timings.get(name)
        if t is None:
            continue
        stats = [f"{v:.1f}" for v in t.stats()] if t.ok else ["FAILED", "", ""]
        rows.append([name, *stats, ratio(t, timings.get("crun")), ratio(t, timings.get("runc"))])
    for name, t in (floors or {}).items():
        stats = [f"{v:.1f}" for v in t.stats()] if t.ok else ["FAILED", "", ""]
        rows.append([f"floor: {name}", *stats, ratio(t, timings.get("crun")), ratio(t, timings.get("runc"))])
    print_rows(rows)
    for name, t in [*timings.items(), *(floors or {}).items()]:
        if t.error:
            print(f"{name}: {t.error}")


def print_memory(mem: dict[str, ShimMemory], containers: int) -> None:
    print(f"shim-memory: {containers} idle `sleep 3600` containers per engine; "
          "mean per container, MiB (from /proc/PID/smaps_rollup of the init's parent)")  # fmt: skip
    rows = [["engine", "shim", "RSS", "PSS", "containers"]]
    for engine, m in mem.items():
        if m.ok:
            rows.append([engine, m.shim, f"{statistics.mean(m.rss_kib) / 1024:.1f}",
                         f"{statistics.mean(m.pss_kib) / 1024:.1f}", str(len(m.rss_kib))])  # fmt: skip
        else:
            rows.append([engine, m.shim or "-", "FAILED", "", ""])
    print_rows(rows)
    for engine, m in mem.items():
        if m.error:
            print(f"{engine}: {m.error}")


# ------------------------------------------------------------------ runtimes


def runtime_binary(name: str) -> str | None:
    if name == "berth":
        path = bench.VENV_BIN / "berth-runtime"
        return str(path) if path.exists() else None
    return shutil.which(name)


def make_bundle(directory: Path, rootfs_tar: Path, args: list[str]) -> Path:
    """runc spec's default config, non-interactive, running `args` in busybox."""
    directory.mkdir(parents=True)
    (directory / "rootfs").mkdir()
    subprocess.run(["tar", "-xf", str(rootfs_tar), "-C", str(directory / "rootfs")], check=True)
    if shutil.which("runc"):
        subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    else:
        subprocess.run([str(bench.VENV_BIN / "berth-runtime"), "spec", "--bundle", str(directory)],
                       check=True)  # fmt: skip
    config = json.loads((directory / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["linux"].setdefault("resources", {})["devices"] = _DEVICE_RULES
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def with_cgroup(bundle: Path, cgroups_path: str) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


def cgroup_leftovers(cgroups_path: str) -> list[Path]:
    rel = cgroups_path.strip("/")
    return [d / rel for d in CGROUP_ROOT.iterdir() if (d / rel).is_dir()]


def remove_cgroup(cgroups_path: str) -> None:
    for d in cgroup_leftovers(cgroups_path):
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
            d.rmdir()
        except OSError as e:
            bench.log(f"could not remove cgroup {d}: {e}")


def run_once(binary: str, root: Path, bundle: Path, cid: str) -> tuple[float, str]:
    """One `RUNTIME run`; returns (ms, error or "")."""
    cgroups_path = f"/berth-bench-rt-{cid}"
    with_cgroup(bundle, cgroups_path)
    t0 = time.perf_counter()
    r = subprocess.run([binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)  # fmt: skip
    elapsed = (time.perf_counter() - t0) * 1000.0
    error = ""
    if r.returncode != 0:
        error = f"exit {r.returncode}: {r.stderr.strip()[-400:]}"
        subprocess.run([binary, "--root", str(root), "delete", "--force", cid],
                       capture_output=True, timeout=30)  # fmt: skip
    if cgroup_leftovers(cgroups_path):
        error = error or f"left its cgroup {cgroups_path} behind"
        remove_cgroup(cgroups_path)
    return elapsed, error


def crun_note(binary: str, tmp: Path, bundle: Path) -> tuple[bool, str]:
    """Whether crun runs the bundle here (mounting hugetlb as v1 if that is the cure)."""
    root = tmp / "root-crun-probe"
    _, error = run_once(binary, root, bundle, f"probe-{secrets.token_hex(4)}")
    if not error:
        return True, ""
    hugetlb = CGROUP_ROOT / "hugetlb"
    if "hybrid mode" in error and not os.path.ismount(hugetlb):
        hugetlb.mkdir(exist_ok=True)
        m = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(hugetlb)],
                           capture_output=True, text=True)  # fmt: skip
        if m.returncode == 0:
            note = (f"mounted hugetlb as a cgroup v1 hierarchy on {hugetlb} so that crun runs "
                    "on this hybrid layout (left in place)")  # fmt: skip
            bench.log(note)
            _, error = run_once(binary, root, bundle, f"probe-{secrets.token_hex(4)}")
            if not error:
                return True, note
    return False, f"crun skipped: {error}"


def bench_runtimes(tmp: Path, rootfs_tar: Path, runs: int, warmup: int) -> tuple[dict[str, Timing], list[str]]:
    timings: dict[str, Timing] = {}
    notes: list[str] = []
    for name in RUNTIMES:
        binary = runtime_binary(name)
        if binary is None:
            notes.append(f"{name} is not installed")
            continue
        bundle = make_bundle(tmp / f"bundle-{name}", rootfs_tar, ["true"])
        root = tmp / f"root-{name}"
        if name == "crun":
            usable, note = crun_note(binary, tmp, bundle)
            if note:
                notes.append(note)
            if not usable:
                continue
        bench.log(f"runtime-run-true: {name}: {warmup} warm-up + {runs} runs")
        timings[name] = timed(runs, warmup, lambda i: run_once(
            binary, root, bundle, f"bench-{name}-{i}-{secrets.token_hex(3)}"))  # noqa: B023  (called at once)
    return timings, notes


def timed(runs: int, warmup: int, once: Callable[[int], tuple[float, str]]) -> Timing:
    """`once(i)` (ms, error) for each run after the warm-up; the first error ends it."""
    t = Timing()
    for i in range(warmup + runs):
        ms, error = once(i)
        if error:
            t.error = error
            break
        if i >= warmup:
            t.times_ms.append(ms)
    return t


FLOORS = [("python -S", "pass"), ("python -S, ctypes", "import ctypes")]


def launcher_interpreter() -> list[str] | None:
    """The interpreter and its flags from the berth-runtime launcher's #! line."""
    path = runtime_binary("berth")
    if path is None:
        return None
    with open(path, "rb") as f:
        first = f.readline().decode(errors="replace")
    return first[2:].split() if first.startswith("#!") else None


def bench_floors(runs: int, warmup: int) -> dict[str, Timing]:
    interpreter = launcher_interpreter()
    if interpreter is None:
        return {}
    floors: dict[str, Timing] = {}
    for name, code in FLOORS:
        bench.log(f"runtime-run-true: floor {name}: {warmup} warm-up + {runs} runs")
        argv = [*interpreter, "-c", code]
        floors[f"{name} ({os.path.basename(interpreter[0])})"] = timed(runs, warmup, lambda _i: run_command(argv))  # noqa: B023
    return floors


def run_command(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    ms = (time.perf_counter() - t0) * 1000.0
    return ms, f"exit {r.returncode}: {r.stderr.strip()[-400:]}" if r.returncode != 0 else ""


# -------------------------------------------------------------- shim memory


def smaps_rollup_kib(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key == "Rss":
                rss = int(rest.split()[0])
            elif key == "Pss":
                pss = int(rest.split()[0])
    return rss, pss


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def command_name(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    # berth's shims are forked from its zygote and keep the zygote's command line
    if any(w in ("berth.shim.zygote", "berth.shim.shim") or w.endswith("berth-shim")
           for w in argv):  # fmt: skip
        return "berth-shim"
    return os.path.basename(argv[0]) if argv else "?"


KSM = Path("/sys/kernel/mm/ksm")


class HostKsm:
    """ksmd on, scanning fast, for one measurement; then /sys/kernel/mm/ksm as it was
    (and what it merged unmerged, if it was off)."""

    def __init__(self) -> None:
        self.saved = {name: (KSM / name).read_text().strip() for name in ("run", "pages_to_scan")}

    def __enter__(self) -> HostKsm:
        (KSM / "pages_to_scan").write_text("2000")
        (KSM / "run").write_text("1")
        return self

    def settle(self, timeout: float = 120.0) -> None:
        """Until ksmd has scanned all offered memory twice (every merge it will make is made)."""
        start = int((KSM / "full_scans").read_text())
        deadline = time.monotonic() + timeout
        while int((KSM / "full_scans").read_text()) < start + 2:
            if time.monotonic() > deadline:
                raise bench.BenchError(f"ksmd made no two full scans in {timeout:.0f} s")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.saved["run"] == "0":
            (KSM / "run").write_text("2")  # unmerge what it merged, then stop
        (KSM / "run").write_text(self.saved["run"])
        (KSM / "pages_to_scan").write_text(self.saved["pages_to_scan"])


def offers_memory(pid: int) -> bool:
    """Whether any of the process's mappings is offered to KSM ("mg" in its VmFlags)."""
    with open(f"/proc/{pid}/smaps") as f:
        return any(line.startswith("VmFlags:") and "mg" in line.split() for line in f)


def _shims(engine: bench.Engine, names: list[str]) -> list[int]:
    return [parent_of(int(engine.docker_cmd(["inspect", "-f", "{{.State.Pid}}", name]).strip()))
            for name in names]  # fmt: skip


def _sample(shim_pids: list[int]) -> ShimMemory:
    mem = ShimMemory()
    shims = set()
    for shim in shim_pids:
        shims.add(command_name(shim))
        rss, pss = smaps_rollup_kib(shim)
        mem.rss_kib.append(rss)
        mem.pss_kib.append(pss)
    mem.shim = ",".join(sorted(shims))
    return mem


def measure_shims(engine: bench.Engine, rootfs_tar: Path, containers: int, ksm: bool) -> list[ShimMemory]:
    """The shims' memory as the host is, and (ksm) with its samepage merging on."""
    mems = [ShimMemory()]
    names = [f"bench-mem-{i}" for i in range(containers)]
    try:
        engine.start()
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(rootfs_tar), bench.IMAGE])
        bench.log(f"{engine.name}: starting {containers} idle containers")
        for name in names:
            engine.docker_cmd(["run", "-d", "--name", name, bench.IMAGE, "sleep", "3600"])
        time.sleep(1.0)  # let start-up allocations settle
        shim_pids = _shims(engine, names)
        mems[0] = _sample(shim_pids)
        if ksm:
            mems.append(ShimMemory())
            bench.log(f"{engine.name}: the same with ksmd on")
            with HostKsm() as host:
                if any(offers_memory(pid) for pid in shim_pids):
                    host.settle()
                # else ksmd has nothing of theirs to scan or merge: their memory stays as it is
                mems[1] = _sample(shim_pids)
    except (bench.BenchError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        mems[-1].error = str(e)
    finally:
        try:
            engine.docker_cmd(["rm", "-f", *names], check=False, timeout=120)
        except subprocess.TimeoutExpired:
            bench.log(f"{engine.name}: docker rm -f of the idle containers timed out")
        engine.stop()
    return mems


# Children of a process that holds the zygote's modules (frozen, as the zygote does),
# which run no code after the fork: what a shim costs before it has done anything.
_FLOOR_PROGRAM = """
import gc, os, signal, sys
import berth.shim.zygote  # noqa: F401  (its imports are the zygote's modules)
gc.collect()
gc.freeze()
pids = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        signal.pause()
    pids.append(pid)
sys.stdout.write(" ".join(map(str, pids)) + "\\n")
sys.stdout.flush()
sys.stdin.read()
for pid in pids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def measure_floor(containers: int) -> ShimMemory:
    """The zygote runs on berthd's interpreter (the venv's), with -S, as here."""
    env = {"PYTHONPATH": str(bench.ROOT / "src"), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.Popen([str(bench.VENV_BIN / "python"), "-S", "-c", _FLOOR_PROGRAM, str(containers)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        if len(pids) != containers:
            return ShimMemory(error="the floor's children did not start")
        time.sleep(1.0)
        mem = _sample(pids)
        mem.shim = "forked, no code run"
        return mem
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def bench_memory(tmp: Path, rootfs_tar: Path, containers: int, docker: str, dockerd: str | None,
                 berthd_bridge: str, berthd_args: list[str], ksm: bool) -> dict[str, ShimMemory]:  # fmt: skip
    """By engine, and "ENGINE, ksm" for the same containers with ksmd on (when ksm)."""
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    ksm = ksm and (KSM / "run").exists()
    engines: list[tuple[str, bench.Engine]] = [
        ("berth", bench.Berthd(tmp / "berthd-mem", docker, config, berthd_bridge, berthd_args))]
    if dockerd:
        engines.append(("dockerd", bench.Dockerd(tmp / "dockerd-mem", docker, config, dockerd=dockerd)))
    mem: dict[str, ShimMemory] = {}
    for name, engine in engines:
        for label, m in zip((name, f"{name}, ksm"), measure_shims(engine, rootfs_tar, containers, ksm),
                            strict=False):  # fmt: skip
            mem[label] = m
        if name == "berth":
            mem["berth floor"] = measure_floor(containers)
    return mem


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = 20
    warmup: int = 2
    containers: int = 10
    scenarios: tuple[str, ...] = ("runtime-run-true", "shim-memory")
    docker: str | None = None
    dockerd: str | None = None
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    ksm: bool = True
    json_out: dict[str, object] = field(default_factory=dict)


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    tmp.mkdir(parents=True, exist_ok=True)
    ok = True
    if "runtime-run-true" in options.scenarios:
        timings, notes = bench_runtimes(tmp, rootfs_tar, options.runs, options.warmup)
        floors = bench_floors(options.runs, options.warmup)
        print()
        print_timings(timings, options.runs, options.warmup, notes, floors)
        ok = ok and all(t.ok for t in [*timings.values(), *floors.values()])
        options.json_out["runtime-run-true"] = {
            name: {"times_ms": t.times_ms, "error": t.error}
            for name, t in [*timings.items(), *((f"floor: {n}", t) for n, t in floors.items())]
        }
    if "shim-memory" in options.scenarios:
        if not options.docker:
            print("\nshim-memory skipped: no docker CLI on PATH")
        else:
            mem = bench_memory(tmp, rootfs_tar, options.containers, options.docker,
                               options.dockerd, options.berthd_bridge, options.berthd_args,
                               options.ksm)  # fmt: skip
            print()
            print_memory(mem, options.containers)
            if not options.dockerd:
                print("dockerd not installed (or skipped): containerd-shim not measured")
            if any(", ksm" in engine for engine in mem):
                print("ksm: the same containers with ksmd on (only memory offered to it is merged: "
                      "berth's shims offer theirs); /sys/kernel/mm/ksm was put back after")
            ok = ok and all(m.ok for m in mem.values())
            options.json_out["shim-memory"] = {
                engine: {"shim": m.shim, "rss_kib": m.rss_kib, "pss_kib": m.pss_kib, "error": m.error}
                for engine, m in mem.items()
            }
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/runtime.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--containers", type=int, default=10, help="idle containers per engine (10)")
    ap.add_argument("--scenario", action="append", default=[], choices=[s for s, _ in SCENARIOS])
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--no-ksm", action="store_true", help="do not measure with ksmd on")
    ap.add_argument("--docker", default=shutil.which("docker"))
    ap.add_argument("--dockerd", default=shutil.which("dockerd"))
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("run as root")
    if args.runs < 1 or args.warmup < 0 or args.containers < 1:
        ap.error("--runs and --containers must be >= 1, --warmup >= 0")
    options = Options(runs=args.runs, warmup=args.warmup, containers=args.containers,
                      scenarios=tuple(args.scenario) or Options.scenarios, docker=args.docker,
                      dockerd=None if args.no_dockerd else args.dockerd, ksm=not args.no_ksm)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench.", dir="/tmp"))
    try:
        rootfs_tar = tmp / "busybox-rootfs.tar"
        subprocess.run(["bash", str(bench.ROOT / "scripts" / "make-busybox-rootfs"), str(rootfs_tar)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        ok = run(options, tmp, rootfs_tar)
        if args.json:
            Path(args.json).write_text(json.dumps(options.json_out, indent=2) + "\n")
        return 0 if ok else 1
    finally:
        bench.remove_tmp(tmp, keep=False)


if __name__ == "__main__":
    sys.exit(main())
