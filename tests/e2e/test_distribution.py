"""Distribution through the real docker CLI, docker-py, berth and skopeo (issue 16):
login, push, pull, run against real registries on loopback (berth-registry and
Debian's docker-registry), multi-platform indexes, pull options, progress streams,
events and GET /distribution/{name}/json.

The fixtures here (`engine`, `registry`, `plain_registry`, `seed`) are shared with
test_distribution_faults.py. Every test runs against berthd; with BERTH_TEST_ENGINE=
dockerd they run against a private dockerd 20.10 instead (the oracle), and with
BERTH_TEST_REGISTRY=distribution Debian's registry stands in for berth-registry.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.dockerd import Engine, oracle_mode, running_dockerd
from helpers.images import (
    BUSYBOX_ROOTFS,
    HOST_ARCH,
    OTHER_ARCH,
    write_load_archive,
    write_oci_image,
    write_oci_index,
)
from helpers.registries import DistributionRegistry, Registry, berth_registry_class

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


# Fixtures, shared with test_distribution_faults.py.


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The daemon under test, with busybox:latest: the session berthd, or a dockerd."""
    if oracle_mode():
        with running_dockerd() as d:
            d.cli.ok("import", "--change", 'CMD ["sh"]', str(BUSYBOX_ROOTFS), "busybox:latest",
                     timeout=120)
            yield Engine("dockerd", d.cli, d.host)
        return
    daemon = request.getfixturevalue("berthd")
    request.getfixturevalue("busybox")
    yield Engine("berthd", request.getfixturevalue("docker"), daemon.host, daemon.data_root,
                 request.getfixturevalue("berth"))


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """berth-registry with htpasswd auth, shared by a module's tests."""
    with berth_registry_class()(auth=True) as r:
        yield r


@pytest.fixture(scope="module")
def plain_registry() -> Iterator[Registry]:
    """Debian's docker-registry without auth, shared by a module's tests."""
    with DistributionRegistry() as r:
        yield r


@pytest.fixture
def repo() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cleanup_images(engine: Engine) -> Iterator[list[str]]:
    """Names (or IDs) to `rmi -f` in the engine after the test."""
    names: list[str] = []
    yield names
    for name in names:
        engine.cli("rmi", "-f", name, timeout=60)


def skopeo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)


def skopeo_dest(reg: Registry) -> list[str]:
    args = ["--dest-tls-verify=false"]
    if reg.credentials:
        args.append(f"--dest-creds={reg.credentials.username}:{reg.credentials.password}")
    return args


def skopeo_src(reg: Registry) -> list[str]:
    args = ["--src-tls-verify=false"]
    if reg.credentials:
        args.append(f"--src-creds={reg.credentials.username}:{reg.credentials.password}")
    return args


def skopeo_creds(reg: Registry) -> list[str]:
    args = ["--tls-verify=false"]
    if reg.credentials:
        args.append(f"--creds={reg.credentials.username}:{reg.credentials.password}")
    return args


@pytest.fixture
def seed(tmp_path: Path) -> Callable[..., str]:
    """seed(registry, "repo:tag", layer_sizes=[...]) puts a runnable image (busybox plus
    data layers) into the registry with skopeo, without any engine; returns the
    manifest digest."""
    count = 0

    def put(reg: Registry, ref: str, layer_sizes: list[int] | None = None,
            seed_value: int = 1) -> str:
        nonlocal count
        count += 1
        archive = write_load_archive(tmp_path / f"seed{count}.tar", ref, layer_sizes or [1000],
                                     seed=seed_value)
        digest_file = tmp_path / f"seed{count}.digest"
        res = skopeo("copy", "--quiet", *skopeo_dest(reg), "--digestfile", str(digest_file),
                     f"docker-archive:{archive.path}", f"docker://{reg.host}/{ref}")
        assert res.returncode == 0, f"skopeo: {res.stderr}"
        return digest_file.read_text().strip()

    return put


def login(cli: Cli, reg: Registry) -> None:
    assert reg.credentials is not None
    out = cli.ok("login", reg.host, "-u", reg.credentials.username, "--password-stdin",
                 input=reg.credentials.password)
    assert "Login Succeeded" in out


def pushed_digest(output: str, tag: str) -> str:
    """The digest in `docker push`'s last line: "TAG: digest: sha256:... size: N"."""
    m = re.search(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$",
                  output, re.M)
    assert m, f"no digest line for {tag} in push output:\n{output}"
    return m.group(1)


def repo_digests(cli: Cli, ref: str) -> list[str]:
    return list(json.loads(cli.ok("image", "inspect", "-f", "{{json .RepoDigests}}", ref)))


def image_listed(cli: Cli, repository: str) -> bool:
    out = cli.ok("images", "--format", "{{.Repository}}")
    return repository in out.split()


def assert_pull_fails_cleanly(cli: Cli, ref: str, *wanted: str, timeout: float = 150) -> str:
    """The pull exits non-zero; stderr names all of `wanted`; the image is not there."""
    try:
        res = cli("pull", ref, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        pytest.fail(f"`docker pull {ref}` did not end in {timeout} s; its output: {out!r} "
                    "(a daemon that answers 401 makes the docker CLI prompt for a login)",
                    pytrace=False)
    assert res.returncode != 0, describe(res)
    for text in wanted:
        assert text in res.stderr, f"{text!r} not in the error\n{describe(res)}"
    assert not image_listed(cli, ref.rsplit(":", 1)[0]), cli.ok("images")
    inspect = cli("image", "inspect", ref)
    assert inspect.returncode != 0 and "No such image" in inspect.stderr, describe(inspect)
    return res.stderr


# Must show 1: the course's 8.4 flow.


@pytest.mark.timeout(240)
def test_login_tag_push_rmi_pull_run_with_the_docker_cli(
        engine: Engine, registry: Registry, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    cli = engine.cli_with_config(tmp_path / "docker-config")
    name = f"{registry.host}/course/{repo}:v1"
    cleanup_images.append(name)
    login(cli, registry)
    config = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert registry.host in config["auths"]
    cli.ok("tag", "busybox:latest", name)
    push = cli.ok("push", name, timeout=180)
    digest = pushed_digest(push, "v1")
    assert repo_digests(cli, name) == [f"{registry.host}/course/{repo}@{digest}"]
    untagged = cli.ok("rmi", name)
    assert f"Untagged: {name}" in untagged
    assert not image_listed(cli, f"{registry.host}/course/{repo}")
    pull = cli.ok("pull", name, timeout=180)
    assert f"Digest: {digest}" in pull
    assert f"Status: Downloaded newer image for {name}" in pull
    assert pull.strip().splitlines()[-1] == name
    assert cli.ok("run", "--rm", name, "echo", "pulled and running").strip() == \
        "pulled and running"
    rows = cli.ok("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    assert f"{registry.host}/course/{repo} v1 {digest}" in rows.splitlines()
    assert repo_digests(cli, name) == [f"{registry.host}/course/{repo}@{digest}"]
    out = cli.ok("logout", registry.host)
    assert f"Removing login credentials for {registry.host}" in out
    config = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert registry.host not in config.get("auths", {})
    cli.ok("rmi", name)
    err = assert_pull_fails_cleanly(cli, name)
    assert "no basic auth credentials" in err or "unauthorized" in err.lower(), err


@pytest.mark.timeout(240)
def test_login_push_pull_with_berth(engine: Engine, registry: Registry, repo: str,
                                    tmp_path: Path, cleanup_images: list[str]) -> None:
    berth = engine.berth_with_config(tmp_path / "berth-config")
    if berth is None:
        pytest.skip("the berth CLI drives berthd only")
    assert registry.credentials is not None
    name = f"{registry.host}/course/{repo}:v2"
    cleanup_images.append(name)
    res = berth("login", registry.host, "-u", registry.credentials.username,
                "--password-stdin", input=registry.credentials.password)
    assert res.returncode == 0 and "Login Succeeded" in res.stdout, describe(res)
    berth.ok("tag", "busybox:latest", name)
    digest = pushed_digest(berth.ok("push", name, timeout=180), "v2")
    berth.ok("rmi", name)
    pull = berth.ok("pull", name, timeout=180)
    assert digest in pull
    assert repo_digests(engine.cli, name) == [f"{registry.host}/course/{repo}@{digest}"]
    assert berth.ok("run", "--rm", name, "echo", "ok").strip() == "ok"
    assert f"Removing login credentials for {registry.host}" in berth.ok("logout", registry.host)


@pytest.mark.timeout(300)
def test_dockerd_pushes_to_berth_registry_and_the_engine_pulls_and_runs(
        engine: Engine, registry: Registry, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    name = f"{registry.host}/from-dockerd/{repo}:1"
    cleanup_images.append(name)
    archive = write_load_archive(tmp_path / "img.tar", name, [200_000, 50_000], seed=11)
    with running_dockerd() as peer:
        assert "Loaded image: " + name in peer.cli.ok("load", "-i", str(archive.path))
        login(peer.cli, registry)
        res = peer.cli("push", name, timeout=180)
        assert res.returncode == 0, describe(res) + peer.log_tail()
        digest = pushed_digest(res.stdout, "1")
    cli = engine.cli_with_config(tmp_path / "cfg")
    login(cli, registry)
    pull = cli.ok("pull", name, timeout=180)
    assert f"Digest: {digest}" in pull
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", name).strip() == archive.image_id
    assert cli.ok("run", "--rm", name, "sh", "-c", "wc -c < /data/layer1.bin").strip() == "50000"


@pytest.mark.timeout(300)
def test_engine_pushes_to_docker_registry_and_dockerd_pulls_and_runs(
        engine: Engine, plain_registry: Registry, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    name = f"{plain_registry.host}/from-engine/{repo}:1"
    cleanup_images.append(name)
    archive = write_load_archive(tmp_path / "img.tar", name, [300_000], seed=12)
    assert "Loaded image: " + name in engine.cli.ok("load", "-i", str(archive.path))
    digest = pushed_digest(engine.cli.ok("push", name, timeout=180), "1")
    with running_dockerd() as peer:
        res = peer.cli("pull", name, timeout=180)
        assert res.returncode == 0, describe(res) + peer.log_tail()
        assert f"Digest: {digest}" in res.stdout
        assert peer.cli.ok("image", "inspect", "-f", "{{.Id}}", name).strip() == archive.image_id
        res = peer.cli("run", "--rm", name, "sh", "-c", "wc -c < /data/layer0.bin", timeout=120)
        assert res.returncode == 0, describe(res) + peer.log_tail()
        assert res.stdout.strip() == "300000"


# Must show 2: skopeo into and out of berth-registry, and the same digest everywhere.


@pytest.mark.timeout(300)
def test_skopeo_copies_a_multi_layer_image_in_and_out_and_the_digests_agree(
        engine: Engine, registry: Registry, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    image = write_oci_image(tmp_path / "in", "v1", [400_000, 300_000, 200_000, 100_000], seed=21)
    ref = f"{registry.host}/skopeo/{repo}:v1"
    cleanup_images.append(ref)
    res = skopeo("copy", *skopeo_dest(registry), image.ref, f"docker://{ref}")
    assert res.returncode == 0, res.stderr
    res = skopeo("copy", *skopeo_src(registry), f"docker://{ref}", f"oci:{tmp_path / 'out'}:v1")
    assert res.returncode == 0, res.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    res = skopeo("inspect", *skopeo_creds(registry), "--format", "{{.Digest}}", f"docker://{ref}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == image.digest
    res = skopeo("inspect", *skopeo_creds(registry), f"docker://{ref}")
    assert len(json.loads(res.stdout)["Layers"]) == 5
    cli = engine.cli_with_config(tmp_path / "cfg")
    login(cli, registry)
    pull = cli.ok("pull", ref, timeout=180)
    assert f"Digest: {image.digest}" in pull
    assert repo_digests(cli, ref) == [f"{registry.host}/skopeo/{repo}@{image.digest}"]
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", ref).strip() == image.image_ids[HOST_ARCH]
    assert cli.ok("run", "--rm", ref, "sh", "-c", "wc -c < /data/layer2.bin").strip() == "200000"


# Must show 3: an index of two platforms.


@pytest.mark.timeout(300)
def test_pull_of_an_index_picks_the_host_platform_and_platform_picks_the_other(
        engine: Engine, plain_registry: Registry, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    index = write_oci_index(tmp_path / "idx", "multi")
    ref = f"{plain_registry.host}/multi/{repo}:multi"
    cleanup_images.append(ref)
    res = skopeo("copy", "--all", *skopeo_dest(plain_registry), index.ref, f"docker://{ref}")
    assert res.returncode == 0, res.stderr
    cli = engine.cli
    pull = cli.ok("pull", ref, timeout=180)
    assert f"Digest: {index.digest}" in pull  # the index's digest, as Docker shows it
    assert cli.ok("image", "inspect", "-f", "{{.Architecture}}", ref).strip() == HOST_ARCH
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", ref).strip() == index.image_ids[HOST_ARCH]
    assert f"{plain_registry.host}/multi/{repo}@{index.digest}" in repo_digests(cli, ref)
    assert cli.ok("run", "--rm", ref, "cat", "/platform").strip() == HOST_ARCH
    pull = cli.ok("pull", "--platform", f"linux/{OTHER_ARCH}", ref, timeout=180)
    assert f"Digest: {index.digest}" in pull
    assert cli.ok("image", "inspect", "-f", "{{.Architecture}}", ref).strip() == OTHER_ARCH
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", ref).strip() == index.image_ids[OTHER_ARCH]
    cleanup_images.append(index.image_ids[HOST_ARCH])  # untagged by the second pull


# Pull options and the pull/push surface of the API.


@pytest.mark.timeout(240)
def test_run_and_create_pull_a_missing_image_as_told(
        engine: Engine, plain_registry: Registry, repo: str, seed: Callable[..., str],
        cleanup_images: list[str]) -> None:
    ref = f"{plain_registry.host}/runpull/{repo}:1"
    cleanup_images.append(ref)
    seed(plain_registry, f"runpull/{repo}:1")
    cli = engine.cli
    res = cli("run", "--rm", "--pull", "never", ref, "true")
    assert res.returncode != 0
    assert "No such image" in res.stderr and ref in res.stderr, describe(res)
    res = cli("run", "--rm", ref, "echo", "ran")  # --pull missing is the default
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == "ran"
    assert f"Unable to find image '{ref}' locally" in res.stderr
    assert "Status: Downloaded newer image for " + ref in res.stderr
    res = cli("run", "--rm", "--pull", "missing", ref, "echo", "again")
    assert res.stdout.strip() == "again" and "Unable to find image" not in res.stderr
    res = cli("run", "--rm", "--pull", "always", ref, "echo", "always")
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == "always"
    assert f"Status: Image is up to date for {ref}" in res.stderr
    cli.ok("rmi", ref)
    res = cli("create", ref, "true")
    assert res.returncode == 0, describe(res)
    assert f"Unable to find image '{ref}' locally" in res.stderr
    cli.ok("rm", res.stdout.strip())
    assert image_listed(cli, f"{plain_registry.host}/runpull/{repo}")


@pytest.mark.timeout(240)
def test_pull_quiet_all_tags_by_digest_and_rmi_by_digest(
        engine: Engine, plain_registry: Registry, repo: str, seed: Callable[..., str],
        cleanup_images: list[str]) -> None:
    base = f"{plain_registry.host}/tags/{repo}"
    d1 = seed(plain_registry, f"tags/{repo}:one", seed_value=31)
    d2 = seed(plain_registry, f"tags/{repo}:two", seed_value=32)
    cleanup_images.extend([f"{base}:one", f"{base}:two", f"{base}@{d1}", f"{base}@{d2}"])
    cli = engine.cli
    assert cli.ok("pull", "-q", f"{base}:one", timeout=120) == f"{base}:one\n"
    cli.ok("rmi", f"{base}:one")
    out = cli.ok("pull", "--all-tags", base, timeout=180)
    assert f"Digest: {d1}" in out and f"Digest: {d2}" in out
    tags = cli.ok("images", "--format", "{{.Tag}}", base).split()
    assert sorted(tags) == ["one", "two"]
    cli.ok("rmi", f"{base}:one", f"{base}:two")
    out = cli.ok("pull", f"{base}@{d2}", timeout=120)
    assert f"Digest: {d2}" in out
    rows = cli.ok("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", base)
    assert rows.splitlines() == [f"{base} <none> {d2}"]
    assert repo_digests(cli, f"{base}@{d2}") == [f"{base}@{d2}"]
    assert cli.ok("run", "--rm", f"{base}@{d2}", "echo", "by digest").strip() == "by digest"
    out = cli.ok("rmi", f"{base}@{d2}")
    assert f"Untagged: {base}@{d2}" in out and "Deleted: sha256:" in out
    res = cli("image", "inspect", f"{base}@{d2}")
    assert res.returncode != 0 and "No such image" in res.stderr


@pytest.mark.timeout(240)
def test_docker_py_pull_and_push_progress_and_distribution_inspect(
        engine: Engine, plain_registry: Registry, repo: str, seed: Callable[..., str],
        cleanup_images: list[str]) -> None:
    import docker as docker_py

    base = f"{plain_registry.host}/py/{repo}"
    digest = seed(plain_registry, f"py/{repo}:src", layer_sizes=[500_000], seed_value=41)
    cleanup_images.extend([f"{base}:src", f"{base}:copy"])
    client = docker_py.DockerClient(base_url=engine.host, timeout=120)
    try:
        dist = client.api.inspect_distribution(f"{base}:src")
        assert dist["Descriptor"]["digest"] == digest
        assert dist["Descriptor"]["mediaType"] == \
            "application/vnd.docker.distribution.manifest.v2+json"
        assert dist["Descriptor"]["size"] > 0
        assert {"architecture": HOST_ARCH, "os": "linux"}.items() <= dist["Platforms"][0].items()
        messages = list(client.api.pull(base, tag="src", stream=True, decode=True))
        assert messages[0] == {"status": "Pulling from " + f"py/{repo}", "id": "src"} or \
            messages[0]["status"].startswith("Pulling from")
        layer_msgs = [m for m in messages if "id" in m and m.get("status") not in
                      (None, f"Pulling from py/{repo}")]
        statuses = {m["status"] for m in layer_msgs}
        assert {"Pulling fs layer", "Download complete", "Pull complete"} <= statuses, statuses
        downloading = [m for m in layer_msgs if m["status"] == "Downloading"]
        assert downloading, messages
        for m in downloading:
            assert set(m["progressDetail"]) == {"current", "total"}
            assert "progress" in m and len(m["id"]) == 12
        assert {"status": f"Digest: {digest}"} in messages
        assert {"status": f"Status: Downloaded newer image for {base}:src"} in messages
        image = client.images.pull(base, tag="src")
        assert f"{base}@{digest}" in image.attrs["RepoDigests"]
        assert image.tag(base, "copy")
        pushes = list(client.api.push(base, tag="copy", stream=True, decode=True))
        assert pushes[0]["status"].startswith("The push refers to repository [")
        assert any(m.get("status") == "Layer already exists" for m in pushes), pushes
        aux = [m["aux"] for m in pushes if "aux" in m]
        assert len(aux) == 1 and set(aux[0]) == {"Tag", "Digest", "Size"}, pushes
        assert aux[0]["Tag"] == "copy" and DIGEST.fullmatch(aux[0]["Digest"])
        res = skopeo("inspect", *skopeo_creds(plain_registry), "--format", "{{.Digest}}",
                     f"docker://{base}:copy")
        assert res.stdout.strip() == aux[0]["Digest"]  # the engine's own manifest, as pushed
        assert {"status": f"copy: digest: {aux[0]['Digest']} size: {aux[0]['Size']}"} in pushes
        for m in pushes:
            if "id" in m:
                assert m["status"] in {"Preparing", "Waiting", "Pushing", "Pushed",
                                       "Layer already exists", "Mounted from"} or \
                    m["status"].startswith("Mounted from "), m
    finally:
        client.close()


@pytest.mark.timeout(240)
def test_pull_and_push_are_image_events(
        engine: Engine, plain_registry: Registry, repo: str, seed: Callable[..., str],
        cleanup_images: list[str]) -> None:
    ref = f"{plain_registry.host}/events/{repo}:1"
    cleanup_images.append(ref)
    seed(plain_registry, f"events/{repo}:1")
    since = str(int(time.time()) - 1)
    engine.cli.ok("pull", ref, timeout=120)
    engine.cli.ok("push", ref, timeout=120)
    until = str(int(time.time()) + 1)
    out = engine.cli.ok("events", "--since", since, "--until", until, "--filter", "type=image",
                        "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
    lines = out.splitlines()
    repository = ref.rsplit(":", 1)[0]
    # Docker: the actor is the reference as given, its "name" attribute the repository
    assert f"image pull {ref} {repository}" in lines, "\n".join(lines)
    assert f"image push {ref} {repository}" in lines, "\n".join(lines)


# TLS, read-only registries and credentials through the API.


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["berth", "distribution"])
def test_a_registry_over_tls_with_auth_serves_skopeo_and_the_engine(
        engine: Engine, kind: str, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    cls = berth_registry_class() if kind == "berth" else DistributionRegistry
    with cls(auth=True, tls=True) as reg:
        assert reg.credentials is not None and reg.ca_cert is not None
        creds = f"{reg.credentials.username}:{reg.credentials.password}"
        certs = reg.certs_d(tmp_path / "certs.d")
        image = write_oci_image(tmp_path / "in", "v1", [100_000], seed=51)
        ref = f"{reg.host}/tls/{repo}:v1"
        cleanup_images.append(ref)
        res = skopeo("copy", f"--dest-cert-dir={certs}", f"--dest-creds={creds}", image.ref,
                     f"docker://{ref}")
        assert res.returncode == 0, res.stderr
        res = skopeo("inspect", f"--cert-dir={certs}", f"--creds={creds}", "--format",
                     "{{.Digest}}", f"docker://{ref}")
        assert res.returncode == 0 and res.stdout.strip() == image.digest, res.stderr
        # without the CA the certificate is not trusted: the registry did present it
        res = skopeo("inspect", f"--creds={creds}", f"docker://{ref}")
        assert res.returncode != 0 and "certificate" in res.stderr, res.stderr
        # a loopback registry is insecure for Docker: it tries https without verifying first
        cli = engine.cli_with_config(tmp_path / "cfg")
        login(cli, reg)
        out = cli.ok("pull", ref, timeout=120)
        assert f"Digest: {image.digest}" in out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["berth", "distribution"])
def test_a_read_only_registry_serves_pulls_and_refuses_pushes(
        engine: Engine, kind: str, repo: str, tmp_path: Path,
        cleanup_images: list[str]) -> None:
    cls = berth_registry_class() if kind == "berth" else DistributionRegistry
    writable = cls()
    try:
        writable.start()
        image = write_oci_image(tmp_path / "in", "v1", [100_000], seed=52)
        ref = f"{writable.host}/ro/{repo}:v1"
        res = skopeo("copy", *skopeo_dest(writable), image.ref, f"docker://{ref}")
        assert res.returncode == 0, res.stderr
        writable.stop()
        writable.read_only = True
        writable.start()  # the same storage and port, now read-only
        cleanup_images.append(ref)
        out = engine.cli.ok("pull", ref, timeout=120)
        assert f"Digest: {image.digest}" in out
        engine.cli.ok("tag", ref, f"{writable.host}/ro/{repo}:copy")
        cleanup_images.append(f"{writable.host}/ro/{repo}:copy")
        res = engine.cli("push", f"{writable.host}/ro/{repo}:copy", timeout=120)
        assert res.returncode != 0, describe(res)
        res = skopeo("inspect", *skopeo_creds(writable), f"docker://{writable.host}/ro/{repo}:copy")
        assert res.returncode != 0
    finally:
        writable.close()


@pytest.mark.timeout(120)
def test_docker_py_pull_with_auth_config(engine: Engine, registry: Registry, repo: str,
                                         seed: Callable[..., str],
                                         cleanup_images: list[str]) -> None:
    import docker as docker_py

    assert registry.credentials is not None
    base = f"{registry.host}/pyauth/{repo}"
    digest = seed(registry, f"pyauth/{repo}:1")
    cleanup_images.append(f"{base}:1")
    client = docker_py.DockerClient(base_url=engine.host, timeout=120)
    try:
        with pytest.raises(docker_py.errors.APIError) as refused:
            client.images.pull(base, tag="1")
        assert "unauthorized" in str(refused.value).lower() or \
            "no basic auth credentials" in str(refused.value)
        wrong = {"username": registry.credentials.username, "password": "wrong"}
        with pytest.raises(docker_py.errors.APIError):
            client.images.pull(base, tag="1", auth_config=wrong)
        right = {"username": registry.credentials.username,
                 "password": registry.credentials.password}
        image = client.images.pull(base, tag="1", auth_config=right)
        assert f"{base}@{digest}" in image.attrs["RepoDigests"]
        login = client.login(registry.credentials.username, registry.credentials.password,
                             registry=registry.host, reauth=True)
        assert login["Status"] == "Login Succeeded"
        with pytest.raises(docker_py.errors.APIError) as bad_login:
            client.login(registry.credentials.username, "wrong", registry=registry.host,
                         reauth=True)
        # dockerd 20.10: 500 "login attempt to http://HOST/v2/ failed with status: 401
        # Unauthorized"; Docker 23+ answers 401 with the registry's message
        assert "401" in str(bad_login.value) or "unauthorized" in str(bad_login.value).lower()
    finally:
        client.close()
