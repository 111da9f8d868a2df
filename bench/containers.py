"""Container scenarios of issue 7 (Must show 5): `docker ps` with 500 containers, `docker exec
C true` latency and `docker logs` of 200,000 lines, berth vs dockerd.

Run through ``bench/run --containers-bench`` (``bench/run --list`` names the scenarios), or
on its own: ``.venv/bin/python bench/containers.py [--runs N] [--warmup N] [--scenario NAME]
[--no-dockerd] [--no-berthd] [--keep]``. Each engine is a private daemon (bench.py's: berthd
and dockerd each with a default bridge of the bench's own); every container is created
with ``--network none`` so that neither engine spends time on networking. On each engine, in
this order, each scenario removing its containers when done:

- ``exec-true``: ``docker run -d --network none --name bench-exec busybox sleep 3600``
  (untimed; checked once with ``docker exec bench-exec echo ok``); timed:
  ``docker exec bench-exec true``.
- ``logs-200k``: ``docker run -d --network none --name bench-logs busybox sh -c 'seq 1
  200000'`` and ``docker wait bench-logs`` (untimed; ``docker logs`` is checked once to give
  200,000 lines ending in ``200000``); timed: ``docker logs bench-logs`` with its stdout on
  /dev/null.
- ``logs-at-exit`` (issue 18): per run, ``docker run -d --network none busybox sh -c 'seq 1
  2000'`` and ``docker wait`` (untimed), then ``docker logs`` asked again every 20 ms until it
  holds all 2,000 lines; timed: from ``docker wait``'s return to the end of the first
  complete ``docker logs``, so an engine whose log is complete at the exit scores one
  ``docker logs``; the remark counts the runs whose first ``docker logs`` was short.
- ``ps-500``: 500 ``docker create --network none --name bench-ps-NNN busybox sleep 3600``
  (in parallel), the first 200 of them started with ``docker start`` in batches (untimed);
  timed: ``docker ps`` (row ``ps-500``: the running 200) and ``docker ps -a`` (row
  ``ps-500-all``: all 500), every run checked to list that many rows. Then ``docker rm -f``
  in batches, and a check that ``docker ps -aq`` is empty.

Times are the wall clock of the docker CLI, in ms; the table gives the medians and
berth/dockerd. Targets (issue 7): ``exec-true`` and ``logs-200k`` in at most half
dockerd's time, ``ps-500`` (``docker ps``) no slower than dockerd; ``ps-500-all`` has no
target. For scale, dockerd on this kind of machine: exec true 60 ms, logs of 200,000 lines
653 ms, ps with 50 running 15 ms. Runs default to 20 after 2 warm-up; ``--runs``/``--warmup``
apply.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the table

DEFAULT_RUNS = 20
DEFAULT_WARMUP = 2

PS_TOTAL = 500
PS_RUNNING = 200
PS_PREFIX = "bench-ps-"
EXEC_NAME = "bench-exec"
LOGS_NAME = "bench-logs"
LOG_LINES = 200_000
EXIT_LINES = 2_000
EXIT_NAME = "bench-exit"
PARALLEL = 8  # concurrent docker CLI processes for docker create / docker start
BATCH = 25  # container names per `docker start` / `docker rm -f`
# `docker rm` sends up to 50 requests at once; 8 CLIs x 25 names overflowed berthd's listen
# backlog (aiohttp's 128) while it removed running containers ("Cannot connect to the Docker
# daemon"), so the clean-up keeps at most 4 x 25 = 100 requests in flight.
RM_PARALLEL = 4

SCENARIOS = [
    ("exec-true", "docker exec C true in a running busybox container, ms: berth vs dockerd"),
    ("logs-200k", f"docker logs C > /dev/null of a container that printed {LOG_LINES:,} lines, "
                  "ms: berth vs dockerd"),
    ("logs-at-exit", f"from docker wait's return to a complete docker logs of {EXIT_LINES:,} lines, "
                     "ms: berth vs dockerd"),
    ("ps-500", f"docker ps (and docker ps -a) with {PS_TOTAL} containers, {PS_RUNNING} running, "
               "ms: berth vs dockerd"),
]  # fmt: skip

# Table rows (ps-500 gives two), their argv, and the targets: row -> (limit, wording).
ROWS = {
    "exec-true": ["exec", EXEC_NAME, "true"],
    "logs-200k": ["logs", LOGS_NAME],
    "logs-at-exit": ["logs", EXIT_NAME],  # timed from the exit (logs_at_exit)
    "ps-500": ["ps"],
    "ps-500-all": ["ps", "-a"],
}
TARGETS = {
    "exec-true": (0.5, "at most half"),
    "logs-200k": (0.5, "at most half"),
    "ps-500": (1.0, "no slower than"),
}
RUN = ["--network", "none"]


def _ps_names() -> list[str]:
    return [f"{PS_PREFIX}{i:03d}" for i in range(PS_TOTAL)]


def _batches(items: list[str], n: int) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _parallel(
    engine: bench.Engine, argvs: list[list[str]], *, check: bool = True, parallel: int = PARALLEL
) -> list[str]:
    """Run docker commands `parallel` at a time. With check, raise the first failure (after
    all ran); without, return the failures' messages."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(engine.docker_cmd, argv, timeout=600) for argv in argvs]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
    if check and errors:
        raise errors[0]
    return [str(exc) for exc in errors]


def _timed(
    engine: bench.Engine,
    argv: list[str],
    runs: int,
    warmup: int,
    *,
    capture: bool = False,
    check: Callable[[str], str] | None = None,
) -> bench.Result:
    """Time `docker ARGV` warmup + runs times; stdout to /dev/null unless captured for
    `check`, which returns a complaint ('' when the output is right)."""
    res = bench.Result()
    env = engine.env()
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        r = subprocess.run(
            [engine.docker, *argv], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=600,
        )  # fmt: skip
        elapsed = (time.perf_counter() - t0) * 1000.0
        if r.returncode != 0:
            res.error = f"`docker {' '.join(argv)}`: exit {r.returncode}: " + r.stderr.decode(
                errors="replace").strip()[-500:]  # fmt: skip
            break
        if check is not None:
            problem = check(r.stdout.decode(errors="replace"))
            if problem:
                res.error = f"`docker {' '.join(argv)}`: {problem}"
                break
        if i >= warmup:
            res.times_ms.append(elapsed)
    return res


# --------------------------------------------------------------------- scenarios


def exec_true(engine: bench.Engine, runs: int, warmup: int) -> bench.Result:
    try:
        engine.docker_cmd(["run", "-d", *RUN, "--name", EXEC_NAME, bench.IMAGE, "sleep", "3600"])
        out = engine.docker_cmd(["exec", EXEC_NAME, "echo", "ok"]).strip()
        if out != "ok":
            raise bench.BenchError(f"`docker exec {EXEC_NAME} echo ok` printed {out!r}")
        return _timed(engine, ROWS["exec-true"], runs, warmup)
    except (bench.BenchError, subprocess.TimeoutExpired) as exc:
        return bench.Result(error=str(exc))
    finally:
        engine.docker_cmd(["rm", "-f", EXEC_NAME], check=False, timeout=120)


def _check_logs(out: str) -> str:
    lines = out.splitlines()
    if len(lines) != LOG_LINES or lines[0] != "1" or lines[-1] != str(LOG_LINES):
        return (f"{len(lines)} lines (first {lines[0] if lines else None!r}, last "
                f"{lines[-1] if lines else None!r}); expected {LOG_LINES} lines 1..{LOG_LINES}")  # fmt: skip
    return ""


def logs_200k(engine: bench.Engine, runs: int, warmup: int) -> tuple[bench.Result, str]:
    """The result and a remark (e.g. the logs were complete only some time after the exit)."""
    remark = ""
    try:
        engine.docker_cmd(["run", "-d", *RUN, "--name", LOGS_NAME, bench.IMAGE,
                           "sh", "-c", f"seq 1 {LOG_LINES}"])  # fmt: skip
        code = engine.docker_cmd(["wait", LOGS_NAME], timeout=120).strip()
        if code != "0":
            raise bench.BenchError(f"`docker wait {LOGS_NAME}` gave exit code {code!r}")
        t_exit = time.monotonic()
        # When the first complete `docker logs` was asked for, not when it ended: reading
        # 200,000 lines takes the engine a while, and that is not lateness of the log.
        problem = first_problem = ""
        asked = t_exit
        for attempt in range(100):
            asked = time.monotonic()
            problem = _check_logs(engine.docker_cmd(["logs", LOGS_NAME], timeout=120))
            if attempt == 0:
                first_problem = problem
            if not problem or asked - t_exit > 10:
                break
            time.sleep(0.05)
        if problem:
            raise bench.BenchError(f"`docker logs {LOGS_NAME}` after the exit: {problem}")
        if first_problem:
            remark = (f"{engine.name}: `docker logs` right after `docker wait` gave {first_problem}; "
                      f"complete when asked {asked - t_exit:.2f} s after the exit")  # fmt: skip
            bench.log(remark)
        return _timed(engine, ROWS["logs-200k"], runs, warmup), remark
    except (bench.BenchError, subprocess.TimeoutExpired) as exc:
        return bench.Result(error=str(exc)), remark
    finally:
        engine.docker_cmd(["rm", "-f", LOGS_NAME], check=False, timeout=120)


def logs_at_exit(engine: bench.Engine, runs: int, warmup: int) -> tuple[bench.Result, str]:
    """The time from an exit to a complete `docker logs` in the user's hands, and a remark
    counting the runs whose first `docker logs` after `docker wait` was short."""
    res = bench.Result()
    short: list[float] = []  # for each short first read: when the complete one was asked, s
    try:
        for i in range(warmup + runs):
            engine.docker_cmd(["run", "-d", *RUN, "--name", EXIT_NAME, bench.IMAGE,
                               "sh", "-c", f"seq 1 {EXIT_LINES}"])  # fmt: skip
            code = engine.docker_cmd(["wait", EXIT_NAME], timeout=120).strip()
            t_exit = time.perf_counter()
            if code != "0":
                raise bench.BenchError(f"`docker wait {EXIT_NAME}` gave exit code {code!r}")
            reads = 0
            while True:
                asked = time.perf_counter()
                lines = engine.docker_cmd(["logs", EXIT_NAME], timeout=120).splitlines()
                reads += 1
                if len(lines) == EXIT_LINES and lines[-1] == str(EXIT_LINES):
                    break
                if asked - t_exit > 10:
                    raise bench.BenchError(f"`docker logs {EXIT_NAME}` short 10 s after the exit")
                time.sleep(0.02)
            if i >= warmup:
                res.times_ms.append((time.perf_counter() - t_exit) * 1000.0)
                if reads > 1:
                    short.append(asked - t_exit)
            engine.docker_cmd(["rm", "-f", EXIT_NAME], timeout=120)
    except (bench.BenchError, subprocess.TimeoutExpired) as exc:
        res.error = str(exc)
    finally:
        engine.docker_cmd(["rm", "-f", EXIT_NAME], check=False, timeout=120)
    remark = (f"{engine.name}: logs-at-exit: the first `docker logs` after `docker wait` was short in "
              f"{len(short)} of {runs} runs"
              + (f" (complete when asked {max(short):.2f} s after the exit at the latest)" if short else ""))
    return res, remark


def _rows_check(want: int) -> Callable[[str], str]:
    def check(out: str) -> str:
        rows = len(out.splitlines()) - 1  # the header
        return "" if rows == want else f"listed {rows} containers, expected {want}"

    return check


def ps_500(engine: bench.Engine, runs: int, warmup: int) -> tuple[dict[str, bench.Result], str]:
    """Results for the rows ps-500 and ps-500-all, and the set-up times as a remark."""
    names = _ps_names()
    results: dict[str, bench.Result] = {}
    remark = ""
    try:
        bench.log(f"{engine.name}: ps-500: creating {PS_TOTAL} containers, starting {PS_RUNNING}")
        t0 = time.monotonic()
        _parallel(engine, [["create", *RUN, "--name", n, bench.IMAGE, "sleep", "3600"]
                           for n in names])  # fmt: skip
        t1 = time.monotonic()
        _parallel(engine, [["start", *batch] for batch in _batches(names[:PS_RUNNING], BATCH)])
        t2 = time.monotonic()
        remark = (f"{engine.name}: set-up: {PS_TOTAL} x docker create in {t1 - t0:.1f} s, "
                  f"docker start of {PS_RUNNING} in {t2 - t1:.1f} s ({PARALLEL} CLIs at a time)")  # fmt: skip
        bench.log(remark)
        results["ps-500"] = _timed(engine, ROWS["ps-500"], runs, warmup, capture=True,
                                   check=_rows_check(PS_RUNNING))  # fmt: skip
        results["ps-500-all"] = _timed(engine, ROWS["ps-500-all"], runs, warmup, capture=True,
                                       check=_rows_check(PS_TOTAL))  # fmt: skip
    except (bench.BenchError, subprocess.TimeoutExpired) as exc:
        for row in ("ps-500", "ps-500-all"):
            results.setdefault(row, bench.Result(error=str(exc)))
    finally:
        t3 = time.monotonic()
        try:
            errors = _parallel(engine, [["rm", "-f", *b] for b in _batches(names, BATCH)],
                               check=False, parallel=RM_PARALLEL)  # fmt: skip
            left = engine.docker_cmd(["ps", "-aq"], check=False, timeout=120).split()
        except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
            errors, left = [str(exc)], []
        took = f"; docker rm -f of {PS_TOTAL} in {time.monotonic() - t3:.1f} s"
        remark += took
        bench.log(f"{engine.name}: ps-500: clean-up{took}")
        for err in errors[:3]:
            bench.log(f"{engine.name}: ps-500: clean-up: {err}")
        if errors:
            remark += f"; {len(errors)} of the docker rm -f batches FAILED: {errors[0][-300:]}"
        if left:
            # Once more, one at a time, so that the engine is left empty whatever happened.
            bench.log(f"{engine.name}: {len(left)} containers left after docker rm -f; "
                      "removing them one by one")  # fmt: skip
            remark += f"; {len(left)} containers LEFT after docker rm -f"
            for cid in left:
                engine.docker_cmd(["rm", "-f", cid], check=False, timeout=120)
            still = engine.docker_cmd(["ps", "-aq"], check=False, timeout=120).split()
            remark += f" ({len(still)} still there after a second docker rm -f each)"
    return results, remark


def measure_engine(
    engine: bench.Engine, rootfs: Path, names: tuple[str, ...], runs: int, warmup: int
) -> tuple[dict[str, bench.Result], str, list[str]]:
    """Results per row, the server version and remarks."""
    results: dict[str, bench.Result] = {}
    remarks: list[str] = []
    version = "?"
    try:
        engine.start()
        version = engine.server_version()
        bench.log(f"{engine.name} {version} is up; importing {bench.IMAGE}")
        engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(rootfs), bench.IMAGE])
        if "exec-true" in names:
            bench.log(f"{engine.name}: exec-true: {warmup} warm-up + {runs} runs")
            results["exec-true"] = exec_true(engine, runs, warmup)
        if "logs-200k" in names:
            bench.log(f"{engine.name}: logs-200k: {warmup} warm-up + {runs} runs")
            results["logs-200k"], remark = logs_200k(engine, runs, warmup)
            remarks += [remark] if remark else []
        if "logs-at-exit" in names:
            bench.log(f"{engine.name}: logs-at-exit: {warmup} warm-up + {runs} runs")
            results["logs-at-exit"], remark = logs_at_exit(engine, runs, warmup)
            remarks.append(remark)
        if "ps-500" in names:
            per, remark = ps_500(engine, runs, warmup)
            results.update(per)
            remarks += [remark] if remark else []
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
        for name in names:
            for row in (name, "ps-500-all") if name == "ps-500" else (name,):
                results.setdefault(row, bench.Result(error=str(exc)))
    finally:
        engine.stop()
    for row, res in results.items():
        if res.error:
            bench.log(f"{engine.name}: {row}: FAILED: {res.error}")
    return results, version, remarks


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/containers.py --no-berthd)
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
    remarks: list[str] = []
    try:
        for engine in engines:
            results[engine.name], versions[engine.name], more = measure_engine(
                engine, rootfs_tar, names, options.runs, options.warmup
            )
            remarks += more
    finally:
        for engine in engines:
            engine.stop()  # idempotent; covers an interrupt in the middle of a run

    rows = [r for r in ROWS if r in names or (r == "ps-500-all" and "ps-500" in names)]
    scenarios = [bench.Scenario(row, ROWS[row]) for row in rows]
    print()
    print(", ".join(f"{'berthd' if name == 'berth' else name} {v}" for name, v in versions.items())
          + f"; containers with --network none; {options.runs} runs + {options.warmup} warm-up; "
          "times in ms (wall clock of the CLI)")  # fmt: skip
    berth = results.get("berth", {})
    docker = results.get("dockerd")
    bench.print_table(scenarios, berth, docker)
    if docker is None:
        print("dockerd not installed (or skipped): measured on berth only")
    else:
        for row, (limit, what) in TARGETS.items():
            b, d = _median(berth.get(row)), _median(docker.get(row))
            if row in rows and b is not None and d is not None:
                verdict = "met" if b <= limit * d else "NOT met"
                print(f"target {row}: berth {what} dockerd's time: {b:.1f} vs {d:.1f} ms "
                      f"({b / d:.2f}x, target <= {limit:.1f}x): {verdict}")  # fmt: skip
    for remark in remarks:
        print(f"note: {remark}")
    for engine_name, per in results.items():
        for row, res in per.items():
            if res.error:
                print(f"{row} {engine_name}: {res.error}")
    for row in rows:
        b, d = _median(berth.get(row)), _median((docker or {}).get(row))
        options.json_out[row] = {
            "argv": ["docker", *ROWS[row]],
            "runs": options.runs,
            "warmup": options.warmup,
            **({"containers": PS_TOTAL, "running": PS_RUNNING} if row.startswith("ps-") else {}),
            **({"lines": LOG_LINES} if row == "logs-200k" else {}),
            **({"target_ratio": TARGETS[row][0]} if row in TARGETS else {}),
            **({"ratio": b / d} if b is not None and d is not None else {}),
            **{engine: {"times_ms": per[row].times_ms, "error": per[row].error}
               for engine, per in results.items() if row in per},
        }  # fmt: skip
    return all(r.ok for per in results.values() for r in per.values())


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/containers.py", __doc__, DEFAULT_RUNS, DEFAULT_WARMUP, SCENARIOS)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = bench.parse_standalone(ap, argv)

    def body(tmp: Path, rootfs: Path) -> bool:
        options = Options(
            runs=args.runs, warmup=args.warmup,
            scenarios=tuple(args.scenario) or tuple(name for name, _ in SCENARIOS),
            docker=args.docker, dockerd=None if args.no_dockerd else args.dockerd,
            berthd=not args.no_berthd,
        )  # fmt: skip
        ok = run(options, tmp / "containers", rootfs)
        if args.json:
            out = {"runs": args.runs, "warmup": args.warmup, "containers": options.json_out}
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        return ok

    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
