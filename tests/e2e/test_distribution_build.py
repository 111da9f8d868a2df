"""The builder pulls its FROM images (issue 16), and a daemon's registry-mirrors serve
docker.io pulls, with no internet: the mirror is Debian's docker-registry on loopback.

The classic builder (DOCKER_BUILDKIT=0, as the rest of the build tests) pulls a FROM
image that is not here, and pulls again with --pull; the pull's progress is part of
the build's output. A berthd whose daemon.json names a mirror takes `busybox:NAME`
from the mirror's `library/busybox`."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon, private_daemon
from helpers.images import write_load_archive
from helpers.registries import DistributionRegistry, Registry, leaked_blobs


@pytest.fixture(scope="module")
def plain_registry() -> Iterator[Registry]:
    with DistributionRegistry() as r:
        yield r


def _seed(reg: Registry, ref: str, tmp_path: Path, seed_value: int) -> str:
    """A runnable image put into the registry by skopeo; returns its manifest digest."""
    archive = write_load_archive(tmp_path / f"{seed_value}.tar", ref, [2000], seed=seed_value)
    digest_file = tmp_path / f"{seed_value}.digest"
    res = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile",
                          str(digest_file), f"docker-archive:{archive.path}", f"docker://{reg.host}/{ref}"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    return digest_file.read_text().strip()


def _build(docker: Cli, context: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(docker.env, DOCKER_BUILDKIT="0")
    return subprocess.run(["docker", "build", *args, str(context)], capture_output=True, text=True,
                          env=env, timeout=240)


@pytest.mark.timeout(300)
def test_build_pulls_a_missing_from_image_and_pull_fetches_it_again(
        docker: Cli, busybox: str, plain_registry: Registry, tmp_path: Path) -> None:
    repo = f"base/t{uuid.uuid4().hex[:10]}"
    base = f"{plain_registry.host}/{repo}:1"
    digest = _seed(plain_registry, f"{repo}:1", tmp_path, 41)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN echo built-on-pulled > /built\n")
    tag = f"built/t{uuid.uuid4().hex[:10]}:1"
    try:
        res = _build(docker, context, "-t", tag)
        assert res.returncode == 0, describe(res)
        assert f"Pulling from {repo}" in res.stdout
        assert f"Digest: {digest}" in res.stdout
        assert docker.ok("run", "--rm", tag, "cat", "/built").strip() == "built-on-pulled"
        assert docker.ok("image", "inspect", "-f", "{{json .RepoDigests}}", base).strip() == \
            json.dumps([f"{plain_registry.host}/{repo}@{digest}"])
        # the base is here now: a build without --pull does not ask the registry, one with it does
        res = _build(docker, context, "--no-cache", "-t", tag)
        assert res.returncode == 0 and "Pulling from" not in res.stdout, describe(res)
        res = _build(docker, context, "--pull", "-t", tag)
        assert res.returncode == 0, describe(res)
        assert f"Pulling from {repo}" in res.stdout and "Image is up to date" in res.stdout
    finally:
        docker("rmi", "-f", tag, base)


@pytest.mark.timeout(120)
def test_build_from_an_image_no_registry_has_fails_naming_it(docker: Cli, busybox: str,
                                                             plain_registry: Registry,
                                                             tmp_path: Path) -> None:
    missing = f"{plain_registry.host}/nothing/t{uuid.uuid4().hex[:10]}:1"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {missing}\n")
    res = _build(docker, context)
    assert res.returncode != 0
    assert "manifest unknown" in res.stderr + res.stdout
    assert docker("image", "inspect", missing).returncode != 0


@pytest.mark.timeout(300)
def test_registry_mirrors_serve_docker_hub_names(berthd: BerthDaemon, berth_root: Path, busybox_tar: Path,
                                                 plain_registry: Registry, tmp_path: Path) -> None:
    tag = f"m{uuid.uuid4().hex[:8]}"
    digest = _seed(plain_registry, f"library/busybox:{tag}", tmp_path, 42)
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"registry-mirrors": [f"http://{plain_registry.addr}"],
                                  "max-concurrent-downloads": 1}))
    # the session's short root: a shim's socket path must fit in AF_UNIX's 108 bytes
    with private_daemon(berth_root, berthd, busybox_tar, "--config-file", str(config), prefix="mir") as (_, cli):
        info = json.loads(cli.ok("info", "--format", "{{json .RegistryConfig}}"))
        assert info["Mirrors"] == [f"http://{plain_registry.addr}/"]
        out = cli.ok("pull", f"busybox:{tag}", timeout=180)
        assert f"Digest: {digest}" in out
        assert f"Status: Downloaded newer image for busybox:{tag}" in out
        assert cli.ok("run", "--rm", f"busybox:{tag}", "echo", "via the mirror").strip() == "via the mirror"
        assert cli.ok("image", "inspect", "-f", "{{json .RepoDigests}}", f"busybox:{tag}").strip() == \
            json.dumps([f"busybox@{digest}"])


@pytest.mark.timeout(300)
def test_concurrent_pulls_of_one_image_all_succeed_and_leave_one_copy(
        docker: Cli, berthd: BerthDaemon, busybox: str, plain_registry: Registry, tmp_path: Path) -> None:
    repo = f"same/t{uuid.uuid4().hex[:10]}"
    name = f"{plain_registry.host}/{repo}:1"
    digest = _seed(plain_registry, f"{repo}:1", tmp_path, 43)
    try:
        pulls = [subprocess.Popen(["docker", "pull", "-q", name], env=docker.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for proc in pulls:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            assert out.strip() == name
        assert docker.ok("image", "inspect", "-f", "{{json .RepoDigests}}", name).strip() == \
            json.dumps([f"{plain_registry.host}/{repo}@{digest}"])
        assert docker.ok("run", "--rm", name, "echo", "one copy").strip() == "one copy"
        assert leaked_blobs(berthd.data_root) == []
    finally:
        docker("rmi", "-f", name)
