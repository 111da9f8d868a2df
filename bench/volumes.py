"""Volume copy-up: start a container whose fresh named volume sits over 1 GB of image content.

Docker's behaviour: when a new, empty named volume is mounted at a path where the image
has content, that content (with its ownership and modes) is copied into the volume before
the container starts. This scenario times that.

Run through ``bench/run --volumes`` (``bench/run --list`` names the scenario), or on its
own: ``.venv/bin/python bench/volumes.py [--runs N] [--warmup N] [--no-dockerd]
[--no-berthd] [--keep]``. A rootfs tar is written once into the bench's temporary
directory: busybox plus ``/data`` holding about 1 GB, namely 4 files of 240 MiB of random
data and 2000 files of 4 KiB in 20 subdirectories, with non-root owners, assorted modes
(setgid and 0700 directories, 0600/0444 files), an empty directory and a symlink. It is
imported with ``docker import`` as ``bench-vol:latest`` into a private berthd and, when
dockerd is installed, a private dockerd (bench.py's engines). Then, on each engine:

- once, untimed: ``docker run --rm -v bvol-check:/data bench-vol sh -c '...'`` lists the
  volume (file count, ``du -sk``, owner/group/mode/size of sample entries, md5 of a big
  and a small file, the symlink's target) and compares it with what the tar holds; a
  mismatch fails the scenario on that engine with the differences;
- ``volume-copy-up``: ``docker run --rm -v bvol-N:/data bench-vol true`` with a fresh
  volume name per run (nothing is created beforehand, so every run copies 1 GB), timed
  as wall clock of the CLI; after each run, untimed, ``docker volume rm bvol-N`` and a
  ``sync`` so that one run's write-back does not land in the next run's time.

Runs default to 5 after 1 warm-up (each run copies 1 GB); ``--runs``/``--warmup`` apply.
Disk: the tar (1 GB), the image in each engine (1 GB each) and 1 GB per run, removed
after the run.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the table

MiB = 1024 * 1024
MB = 1_000_000
VOL_IMAGE = "bench-vol:latest"
MOUNT = "/data"
DEFAULT_RUNS = 5
DEFAULT_WARMUP = 1

# /data's contents: 4 big files + 20 directories x 100 small files + an empty dir + a symlink.
BIG_FILES = [  # name, size, uid, gid, mode
    ("blob-0", 240 * MiB, 1000, 1000, 0o644),
    ("blob-1", 240 * MiB, 0, 0, 0o600),
    ("blob-2", 240 * MiB, 33, 33, 0o640),
    ("blob-3", 240 * MiB, 65534, 65534, 0o444),
]
SMALL_DIRS = 20
SMALL_PER_DIR = 100
SMALL_SIZE = 4096
_OWNERS = [(0, 0), (1000, 1000), (1001, 100), (33, 33)]
_FILE_MODES = [0o644, 0o600, 0o664, 0o755, 0o400]
_DIR_MODES = [0o755, 0o700, 0o2775, 0o750]
ROOT_DIR = (1000, 1000, 0o750)  # /data itself: Docker copies its owner and mode to the volume

SCENARIOS = [
    ("volume-copy-up", "docker run --rm -v <fresh volume>:/data of a 1 GB image path, ms: "
                       "berth vs dockerd"),
]  # fmt: skip


def _small_dir(d: int) -> tuple[str, int, int, int]:
    uid, gid = _OWNERS[d % len(_OWNERS)]
    return f"small/d{d:02d}", uid, gid, _DIR_MODES[d % len(_DIR_MODES)]


def _small_file(d: int, f: int) -> tuple[str, int, int, int]:
    uid, gid = _OWNERS[(d + f) % len(_OWNERS)]
    return f"small/d{d:02d}/f{f:04d}", uid, gid, _FILE_MODES[f % len(_FILE_MODES)]


class _RandomStream(io.RawIOBase):
    """`size` bytes of random data, hashed as they are read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.md5 = hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        data = os.urandom(n)
        self.md5.update(data)
        return data


@dataclass
class Layout:
    """What the volume must hold after the copy: the expected lines of the check."""

    tar: Path
    files: int = 0
    data_bytes: int = 0
    # path under /data -> "uid gid mode size"; md5 of some files; the symlink's target
    stats: dict[str, str] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)
    link: tuple[str, str] = ("latest", "big/blob-0")


def volume_rootfs(tmp: Path, rootfs_tar: Path) -> Layout:
    """busybox's rootfs plus /data (about 1 GB), written once into tmp."""
    out = tmp / "vol-rootfs.tar"
    layout = Layout(tar=out)
    now = int(time.time())
    size_mib = (sum(s for _, s, *_ in BIG_FILES) + SMALL_DIRS * SMALL_PER_DIR * SMALL_SIZE) / MiB
    bench.log(f"writing {out} (busybox + {size_mib:.0f} MiB under {MOUNT})")

    def member(name: str, uid: int, gid: int, mode: int, kind: bytes = tarfile.REGTYPE,
               size: int = 0) -> tarfile.TarInfo:  # fmt: skip
        info = tarfile.TarInfo(f"{MOUNT.strip('/')}/{name}" if name else MOUNT.strip("/"))
        info.type, info.uid, info.gid, info.mode = kind, uid, gid, mode
        info.size, info.mtime = size, now
        return info

    def record(name: str, uid: int, gid: int, mode: int, size: int | None = None) -> None:
        key = f"{MOUNT}/{name}" if name else MOUNT
        layout.stats[key] = f"{uid} {gid} {mode:o}" + ("" if size is None else f" {size}")

    with tarfile.open(rootfs_tar) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in src:
            tar.addfile(m, src.extractfile(m) if m.isreg() else None)
        uid, gid, mode = ROOT_DIR
        tar.addfile(member("", uid, gid, mode, tarfile.DIRTYPE))
        record("", uid, gid, mode)
        tar.addfile(member("big", 1000, 1000, 0o750, tarfile.DIRTYPE))
        record("big", 1000, 1000, 0o750)
        for name, size, uid, gid, mode in BIG_FILES:
            stream = _RandomStream(size)
            tar.addfile(member(f"big/{name}", uid, gid, mode, size=size), stream)  # type: ignore[arg-type]
            layout.files += 1
            layout.data_bytes += size
            record(f"big/{name}", uid, gid, mode, size)
            if name == "blob-0":
                layout.md5[f"{MOUNT}/big/{name}"] = stream.md5.hexdigest()
        tar.addfile(member("small", 0, 0, 0o755, tarfile.DIRTYPE))
        for d in range(SMALL_DIRS):
            dname, uid, gid, mode = _small_dir(d)
            tar.addfile(member(dname, uid, gid, mode, tarfile.DIRTYPE))
            if d < len(_DIR_MODES):
                record(dname, uid, gid, mode)
            for f in range(SMALL_PER_DIR):
                fname, uid, gid, mode = _small_file(d, f)
                data = os.urandom(SMALL_SIZE)
                tar.addfile(member(fname, uid, gid, mode, size=SMALL_SIZE), io.BytesIO(data))
                layout.files += 1
                layout.data_bytes += SMALL_SIZE
                if d == SMALL_DIRS - 1 and f < len(_FILE_MODES):
                    record(fname, uid, gid, mode, SMALL_SIZE)
                    layout.md5[f"{MOUNT}/{fname}"] = hashlib.md5(data).hexdigest()
        tar.addfile(member("empty", 1001, 100, 0o700, tarfile.DIRTYPE))
        record("empty", 1001, 100, 0o700)
        link = member(layout.link[0], 1000, 1000, 0o777, tarfile.SYMTYPE)
        link.linkname = layout.link[1]
        tar.addfile(link)
    return layout


# --------------------------------------------------------------------- checking


def check_script(layout: Layout) -> str:
    dirs = [p for p, v in layout.stats.items() if len(v.split()) == 3]
    files = [p for p, v in layout.stats.items() if len(v.split()) == 4]
    return "; ".join([
        f"echo files $(find {MOUNT} -type f | wc -l)",
        f"echo kib $(du -sk {MOUNT} | cut -f1)",
        f"stat -c 'stat %n %u %g %a' {' '.join(dirs)}",
        f"stat -c 'stat %n %u %g %a %s' {' '.join(files)}",
        f"md5sum {' '.join(layout.md5)} | sed 's/^/md5 /'",
        f"echo link $(readlink {MOUNT}/{layout.link[0]})",
    ])  # fmt: skip


def check_output(layout: Layout, out: str) -> list[str]:
    """The differences between the check's output and the layout (empty: all good)."""
    got: dict[str, str] = {}
    for line in out.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("stat", "md5"):
            a, _, b = rest.partition(" ")
            key, value = (a, b) if word == "stat" else (b.strip(), a)
            got[f"{word} {key}"] = value.strip()
        elif word:
            got[word] = rest.strip()
    problems = []

    def expect(key: str, want: str) -> None:
        have = got.get(key)
        if have != want:
            problems.append(f"{key}: expected {want!r}, got {have!r}")

    expect("files", str(layout.files))
    kib = int(got["kib"]) if got.get("kib", "").isdigit() else 0
    if kib * 1024 < layout.data_bytes * 0.99:
        problems.append(f"du -sk {MOUNT}: {kib} KiB, expected at least "
                        f"{layout.data_bytes * 0.99 / 1024:.0f} KiB")  # fmt: skip
    for path, want in layout.stats.items():
        expect(f"stat {path}", want)
    for path, want in layout.md5.items():
        expect(f"md5 {path}", want)
    expect("link", layout.link[1])
    return problems


def verify_copy_up(engine: bench.Engine, layout: Layout) -> None:
    """Raise BenchError unless a fresh volume over /data holds /data's content."""
    name = "bvol-check"
    try:
        out = engine.docker_cmd(
            ["run", "--rm", "-v", f"{name}:{MOUNT}", VOL_IMAGE, "sh", "-c", check_script(layout)],
            timeout=900,
        )
    finally:
        engine.docker_cmd(["volume", "rm", name], check=False, timeout=300)
    problems = check_output(layout, out)
    if problems:
        shown = "\n  ".join(problems[:15]) + (
            f"\n  ... and {len(problems) - 15} more" if len(problems) > 15 else ""
        )
        raise bench.BenchError(
            f"{engine.name}: the fresh volume over {MOUNT} does not hold the image's content "
            f"(copy-up missing or wrong):\n  {shown}\ncheck output:\n{out.strip()[-1500:]}"
        )


# --------------------------------------------------------------------- measuring


def scenario() -> bench.Scenario:
    return bench.Scenario(
        "volume-copy-up", ["run", "--rm", "-v", f"bvol-<n>:{MOUNT}", "bench-vol", "true"]
    )


def measure_engine(
    engine: bench.Engine, layout: Layout, runs: int, warmup: int
) -> tuple[bench.Result, str]:
    res = bench.Result()
    version = "?"
    env = engine.env()
    try:
        engine.start()
        version = engine.server_version()
        bench.log(f"{engine.name} {version} is up; importing {VOL_IMAGE}")
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(layout.tar), VOL_IMAGE],
                          timeout=900)  # fmt: skip
        bench.log(f"{engine.name}: checking that a fresh volume gets {MOUNT}'s content")
        verify_copy_up(engine, layout)
        subprocess.run(["sync"], check=False)
        bench.log(f"{engine.name}: volume-copy-up: {warmup} warm-up + {runs} runs")
        for i in range(warmup + runs):
            volume = f"bvol-{i}"
            t0 = time.perf_counter()
            r = subprocess.run(
                [engine.docker, "run", "--rm", "-v", f"{volume}:{MOUNT}", VOL_IMAGE, "true"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, timeout=900,
            )  # fmt: skip
            elapsed = (time.perf_counter() - t0) * 1000.0
            if r.returncode != 0:
                res.error = f"exit {r.returncode}: {r.stderr.strip()[-500:]}"
                engine.docker_cmd(["volume", "rm", "-f", volume], check=False)
                break
            if i >= warmup:
                res.times_ms.append(elapsed)
            engine.docker_cmd(["volume", "rm", volume], timeout=300)
            subprocess.run(["sync"], check=False)
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
        res.error = str(exc)
    finally:
        engine.stop()
    if res.error:
        bench.log(f"{engine.name}: volume-copy-up: FAILED: {res.error}")
    return res, version


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/volumes.py --no-berthd)
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    if "volume-copy-up" not in options.scenarios or not options.docker:
        return True
    tmp.mkdir(parents=True, exist_ok=True)
    layout = volume_rootfs(tmp, rootfs_tar)
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    engines: list[bench.Engine] = []
    if options.berthd:
        engines.append(bench.Berthd(tmp / "berthd", options.docker, config,
                                    options.berthd_bridge, options.berthd_args))  # fmt: skip
    if options.dockerd:
        engines.append(bench.Dockerd(tmp / "dockerd", options.docker, config,
                                     dockerd=options.dockerd))  # fmt: skip
    results: dict[str, bench.Result] = {}
    versions: dict[str, str] = {}
    for engine in engines:
        results[engine.name], versions[engine.name] = measure_engine(
            engine, layout, options.runs, options.warmup
        )

    sc = scenario()
    print()
    print(", ".join(f"{'berthd' if name == 'berth' else name} {v}" for name, v in versions.items())
          + f"; volumes: {layout.data_bytes / MB:.0f} MB in {layout.files} files under the image's "
          f"{MOUNT}, copied up into a fresh named volume per run; {options.runs} runs + "
          f"{options.warmup} warm-up; times in ms (wall clock of the CLI)")  # fmt: skip
    berth = {sc.name: results["berth"]} if "berth" in results else {}
    docker = {sc.name: results["dockerd"]} if "dockerd" in results else None
    bench.print_table([sc], berth, docker)
    if not options.dockerd:
        print("dockerd not installed (or skipped): measured on berth only")
    for name, res in results.items():
        if res.error:
            print(f"volume-copy-up {name}: {res.error}")
    options.json_out["volume-copy-up"] = {
        "argv": ["docker", *sc.argv],
        "runs": options.runs,
        "warmup": options.warmup,
        "bytes": layout.data_bytes,
        "files": layout.files,
        **{name: {"times_ms": r.times_ms, "error": r.error} for name, r in results.items()},
    }
    return all(r.ok for r in results.values())


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/volumes.py", __doc__, DEFAULT_RUNS, DEFAULT_WARMUP)
    args = bench.parse_standalone(ap, argv)

    def body(tmp: Path, rootfs: Path) -> bool:
        options = Options(
            runs=args.runs, warmup=args.warmup, docker=args.docker,
            dockerd=None if args.no_dockerd else args.dockerd, berthd=not args.no_berthd,
        )  # fmt: skip
        return run(options, tmp / "volumes", rootfs)

    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
