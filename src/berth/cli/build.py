"""``berth build`` / ``berth image build``: the client half of the (classic) builder.

The client packs the build context into a tar — honouring ``.dockerignore``
the way moby's patternmatcher does — sends it to ``POST /build`` with the
options as query parameters, and shows the daemon's JSON stream
("Step 1/3 : FROM busybox" …).  The Dockerfile itself is interpreted by the
daemon.  ``DockerIgnore`` is pure; the rest reads the context directory.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags, parse_ram_bytes
from berth.cli.formatting import human_size
from berth.client import credentials
from berth.client.buildcontext import read_dockerignore, write_context_tar

if TYPE_CHECKING:
    pass


def _is_tar(head: bytes) -> bool:
    return (len(head) >= 262 and head[257:262] == b"ustar") or head[:2] == b"\x1f\x8b" or head[:3] == b"BZh"


def _dockerfile_tar(content: bytes, name: str = "Dockerfile") -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _chunks(fh: IO[bytes], size: int = 65536) -> Iterator[bytes]:
    while True:
        data = fh.read(size)
        if not data:
            return
        yield data


def _kv_nil(items: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


def _build_arg(value: str) -> str:
    if "=" in value:
        return value
    env = os.environ.get(value)
    return f"{value}={env}" if env is not None else value


def run_build(cli: CliContext, flags: ParsedFlags) -> int:
    import tarfile
    import tempfile

    from berth.cli.progress import StreamError, display_stream
    from berth.client.engine import iter_json_stream

    source = flags.args[0]
    dockerfile = flags["file"]
    quiet = flags["quiet"]
    params: dict[str, Any] = {}
    body: Iterator[bytes] | bytes | None = None
    spool: Any = None
    size = 0
    if flags["iidfile"]:
        try:
            os.remove(flags["iidfile"])
        except FileNotFoundError:
            pass
    if source == "-":
        if dockerfile == "-":
            raise CliExit("invalid argument: can't use stdin for both build context and dockerfile", 1)
        data = sys.stdin.buffer.read()
        if _is_tar(data[:512]):
            body = data
        else:
            body = _dockerfile_tar(data)
            dockerfile = "Dockerfile"
        size = len(body)
    elif source.startswith(("http://", "https://", "git://", "git@", "github.com/")):
        params["remote"] = source
    elif os.path.isdir(source):
        rel_dockerfile = dockerfile or "Dockerfile"
        dockerfile_path = rel_dockerfile if os.path.isabs(rel_dockerfile) else None
        if dockerfile == "-":
            extra = sys.stdin.buffer.read()
            rel_dockerfile = ".berth-dockerfile-stdin"
        else:
            extra = None
            if dockerfile_path is None and dockerfile:
                dockerfile_path = os.path.abspath(dockerfile)
            elif dockerfile_path is None:
                dockerfile_path = os.path.join(source, "Dockerfile")
            if not os.path.exists(dockerfile_path):
                alt = os.path.join(source, "dockerfile")
                if not dockerfile and os.path.exists(alt):
                    dockerfile_path = alt
                else:
                    raise CliExit(
                        f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                        f"lstat {dockerfile_path}: no such file or directory",
                        1,
                    )
            rel_dockerfile = os.path.relpath(dockerfile_path, source).replace(os.sep, "/")
            if rel_dockerfile.startswith("../"):
                with open(dockerfile_path, "rb") as fh:
                    extra = fh.read()
                rel_dockerfile = ".berth-dockerfile-outside"
        ignore = read_dockerignore(source, rel_dockerfile)
        spool = tempfile.TemporaryFile()
        write_context_tar(source, ignore, [rel_dockerfile, ".dockerignore"], spool)
        if extra is not None:
            spool.seek(0)
            combined = tempfile.TemporaryFile()
            with tarfile.open(fileobj=spool, mode="r|") as src, tarfile.open(fileobj=combined, mode="w") as dst:
                for member in src:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
                info = tarfile.TarInfo(rel_dockerfile)
                info.size = len(extra)
                info.mode = 0o600
                dst.addfile(info, io.BytesIO(extra))
            spool.close()
            spool = combined
        size = spool.tell()
        spool.seek(0)
        body = _chunks(spool)
        dockerfile = rel_dockerfile
    else:
        raise CliExit(f'unable to prepare context: path "{source}" not found', 1)

    if not quiet and body is not None:
        # docker's progress writer ends its last update with "\r\r\n" when not on a terminal
        cli.out(f"Sending build context to berth daemon  {human_size(size)}\r\r")
    try:
        build_args = _kv_nil([_build_arg(a) for a in flags["build-arg"]])
        labels = dict(_label_map(flags["label"]))
        # like docker's client: only options that differ from their defaults
        candidates: dict[str, Any] = {
            "t": flags["tag"],
            "securityopt": flags["security-opt"],
            "extrahosts": flags["add-host"],
            "q": 1 if quiet else None,
            "nocache": 1 if flags["no-cache"] else None,
            "rm": None if flags["rm"] else "0",
            "forcerm": 1 if flags["force-rm"] else None,
            "pull": 1 if flags["pull"] else None,
            "squash": 1 if flags["squash"] else None,
            "isolation": flags["isolation"],
            "cpusetcpus": flags["cpuset-cpus"],
            "networkmode": flags["network"] if flags["network"] != "default" else None,
            "cpusetmems": flags["cpuset-mems"],
            "cpushares": flags["cpu-shares"],
            "cpuquota": flags["cpu-quota"],
            "cpuperiod": flags["cpu-period"],
            "memory": flags["memory"],
            "memswap": flags["memory-swap"],
            "cgroupparent": flags["cgroup-parent"],
            "shmsize": flags["shm-size"],
            "dockerfile": dockerfile,
            "target": flags["target"],
            "ulimits": json.dumps(list(flags["ulimit"]), separators=(",", ":")) if flags["ulimit"] else None,
            "buildargs": json.dumps(build_args, separators=(",", ":")) if build_args else None,
            "labels": json.dumps(labels, separators=(",", ":")) if labels else None,
            "cachefrom": json.dumps(flags["cache-from"], separators=(",", ":")) if flags["cache-from"] else None,
            "platform": flags["platform"].lower(),
            "version": "1",
        }
        params.update({k: v for k, v in candidates.items() if v not in (None, "", 0, [])})
        headers = {"Content-Type": "application/x-tar", "X-Registry-Config": credentials.registry_config_header(cli.config)}
        resp = cli.client.request("POST", "/build", params, headers=headers, raw_body=body)
        image_id = ""

        def on_aux(aux: Any) -> None:
            nonlocal image_id
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])

        out: IO[str] = io.StringIO() if quiet else sys.stdout
        try:
            display_stream(iter_json_stream(resp.iter_chunks()), out, cli.stdout_is_tty(), aux=on_aux)
        except StreamError as exc:
            if quiet:
                cli.err(out.getvalue() if isinstance(out, io.StringIO) else "", end="")
            raise CliExit(exc.message, exc.code or 1) from None
        if quiet:
            assert isinstance(out, io.StringIO)
            image_id = out.getvalue()
            cli.out(image_id, end="")
        if flags["iidfile"]:
            if not image_id:
                raise CliExit(f"Server did not provide an image ID. Cannot write {flags['iidfile']}", 1)
            with open(flags["iidfile"], "w", encoding="utf-8") as iid:
                iid.write(image_id.strip())
    finally:
        if spool is not None:
            spool.close()
    return 0


def _label_map(items: list[str]) -> Iterator[tuple[str, str]]:
    for item in items:
        key, _, value = item.partition("=")
        yield key, value


def make_build(name: str = "build") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] PATH | URL | -",
        short="Build an image from a Dockerfile",
        run=run_build,
        aliases_text="berth image build, berth build, berth builder build",
        args=("exact", 1, 1),
        category="top",
        order=4,
    )
    f = cmd.flags
    f.add("add-host", "", "list", 'Add a custom host-to-IP mapping ("host:ip")', convert=_extra_host)
    f.add("build-arg", "", "list", "Set build-time variables")
    f.add("cache-from", "", "strings", "Images to consider as cache sources")
    f.add("cgroup-parent", "", "string", 'Set the parent cgroup for the "RUN" instructions during build')
    f.add("compress", "", "bool", "Compress the build context using gzip")
    f.add("cpu-period", "", "int", "Limit the CPU CFS (Completely Fair Scheduler) period")
    f.add("cpu-quota", "", "int", "Limit the CPU CFS (Completely Fair Scheduler) quota")
    f.add("cpu-shares", "c", "int", "CPU shares (relative weight)")
    f.add("cpuset-cpus", "", "string", "CPUs in which to allow execution (0-3, 0,1)")
    f.add("cpuset-mems", "", "string", "MEMs in which to allow execution (0-3, 0,1)")
    f.add("disable-content-trust", "", "bool", "Skip image verification", True, default_text="true")
    f.add("file", "f", "string", 'Name of the Dockerfile (Default is "PATH/Dockerfile")')
    f.add("force-rm", "", "bool", "Always remove intermediate containers")
    f.add("iidfile", "", "string", "Write the image ID to the file")
    f.add("isolation", "", "string", "Container isolation technology")
    f.add("label", "", "list", "Set metadata for an image")
    f.add("memory", "m", "bytes", "Memory limit", convert=parse_ram_bytes)
    f.add(
        "memory-swap", "", "bytes", "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
        convert=lambda v: -1 if v.strip() == "-1" else parse_ram_bytes(v),
    )
    f.add("network", "", "string", "Set the networking mode for the RUN instructions during build", "default")
    f.add("no-cache", "", "bool", "Do not use cache when building the image")
    f.add("platform", "", "string", "Set platform if server is multi-platform capable")
    f.add("pull", "", "bool", "Always attempt to pull a newer version of the image")
    f.add("quiet", "q", "bool", "Suppress the build output and print image ID on success")
    f.add("rm", "", "bool", "Remove intermediate containers after a successful build", True, default_text="true")
    f.add("security-opt", "", "strings", "Security options")
    f.add("shm-size", "", "bytes", 'Size of "/dev/shm"', convert=parse_ram_bytes)
    f.add("squash", "", "bool", "Squash newly built layers into a single new layer", hidden=True)
    f.add("tag", "t", "list", 'Name and optionally a tag in the "name:tag" format')
    f.add("target", "", "string", "Set the target build stage to build.")
    f.add("ulimit", "", "ulimit", "Ulimit options", default_text="[]", convert=_ulimit)
    return cmd


def _extra_host(value: str) -> str:
    from berth.cli.runconfig import _validate_extra_host

    return _validate_extra_host(value)


def _ulimit(value: str) -> dict[str, Any]:
    from berth.cli.runconfig import _validate_ulimit

    return _validate_ulimit(value)
