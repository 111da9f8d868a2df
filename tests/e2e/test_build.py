"""`docker build` (the classic builder: DOCKER_BUILDKIT=0) with the real docker CLI against
berthd: the Dockerfiles of the course's chapters 7 and 8 (the node app replaced by a
busybox shell app), every instruction, the build cache, the options, the stream format,
docker-py, history/images/rmi of what a build made, and bad input.

Expected output is Docker's classic builder's (checked against dockerd's), e.g.

    Step 2/4 : RUN echo hi
     ---> Running in 93ae3b155c00
    hi
     ---> ebadeac1ef6e
    Step 3/4 : COPY a.txt /
     ---> Using cache
     ---> 0123456789ab
    Successfully built 0123456789ab
    Successfully tagged t1:latest

and a failing RUN ends with "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
and the CLI's exit status 3. Contexts (stdin, tar, git, URL, .dockerignore) are in
test_build_contexts.py, which reuses the fixtures here.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe

pytestmark = pytest.mark.usefixtures("busybox")

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$", re.M)
CACHE_HIT = " ---> Using cache"
ARROW_ID = re.compile(r"^ ---> ([0-9a-f]{12})$", re.M)
BUILT = re.compile(r"^Successfully built ([0-9a-f]{12})$", re.M)
FULL_ID = re.compile(r"sha256:[0-9a-f]{64}")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Files = dict[str, "str | bytes"]


# Fixtures and helpers, shared with test_build_contexts.py.


@pytest.fixture(scope="session")
def build_env(docker_env: dict[str, str]) -> dict[str, str]:
    return {**docker_env, "DOCKER_BUILDKIT": "0"}


@pytest.fixture(scope="session")
def dbuild(build_env: dict[str, str]) -> Cli:
    """The docker CLI with the classic builder."""
    return Cli("docker", build_env)


def write_tree(root: Path, files: Files) -> Path:
    for name, content in files.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if name.endswith((".sh", "bin/www", "bin/install")):
            path.chmod(0o755)
    return root


@pytest.fixture
def workdir() -> Iterator[Callable[..., Path]]:
    """A factory of temporary directories (build contexts), removed after the test."""
    made: list[Path] = []

    def make(files: Files | None = None) -> Path:
        d = Path(tempfile.mkdtemp(prefix="berth-build-"))
        made.append(d)
        return write_tree(d, files or {})

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def _image_ids(api: ApiClient) -> set[str]:
    resp = api.get("/images/json?all=1")
    assert resp.status == 200, resp.body
    return {i["Id"] for i in resp.json()}


@pytest.fixture(autouse=True)
def image_hygiene(api: ApiClient, busybox: str) -> Iterator[None]:
    """Every image a test made (tagged, dangling or intermediate) is removed after it."""
    before = _image_ids(api)
    yield
    for _ in range(10):
        new = _image_ids(api) - before
        if not new:
            return
        for image_id in new:
            api.request("DELETE", f"/images/{image_id}?force=1")


def build(cli: Cli, context: Path | str, *args: str, input: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return cli("build", *args, str(context), input=input, timeout=timeout)


def build_ok(cli: Cli, context: Path | str, *args: str, input: str | None = None) -> str:
    res = build(cli, context, *args, input=input)
    assert res.returncode == 0, describe(res)
    return res.stdout


def steps(out: str) -> list[tuple[int, int, str]]:
    return [(int(n), int(m), text) for n, m, text in STEP.findall(out)]


def cache_hits(out: str) -> int:
    return sum(1 for line in out.splitlines() if line == CACHE_HIT)


def step_blocks(out: str) -> dict[int, str]:
    """Step number -> the output between its "Step" line and the next one."""
    parts = re.split(r"^Step (\d+)/\d+ : ", out, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def built_id(out: str) -> str:
    m = BUILT.search(out)
    assert m, f"no 'Successfully built' line in:\n{out}"
    return m.group(1)


def inspect(docker: Cli, ref: str) -> dict[str, Any]:
    [doc] = json.loads(docker.ok("image", "inspect", ref))
    return doc  # type: ignore[no-any-return]


def image_id(docker: Cli, ref: str) -> str:
    return docker.ok("image", "inspect", "-f", "{{.Id}}", ref).strip()


def exists(docker: Cli, ref: str) -> bool:
    return docker("image", "inspect", ref).returncode == 0


def tag() -> str:
    return f"bt-{uuid.uuid4().hex[:10]}"


def run_out(docker: Cli, *args: str) -> str:
    return docker.ok("run", "--rm", *args)


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """A static file server on 127.0.0.1 for `directory`; yields its base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(directory), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def tar_bytes(files: Files, gzip: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755 if name.endswith(".sh") else 0o644, 1
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# The busybox "weather app" that replaces the course's node app: ./bin/www prints what it
# would serve with; ./bin/install stands in for `npm install`.

WWW = """#!/bin/sh
echo "weather-app listening on ${PORT:-3000} NODE_ENV=${NODE_ENV:-unset} args=$*"
"""
INSTALL = """#!/bin/sh
set -e
mkdir -p node_modules
echo installed > node_modules/.installed
"""
APP: Files = {
    "src/bin/www": WWW,
    "src/bin/install": INSTALL,
    "src/app.sh": "echo app\n",
    "src/README.md": "# weather app\n",
}


# Chapter 7.


def test_ch7_2_weather_app(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({**APP, "Dockerfile": """# Create an image for the weather-app
FROM busybox:latest
LABEL org.label-schema.version=v1.1
RUN mkdir -p /var/node
ADD src/ /var/node/
WORKDIR /var/node
RUN ./bin/install
EXPOSE 3000
CMD ./bin/www
"""})
    name = f"{tag()}:v1"
    out = build_ok(dbuild, ctx, "-t", name)
    assert [s[:2] for s in steps(out)] == [(n, 8) for n in range(1, 9)], out
    assert f"Successfully tagged {name}" in out
    config = inspect(docker, name)["Config"]
    assert config["Labels"] == {"org.label-schema.version": "v1.1"}
    assert config["WorkingDir"] == "/var/node"
    assert config["ExposedPorts"] == {"3000/tcp": {}}
    assert config["Cmd"] == ["/bin/sh", "-c", "./bin/www"]
    assert run_out(docker, name).strip() == "weather-app listening on 3000 NODE_ENV=unset args="
    listing = run_out(docker, name, "ls", "-a", "/var/node", "/var/node/node_modules").split()
    assert {"bin", "app.sh", "README.md", "node_modules", ".installed"} <= set(listing)
    assert "src" not in listing  # ADD src/ copies the directory's contents
    # docker image ls lists it under its repository and tag
    repo = name.split(":")[0]
    assert docker.ok("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo).split() == [name]


def test_ch7_3_environment_variables(dbuild: Cli, docker: Cli, workdir: Callable[..., Path],
                                     new_name: Callable[[str], str]) -> None:
    ctx = workdir({**APP, "Dockerfile": """FROM busybox:latest
LABEL org.label-schema.version=v1.1
ENV NODE_ENV="development"
ENV PORT 3000

RUN mkdir -p /var/node
ADD src/ /var/node/
WORKDIR /var/node
RUN ./bin/install
EXPOSE $PORT
CMD ./bin/www
"""})
    name = f"{tag()}:v2"
    build_ok(dbuild, ctx, "-t", name)
    config = inspect(docker, name)["Config"]
    assert "NODE_ENV=development" in config["Env"] and "PORT=3000" in config["Env"], config["Env"]
    assert config["ExposedPorts"] == {"3000/tcp": {}}
    dev = new_name("weather-dev")
    docker.ok("run", "--name", dev, "--env", "PORT=3001", name)
    [c] = json.loads(docker.ok("container", "inspect", dev))
    assert "PORT=3001" in c["Config"]["Env"] and "NODE_ENV=development" in c["Config"]["Env"]
    assert docker.ok("logs", dev).strip() == (
        "weather-app listening on 3001 NODE_ENV=development args=")
    prod = run_out(docker, "--env", "PORT=3001", "--env", "NODE_ENV=production", name)
    assert prod.strip() == "weather-app listening on 3001 NODE_ENV=production args="


def test_ch7_4_build_arguments(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({**APP, "Dockerfile": """FROM busybox:latest
LABEL org.label-schema.version=v1.1
ARG SRC_DIR=/var/node

RUN mkdir -p $SRC_DIR
ADD src/ $SRC_DIR
WORKDIR $SRC_DIR
RUN ./bin/install
EXPOSE 3000
CMD ./bin/www
"""})
    v3 = f"{tag()}:v3"
    build_ok(dbuild, ctx, "-t", v3, "--build-arg", "SRC_DIR=/var/code")
    config = inspect(docker, v3)["Config"]
    assert config["WorkingDir"] == "/var/code"
    # no ENV at all: the builder still gives the image the default PATH, as dockerd does
    assert config["Env"] == [DEFAULT_PATH], "an ARG is not an ENV"
    assert "node_modules" in run_out(docker, v3, "ls", "/var/code").split()
    assert run_out(docker, v3).startswith("weather-app listening on 3000")
    default = f"{tag()}:default"
    build_ok(dbuild, ctx, "-t", default)
    assert inspect(docker, default)["Config"]["WorkingDir"] == "/var/node"


PASSWD_LINE = "echo '{u}:x:1000:1000::/home/{u}:/bin/sh' >> /etc/passwd && mkdir -p /home/{u} " \
              "&& chown 1000:1000 /home/{u}"


def test_ch7_5_non_privileged_user(dbuild: Cli, docker: Cli, workdir: Callable[..., Path],
                                   new_name: Callable[[str], str]) -> None:
    ctx = workdir({"Dockerfile": f"""# Creates an image that uses cloud_user as a non-privileged user
FROM busybox:latest
RUN {PASSWD_LINE.format(u="cloud_user")}
USER cloud_user
"""})
    name = f"{tag()}:v1"
    build_ok(dbuild, ctx, "-t", name)
    assert inspect(docker, name)["Config"]["User"] == "cloud_user"
    assert run_out(docker, name, "sh", "-c", "id -u; echo $HOME").split() == [
        "1000", "/home/cloud_user"]
    c = new_name("test-build")
    docker.ok("run", "-d", "--name", c, name, "sleep", "300")
    assert docker.ok("exec", c, "id", "-u").strip() == "1000"
    assert docker.ok("exec", "-u", "0", c, "id", "-u").strip() == "0"
    docker.ok("rm", "-f", c)

    app = workdir({**APP, "Dockerfile": f"""FROM busybox:latest
LABEL org.label-schema.version=v1.1
RUN {PASSWD_LINE.format(u="node_user")}
USER node_user
ADD src/ /home/node_user
WORKDIR /home/node_user
RUN ./bin/install && id -u > uid
EXPOSE 3000
CMD ./bin/www
"""})
    nonroot = f"{tag()}:nonroot"
    build_ok(dbuild, app, "-t", nonroot)
    out = run_out(docker, nonroot, "sh", "-c",
                  "cat uid; stat -c '%u %n' node_modules www bin/www 2>/dev/null; ./bin/www")
    lines = out.splitlines()
    assert lines[0] == "1000", out  # RUN ran as the USER
    assert "1000 node_modules" in lines  # made by RUN as node_user
    assert "0 bin/www" in lines  # ADD without --chown: owned by root
    assert lines[-1].startswith("weather-app listening on 3000")


def test_ch7_6_order_of_execution(dbuild: Cli, docker: Cli, api: ApiClient,
                                  workdir: Callable[..., Path]) -> None:
    """The course's point: after USER cloud_user, `mkdir -p /etc/myconf` fails the build."""
    ctx = workdir({"Dockerfile": f"""FROM busybox:latest
RUN mkdir -p ~/new-dir1
RUN {PASSWD_LINE.format(u="cloud_user")}
USER cloud_user
RUN mkdir -p ~/new-dir2
RUN mkdir -p /etc/myconf
RUN echo "Some config data" >> /etc/myconf/my.conf
"""})
    name = f"{tag()}:v1"
    before = api.container_ids()
    res = build(dbuild, ctx, "-t", name)
    assert res.returncode == 1, describe(res)
    assert "The command '/bin/sh -c mkdir -p /etc/myconf' returned a non-zero code: 1" in res.stderr
    assert "Step 6/7 : RUN mkdir -p /etc/myconf" in res.stdout
    assert "Step 7/7" not in res.stdout
    assert not exists(docker, name)
    # --rm (the default) keeps the failed step's container, as dockerd does; only
    # --force-rm removes it.
    left = api.container_ids() - before
    assert len(left) == 1, left
    docker.ok("rm", *left)


def test_ch7_7_volume_instruction(dbuild: Cli, docker: Cli, workdir: Callable[..., Path],
                                  new_name: Callable[[str], str]) -> None:
    ctx = workdir({"Dockerfile": 'FROM busybox:latest\nVOLUME ["/usr/share/nginx/html/"]\n'})
    name = f"{tag()}:v1"
    build_ok(dbuild, ctx, "-t", name)
    volumes = inspect(docker, name)["Config"]["Volumes"]
    assert [v.rstrip("/") for v in volumes] == ["/usr/share/nginx/html"], volumes
    c = new_name("nginx-volume")
    docker.ok("run", "-d", "--name", c, name, "sleep", "300")
    [info] = json.loads(docker.ok("container", "inspect", c))
    [mount] = info["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/usr/share/nginx/html", mount
    assert re.fullmatch(r"[0-9a-f]{64}", mount["Name"]), mount
    assert mount["Name"] in docker.ok("volume", "ls", "-q").split()
    [vol] = json.loads(docker.ok("volume", "inspect", mount["Name"]))
    assert vol["Driver"] == "local"
    docker.ok("rm", "-f", "-v", c)
    assert mount["Name"] not in docker.ok("volume", "ls", "-q").split()


def test_ch7_8_entrypoint_vs_cmd(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({**APP, "Dockerfile": """FROM busybox:latest
LABEL org.label-schema.version=v1.1
ENV NODE_ENV="production"
ENV PORT 3001

RUN mkdir -p /var/node
ADD src/ /var/node/
WORKDIR /var/node
RUN ./bin/install
EXPOSE $PORT
ENTRYPOINT ./bin/www
"""})
    v4 = f"{tag()}:v4"
    build_ok(dbuild, ctx, "-t", v4)
    config = inspect(docker, v4)["Config"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "./bin/www"]
    assert config["Cmd"] is None  # ENTRYPOINT resets the base image's CMD
    assert config["ExposedPorts"] == {"3001/tcp": {}}
    expected = "weather-app listening on 3001 NODE_ENV=production args="
    assert run_out(docker, v4).strip() == expected
    # The shell form of ENTRYPOINT ignores the run's arguments ("Hello World" goes nowhere).
    assert run_out(docker, v4, "echo", "Hello World").strip() == expected
    # --entrypoint replaces it.
    assert run_out(docker, "--entrypoint", "echo", v4, "Hello World").strip() == "Hello World"

    exec_form = workdir({**APP, "Dockerfile": """FROM busybox:latest
ADD src/ /var/node/
WORKDIR /var/node
ENTRYPOINT ["./bin/www"]
CMD ["--default"]
"""})
    v5 = f"{tag()}:v5"
    build_ok(dbuild, exec_form, "-t", v5)
    config = inspect(docker, v5)["Config"]
    assert config["Entrypoint"] == ["./bin/www"] and config["Cmd"] == ["--default"]
    assert run_out(docker, v5).strip().endswith("args=--default")
    # The run's arguments replace CMD and are appended to the exec-form ENTRYPOINT.
    assert run_out(docker, v5, "echo", "Hello World").strip().endswith("args=echo Hello World")


def test_ch7_9_dockerignore(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({
        **APP,
        "src/.git/HEAD": "ref: refs/heads/dockerignore\n",
        "src/docs/index.html": "docs\n",
        "src/tests/test.sh": "true\n",
        "src/lib/CHANGES.md": "kept: */*.md matches one level only\n",
        ".dockerignore": "# Ignore these files\n*/*.md\n*/.git\nsrc/docs/\n*/tests/\n",
        "Dockerfile": """FROM busybox:latest
LABEL org.label-schema.version=v1.1
ENV NODE_ENV="production"
ENV PORT 3000

RUN mkdir -p /var/node
ADD src/ /var/node/
WORKDIR /var/node
RUN ./bin/install
EXPOSE $PORT
ENTRYPOINT ["./bin/www"]
""",
    })
    v5 = f"{tag()}:v5"
    build_ok(dbuild, ctx, "-t", v5)
    listing = run_out(docker, "--entrypoint", "ls", v5, "-a", "/var/node").split()
    assert set(listing) == {".", "..", "app.sh", "bin", "lib", "node_modules"}, listing
    assert run_out(docker, "--entrypoint", "ls", v5, "/var/node/lib").split() == ["CHANGES.md"]
    assert run_out(docker, v5).strip() == "weather-app listening on 3000 NODE_ENV=production args="


# Chapter 8.


def test_ch8_1_file_label_and_stdin_dockerfile(dbuild: Cli, docker: Cli,
                                               workdir: Callable[..., Path]) -> None:
    dockerfile = "FROM busybox:latest\nLABEL org.label-schema.version=v1.1\nCOPY src/ /var/node/\n" \
                 'CMD ["./bin/www"]\nWORKDIR /var/node\n'
    ctx = workdir({**APP, "Dockerfile.test": dockerfile})
    ex1 = f"{tag()}:path-example1"
    # (-f is relative to the current directory, which is the context in the course)
    build_ok(dbuild, ctx, "-t", ex1, "-f", str(ctx / "Dockerfile.test"))
    assert run_out(docker, ex1).startswith("weather-app listening on 3000")
    ex2 = f"{tag()}:path-example2"
    build_ok(dbuild, ctx, "-t", ex2, "--label", "com.linuxacademy.version=v1.8",
             "-f", str(ctx / "Dockerfile.test"))
    assert inspect(docker, ex2)["Config"]["Labels"] == {
        "org.label-schema.version": "v1.1", "com.linuxacademy.version": "v1.8"}
    # docker image build -t linuxacademy/nginx:stind --rm -<<EOF
    stdin = f"{tag()}:stdin"
    out = build_ok(dbuild, "-", "-t", stdin, "--rm",
                   input='FROM busybox:latest\nVOLUME ["/usr/share/nginx/html/"]\n')
    assert [s[2] for s in steps(out)] == [
        "FROM busybox:latest", 'VOLUME ["/usr/share/nginx/html/"]']
    assert list(inspect(docker, stdin)["Config"]["Volumes"]) in (
        ["/usr/share/nginx/html/"], ["/usr/share/nginx/html"])


MULTI_STAGE = """# Create an image for the weather-app using multi-stage build
FROM busybox:latest AS build
RUN mkdir -p /var/node/
ADD src/ /var/node/
WORKDIR /var/node
RUN ./bin/install && dd if=/dev/zero of=/opt-toolchain bs=1024 count=4096 2>/dev/null

FROM busybox:latest
ARG VERSION=V1.1
LABEL org.label-schema.version=$VERSION
ENV NODE_ENV="production"
COPY --from=build /var/node /var/node
WORKDIR /var/node
EXPOSE 3000
ENTRYPOINT ["./bin/www"]
"""


def test_ch8_2_multi_stage(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({**APP, "Dockerfile": MULTI_STAGE})
    final = f"{tag()}:multi-stage-build"
    out = build_ok(dbuild, ctx, "-t", final, "--rm", "--build-arg", "VERSION=1.5")
    assert [s[2] for s in steps(out) if s[2].startswith("FROM")] == [
        "FROM busybox:latest AS build", "FROM busybox:latest"]
    build_stage = f"{tag()}:build"
    build_ok(dbuild, ctx, "-t", build_stage, "--target", "build")
    small, big = inspect(docker, final), inspect(docker, build_stage)
    assert small["Config"]["Labels"] == {"org.label-schema.version": "1.5"}
    assert "NODE_ENV=production" in small["Config"]["Env"]
    assert big["Size"] - small["Size"] > 4_000_000, (big["Size"], small["Size"])
    assert run_out(docker, final).strip() == "weather-app listening on 3000 NODE_ENV=production args="
    assert "node_modules" in run_out(docker, "--entrypoint", "ls", final, "/var/node").split()
    assert run_out(docker, "--entrypoint", "sh", final, "-c",
                   "test -e /opt-toolchain && echo yes || echo no").strip() == "no"
    # docker image ls shows the sizes: the final image is the smaller one.
    sizes = dict(line.split(" ", 1) for line in docker.ok(
        "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").splitlines())
    assert final in sizes and build_stage in sizes


def test_ch8_3_tagging(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({**APP, "Dockerfile": "FROM busybox:latest\nADD src/ /var/node/\n"})
    git_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    repo = tag()
    out = build_ok(dbuild, ctx, "--tag", f"{repo}:{git_hash}", "-t", f"{repo}:second")
    assert f"Successfully tagged {repo}:{git_hash}\n" in out
    assert f"Successfully tagged {repo}:second\n" in out
    docker.ok("image", "tag", f"{repo}:{git_hash}", f"{repo}:latest")
    ids = {image_id(docker, f"{repo}:{t}") for t in (git_hash, "second", "latest")}
    assert len(ids) == 1 and next(iter(ids))[7:19] == built_id(out)


# The build cache (Must show 2).

CACHE_FILES: Files = {
    "a.txt": "a\n",
    "b.txt": "b\n",
    "Dockerfile": """FROM busybox:latest
ENV STAGE=cache
COPY a.txt /a.txt
RUN cat /a.txt > /a.copy
COPY b.txt /b.txt
RUN cat /a.txt /b.txt > /ab
LABEL step=seven
CMD ["cat", "/ab"]
""",
}


def test_rebuild_hits_the_cache_for_every_step(dbuild: Cli, docker: Cli,
                                               workdir: Callable[..., Path]) -> None:
    ctx = workdir(CACHE_FILES)
    name = tag()
    first = build_ok(dbuild, ctx, "-t", name)
    assert cache_hits(first) == 0, first
    first_id = image_id(docker, name)
    again = build_ok(dbuild, ctx, "-t", name)
    assert len(steps(again)) == 8
    # Every step after FROM: " ---> Using cache" then the same " ---> <id>" as before.
    assert cache_hits(again) == 7, again
    assert "Running in" not in again
    assert image_id(docker, name) == first_id
    assert built_id(again) == first_id[7:19]
    first_ids, again_ids = ARROW_ID.findall(first), ARROW_ID.findall(again)
    assert first_ids == again_ids, (first_ids, again_ids)

    (ctx / "b.txt").write_text("b, changed\n")
    changed = build_ok(dbuild, ctx, "-t", name)
    blocks = step_blocks(changed)
    assert [n for n, text in blocks.items() if CACHE_HIT in text] == [2, 3, 4], changed
    assert all(CACHE_HIT not in blocks[n] for n in (5, 6, 7, 8))
    assert cache_hits(changed) == 3
    assert image_id(docker, name) != first_id
    assert run_out(docker, name) == "a\nb, changed\n"
    # The earlier result is still cached: back to b's old content, a full cache hit again.
    (ctx / "b.txt").write_text("b\n")
    back = build_ok(dbuild, ctx, "-t", name)
    assert cache_hits(back) == 7 and image_id(docker, name) == first_id


def test_no_cache_rebuilds_every_step(dbuild: Cli, docker: Cli,
                                      workdir: Callable[..., Path]) -> None:
    ctx = workdir(CACHE_FILES)
    name = tag()
    build_ok(dbuild, ctx, "-t", name)
    first_id = image_id(docker, name)
    out = build_ok(dbuild, ctx, "-t", name, "--no-cache")
    assert cache_hits(out) == 0, out
    assert out.count("Running in") >= 2  # both RUNs ran again
    assert image_id(docker, name) != first_id  # new timestamps, new image
    assert run_out(docker, name) == "a\nb\n"


def test_cache_follows_build_args_and_instruction_text(dbuild: Cli,
                                                       workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nARG V=1\nRUN echo v=$V > /v\n"})
    build_ok(dbuild, ctx)
    same = build_ok(dbuild, ctx)
    assert cache_hits(same) == 2
    other = build_ok(dbuild, ctx, "--build-arg", "V=2")
    blocks = step_blocks(other)
    assert CACHE_HIT in blocks[2] and CACHE_HIT not in blocks[3], other
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nARG V=1\nRUN echo v=$V  > /v\n")
    edited = build_ok(dbuild, ctx)
    assert CACHE_HIT not in step_blocks(edited)[3]


# Instructions.


def test_from_platform_arg_before_from_and_scratch(dbuild: Cli, docker: Cli,
                                                   workdir: Callable[..., Path]) -> None:
    ctx = workdir({"hello.txt": "hello from scratch\n", "Dockerfile": """ARG BASE=busybox
ARG TAG=latest
FROM --platform=linux/amd64 ${BASE}:${TAG} AS base
ARG BASE
RUN echo "base=$BASE tag=${TAG:-unset}" > /base

FROM scratch AS empty
COPY hello.txt /
CMD ["/hello"]

FROM base
COPY --from=empty /hello.txt /from-scratch.txt
"""})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name)
    # ARGs before the first FROM are steps; the FROM line is shown as written
    assert [s[2] for s in steps(out)[:3]] == [
        "ARG BASE=busybox", "ARG TAG=latest", "FROM --platform=linux/amd64 ${BASE}:${TAG} AS base",
    ], out
    assert steps(out)[0][1] == 10, out
    # an ARG before FROM is visible in FROM; in the stage only if declared again
    assert run_out(docker, name, "cat", "/base", "/from-scratch.txt") == (
        "base=busybox tag=unset\nhello from scratch\n")
    empty = tag()
    build_ok(dbuild, ctx, "-t", empty, "--target", "empty")
    doc = inspect(docker, empty)
    assert doc["Config"]["Cmd"] == ["/hello"]
    assert len(doc["RootFS"]["Layers"]) == 1
    assert doc["Size"] < 1000, doc["Size"]
    cid = docker.ok("create", empty).strip()
    try:
        exported = subprocess.run(["docker", "export", cid], capture_output=True,
                                  env=dbuild.env, timeout=60, check=True).stdout
    finally:
        docker.ok("rm", cid)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = {m.name.rstrip("/") for m in tar if not m.name.startswith(("dev", "proc", "sys",
                                                                            "etc", ".docker"))}
        assert "hello.txt" in names, names
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == b"hello from scratch\n"


def test_container_config_is_the_last_steps_as_the_classic_builder_records_it(
        dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    # what dockerd's classic builder commits with each step: the step's config, its Cmd the
    # command a RUN ran, or the shell and a "#(nop)" comment; Image the step's parent;
    # shown as ContainerConfig (and the RUN's container as Container) before API 1.45
    ctx = workdir({"f": "x",
                   "Dockerfile.run": "FROM busybox:latest\nARG V=1\nRUN echo hi > /f\n",
                   "Dockerfile.env": "FROM busybox:latest\nENV A=b\n",
                   "Dockerfile.copy": "FROM busybox:latest\nWORKDIR /w\nCOPY f /w/f\n"})
    old = Cli(docker.program, {**docker.env, "DOCKER_API_VERSION": "1.41"})
    base = image_id(docker, "busybox:latest")
    names = {kind: tag() for kind in ("run", "env", "copy")}
    for kind, name in names.items():
        build_ok(dbuild, ctx, "-f", str(ctx / f"Dockerfile.{kind}"), "-t", name)

    run = inspect(old, names["run"])
    assert run["ContainerConfig"]["Cmd"] == ["|1", "V=1", "/bin/sh", "-c", "echo hi > /f"]
    assert run["ContainerConfig"]["Image"] == run["Parent"] != base  # the ARG step's image
    assert re.fullmatch(r"[0-9a-f]{64}", run["Container"]), run["Container"]
    assert run["ContainerConfig"]["Entrypoint"] is None and run["ContainerConfig"]["Hostname"] == ""

    env = inspect(old, names["env"])
    assert env["ContainerConfig"]["Cmd"] == ["/bin/sh", "-c", "#(nop) ", "ENV A=b"]
    assert env["ContainerConfig"]["Image"] == base == env["Parent"] and "A=b" in env["ContainerConfig"]["Env"]
    assert env["ContainerConfig"]["Env"] == env["Config"]["Env"]

    copy = inspect(old, names["copy"])
    cmd = copy["ContainerConfig"]["Cmd"]
    assert cmd[:2] == ["/bin/sh", "-c"] and re.fullmatch(r"#\(nop\) COPY file:[0-9a-f]{64} in /w/f ", cmd[2]), cmd
    assert copy["ContainerConfig"]["WorkingDir"] == "/w" and copy["ContainerConfig"]["Image"] == copy["Parent"]
    assert "ContainerConfig" not in inspect(docker, names["copy"])  # gone in 1.45


def test_run_cmd_label_expose_env_stopsignal_healthcheck_shell(
        dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": """FROM busybox:latest
RUN echo shell-form > /shell && echo "$0" > /shell0
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
RUN ["touch", "/touched"]
LABEL one=1 "two words"="a b" three=3
LABEL multi.line="first \\
second"
EXPOSE 80/udp 3000
ENV A=1 B="two words"
ENV C=${A}x
ENV D the rest of the line
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD test -e /shell
SHELL ["/bin/sh", "-ec"]
RUN echo "$A $B $C $D" > /env
CMD ["cat", "/env"]
"""})
    name = tag()
    build_ok(dbuild, ctx, "-t", name)
    config = inspect(docker, name)["Config"]
    assert config["Labels"] == {"one": "1", "two words": "a b", "three": "3",
                                "multi.line": "first second"}
    assert config["ExposedPorts"] == {"80/udp": {}, "3000/tcp": {}}
    env = config["Env"]
    for pair in ("A=1", "B=two words", "C=1x", "D=the rest of the line"):
        assert pair in env, env
    assert env[0] == DEFAULT_PATH  # added by the builder: busybox (imported) has no Env
    assert config["StopSignal"] == "SIGUSR1"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /shell"],
                                     "Interval": 5_000_000_000, "Timeout": 3_000_000_000,
                                     "Retries": 2}
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["Cmd"] == ["cat", "/env"]
    assert run_out(docker, name) == "1 two words 1x the rest of the line\n"
    assert run_out(docker, name, "cat", "/shell", "/exec", "/shell0") == (
        "shell-form\nexec-form\n/bin/sh\n")
    history = docker.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", name)
    assert "/bin/sh -ec echo \"$A $B $C $D\" > /env" in history, history


def test_add_files_dirs_tars_urls_chown_chmod(dbuild: Cli, docker: Cli,
                                              workdir: Callable[..., Path]) -> None:
    served = workdir({"remote.txt": "from the server\n",
                      "remote.tar": "not extracted: a URL is never unpacked\n"})
    ctx = workdir({
        "file.txt": "file\n",
        "dir/x": "x\n",
        "dir/sub/y": "y\n",
        "Dockerfile": "",
    })
    (ctx / "plain.tar").write_bytes(tar_bytes({"in-tar.txt": "in a tar\n", "t/deep": "deep\n"}))
    (ctx / "zipped.tar.gz").write_bytes(tar_bytes({"in-tgz.txt": "in a tgz\n"}, gzip=True))
    with http_server(served) as url:
        (ctx / "Dockerfile").write_text(f"""FROM busybox:latest
ADD file.txt /add/file.txt
ADD dir /add/dir
ADD plain.tar /add/untarred/
ADD zipped.tar.gz /add/ungzipped
ADD {url}/remote.txt /add/url/
ADD {url}/remote.tar /add/url/
ADD --chown=1000:1001 file.txt /add/owned.txt
ADD --chmod=640 file.txt /add/mode.txt
ADD --chown=1000:1000 dir /add/owned-dir
""")
        name = tag()
        build_ok(dbuild, ctx, "-t", name)
    out = run_out(docker, name, "sh", "-c", "cd /add && find . | sort && "
                  "cat untarred/in-tar.txt untarred/t/deep ungzipped/in-tgz.txt url/remote.txt "
                  "url/remote.tar && stat -c '%n %u %g %a' owned.txt mode.txt owned-dir "
                  "owned-dir/sub/y url/remote.txt file.txt")
    listing = [line for line in out.splitlines() if line.startswith(".")]
    assert listing == sorted([
        ".", "./dir", "./dir/sub", "./dir/sub/y", "./dir/x", "./file.txt", "./mode.txt",
        "./owned-dir", "./owned-dir/sub", "./owned-dir/sub/y", "./owned-dir/x", "./owned.txt",
        "./ungzipped", "./ungzipped/in-tgz.txt", "./untarred", "./untarred/in-tar.txt",
        "./untarred/t", "./untarred/t/deep", "./url", "./url/remote.tar", "./url/remote.txt",
    ]), out
    rest = [line for line in out.splitlines() if not line.startswith(".")]
    assert rest[:5] == ["in a tar", "deep", "in a tgz", "from the server",
                        "not extracted: a URL is never unpacked"], out
    assert rest[5:] == [
        "owned.txt 1000 1001 644", "mode.txt 0 0 640", "owned-dir 1000 1000 755",
        "owned-dir/sub/y 1000 1000 644", "url/remote.txt 0 0 600", "file.txt 0 0 644",
    ], out


def test_add_url_streams_a_large_file_and_keeps_last_modified(dbuild: Cli, docker: Cli,
                                                              workdir: Callable[..., Path]) -> None:
    """The download's mtime is the answer's Last-Modified, as dockerd's; a file larger
    than any buffer arrives whole."""
    served = workdir()
    big = served / "big.bin"
    with open(big, "wb") as f:
        for i in range(24):
            f.write(bytes([i]) * (1 << 20))
    os.utime(big, (1_000_000_000, 1_000_000_000))
    with http_server(served) as url:
        ctx = workdir({"Dockerfile": f"FROM busybox:latest\nADD {url}/big.bin /big.bin\n"})
        name = tag()
        build_ok(dbuild, ctx, "-t", name)
    out = run_out(docker, name, "sh", "-c", "stat -c '%s %Y' /big.bin && md5sum /big.bin")
    assert out.splitlines()[0] == f"{24 << 20} 1000000000", out
    assert out.splitlines()[1].split()[0] == hashlib.md5(big.read_bytes()).hexdigest(), out


def test_copy_from_stage_image_index_chown_chmod_wildcards_dirs(
        dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({
        "one.txt": "1\n", "two.txt": "2\n", "other.md": "md\n",
        "dir/x": "x\n", "dir/sub/y": "y\n",
        "Dockerfile": """FROM busybox:latest AS first
RUN echo stage0 > /s0 && mkdir -p /out && echo built > /out/artifact

FROM busybox:latest AS second
RUN echo stage1 > /s1

FROM busybox:latest
COPY --from=first /out /from-name
COPY --from=1 /s1 /from-index
COPY --from=0 /s0 /from-index0
COPY --from=busybox:latest /bin/busybox /from-image/busybox
COPY *.txt /wild/
COPY t?o.txt /one-char/
COPY dir /copied-dir
COPY dir/ /copied-dir-slash/
COPY dir/sub /sub-contents
COPY one.txt /renamed.txt
COPY --chown=1000:1000 dir /owned
COPY --chmod=600 one.txt /secret.txt
COPY ["one.txt", "two.txt", "/json-form/"]
""",
    })
    name = tag()
    build_ok(dbuild, ctx, "-t", name)
    out = run_out(docker, name, "sh", "-c",
                  "cat /from-name/artifact /from-index /from-index0; for d in /wild /one-char "
                  "/copied-dir /copied-dir-slash /sub-contents /json-form; do ls $d; done; "
                  "cat /renamed.txt; "
                  "stat -c '%n %u %g %a' /owned /owned/sub/y /secret.txt; "
                  "/from-image/busybox echo image-copy")
    assert out.split("\n") == [
        "built", "stage1", "stage0",
        "one.txt", "two.txt",  # /wild: other.md not matched
        "two.txt",  # /one-char
        "sub", "x",  # COPY dir copies the directory's contents, not the directory
        "sub", "x",
        "y",
        "one.txt", "two.txt",
        "1",
        "/owned 1000 1000 755", "/owned/sub/y 1000 1000 644", "/secret.txt 0 0 600",
        "image-copy", "",
    ], out


def test_workdir_user_volume(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": """FROM busybox:latest
WORKDIR /a
WORKDIR b
ENV DIRNAME=c
WORKDIR $DIRNAME
RUN pwd > /pwd
RUN mkdir -p /vol && echo seeded > /vol/seed
VOLUME /vol /other
USER 1000:1000
RUN id -u > /tmp/uid; id -g >> /tmp/uid
"""})
    name = tag()
    build_ok(dbuild, ctx, "-t", name)
    config = inspect(docker, name)["Config"]
    assert config["WorkingDir"] == "/a/b/c"
    assert config["User"] == "1000:1000"
    assert set(config["Volumes"]) == {"/vol", "/other"}
    out = run_out(docker, name, "sh", "-c", "pwd; cat /pwd /tmp/uid /vol/seed")
    assert out == "/a/b/c\n/a/b/c\n1000\n1000\nseeded\n"


def test_build_args_defaults_and_unconsumed_warning(dbuild: Cli, docker: Cli,
                                                    workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": """FROM busybox:latest
ARG USED
ARG WITH_DEFAULT=dflt
ARG EMPTY
RUN echo "used=$USED default=$WITH_DEFAULT empty=[$EMPTY]" > /args
"""})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name, "--build-arg", "USED=u", "--build-arg", "UNUSED=x",
                   "--build-arg", "OTHER=y")
    assert "[Warning] One or more build-args [OTHER UNUSED] were not consumed" in out, out
    assert run_out(docker, name, "cat", "/args") == "used=u default=dflt empty=[]\n"
    plain = tag()
    out = build_ok(dbuild, ctx, "-t", plain, "--build-arg", "WITH_DEFAULT=over")
    assert "[Warning]" not in out
    assert run_out(docker, plain, "cat", "/args") == "used= default=over empty=[]\n"
    # Predefined proxy args are allowed without an ARG and not warned about.
    out = build_ok(dbuild, ctx, "--build-arg", "HTTP_PROXY=http://127.0.0.1:9")
    assert "[Warning]" not in out, out


def test_onbuild_triggers_run_in_child_build(dbuild: Cli, docker: Cli,
                                             workdir: Callable[..., Path]) -> None:
    parent = tag()
    pctx = workdir({"Dockerfile": """FROM busybox:latest
ONBUILD COPY child.txt /from-child.txt
ONBUILD RUN echo triggered > /trig
RUN echo parent > /parent
"""})
    build_ok(dbuild, pctx, "-t", parent)
    assert inspect(docker, parent)["Config"]["OnBuild"] == [
        "COPY child.txt /from-child.txt", "RUN echo triggered > /trig"]
    assert run_out(docker, parent, "sh", "-c", "ls /trig 2>&1 || true").strip().endswith(
        "No such file or directory")
    child = tag()
    cctx = workdir({"child.txt": "child\n", "Dockerfile": f"FROM {parent}\nCMD cat /trig\n"})
    out = build_ok(dbuild, cctx, "-t", child)
    assert "# Executing 2 build triggers" in out, out
    assert run_out(docker, child) == "triggered\n"
    assert run_out(docker, child, "cat", "/from-child.txt") == "child\n"
    assert not inspect(docker, child)["Config"]["OnBuild"]  # triggers are not inherited


def test_target_stops_at_the_named_stage(dbuild: Cli, docker: Cli,
                                         workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": """FROM busybox:latest AS one
RUN echo one > /stage
FROM one AS two
RUN echo two > /stage
FROM two
RUN exit 9
"""})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name, "--target", "two")
    assert "exit 9" not in out
    assert run_out(docker, name, "cat", "/stage") == "two\n"
    res = build(dbuild, ctx, "--target", "nosuch")
    assert res.returncode != 0
    assert "failed to reach build target nosuch in Dockerfile" in res.stderr, describe(res)


# Options.


def test_quiet_prints_only_the_id_and_iidfile(dbuild: Cli, docker: Cli,
                                              workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nRUN echo noisy\nLABEL q=1\n"})
    name = tag()
    iidfile = ctx / "iid"
    res = build(dbuild, ctx, "-q", "-t", name, "--iidfile", str(iidfile))
    assert res.returncode == 0, describe(res)
    full = image_id(docker, name)
    assert res.stdout == full + "\n", describe(res)
    assert "noisy" not in res.stdout + res.stderr
    # with -q the CLI writes what it printed (newline included), as with dockerd
    assert iidfile.read_text() == full + "\n"
    other = ctx / "iid2"
    build_ok(dbuild, ctx, "--iidfile", str(other))
    assert other.read_text() == full  # from the stream's aux message: no newline


def test_quiet_build_that_fails_shows_what_it_held_back(dbuild: Cli, berth: Cli, api: ApiClient,
                                                       workdir: Callable[..., Path]) -> None:
    dockerfile = "FROM busybox:latest\nRUN echo said-before-failing; echo on-stderr >&2; exit 3\n"
    ctx = workdir({"Dockerfile": dockerfile})
    for cli in (dbuild, berth):
        res = build(cli, ctx, "-q", "--force-rm")
        # as dockerd: the held-back output comes with the error, and the CLI prints it
        assert res.returncode == 3, describe(res)
        assert res.stdout == "", describe(res)
        assert "Step 2/2 : RUN echo said-before-failing" in res.stderr, describe(res)
        assert "said-before-failing\n" in res.stderr and "\x1b[91mon-stderr\n\x1b[0m" in res.stderr
        assert "returned a non-zero code: 3" in res.stderr
    # a quiet build that works streams the image ID alone (no aux message either)
    resp = api.post("/build?q=1", tar_bytes({"Dockerfile": "FROM busybox:latest\nLABEL quiet=1\n"}),
                    headers={"Content-Type": "application/x-tar"}, timeout=120)
    docs = [json.loads(line) for line in resp.body.decode().splitlines() if line.strip()]
    assert len(docs) == 1 and FULL_ID.fullmatch(docs[0]["stream"].strip()), docs


def test_several_tags_and_labels(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nLABEL from.file=yes\n"})
    a, b, c = tag(), f"{tag()}:v1", f"{tag()}/sub:v2"
    out = build_ok(dbuild, ctx, "-t", a, "-t", b, "--tag", c, "--label", "x=1", "--label", "y=")
    for ref in (f"{a}:latest", b, c):
        assert f"Successfully tagged {ref}\n" in out, out
    assert len({image_id(docker, r) for r in (a, b, c)}) == 1
    assert inspect(docker, a)["Config"]["Labels"] == {"from.file": "yes", "x": "1", "y": ""}
    # a rebuild moves the tag; the old image loses it
    old = image_id(docker, a)
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nLABEL from.file=changed\n")
    build_ok(dbuild, ctx, "-t", a)
    assert image_id(docker, a) != old
    assert image_id(docker, b) == old


def test_rm_and_force_rm_leave_no_intermediate_containers(
        dbuild: Cli, docker: Cli, api: ApiClient, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nRUN echo 1 > /1\nRUN echo 2 > /2\n"})
    before = api.container_ids()
    out = build_ok(dbuild, ctx, "--rm")
    assert api.container_ids() == before
    running = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", out, re.M)
    assert len(running) == 2, out
    out = build_ok(dbuild, ctx, "--no-cache", "--force-rm")
    assert api.container_ids() == before
    # --rm=false keeps them (as docker does); the test removes them
    out = build_ok(dbuild, ctx, "--no-cache", "--rm=false")
    kept = api.container_ids() - before
    assert len(kept) == 2, out
    docker.ok("rm", *kept)
    # --force-rm removes the failed step's container too
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN exit 4\n")
    res = build(dbuild, ctx, "--force-rm")
    assert res.returncode == 4, describe(res)
    assert api.container_ids() == before


def test_network_and_add_host(dbuild: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": """FROM busybox:latest
RUN ls /sys/class/net | sort | tr '\\n' ' '; echo; grep -w berth-build-host /etc/hosts
"""})
    out = build_ok(dbuild, ctx, "--no-cache", "--network", "none",
                   "--add-host", "berth-build-host:10.1.2.3")
    assert "\nlo \n" in out, out
    assert re.search(r"^10\.1\.2\.3\s+berth-build-host$", out, re.M), out
    host = build_ok(dbuild, ctx, "--no-cache", "--network", "host",
                    "--add-host", "berth-build-host:10.1.2.3")
    seen = next(line for line in host.splitlines() if line.startswith("lo ") or " lo " in line)
    others = set(seen.split()) - {"lo"}
    assert others & set(os.listdir("/sys/class/net")), (seen, host)  # the host's interfaces



def test_every_add_host_reaches_the_run_steps(dbuild: Cli, berth: Cli, docker_client: Any,
                                              workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nRUN grep -E 'first|second|gateway' /etc/hosts\n"})
    for cli in (dbuild, berth):
        out = build_ok(cli, ctx, "--no-cache", "--add-host", "first:10.1.2.3", "--add-host", "second=10.1.2.4",
                       "--add-host", "gateway:host-gateway")
        assert re.search(r"^10\.1\.2\.3\s+first$", out, re.M), out
        assert re.search(r"^10\.1\.2\.4\s+second$", out, re.M), out
        assert re.search(r"^\d+\.\d+\.\d+\.\d+\s+gateway$", out, re.M), out  # the default bridge's gateway
    # docker-py sends one extrahosts parameter per entry, as the docker CLI does
    _, logs = docker_client.images.build(path=str(ctx), nocache=True, rm=True,
                                         extra_hosts={"first": "10.1.2.3", "second": "10.1.2.4"})
    text = "".join(doc.get("stream", "") for doc in logs)
    assert re.search(r"^10\.1\.2\.4\s+second$", text, re.M), text
    res = build(berth, ctx, "--add-host", "no-address")
    assert res.returncode != 0 and 'bad format for add-host: "no-address"' in res.stderr, describe(res)


def test_run_steps_on_a_named_network_and_the_default_bridge(dbuild: Cli, docker: Cli, new_net: Callable[[str], str],
                                                             workdir: Callable[..., Path]) -> None:
    net = new_net("buildnet")
    docker.ok("network", "create", "--subnet", "10.231.7.0/24", net)
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nRUN ip -4 -o addr show eth0 | awk '{print $4}'\n"})
    out = build_ok(dbuild, ctx, "--no-cache", "--network", net)
    assert re.search(r"^10\.231\.7\.\d+/24$", out, re.M), out
    out = build_ok(dbuild, ctx, "--no-cache", "--network", "bridge")
    assert re.search(r"^\d+\.\d+\.\d+\.\d+/\d+$", out, re.M) and "10.231.7." not in out, out


def test_run_stderr_is_in_the_build_output_as_the_classic_builder_colours_it(
        dbuild: Cli, berth: Cli, api: ApiClient, workdir: Callable[..., Path]) -> None:
    dockerfile = "FROM busybox:latest\nRUN echo to-stdout; echo to-stderr >&2; echo more-stdout\n"
    ctx = workdir({"Dockerfile": dockerfile})
    for cli in (dbuild, berth):
        out = build_ok(cli, ctx, "--no-cache")
        # dockerd's stderr writer wraps each chunk in red: ESC[91m ... ESC[0m (the two
        # streams are read apart, so stderr's place among the stdout lines may vary)
        assert "\x1b[91mto-stderr\n\x1b[0m" in out, repr(out)
        assert "\nto-stdout\n" in out and "more-stdout\n" in out, repr(out)
    resp = api.post("/build?nocache=1", tar_bytes({"Dockerfile": dockerfile}),
                    headers={"Content-Type": "application/x-tar"}, timeout=120)
    docs = [json.loads(line) for line in resp.body.decode().splitlines() if line.strip()]
    assert {"stream": "\x1b[91mto-stderr\n\x1b[0m"} in docs, docs


def test_labels_are_label_steps_at_the_end_of_the_target_stage(dbuild: Cli, berth: Cli, docker: Cli,
                                                               workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest AS first\nRUN echo one > /one\n"
                                 "FROM busybox:latest AS final\nCOPY --from=first /one /\nFROM first AS unused\n"})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name, "--target", "final", "--label", "zz=last", "--label", "aa=first")
    # as dockerd: one LABEL per --label, sorted, counted in the steps, in the target stage
    assert steps(out)[-3:] == [(4, 6, "COPY --from=first /one /"), (5, 6, "LABEL aa=first"),
                               (6, 6, "LABEL zz=last")], out
    assert inspect(docker, name)["Config"]["Labels"] == {"aa": "first", "zz": "last"}
    history = docker.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", name).splitlines()
    assert history[:2] == ["/bin/sh -c #(nop)  LABEL zz=last", "/bin/sh -c #(nop)  LABEL aa=first"]
    again = build_ok(berth, ctx, "-t", name, "--target", "final", "--label", "zz=last", "--label", "aa=first")
    assert [s[2] for s in steps(again)][-2:] == ["LABEL aa=first", "LABEL zz=last"]
    assert cache_hits(again) == 4, again
    assert image_id(docker, name)[7:19] == built_id(again)


def test_platform_of_the_host_is_accepted_and_another_is_not_taken_from_here(
        dbuild: Cli, berth: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    from helpers.registries import free_port

    host_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    other_arch = "arm64" if host_arch == "amd64" else "amd64"
    # a base image under a registry on loopback that does not answer: a pull can only fail
    base = f"127.0.0.1:{free_port()}/plat/base:1"
    docker.ok("tag", "busybox:latest", base)
    try:
        ctx = workdir({"Dockerfile": f"FROM {base}\nRUN echo built-here\n"})
        for cli, platform in ((dbuild, f"linux/{host_arch}"), (berth, host_arch), (dbuild, "linux")):
            out = build_ok(cli, ctx, "--no-cache", "--platform", platform)
            assert "built-here" in out and "Successfully built" in out, out
        # as dockerd: the image here is not the platform asked for, so FROM pulls it, and the pull fails
        name = tag()
        res = build(dbuild, ctx, "--platform", f"linux/{other_arch}", "-t", name)
        assert res.returncode != 0, describe(res)
        assert "connection refused" in res.stderr + res.stdout and base.split("/")[0] in res.stderr + res.stdout
        assert "Successfully built" not in res.stdout and not exists(docker, name)
        res = build(berth, ctx, "--platform", "linux/amd64/v2/extra")
        assert res.returncode != 0
        assert ('"linux/amd64/v2/extra": unknown operating system or architecture: invalid argument'
                in res.stderr), describe(res)
        res = build(dbuild, ctx, "--platform", "nosuchos/amd64")
        assert '"nosuchos/amd64": unknown operating system or architecture: invalid argument' in res.stderr
        assert "Step 1/" not in res.stdout  # refused before the build started
    finally:
        docker.ok("rmi", base)


# The stream format and docker-py.


def test_stream_format(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"f.txt": "f\n", "Dockerfile": "FROM busybox:latest\nCOPY f.txt /\n"
                   "RUN echo out-of-run\nCMD [\"sh\"]\n"})
    name = tag()
    res = build(dbuild, ctx, "-t", name)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"Sending build context to Docker daemon\s+\d+(\.\d+)?[kM]?B", lines[0]), lines
    busybox_short = image_id(docker, "busybox:latest")[7:19]
    short = image_id(docker, name)[7:19]
    expected = [
        "Step 1/4 : FROM busybox:latest", f" ---> {busybox_short}",
        "Step 2/4 : COPY f.txt /", r" ---> [0-9a-f]{12}",
        "Step 3/4 : RUN echo out-of-run", r" ---> Running in [0-9a-f]{12}", "out-of-run",
        r" ---> Removed intermediate container [0-9a-f]{12}|Removing intermediate container "
        r"[0-9a-f]{12}", r" ---> [0-9a-f]{12}",
        "Step 4/4 : CMD \\[\"sh\"\\]",
    ]
    body = [line for line in lines[1:] if line.strip()]
    for i, pattern in enumerate(expected):
        assert re.fullmatch(pattern, body[i]), (
            f"line {i} does not match {pattern!r}; the output:\n" + "\n".join(body))
    assert body[-2:] == [f"Successfully built {short}", f"Successfully tagged {name}:latest"]
    assert re.fullmatch(r" ---> [0-9a-f]{12}", body[-3]), body


def test_raw_api_stream_has_aux_id(api: ApiClient, docker: Cli) -> None:
    context = tar_bytes({"Dockerfile": "FROM busybox:latest\nLABEL raw=1\n"})
    name = tag()
    resp = api.post(f"/build?t={name}", context, headers={"Content-Type": "application/x-tar"},
                    timeout=120)
    assert resp.status == 200, resp.body
    assert resp.header("Content-Type") == "application/json"
    docs = [json.loads(line) for line in resp.body.decode().splitlines() if line.strip()]
    assert all("error" not in d for d in docs), docs
    full = image_id(docker, name)
    assert {"aux": {"ID": full}} in docs, docs
    text = "".join(d.get("stream", "") for d in docs)
    assert "Step 1/2 : FROM busybox:latest\n" in text and f"Successfully tagged {name}:latest\n" in text


def test_dockerpy_images_build(docker_client: Any, docker: Cli,
                               workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nRUN echo py > /py\nCMD [\"cat\", \"/py\"]\n"})
    name = f"{tag()}:py"
    # docker-py's rm defaults to False: dockerd would keep the RUN's container too
    image, logs = docker_client.images.build(path=str(ctx), tag=name, rm=True)
    assert image.id == image_id(docker, name)
    assert name in image.tags
    logs = list(logs)
    assert any("Step 2/3 : RUN echo py" in chunk.get("stream", "") for chunk in logs), logs
    assert docker_client.containers.run(name, remove=True) == b"py\n"
    import docker as docker_py
    bad = workdir({"Dockerfile": "FROM busybox:latest\nRUN exit 7\n"})
    with pytest.raises(docker_py.errors.BuildError) as excinfo:
        docker_client.images.build(path=str(bad), forcerm=True)
    assert "returned a non-zero code: 7" in str(excinfo.value)


# What a build leaves: history, images, rmi.


def test_history_images_and_rmi_of_a_built_image(dbuild: Cli, docker: Cli, api: ApiClient,
                                                 workdir: Callable[..., Path]) -> None:
    ctx = workdir({"a.txt": "a\n", "Dockerfile": """FROM busybox:latest
ENV A=1
COPY a.txt /
RUN echo layer > /layer
CMD ["cat", "/layer"]
"""})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name)
    step_ids = ARROW_ID.findall(out)
    assert len(step_ids) == 5, out  # FROM's own ID, then one per step
    history = docker.ok("history", "--no-trunc", "--format", "{{.ID}}\t{{.CreatedBy}}",
                        name).splitlines()
    created_by = [line.split("\t", 1)[1] for line in history]
    assert created_by[0] == '/bin/sh -c #(nop)  CMD ["cat" "/layer"]', created_by
    assert created_by[1] == "/bin/sh -c echo layer > /layer"
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in / ", created_by[2])
    assert created_by[3] == "/bin/sh -c #(nop)  ENV A=1"
    assert len(history) == 4 + len(docker.ok("history", "-q", "busybox:latest").split())
    # each step is an image of its own, listed with -a but not without
    listed = docker.ok("images", "-q").split()
    listed_all = docker.ok("images", "-a", "-q").split()
    for short in step_ids[1:-1]:
        assert short in listed_all and short not in listed, short
    assert step_ids[-1] in listed
    # the intermediate images are the chain of parents
    assert inspect(docker, name)["Parent"].startswith(f"sha256:{step_ids[-2]}")
    # rmi of the built image removes its untagged parents, not busybox
    res = docker("rmi", name)
    assert res.returncode == 0, describe(res)
    deleted = re.findall(r"^Deleted: sha256:([0-9a-f]{12})", res.stdout, re.M)
    assert set(step_ids[1:]) <= set(deleted), res.stdout
    assert res.stdout.startswith(f"Untagged: {name}:latest\n")
    remaining = docker.ok("images", "-a", "-q").split()
    assert not set(step_ids[1:]) & set(remaining)
    assert step_ids[0] in remaining


# Bad input.


def _assert_nothing_built(docker: Cli, name: str, res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode != 0, describe(res)
    assert "Successfully built" not in res.stdout, describe(res)
    assert not exists(docker, name)


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM busybox:latest\nFOO bar\n", r"dockerfile parse error (on )?line 2: unknown instruction: FOO"),
    ("RUN echo no from\nFROM busybox:latest\n", r"no build stage in current context"),
    ("# only a comment\n", r"file with no instructions"),
    ("FROM busybox:latest\nRUN <<EOF\necho never terminated\n", r"line [2-4]"),
    ("FROM --platform=nosuch/arch busybox:latest\n",
     r'failed to parse platform nosuch/arch: "nosuch/arch": unknown operating system or architecture'),
])  # fmt: skip
def test_bad_dockerfiles(dbuild: Cli, docker: Cli, workdir: Callable[..., Path], dockerfile: str,
                         message: str) -> None:
    ctx = workdir({"Dockerfile": dockerfile})
    name = tag()
    res = build(dbuild, ctx, "-t", name, "--force-rm")
    _assert_nothing_built(docker, name, res)
    assert re.search(message, res.stderr + res.stdout, re.I), describe(res)


def test_copy_of_missing_or_outside_path(dbuild: Cli, docker: Cli,
                                         workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nCOPY nothere /x\n"})
    name = tag()
    res = build(dbuild, ctx, "-t", name)
    _assert_nothing_built(docker, name, res)
    assert "COPY failed: file not found in build context or excluded by .dockerignore: " \
           "stat nothere: file does not exist" in res.stderr, describe(res)
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY ../etc/passwd /x\n")
    res = build(dbuild, ctx, "-t", name)
    _assert_nothing_built(docker, name, res)
    assert "COPY failed: forbidden path outside the build context: ../etc/passwd ()" in res.stderr, \
        describe(res)
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY *.nomatch /x/\n")
    res = build(dbuild, ctx, "-t", name)
    _assert_nothing_built(docker, name, res)
    assert "COPY failed:" in res.stderr and "no source files were specified" in res.stderr, \
        describe(res)


def test_failing_run_reports_the_exit_code_and_moves_no_tag(
        dbuild: Cli, docker: Cli, api: ApiClient, workdir: Callable[..., Path]) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\nLABEL v=1\n"})
    name = tag()
    build_ok(dbuild, ctx, "-t", name)
    good = image_id(docker, name)
    before = api.container_ids()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nLABEL v=2\nRUN echo before; exit 3\n")
    res = build(dbuild, ctx, "-t", name, "--force-rm")
    assert res.returncode == 3, describe(res)
    assert "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3" in res.stderr
    assert "before" in res.stdout
    assert "Successfully" not in res.stdout
    assert image_id(docker, name) == good  # the tag did not move
    assert api.container_ids() == before  # --force-rm: the failed container is gone too
    (ctx / "Dockerfile").write_text('FROM busybox:latest\nRUN ["/bin/sh", "-c", "exit 5"]\n')
    res = build(dbuild, ctx, "-t", name, "--force-rm")
    assert res.returncode == 5, describe(res)
    assert "The command '/bin/sh -c exit 5' returned a non-zero code: 5" in res.stderr
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN /no/such/binary\n")
    res = build(dbuild, ctx, "-t", name, "--force-rm")
    assert res.returncode == 127, describe(res)
    assert image_id(docker, name) == good


def test_missing_base_image_and_bad_tag(dbuild: Cli, docker: Cli,
                                        workdir: Callable[..., Path]) -> None:
    # on a loopback registry that is not there: nothing leaves the machine
    registry = f"127.0.0.1:{_free_port()}"
    ctx = workdir({"Dockerfile": f"FROM {registry}/berth-no-such-image:1\n"})
    res = build(dbuild, ctx, "-t", tag())
    assert res.returncode != 0, describe(res)
    assert registry in res.stderr, describe(res)  # the registry it could not reach
    (ctx / "Dockerfile").write_text("FROM busybox:latest\n")
    res = build(dbuild, ctx, "-t", "Bad:Name:x")
    assert res.returncode != 0, describe(res)
    assert "invalid" in res.stderr.lower(), describe(res)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_add_url_that_fails(dbuild: Cli, docker: Cli, workdir: Callable[..., Path]) -> None:
    served = workdir({"exists.txt": "x\n"})
    with http_server(served) as url:
        ctx = workdir({"Dockerfile": f"FROM busybox:latest\nADD {url}/missing.txt /m\n"})
        name = tag()
        res = build(dbuild, ctx, "-t", name)
    _assert_nothing_built(docker, name, res)
    assert "404" in res.stderr, describe(res)
    ctx = workdir({"Dockerfile": f"FROM busybox:latest\nADD http://127.0.0.1:{_free_port()}/x /x\n"})
    res = build(dbuild, ctx, "-t", name)
    _assert_nothing_built(docker, name, res)
