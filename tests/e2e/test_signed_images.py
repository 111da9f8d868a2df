"""Signed images (issue 19, "Signed images" and Must show 5): a berthd whose signature
policy (containers-policy.json) requires cosign signatures by one key for
`127.0.0.1:PORT/signed`, and Debian's docker-registry on loopback.

Images are pushed by skopeo and signed by `berth trust sign` with keys `berth trust
keygen` wrote; `docker pull` of a signed image works, an unsigned one or one signed with
another key is refused naming the policy and leaves no image; outside the scope,
anything pulls. Debian's skopeo 1.9.3 is built with sigstore disabled ("Debian-local
change: sigstore disabled", for signing and for verifying alike), so the test of
signatures skopeo makes (`copy --sign-by-sigstore-private-key`, reading the key
`berth trust keygen` wrote) is skipped where skopeo says so, and runs elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.cli import Cli, describe
from helpers.daemon import BERTH, BerthDaemon, private_daemon
from helpers.images import write_load_archive
from helpers.registries import DistributionRegistry

PASSWORD = "correct horse"


@dataclass
class Setup:
    registry: DistributionRegistry
    docker: Cli
    berth: Cli  # for `berth trust`, which speaks to the registry itself
    dir: Path
    policy: Path
    key: Path  # the key the policy trusts (cosign's encrypted format)
    other_key: Path  # another key
    password_file: Path
    registries_d: Path  # tells skopeo to write sigstore signatures as .sig attachments

    def keyfile(self, prefix: str) -> tuple[Path, Path]:
        return self.dir / f"{prefix}.key", self.dir / f"{prefix}.pub"


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, berthd: BerthDaemon, berth_root: Path,
          busybox_tar: Path) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("signing")
    password_file = work / "password"
    password_file.write_text(PASSWORD + "\n")
    berth_cli = Cli(str(BERTH), {"PATH": "/usr/bin:/bin", "HOME": str(work), "DOCKER_CONFIG": str(work / "cfg")})
    for prefix in ("trusted", "other"):
        out = berth_cli.ok("trust", "keygen", "--output-key-prefix", str(work / prefix),
                           "--passphrase-file", str(password_file))
        assert f"Private key written to {work / prefix}.key" in out
    registries_d = work / "registries.d"
    registries_d.mkdir()
    (registries_d / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    with DistributionRegistry() as registry:
        policy = work / "policy.json"
        policy.write_text(json.dumps({
            "default": [{"type": "insecureAcceptAnything"}],
            "transports": {"docker": {f"{registry.addr}/signed": [
                {"type": "sigstoreSigned", "keyPath": str(work / "trusted.pub"),
                 "signedIdentity": {"type": "matchRepoDigestOrExact"}}]}},
        }))
        with private_daemon(berth_root, berthd, busybox_tar, "--signature-policy", str(policy),
                            prefix="sg") as (_, docker):
            yield Setup(registry, docker, berth_cli, work, policy, work / "trusted.key",
                        work / "other.key", password_file, registries_d)


def push(setup: Setup, name: str, sign_with: Path | None = None, skopeo_signs: bool = False) -> str:
    """An image pushed by skopeo to the registry as `name`, signed with `sign_with` by
    `berth trust sign` (or by skopeo itself): its reference."""
    ref = f"{setup.registry.addr}/{name}"
    archive = write_load_archive(setup.dir / f"{uuid.uuid4().hex[:8]}.tar", name.rsplit("/", 1)[-1],
                                 [2000], seed=int(uuid.uuid4().hex[:6], 16))
    signing = ["--sign-by-sigstore-private-key", str(sign_with),
               "--sign-passphrase-file", str(setup.password_file)] if sign_with and skopeo_signs else []
    res = skopeo("--registries.d", str(setup.registries_d), "copy", "--quiet", "--dest-tls-verify=false",
                 *signing, f"docker-archive:{archive.path}", f"docker://{ref}")
    if "sigstore disabled" in res.stderr:
        pytest.skip(f"this skopeo cannot make sigstore signatures: {res.stderr.strip()}")
    assert res.returncode == 0, f"skopeo: {res.stderr}"
    if sign_with and not skopeo_signs:
        setup.berth.ok("trust", "sign", "--key", str(sign_with), "--passphrase-file", str(setup.password_file), ref)
    return ref


def assert_refused(setup: Setup, ref: str, reason: str) -> None:
    res = setup.docker("pull", ref, timeout=120)
    assert res.returncode != 0, describe(res)
    assert f"signature policy {setup.policy}" in res.stderr, describe(res)
    assert f'scope "{setup.registry.addr}/signed"' in res.stderr, describe(res)
    assert reason in res.stderr, describe(res)
    assert res.stderr.count("\n") <= 2, describe(res)  # one line, not a traceback
    listed = setup.docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert ref not in listed, listed


@pytest.mark.timeout(300)
def test_a_signed_image_pulls_and_runs_and_berth_trust_verify_checks_the_key(setup: Setup) -> None:
    ref = push(setup, "signed/app:1", sign_with=setup.key)
    pulled = setup.docker("pull", ref, timeout=120)
    assert pulled.returncode == 0, describe(pulled)
    assert "Status: Downloaded newer image" in pulled.stdout, describe(pulled)
    assert setup.docker.ok("run", "--rm", ref, "echo", "signed and running").strip() == "signed and running"
    # `berth trust verify` accepts the signature, by the same key only
    verified = setup.berth("trust", "verify", "--key", str(setup.dir / "trusted.pub"), ref)
    assert verified.returncode == 0, describe(verified)
    [payload] = json.loads(verified.stdout)
    assert payload["critical"]["identity"]["docker-reference"] == ref
    assert payload["critical"]["type"] == "cosign container image signature"
    refused = setup.berth("trust", "verify", "--key", str(setup.dir / "other.pub"), ref)
    assert refused.returncode == 1, describe(refused)
    assert "cryptographic signature verification failed" in refused.stderr, describe(refused)
    setup.docker.ok("rmi", ref)


@pytest.mark.timeout(300)
def test_an_unsigned_image_is_refused_naming_the_policy_and_outside_the_scope_it_pulls(setup: Setup) -> None:
    ref = push(setup, "signed/unsigned:1")
    assert_refused(setup, ref, "A signature was required, but no signature exists")
    # the same image outside the policy's scope is anyone's
    open_ref = push(setup, "open/unsigned:1")
    res = setup.docker("pull", open_ref, timeout=120)
    assert res.returncode == 0, describe(res)
    setup.docker.ok("rmi", open_ref)


@pytest.mark.timeout(300)
def test_an_image_signed_by_skopeo_pulls(setup: Setup) -> None:
    ref = push(setup, "signed/skopeo:1", sign_with=setup.key, skopeo_signs=True)
    res = setup.docker("pull", ref, timeout=120)
    assert res.returncode == 0, describe(res)
    setup.docker.ok("rmi", ref)


@pytest.mark.timeout(300)
def test_an_image_signed_with_another_key_is_refused_until_the_trusted_key_signs_it(setup: Setup) -> None:
    ref = push(setup, "signed/other:1", sign_with=setup.other_key)
    assert_refused(setup, ref, "cryptographic signature verification failed")
    # a second signature, by the trusted key, is added next to the first
    signed = setup.berth("trust", "sign", "--key", str(setup.key), "--passphrase-file",
                         str(setup.password_file), ref)
    assert signed.returncode == 0, describe(signed)
    assert f"Pushing signature to: {setup.registry.addr}/signed/other:sha256-" in signed.stdout
    res = setup.docker("pull", ref, timeout=120)
    assert res.returncode == 0, describe(res)
    setup.docker.ok("rmi", ref)


@pytest.mark.timeout(300)
def test_a_signature_for_another_tag_is_refused(setup: Setup) -> None:
    """The same manifest under two tags, signed (by the trusted key) as the first: by
    matchRepoDigestOrExact, the second tag's pull is refused; by digest it pulls."""
    ref = push(setup, "signed/tags:1", sign_with=setup.key)
    second = f"{setup.registry.addr}/signed/tags:2"
    res = skopeo("copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                 f"docker://{ref}", f"docker://{second}")
    assert res.returncode == 0, res.stderr
    assert_refused(setup, second, f'Signature for identity "{ref}" is not accepted')
    digest = skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{second}").stdout.strip()
    by_digest = f"{setup.registry.addr}/signed/tags@{digest}"
    res = setup.docker("pull", by_digest, timeout=120)
    assert res.returncode == 0, describe(res)
    setup.docker.ok("rmi", by_digest)


def test_berthd_refuses_a_broken_policy_at_start(tmp_path: Path, berthd: BerthDaemon, berth_root: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(tmp_path / "none.pub")}]}))
    daemon = BerthDaemon(berth_root, berthd.marker, name=f"sgbad{uuid.uuid4().hex[:6]}", extra_args=["--signature-policy", str(policy)])
    proc = daemon.launch()
    try:
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            daemon.stop()
    log = daemon.log_tail()
    assert f"invalid signature policy {policy}" in log, log
    assert "none.pub: No such file or directory" in log, log
