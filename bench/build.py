"""`docker build` with the classic builder (DOCKER_BUILDKIT=0): a cold build and a fully
cached rebuild of a 10-instruction Dockerfile with a 50 MB COPY, berth vs dockerd.

Run through ``bench/run --build`` (``bench/run --list`` names the scenarios), or on its
own: ``.venv/bin/python bench/build.py [--runs N] [--warmup N] [--no-dockerd]
[--no-berthd] [--keep]``. A build context is written once into the bench's temporary
directory: ``big.bin`` (50 MiB of random data), ``app.sh`` and this Dockerfile::

    FROM busybox:latest
    LABEL bench=build
    ARG VERSION=1
    ENV APP=/app VERSION=$VERSION
    WORKDIR /app
    COPY big.bin /app/big.bin
    COPY app.sh /app/app.sh
    RUN echo built > /app/stamp
    EXPOSE 8080
    CMD ["sh", "/app/app.sh"]

Each engine is a private daemon (bench.py's, each with a default bridge of the bench's own;
builds use ``--network none``). Then, on each engine:

- ``build-cold``: before each run, untimed, ``docker rmi -f bench-build`` (which also
  removes the untagged intermediate images, the classic builder's cache) and
  ``docker builder prune -f``; timed: ``docker build --network none -t bench-build CTX``.
  Every run is checked to have used no cache.
- ``build-cached``: the same build again, the image left in place: every step after
  FROM must print `` ---> Using cache`` (checked on each run) and the image ID must not
  change.

Times are the wall clock of the docker CLI, in ms; the table gives the medians and
berth/dockerd. Targets (issue 8): cached rebuild in half dockerd's time, cold build no
slower than dockerd. Runs default to 5 after 1 warm-up; ``--runs``/``--warmup`` apply.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the table

MiB = 1024 * 1024
BIG_SIZE = 50 * MiB
TAG = "bench-build:latest"
DEFAULT_RUNS = 5
DEFAULT_WARMUP = 1

DOCKERFILE = """FROM busybox:latest
LABEL bench=build
ARG VERSION=1
ENV APP=/app VERSION=$VERSION
WORKDIR /app
COPY big.bin /app/big.bin
COPY app.sh /app/app.sh
RUN echo built > /app/stamp
EXPOSE 8080
CMD ["sh", "/app/app.sh"]
"""
STEPS = 10

SCENARIOS = [
    ("build-cold", "docker build (classic) of 10 steps with a 50 MB COPY, nothing cached, "
                   "ms: berth vs dockerd"),
    ("build-cached", "the same build again, every step cached, ms: berth vs dockerd"),
]  # fmt: skip


def build_context(tmp: Path) -> Path:
    """The context directory, written once."""
    ctx = tmp / "context"
    if (ctx / "Dockerfile").exists():
        return ctx
    ctx.mkdir(parents=True, exist_ok=True)
    bench.log(f"writing {ctx} (Dockerfile + {BIG_SIZE // MiB} MiB of random data)")
    with open(ctx / "big.bin", "wb") as f:
        left = BIG_SIZE
        while left:
            chunk = os.urandom(min(left, MiB))
            f.write(chunk)
            left -= len(chunk)
    (ctx / "app.sh").write_text('echo "bench app $VERSION"\n')
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def build_argv(ctx: Path) -> list[str]:
    return ["build", "--network", "none", "-t", TAG, str(ctx)]


def _env(engine: bench.Engine) -> dict[str, str]:
    return {**engine.env(), "DOCKER_BUILDKIT": "0"}


def _timed_build(engine: bench.Engine, ctx: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([engine.docker, *build_argv(ctx)], env=_env(engine),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)  # fmt: skip
    elapsed = (time.perf_counter() - t0) * 1000.0
    if r.returncode != 0:
        raise bench.BenchError(f"`docker {' '.join(build_argv(ctx))}` failed "
                               f"(exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")  # fmt: skip
    return elapsed, r.stdout


def _cache_hits(out: str) -> int:
    return sum(1 for line in out.splitlines() if line == " ---> Using cache")


def _reset(engine: bench.Engine) -> None:
    """Untimed: the image and its intermediates gone, the build cache pruned."""
    engine.docker_cmd(["rmi", "-f", TAG], check=False)
    engine.docker_cmd(["builder", "prune", "-f"], check=False)
    subprocess.run(["sync"], check=False)


def measure_engine(
    engine: bench.Engine, ctx: Path, rootfs: Path, names: tuple[str, ...], runs: int, warmup: int
) -> tuple[dict[str, bench.Result], str]:
    results = {name: bench.Result() for name, _ in SCENARIOS if name in names}
    version = "?"
    try:
        engine.start()
        version = engine.server_version()
        bench.log(f"{engine.name} {version} is up; importing {bench.IMAGE}")
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(rootfs), bench.IMAGE])
        if "build-cold" in results:
            res = results["build-cold"]
            bench.log(f"{engine.name}: build-cold: {warmup} warm-up + {runs} runs")
            try:
                for i in range(warmup + runs):
                    _reset(engine)
                    elapsed, out = _timed_build(engine, ctx)
                    if _cache_hits(out):
                        raise bench.BenchError(f"a cold build used the cache:\n{out[-2000:]}")
                    if i >= warmup:
                        res.times_ms.append(elapsed)
            except (bench.BenchError, subprocess.TimeoutExpired) as e:
                res.error = str(e)
        if "build-cached" in results:
            res = results["build-cached"]
            bench.log(f"{engine.name}: build-cached: {warmup} warm-up + {runs} runs")
            try:
                if "build-cold" not in results:
                    _reset(engine)
                _timed_build(engine, ctx)  # primes the cache (a no-op after build-cold)
                image = engine.docker_cmd(["image", "inspect", "-f", "{{.Id}}", TAG]).strip()
                for i in range(warmup + runs):
                    elapsed, out = _timed_build(engine, ctx)
                    hits = _cache_hits(out)
                    if hits != STEPS - 1:
                        raise bench.BenchError(
                            f"{hits} of {STEPS - 1} steps used the cache:\n{out[-2000:]}")
                    now = engine.docker_cmd(["image", "inspect", "-f", "{{.Id}}", TAG]).strip()
                    if now != image:
                        raise bench.BenchError(f"a fully cached rebuild changed the image "
                                               f"ID from {image} to {now}")  # fmt: skip
                    if i >= warmup:
                        res.times_ms.append(elapsed)
            except (bench.BenchError, subprocess.TimeoutExpired) as e:
                res.error = str(e)
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
        for res in results.values():
            res.error = res.error or str(exc)
    finally:
        engine.stop()
    for name, res in results.items():
        if res.error:
            bench.log(f"{engine.name}: {name}: FAILED: {res.error}")
    return results, version


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/build.py --no-berthd)
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


def _median(res: bench.Result | None) -> float | None:
    return res.stats()[0] if res is not None and res.ok else None


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    names = tuple(n for n, _ in SCENARIOS if n in options.scenarios)
    if not names or not options.docker:
        return True
    tmp.mkdir(parents=True, exist_ok=True)
    ctx = build_context(tmp)
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    engines: list[bench.Engine] = []
    if options.berthd:
        engines.append(bench.Berthd(tmp / "berthd", options.docker, config,
                                    options.berthd_bridge, options.berthd_args))  # fmt: skip
    if options.dockerd:
        engines.append(bench.Dockerd(tmp / "dockerd", options.docker, config,
                                     dockerd=options.dockerd))  # fmt: skip
    results: dict[str, dict[str, bench.Result]] = {}
    versions: dict[str, str] = {}
    for engine in engines:
        results[engine.name], versions[engine.name] = measure_engine(
            engine, ctx, rootfs_tar, names, options.runs, options.warmup
        )

    scenarios = [bench.Scenario(name, build_argv(ctx)) for name in names]
    print()
    print(", ".join(f"{'berthd' if name == 'berth' else name} {v}" for name, v in versions.items())
          + f"; docker build (DOCKER_BUILDKIT=0) of {STEPS} steps with a {BIG_SIZE // MiB} MiB "
          f"COPY; {options.runs} runs + {options.warmup} warm-up; times in ms (wall clock of "
          "the CLI)")  # fmt: skip
    berth = results.get("berth", {})
    docker = results.get("dockerd")
    bench.print_table(scenarios, berth, docker)
    if docker is None:
        print("dockerd not installed (or skipped): measured on berth only")
    else:
        for name, limit, what in (("build-cached", 0.5, "at most half"),
                                  ("build-cold", 1.0, "no slower than")):  # fmt: skip
            b, d = _median(berth.get(name)), _median(docker.get(name))
            if name in names and b is not None and d is not None:
                verdict = "met" if b <= limit * d else "NOT met"
                print(f"target {name}: berth {what} dockerd's time: {b:.0f} vs {d:.0f} ms "
                      f"({b / d:.2f}x): {verdict}")  # fmt: skip
    for engine_name, per in results.items():
        for name, res in per.items():
            if res.error:
                print(f"{name} {engine_name}: {res.error}")
    for name in names:
        options.json_out[name] = {
            "argv": ["docker", *build_argv(ctx)],
            "env": {"DOCKER_BUILDKIT": "0"},
            "runs": options.runs,
            "warmup": options.warmup,
            "copy_bytes": BIG_SIZE,
            "steps": STEPS,
            **{engine: {"times_ms": per[name].times_ms, "error": per[name].error}
               for engine, per in results.items() if name in per},
        }  # fmt: skip
    return all(r.ok for per in results.values() for r in per.values())


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/build.py", __doc__, DEFAULT_RUNS, DEFAULT_WARMUP, SCENARIOS)
    args = bench.parse_standalone(ap, argv)

    def body(tmp: Path, rootfs: Path) -> bool:
        options = Options(
            runs=args.runs, warmup=args.warmup,
            scenarios=tuple(args.scenario) or tuple(name for name, _ in SCENARIOS),
            docker=args.docker, dockerd=None if args.no_dockerd else args.dockerd,
            berthd=not args.no_berthd,
        )  # fmt: skip
        return run(options, tmp / "build", rootfs)

    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
