"""Push and pull throughput through real registries (issue 16, Must show 5): the docker CLI
against a private berthd and a private dockerd in the same run, with skopeo as the limit.

Run through ``bench/run --distribution`` (``bench/run --list`` names the scenarios), or on
its own: ``.venv/bin/python bench/distribution.py [--runs N] [--no-dockerd] [--no-berthd]
[--registry NAME] [--keep]``.

The image: five layers of 60/50/40/30/20 MiB (200 MiB, 210 MB, of layer tars), each nine tenths
seeded random data (gzip cannot shrink it) and one tenth text (gzip shrinks it ~20x), the
same bytes on every run, written once as a ``docker load`` archive in Docker's legacy
layout (``manifest.json``, the config, ``<id>/layer.tar``). Both engines are started
(bench.py's daemons, each with its own data root and default bridge) and run
side by side; the archive is loaded into each, untimed, before every push.

The registries, each on 127.0.0.1 on a free port with a root directory of its own: Debian's
``docker-registry serve CONFIG.yml`` (distribution 2.8) and ``berth-registry serve --addr
127.0.0.1:PORT --root DIR`` (skipped, with a note, when it is missing or does not start).
Every push goes to a registry started fresh for it, empty, so no blob can be skipped as
already there or mounted from an earlier push. For each registry and each run, berth and
dockerd in turn (alternating which goes first):

- ``dist-push``: timed ``docker push localhost:PORT/bench/big-N:latest``.
- ``dist-pull``: ``docker rmi`` of the image, then checked: no image and no layer left
  in the engine (its layer directory is empty); timed ``docker pull`` of what it pushed;
  checked: the same image ID, all five layers back. Then removed again.

The limit: ``skopeo copy docker-archive:FILE docker://localhost:PORT/...`` (push, also
compressing the layers) and ``skopeo copy docker://... oci:DIR`` (pull), each to a fresh
registry / directory.

MB/s is one size for every engine: the image as dockerd pushed it (the gzip layers plus the
config, summed from the registry's manifest; berth's or skopeo's when dockerd has none)
over the median time of the CLI command, in 10^6 bytes per second. Each pusher's own size
is printed and kept in --json. An engine whose push fails
prints its error line; the others are measured all the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the engines, logging, the rootfs maker

MB = 1_000_000
MiB = 1024 * 1024
LAYER_MIB = (60, 50, 40, 30, 20)
TEXT_SHARE = 0.1  # of each layer: compressible text files, the rest random data
IMAGE = "bench/big:latest"
DEFAULT_RUNS = 3
TIMEOUT = 600.0
REGISTRIES = ("docker-registry", "berth-registry")
DOCKER_REGISTRY = "/usr/bin/docker-registry"
BERTH_REGISTRY = bench.VENV_BIN / "berth-registry"
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))  # fmt: skip

SCENARIOS = [
    ("dist-push", "docker push of a 200 MiB, 5-layer image to docker-registry and "
                  "berth-registry, MB/s: berth vs dockerd (skopeo copy the limit)"),
    ("dist-pull", "docker pull of that image back from each registry, MB/s: berth vs "
                  "dockerd (skopeo copy to oci: the limit)"),
]  # fmt: skip


# ------------------------------------------------------------------------ the image


@dataclass(frozen=True)
class ImageArchive:
    path: Path
    image_id: str  # sha256:<config digest>, as docker load names it
    layer_bytes: int  # the layer tars, uncompressed


def _layer_members(index: int, size: int) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """The files of layer `index`: random chunks, then text, `size` bytes of content."""
    rng = random.Random(f"berth-bench-distribution-{index}")
    text_size = int(size * TEXT_SHARE)
    random_size = size - text_size
    chunk = 8 * MiB
    for n, offset in enumerate(range(0, random_size, chunk)):
        yield _file(f"bench/layer{index}/random-{n:02d}.bin", rng.randbytes(min(chunk, random_size - offset)))
    words = ["registry", "layer", "manifest", "digest", "blob", "upload", "berth", "docker"]
    lines: list[str] = []
    written = 0
    n = 0
    while written < text_size:
        line = f"{n:08d} {' '.join(rng.choice(words) for _ in range(8))}\n"
        lines.append(line)
        written += len(line)
        n += 1
    text = "".join(lines).encode()[:text_size]
    per_file = 1 * MiB
    for n, offset in enumerate(range(0, len(text), per_file)):
        yield _file(f"bench/layer{index}/text-{n:02d}.txt", text[offset:offset + per_file])


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
    return info, data


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
    return info


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def make_archive(workdir: Path) -> ImageArchive:
    """The image as a `docker load` archive in Docker's legacy layout, written once."""
    out = workdir / "bench-big.tar"
    workdir.mkdir(parents=True, exist_ok=True)
    staging = workdir / "archive-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    bench.log(f"writing {out} ({'+'.join(map(str, LAYER_MIB))} MiB layers)")
    diff_ids: list[str] = []
    layer_paths: list[str] = []
    total = 0
    for index, size_mib in enumerate(LAYER_MIB):
        layer = staging / f"layer{index}.tar"
        with tarfile.open(layer, "w", format=tarfile.GNU_FORMAT) as tar:
            if index == 0:
                tar.addfile(_dir("bench"))
            tar.addfile(_dir(f"bench/layer{index}"))
            for info, data in _layer_members(index, size_mib * MiB):
                tar.addfile(info, io.BytesIO(data))
        digest = _sha256_file(layer)
        diff_ids.append("sha256:" + digest)
        layer_paths.append(f"{digest}/layer.tar")
        total += layer.stat().st_size
    config = json.dumps({
        "architecture": _architecture(),
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"bench layer {i} ({mib} MiB)"}
                    for i, mib in enumerate(LAYER_MIB)],
    }, sort_keys=True, separators=(",", ":")).encode()  # fmt: skip
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_digest}.json", "RepoTags": [IMAGE],
                            "Layers": layer_paths}]).encode()  # fmt: skip
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for index, path in enumerate(layer_paths):
            tar.addfile(_dir(path.split("/")[0]))
            tar.add(staging / f"layer{index}.tar", arcname=path)
        for name, data in ((f"{config_digest}.json", config), ("manifest.json", manifest)):
            tar.addfile(_file(name, data)[0], io.BytesIO(data))
    shutil.rmtree(staging, ignore_errors=True)
    return ImageArchive(out, "sha256:" + config_digest, total)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------ registries


class RegistryUnavailable(Exception):
    """The registry program is missing or did not start; its runs are skipped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_get(port: int, path: str, accept: str = "", timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Registry:
    """One registry process on 127.0.0.1:port serving `root`, stopped by its PID."""

    start_timeout = 20.0

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.dir = workdir
        self.root = workdir / "root"
        self.port = free_port()
        self.logfile = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "docker-registry":
            if not os.access(DOCKER_REGISTRY, os.X_OK):
                raise RegistryUnavailable(f"{DOCKER_REGISTRY} not installed (apt-get install docker-registry)")
            config = self.dir / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.root}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n"
            )  # fmt: skip
            return [DOCKER_REGISTRY, "serve", str(config)]
        if not BERTH_REGISTRY.exists():
            raise RegistryUnavailable(f"{BERTH_REGISTRY} not found (berth-registry is not installed in the venv)")
        return [str(BERTH_REGISTRY), "serve", "--addr", f"127.0.0.1:{self.port}", "--root", str(self.root)]

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        self.root.mkdir()
        cmd = self.command()
        with open(self.logfile, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.dir)  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                last = bench.tail(self.logfile, 1).strip()
                raise RegistryUnavailable(f"`{' '.join(cmd)}` exited with status {self.proc.returncode}: {last}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if _http_get(self.port, "/v2/", timeout=1.0)[0] in (200, 401):
                    return
            time.sleep(0.05)
        raise RegistryUnavailable(f"{self.kind} did not answer GET /v2/ on 127.0.0.1:{self.port} "
                                  f"within {self.start_timeout:.0f}s")  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None:
            bench.terminate([self.proc.pid], grace=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def pushed_size(self, repo: str, tag: str) -> int:
        """The compressed size of what was pushed: the manifest's layers plus its config."""
        status, body = _http_get(self.port, f"/v2/{repo}/manifests/{tag}", accept=MANIFEST_TYPES)
        if status != 200:
            raise bench.BenchError(f"{self.kind}: GET manifest {repo}:{tag} answered {status}")
        manifest = json.loads(body)
        return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


@contextlib.contextmanager
def fresh_registry(kind: str, workdir: Path) -> Iterator[Registry]:
    registry = Registry(kind, workdir)
    try:
        registry.start()
        yield registry
    finally:
        with signals_deferred():
            registry.stop()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done (then act as usual): a second
    one must not cut a cleanup short and leave a registry or a daemon running."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# ------------------------------------------------------------------------ measuring


@dataclass
class Throughput:
    """One pusher's runs against one registry: the seconds and the size it pushed."""

    seconds: list[float] = field(default_factory=list)
    pushed_bytes: list[int] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.seconds)

    def mb_per_s(self, size: int) -> float:
        return size / MB / statistics.median(self.seconds)


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        raise bench.BenchError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): "
                               f"{lines[-1] if lines else ''}")  # fmt: skip
    return elapsed


def engine_layers(engine: bench.Engine) -> list[Path]:
    """The layers the engine holds on disk (its layer store's directories)."""
    if isinstance(engine, bench.Dockerd):
        dirs = list(engine.data_root.glob("image/*/layerdb/sha256"))
    else:
        dirs = [engine.data_root / "overlay" / "layers"]
    return [p for d in dirs if d.is_dir() for p in d.iterdir()]


def engine_blobs(engine: bench.Engine) -> list[Path]:
    """The blobs berth's content store holds (layer tars, compressed blobs a pull could reuse);
    dockerd keeps none outside its layers."""
    store = engine.data_root / "content" / "sha256"
    if isinstance(engine, bench.Dockerd) or not store.is_dir():
        return []
    return [p for p in store.iterdir() if p.is_file()]


def remove_image(engine: bench.Engine, archive: ImageArchive) -> None:
    """rmi the image by ID (every tag), then check nothing of it is left: no image, no layer,
    no stored blob."""
    engine.docker_cmd(["rmi", "-f", archive.image_id], check=False, timeout=TIMEOUT)
    left = engine.docker_cmd(["images", "-aq", "--no-trunc"], timeout=60).split()
    layers, blobs = engine_layers(engine), engine_blobs(engine)
    if left or layers or blobs:
        raise bench.BenchError(f"{engine.name}: after rmi, {len(left)} image(s), {len(layers)} layer(s) "
                               f"and {len(blobs)} blob(s) remain")  # fmt: skip


def measure_engine_once(engine: bench.Engine, archive: ImageArchive, kind: str, workdir: Path,
                        repo: str, push: Throughput, pull: Throughput, pull_too: bool) -> None:
    """One push and (pull_too) one pull of the image by `engine` through a fresh `kind` registry."""
    if push.error:  # an engine that failed once is not asked again
        return
    remove_image(engine, archive)
    engine.docker_cmd(["load", "-i", str(archive.path)], timeout=TIMEOUT)
    with fresh_registry(kind, workdir) as registry:
        ref = f"{registry.host}/{repo}:latest"
        engine.docker_cmd(["tag", IMAGE, ref])
        try:
            push.seconds.append(_timed([engine.docker, "push", ref], env=engine.env()))
            push.pushed_bytes.append(registry.pushed_size(repo, "latest"))
        except (bench.BenchError, subprocess.TimeoutExpired) as e:
            push.error = str(e)
            pull.error = f"not measured: {engine.name}'s push failed"
            return
        if pull.error or not pull_too:
            return
        try:
            remove_image(engine, archive)
            pull.seconds.append(_timed([engine.docker, "pull", ref], env=engine.env()))
            got = engine.docker_cmd(["image", "inspect", "-f", "{{.Id}}", ref]).strip()
            layers = len(engine_layers(engine))
            if got != archive.image_id or layers != len(LAYER_MIB):
                raise bench.BenchError(f"{engine.name}: pulled {got} with {layers} layers; "
                                       f"expected {archive.image_id} with {len(LAYER_MIB)}")  # fmt: skip
            remove_image(engine, archive)
        except (bench.BenchError, subprocess.TimeoutExpired) as e:
            pull.error = str(e)


def skopeo_command(skopeo: str) -> list[str]:
    """skopeo in a mount namespace of its own with an empty /var/lib: as root it keeps a
    blob-info cache in /var/lib/containers/cache, which would outlive the run (and warm
    the next one)."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount -t tmpfs -o size=4m tmpfs /var/lib && exec "$@"', "sh", skopeo]  # fmt: skip


def measure_skopeo_once(skopeo: str, archive: ImageArchive, kind: str, workdir: Path, repo: str,
                        push: Throughput, pull: Throughput, pull_too: bool) -> None:
    if push.error:
        return
    with fresh_registry(kind, workdir / "registry") as registry:
        ref = f"docker://{registry.host}/{repo}:latest"
        oci = workdir / "oci"
        try:
            push.seconds.append(_timed([*skopeo_command(skopeo), "copy", "--dest-tls-verify=false",
                                        f"docker-archive:{archive.path}", ref]))  # fmt: skip
            push.pushed_bytes.append(registry.pushed_size(repo, "latest"))
        except (bench.BenchError, subprocess.TimeoutExpired) as e:
            push.error = str(e)
            pull.error = "not measured: skopeo's push failed"
            return
        if pull.error or not pull_too:
            return
        try:
            pull.seconds.append(_timed([*skopeo_command(skopeo), "copy", "--src-tls-verify=false", ref, f"oci:{oci}"]))
        except (bench.BenchError, subprocess.TimeoutExpired) as e:
            pull.error = str(e)
        finally:
            shutil.rmtree(oci, ignore_errors=True)


# --------------------------------------------------------------------- entry


@dataclass
class Options:
    runs: int = DEFAULT_RUNS
    scenarios: tuple[str, ...] = tuple(name for name, _ in SCENARIOS)
    docker: str | None = None
    dockerd: str | None = None
    berthd: bool = True  # False: dockerd only (bench/distribution.py --no-berthd)
    registries: tuple[str, ...] = REGISTRIES
    berthd_bridge: str = bench.OWN_BRIDGE
    berthd_args: list[str] = field(default_factory=list)
    json_out: dict[str, object] = field(default_factory=dict)


# results[registry][pusher] = (push, pull); pusher is berth, dockerd or skopeo
Results = dict[str, dict[str, tuple[Throughput, Throughput]]]


def run(options: Options, tmp: Path, rootfs_tar: Path) -> bool:
    """Measure and print; returns True when every measurement that was possible succeeded
    (a registry that is not installed is skipped with a note, not a failure)."""
    del rootfs_tar  # the image is made here, not from busybox
    tmp.mkdir(parents=True, exist_ok=True)
    archive = make_archive(tmp)
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    engines: list[bench.Engine] = []
    if options.docker and options.berthd:
        engines.append(bench.Berthd(tmp / "berthd", options.docker, config, options.berthd_bridge,
                                    options.berthd_args))  # fmt: skip
    if options.docker and options.dockerd:
        engines.append(bench.Dockerd(tmp / "dockerd", options.docker, config, dockerd=options.dockerd))
    skopeo = shutil.which("skopeo")
    results: Results = {}
    notes: list[str] = []
    versions: dict[str, str] = {}
    counter = 0
    pull_too = "dist-pull" in options.scenarios  # the pushes are made either way: a pull needs one
    try:
        running: list[bench.Engine] = []
        for engine in engines:
            try:
                engine.start()
                versions[engine.name] = engine.server_version()
                running.append(engine)
            except bench.BenchError as e:
                notes.append(f"{engine.name} did not start: {e}")
        for kind in options.registries:
            by_pusher: dict[str, tuple[Throughput, Throughput]] = {}
            try:
                with fresh_registry(kind, tmp / f"probe-{kind}"):
                    pass
            except RegistryUnavailable as e:
                notes.append(f"{kind} skipped: {e}")
                continue
            results[kind] = by_pusher
            for i in range(options.runs):
                order = running if i % 2 == 0 else running[::-1]
                for engine in order:
                    counter += 1
                    push, pull = by_pusher.setdefault(engine.name, (Throughput(), Throughput()))
                    bench.log(f"{kind}: run {i + 1}/{options.runs}: {engine.name} push"
                              + (" and pull" if pull_too else ""))  # fmt: skip
                    try:
                        measure_engine_once(engine, archive, kind, tmp / f"registry-{counter}",
                                            f"bench/big-{counter}", push, pull, pull_too)  # fmt: skip
                    except (bench.BenchError, RegistryUnavailable, subprocess.TimeoutExpired) as e:
                        push.error = push.error or str(e)
                        pull.error = pull.error or str(e)
                if skopeo:
                    counter += 1
                    push, pull = by_pusher.setdefault("skopeo", (Throughput(), Throughput()))
                    bench.log(f"{kind}: run {i + 1}/{options.runs}: skopeo copy in and out")
                    try:
                        measure_skopeo_once(skopeo, archive, kind, tmp / f"skopeo-{counter}",
                                            f"bench/big-{counter}", push, pull, pull_too)  # fmt: skip
                    except RegistryUnavailable as e:
                        push.error = push.error or str(e)
                        pull.error = pull.error or str(e)
                    finally:
                        shutil.rmtree(tmp / f"skopeo-{counter}", ignore_errors=True)
    finally:
        with signals_deferred():
            for engine in engines:
                engine.stop()
            archive.path.unlink(missing_ok=True)
    if not skopeo:
        notes.append("skopeo not installed: no limit line (apt-get install skopeo)")
    return report(options, archive, results, notes, versions)


def _reference_size(results: Results) -> tuple[int, str]:
    for pusher in ("dockerd", "berth", "skopeo"):
        for by_pusher in results.values():
            push = by_pusher.get(pusher, (Throughput(), Throughput()))[0]
            if push.pushed_bytes:
                return push.pushed_bytes[0], pusher
    return 0, ""


def report(options: Options, archive: ImageArchive, results: Results, notes: list[str],
           versions: dict[str, str]) -> bool:
    size, sized_by = _reference_size(results)
    print()
    print(f"distribution: a {len(LAYER_MIB)}-layer image, {archive.layer_bytes / MB:.0f} MB of layer tars; "
          f"median of {options.runs} runs, berth and dockerd alternating, each push to an empty registry; "
          f"MB/s (higher is better); load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    if size:
        print(f"MB/s = {size / MB:.1f} MB (the gzip layers + config as {sized_by} pushed them, from the "
              "registry's manifest) / the CLI's wall-clock seconds, the same size for every row")
    if versions:
        print("engines: " + ", ".join(f"{name} {v}" for name, v in versions.items()))
    rows = [["registry", "op", "berth", "dockerd", "berth/dockerd", "skopeo (limit)"]]
    ops = [(n, op) for n, op in ((0, "dist-push"), (1, "dist-pull")) if op in options.scenarios]
    for kind, by_pusher in results.items():
        for n, op in ops:
            cells = {p: t[n] for p, t in by_pusher.items()}

            def cell(pusher: str, cells: dict[str, Throughput] = cells) -> str:
                t = cells.get(pusher)
                return "-" if t is None else (f"{t.mb_per_s(size):.0f}" if t.ok and size else "FAILED")

            b, d = cells.get("berth"), cells.get("dockerd")
            ratio = f"{b.mb_per_s(size) / d.mb_per_s(size):.2f}x" if b and d and b.ok and d.ok and size else "-"
            rows.append([kind, op.removeprefix("dist-"), cell("berth"), cell("dockerd"), ratio, cell("skopeo")])
    _print_rows(rows)
    for kind, by_pusher in results.items():
        sizes = ", ".join(f"{p} {statistics.median(t[0].pushed_bytes) / MB:.1f} MB"
                          for p, t in by_pusher.items() if t[0].pushed_bytes)  # fmt: skip
        if sizes:
            print(f"{kind}: pushed (gzip layers + config): {sizes}")
        for pusher, pair in by_pusher.items():
            for n, op in ops:
                if pair[n].error:
                    print(f"{kind} {op.removeprefix('dist-')} {pusher}: {pair[n].error}")
    for note in notes:
        print(note)
    options.json_out["size_bytes"] = size
    options.json_out["size_from"] = sized_by
    options.json_out["layer_tar_bytes"] = archive.layer_bytes
    options.json_out["notes"] = notes
    for kind, by_pusher in results.items():
        for pusher, pair in by_pusher.items():
            for n, op in ops:
                t = pair[n]
                options.json_out[f"{op}/{kind}/{pusher}"] = {
                    "seconds": t.seconds, "pushed_bytes": pair[0].pushed_bytes, "error": t.error,
                    "mb_per_s": t.mb_per_s(size) if t.ok and size else None}  # fmt: skip
    measured = [pair[n] for by_pusher in results.values() for pair in by_pusher.values() for n, _ in ops]
    return bool(measured) and all(t.ok for t in measured)


def _print_rows(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    ap = bench.standalone_parser("bench/distribution.py", __doc__, DEFAULT_RUNS, 0, SCENARIOS)
    ap.add_argument("--registry", action="append", default=[], choices=REGISTRIES,
                    help="only this registry (repeatable)")  # fmt: skip
    args = bench.parse_standalone(ap, argv)

    def body(tmp: Path, rootfs: Path) -> bool:
        options = Options(
            runs=args.runs, scenarios=tuple(args.scenario) or tuple(name for name, _ in SCENARIOS),
            docker=args.docker, dockerd=None if args.no_dockerd else args.dockerd,
            berthd=not args.no_berthd, registries=tuple(args.registry) or REGISTRIES,
        )  # fmt: skip
        return run(options, tmp / "distribution", rootfs)

    return bench.run_standalone(args, body)


if __name__ == "__main__":
    sys.exit(main())
