"""Build contexts of `docker build` (classic builder) against berthd: a directory and its
.dockerignore (`**`, `!`, the Dockerfile and .dockerignore themselves), `-f` another
path or name, `-f -` (the Dockerfile on stdin), a tar or gzipped tar on stdin, a git
repository URL with `#ref:subdir`, a tarball or a Dockerfile at a plain http URL, and
the cache surviving a berthd restart. Everything served is served from 127.0.0.1.

The docker CLI clones git URLs and downloads http contexts itself (client-side) and
sends the daemon a tar; the same URLs given to the API as `remote=` are fetched by the
daemon, which the raw-API tests cover.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.api import ApiClient
from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon

from . import test_build
from .test_build import (
    build,
    build_ok,
    built_id,
    cache_hits,
    exists,
    http_server,
    image_id,
    inspect,
    run_out,
    steps,
    tag,
    tar_bytes,
)

pytestmark = pytest.mark.usefixtures("busybox")

# test_build.py's fixtures, visible here
build_env = test_build.build_env
dbuild = test_build.dbuild
workdir = test_build.workdir
image_hygiene = test_build.image_hygiene

Workdir = Callable[..., Path]


def build_stdin(env: dict[str, str], data: bytes, *args: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """docker build ARGS - with `data` (a tar, maybe gzipped, or a Dockerfile) on stdin."""
    raw = subprocess.run(["docker", "build", *args, "-"], input=data, capture_output=True,
                         env=env, timeout=timeout)
    return subprocess.CompletedProcess(raw.args, raw.returncode,
                                       raw.stdout.decode(errors="replace"),
                                       raw.stderr.decode(errors="replace"))


# .dockerignore

IGNORE_TREE = {
    "Dockerfile": "FROM busybox:latest\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort\n",
    ".dockerignore": "\n".join([
        "# comments and blank lines are skipped",
        "",
        "**/*.log",
        "!keep.log",
        "secret/",
        "tmp*",
        "docs/**/*.md",
        "!docs/important.md",
        "/anchored.txt",
        "./dotslash.txt",
        "Dockerfile",
        ".dockerignore",
    ]) + "\n",
    "app.sh": "echo app\n",
    "a.log": "x\n",
    "keep.log": "kept by !\n",
    "deep/er/b.log": "x\n",
    "deep/er/b.txt": "kept\n",
    "secret/key": "x\n",
    "tmpfile": "x\n",
    "tmpdir/f": "x\n",
    "docs/a.md": "x\n",
    "docs/x/y/z.md": "x\n",
    "docs/important.md": "kept by !\n",
    "docs/readme.txt": "kept\n",
    "anchored.txt": "x\n",
    "sub/anchored.txt": "kept: the pattern is anchored at the root\n",
    "dotslash.txt": "x\n",
}
IGNORE_KEPT = ["./app.sh", "./deep/er/b.txt", "./docs/important.md", "./docs/readme.txt",
               "./keep.log", "./sub/anchored.txt"]


def _listing(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("./")]


def test_dockerignore_patterns_with_docker_cli(dbuild: Cli, docker: Cli,
                                               workdir: Workdir) -> None:
    ctx = workdir(IGNORE_TREE)
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name)
    # The Dockerfile and .dockerignore are sent (the daemon needs them) but, since
    # .dockerignore lists them, the daemon takes them out of the context: not in /ctx.
    assert _listing(out) == IGNORE_KEPT, out
    assert run_out(docker, name, "cat", "/ctx/keep.log") == "kept by !\n"


def test_dockerignore_patterns_with_berth_cli(berth: Cli, docker: Cli, build_env: dict[str, str],
                                              workdir: Workdir) -> None:
    ctx = workdir(IGNORE_TREE)
    name = tag()
    res = Cli(berth.program, build_env)("build", "-t", name, str(ctx), timeout=120)
    assert res.returncode == 0, describe(res)
    assert _listing(res.stdout) == IGNORE_KEPT, res.stdout
    assert f"Successfully tagged {name}:latest" in res.stdout


def test_dockerignore_listing_dockerfile_in_a_stdin_tar(docker: Cli, build_env: dict[str, str],
                                                        ) -> None:
    """A tar context's .dockerignore is read by the daemon: it still finds the Dockerfile,
    then removes the Dockerfile and .dockerignore from the context when they are listed."""
    data = tar_bytes({
        "Dockerfile": "FROM busybox:latest\nCOPY . /ctx\n",
        ".dockerignore": "Dockerfile\n.dockerignore\n",
        "kept.txt": "kept\n",
    })
    name = tag()
    res = build_stdin(build_env, data, "-t", name)
    assert res.returncode == 0, describe(res)
    assert run_out(docker, name, "ls", "-A", "/ctx").split() == ["kept.txt"]


def test_malformed_dockerignore(dbuild: Cli, berth: Cli, docker: Cli, build_env: dict[str, str],
                                workdir: Workdir) -> None:
    ctx = workdir({"Dockerfile": "FROM busybox:latest\n", ".dockerignore": "ok.txt\n[\n",
                   "ok.txt": "x\n"})
    name = tag()
    res = build(dbuild, ctx, "-t", name)
    assert res.returncode != 0, describe(res)
    assert "syntax error in pattern" in res.stderr, describe(res)
    assert not exists(docker, name)
    res = Cli(berth.program, build_env)("build", "-t", name, str(ctx), timeout=120)
    assert res.returncode != 0, describe(res)
    assert "pattern" in res.stderr, describe(res)
    assert not exists(docker, name)


# -f


def test_dockerfile_with_another_name_and_path(dbuild: Cli, docker: Cli,
                                               workdir: Workdir) -> None:
    ctx = workdir({"data.txt": "data\n",
                   "build/Other.dockerfile": "FROM busybox:latest\nCOPY data.txt /\nLABEL f=sub\n"})
    name = tag()
    build_ok(dbuild, ctx, "-t", name, "-f", str(ctx / "build" / "Other.dockerfile"))
    assert inspect(docker, name)["Config"]["Labels"] == {"f": "sub"}
    assert run_out(docker, name, "cat", "/data.txt") == "data\n"
    # a Dockerfile outside the context directory
    elsewhere = workdir({"x.df": "FROM busybox:latest\nCOPY data.txt /d\nLABEL f=outside\n"})
    other = tag()
    build_ok(dbuild, ctx, "-t", other, "--file", str(elsewhere / "x.df"))
    assert inspect(docker, other)["Config"]["Labels"] == {"f": "outside"}
    assert run_out(docker, other, "cat", "/d") == "data\n"
    # a Dockerfile that is missing: an error, nothing built
    res = build(dbuild, ctx, "-f", "nope.dockerfile")
    assert res.returncode != 0, describe(res)
    assert "nope.dockerfile" in res.stderr, describe(res)


def test_dockerfile_on_stdin_with_a_directory_context(dbuild: Cli, docker: Cli,
                                                      workdir: Workdir) -> None:
    ctx = workdir({"data.txt": "from the context\n",
                   "Dockerfile": "FROM busybox:latest\nLABEL which=on-disk\n"})
    name = tag()
    out = build_ok(dbuild, ctx, "-t", name, "-f", "-",
                   input="FROM busybox:latest\nCOPY data.txt /\nLABEL which=stdin\n")
    assert [s[2] for s in steps(out)][1] == "COPY data.txt /"
    assert inspect(docker, name)["Config"]["Labels"] == {"which": "stdin"}
    assert run_out(docker, name, "cat", "/data.txt") == "from the context\n"


def test_dockerfile_alone_on_stdin_has_an_empty_context(dbuild: Cli, docker: Cli) -> None:
    name = tag()
    out = build_ok(dbuild, "-", "-t", name, input="FROM busybox:latest\nRUN echo hi > /hi\n")
    assert run_out(docker, name, "cat", "/hi") == "hi\n"
    assert f"Successfully tagged {name}:latest" in out
    res = build(dbuild, "-", "-t", name, input="FROM busybox:latest\nCOPY x /x\n")
    assert res.returncode != 0, describe(res)
    assert "COPY failed" in res.stderr, describe(res)


# Tars on stdin.

TAR_CONTEXT = {
    "Dockerfile": "FROM busybox:latest\nCOPY src/ /var/node/\nWORKDIR /var/node\n"
                  "CMD [\"sh\", \"./www.sh\"]\n",
    "src/www.sh": "echo served from a tar\n",
    "alt/Dockerfile.alt": "FROM busybox:latest\nCOPY src/www.sh /w\nLABEL alt=1\n",
}


@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
def test_tar_context_on_stdin(docker: Cli, build_env: dict[str, str], gzip: bool) -> None:
    """docker image build -t NAME - < weather-app.tar.gz (course 8.1)."""
    data = tar_bytes(TAR_CONTEXT, gzip=gzip)
    name = tag()
    res = build_stdin(build_env, data, "-t", name)
    assert res.returncode == 0, describe(res)
    assert run_out(docker, name) == "served from a tar\n"
    alt = tag()
    res = build_stdin(build_env, data, "-t", alt, "-f", "alt/Dockerfile.alt")
    assert res.returncode == 0, describe(res)
    assert inspect(docker, alt)["Config"]["Labels"] == {"alt": "1"}
    # the same bytes again: fully cached, same image
    again = build_stdin(build_env, data, "-t", name)
    assert again.returncode == 0, describe(again)
    assert cache_hits(again.stdout) == 3, again.stdout
    assert built_id(again.stdout) == image_id(docker, name)[7:19]


def test_garbage_on_stdin_is_an_error(docker: Cli, build_env: dict[str, str]) -> None:
    name = tag()
    res = build_stdin(build_env, b"\x1f\x8b\x08\x00 not really gzip" + b"\0" * 600, "-t", name)
    assert res.returncode != 0, describe(res)
    assert not exists(docker, name)


# git


@pytest.fixture(scope="session")
def git() -> str:
    """git, installed with apt-get when missing (the docker CLI clones git contexts
    client-side with it, and berthd does for `remote=`)."""
    found = shutil.which("git")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "git"], capture_output=True, timeout=300)
        found = shutil.which("git")
    if found is None:
        pytest.fail("git is not installed and `apt-get install -y git` did not install it",
                    pytrace=False)
    return found


@pytest.fixture
def git_repo(git: str, workdir: Workdir) -> Iterator[str]:
    """A bare repository with a branch `remote-build` (app in subdir app/, a Dockerfile
    at the top) and `main`, served over dumb http from 127.0.0.1; yields the repo URL."""
    top = workdir()
    bare = top / "srv" / "weather-app.git"
    work = workdir({
        "Dockerfile": "FROM busybox:latest\nCOPY app/www.sh /www.sh\nLABEL where=top\n",
        "app/Dockerfile": "FROM busybox:latest\nCOPY www.sh /www.sh\nLABEL where=subdir\n"
                          "CMD [\"sh\", \"/www.sh\"]\n",
        "app/www.sh": "echo from git\n",
    })
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "HOME": str(top), "PATH": "/usr/local/bin:/usr/bin:/bin"}

    def g(*args: str, cwd: Path) -> None:
        subprocess.run([git, *args], cwd=cwd, env=env, check=True, capture_output=True,
                       timeout=60)

    bare.parent.mkdir(parents=True)
    g("init", "--bare", "-q", str(bare), cwd=top)
    g("init", "-q", "-b", "main", cwd=work)
    (work / "main.txt").write_text("main\n")
    g("add", "main.txt", cwd=work)
    g("commit", "-q", "-m", "main", cwd=work)
    g("checkout", "-q", "-b", "remote-build", cwd=work)
    g("add", ".", cwd=work)
    g("commit", "-q", "-m", "remote build", cwd=work)
    g("push", "-q", str(bare), "main", "remote-build", cwd=work)
    g("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)
    g("update-server-info", cwd=bare)  # for the dumb http protocol
    with http_server(top / "srv") as url:
        yield f"{url}/weather-app.git"


def test_git_context_with_ref_and_subdir(dbuild: Cli, docker: Cli, git_repo: str) -> None:
    name = tag()
    build_ok(dbuild, f"{git_repo}#remote-build:app", "-t", name)
    assert inspect(docker, name)["Config"]["Labels"] == {"where": "subdir"}
    assert run_out(docker, name) == "from git\n"
    top = tag()
    build_ok(dbuild, f"{git_repo}#remote-build", "-t", top)
    assert inspect(docker, top)["Config"]["Labels"] == {"where": "top"}
    # main has no Dockerfile
    res = build(dbuild, git_repo, "-t", tag())
    assert res.returncode != 0, describe(res)


def test_git_context_fetched_by_the_daemon(api: ApiClient, docker: Cli, git_repo: str) -> None:
    name = tag()
    remote = urllib.parse.quote(f"{git_repo}#remote-build:app", safe="")
    resp = api.post(f"/build?t={name}&remote={remote}", b"", timeout=120)
    assert resp.status == 200, resp.body
    assert b'"error"' not in resp.body, resp.body
    assert inspect(docker, name)["Config"]["Labels"] == {"where": "subdir"}


# Plain http URLs.


def test_http_tarball_context(dbuild: Cli, docker: Cli, api: ApiClient,
                              workdir: Workdir) -> None:
    served = workdir()
    (served / "ctx.tar.gz").write_bytes(tar_bytes(TAR_CONTEXT, gzip=True))
    (served / "Dockerfile.txt").write_text("FROM busybox:latest\nLABEL from=url\n")
    with http_server(served) as url:
        name = tag()
        build_ok(dbuild, f"{url}/ctx.tar.gz", "-t", name)  # downloaded by the CLI
        assert run_out(docker, name) == "served from a tar\n"
        by_daemon = tag()
        remote = urllib.parse.quote(f"{url}/ctx.tar.gz", safe="")
        resp = api.post(f"/build?t={by_daemon}&remote={remote}", b"", timeout=120)
        assert resp.status == 200 and b'"error"' not in resp.body, resp.body
        assert run_out(docker, by_daemon) == "served from a tar\n"
        # a URL to a plain-text Dockerfile: that is the Dockerfile, with an empty context
        text = tag()
        remote = urllib.parse.quote(f"{url}/Dockerfile.txt", safe="")
        resp = api.post(f"/build?t={text}&remote={remote}", b"", timeout=120)
        assert resp.status == 200 and b'"error"' not in resp.body, resp.body
        assert inspect(docker, text)["Config"]["Labels"] == {"from": "url"}
        # a URL that is not there
        missing = tag()
        remote = urllib.parse.quote(f"{url}/missing.tar", safe="")
        resp = api.post(f"/build?t={missing}&remote={remote}", b"", timeout=120)
        assert resp.status != 200 or b'"error"' in resp.body, resp.body
        assert not exists(docker, missing)


# The cache across a restart.


@pytest.mark.timeout(180)
def test_cache_survives_a_berthd_restart(berth_root: Path, berthd: BerthDaemon,
                                         busybox_tar: Path, workdir: Workdir) -> None:
    ctx = workdir({"a.txt": "a\n", "Dockerfile": "FROM busybox:latest\nCOPY a.txt /\n"
                   "RUN cat /a.txt > /b\nENV X=1\nCMD [\"cat\", \"/b\"]\n"})
    with private_daemon(berth_root, berthd, busybox_tar) as (daemon, plain):
        docker = Cli("docker", {**plain.env, "DOCKER_BUILDKIT": "0"})
        first = build_ok(docker, ctx, "-t", "cached:1")
        first_id = image_id(docker, "cached:1")
        assert cache_hits(first) == 0
        assert daemon.stop() == 0
        daemon.start()
        again = build_ok(docker, ctx, "-t", "cached:1")
        assert cache_hits(again) == 4, again
        assert image_id(docker, "cached:1") == first_id
        assert run_out(docker, "cached:1") == "a\n"
        docker.ok("rmi", "cached:1")
