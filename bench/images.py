"""Image and layer throughput: `docker save`, `docker load` and layer extraction, in MB/s.

Run through ``bench/run --images`` (``bench/run --list`` names the scenarios). A rootfs
tar of busybox plus one 200 MB file of random data is written once into the bench's
temporary directory and imported as ``bench-big:latest`` into a private berthd and,
when dockerd is installed, a private dockerd (bench.py's engines). Then:

- ``image-save``: ``docker save -o FILE bench-big`` — the archive's size over the time.
- ``image-load``: ``docker load -i FILE`` of that archive, the image removed (untimed)
  before each run so every load writes its layer.
- ``layer-extract``: the same rootfs tar applied as a layer by berth's extraction child
  (``python -m berth.layers.extract DEST``, as the layer store runs it) against GNU
  ``tar -xf`` into an empty directory.

Throughput is the median of the runs, in MB/s (10^6 bytes per second).
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the rootfs maker

MB = 1_000_000
BIG_FILE_SIZE = 200 * 1024 * 1024
BIG_IMAGE = "bench-big:latest"

SCENARIOS = [
    ("image-save", "docker save of a 200 MB image, MB/s: berth vs dockerd"),
    ("image-load", "docker load of that image's archive, MB/s: berth vs dockerd"),
    ("layer-extract", "apply the 200 MB layer, MB/s: berth's extract child vs GNU tar -xf"),
]


@dataclass
class Throughput:
    """The byte count of one run and the seconds of each run."""

    size: int = 0
    seconds: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.seconds)

    def mb_per_s(self) -> float:
        return self.size / MB / statistics.median(self.seconds)


def big_rootfs(tmp: Path, rootfs_tar: Path) -> Path:
    """busybox's rootfs plus /big.bin (200 MB of random data), written once."""
    out = tmp / "big-rootfs.tar"
    if out.exists():
        return out
    bench.log(f"writing {out} (busybox + {BIG_FILE_SIZE // (1024 * 1024)} MiB of random data)")
    with tarfile.open(rootfs_tar) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for member in src:
            tar.addfile(member, src.extractfile(member) if member.isreg() else None)
        info = tarfile.TarInfo("big.bin")
        info.size, info.mode, info.mtime = BIG_FILE_SIZE, 0o644, int(time.time())
        tar.addfile(info, _RandomStream(BIG_FILE_SIZE))  # type: ignore[arg-type]
    return out


class _RandomStream(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def _timed(cmd: list[str], env: dict[str, str] | None = None, stdin: Path | None = None) -> float:
    started = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
        r = subprocess.run(cmd, env=env, stdin=source, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        raise bench.BenchError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[-500:]}")
    return elapsed


def measure_engine(engine: bench.Engine, big_tar: Path, runs: int) -> dict[str, Throughput]:
    save, load = Throughput(), Throughput()
    archive = engine.dir / "saved.tar"
    docker = [engine.docker]
    try:
        engine.start()
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(big_tar), BIG_IMAGE], timeout=600)
        for i in range(runs + 1):  # the first run warms the page cache, untimed
            archive.unlink(missing_ok=True)
            t = _timed([*docker, "save", "-o", str(archive), BIG_IMAGE], env=engine.env())
            if i:
                save.seconds.append(t)
        save.size = archive.stat().st_size
        for i in range(runs + 1):
            engine.docker_cmd(["rmi", "-f", BIG_IMAGE], timeout=600)
            t = _timed([*docker, "load", "-i", str(archive)], env=engine.env())
            if i:
                load.seconds.append(t)
        load.size = save.size
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as e:
        save.error = save.error or str(e)
        load.error = str(e)
    finally:
        archive.unlink(missing_ok=True)
        engine.stop()
    return {"image-save": save, "image-load": load}


def measure_extraction(tmp: Path, big_tar: Path, runs: int) -> dict[str, Throughput]:
    sys.path.insert(0, str(bench.ROOT / "src"))
    from berth.layers.extract import child_env

    python = str(bench.VENV_BIN / "python")
    commands = {
        "berth": lambda dest: [python, "-S", "-m", "berth.layers.extract", str(dest)],
        "gnu-tar": lambda dest: ["tar", "-xf", "-", "-C", str(dest), "--numeric-owner"],
    }
    out: dict[str, Throughput] = {}
    for name, command in commands.items():
        result = Throughput(size=big_tar.stat().st_size)
        dest = tmp / f"extract-{name}"
        try:
            for i in range(runs + 1):
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                env = {**os.environ, **child_env()} if name == "berth" else None
                t = _timed(command(dest), env=env, stdin=big_tar)
                if i:
                    result.seconds.append(t)
        except (bench.BenchError, OSError, subprocess.TimeoutExpired) as e:
            result.error = str(e)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        out[name] = result
    return out


def _cell(t: Throughput | None) -> str:
    if t is None:
        return "-"
    return f"{t.mb_per_s():.0f}" if t.ok else "FAILED"


def _ratio(a: Throughput | None, b: Throughput | None) -> str:
    if a is None or b is None or not a.ok or not b.ok:
        return "-"
    return f"{a.mb_per_s() / b.mb_per_s():.2f}x"


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = 3
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    tmp.mkdir(parents=True, exist_ok=True)
    big = big_rootfs(tmp, rootfs_tar)
    results: dict[str, dict[str, Throughput]] = {}
    docker_scenarios = [s for s in ("image-save", "image-load") if s in options.scenarios]
    if docker_scenarios and options.docker:
        config = tmp / "docker-config"
        config.mkdir(exist_ok=True)
        engines: list[bench.Engine] = [
            bench.Berthd(tmp / "berthd", options.docker, config, options.berthd_bridge,
                         options.berthd_args)]  # fmt: skip
        if options.dockerd:
            engines.append(bench.Dockerd(tmp / "dockerd", options.docker, config,
                                         dockerd=options.dockerd))  # fmt: skip
        for engine in engines:
            for scenario, t in measure_engine(engine, big, options.runs).items():
                results.setdefault(scenario, {})[engine.name] = t
    if "layer-extract" in options.scenarios:
        results["layer-extract"] = measure_extraction(tmp, big, options.runs)

    print()
    print(f"images: a {big.stat().st_size / MB:.0f} MB image/layer; median of {options.runs} runs "
          "after one untimed; throughput in MB/s (higher is better)")
    rows = [["scenario", "berth", "other", "other MB/s", "berth/other"]]
    for scenario, by_engine in results.items():
        other_name = "gnu-tar" if scenario == "layer-extract" else "dockerd"
        berth, other = by_engine.get("berth"), by_engine.get(other_name)
        rows.append([scenario, _cell(berth), other_name if other else "-", _cell(other),
                     _ratio(berth, other)])
    _print_rows(rows)
    if docker_scenarios and not options.dockerd:
        print("dockerd not installed (or skipped): save/load measured on berth only")
    for scenario, by_engine in results.items():
        for engine, t in by_engine.items():
            if t.error:
                print(f"{scenario} {engine}: {t.error}")
            options.json_out[f"{scenario}/{engine}"] = {
                "bytes": t.size, "seconds": t.seconds, "error": t.error,
                "mb_per_s": t.mb_per_s() if t.ok else None}  # fmt: skip
    return all(t.ok for by_engine in results.values() for t in by_engine.values())


def _print_rows(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
