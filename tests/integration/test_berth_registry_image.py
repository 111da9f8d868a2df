"""scripts/make-registry-image: a `docker load` archive tagged registry:2 whose rootfs
runs berth-registry under chroot with nothing from the host."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make-registry-image"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_registry_image_runs_under_chroot(tmp_path: Path) -> None:
    out = tmp_path / "registry-image.tar"
    done = subprocess.run([str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again.tar"
    subprocess.run([str(SCRIPT), str(again)], capture_output=True, check=True, timeout=120)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(
        again.read_bytes()).digest(), "the image is not deterministic"
    again.unlink()

    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["registry:2"]
        config = json.load(archive.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        layer_bytes = layer.read()
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]
    assert config["config"]["Cmd"] == ["/etc/docker/registry/config.yml"]
    assert config["config"]["ExposedPorts"] == {"5000/tcp": {}}
    entrypoint = config["config"]["Entrypoint"]
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (tmp_path / "layer.tar").write_bytes(layer_bytes)
    subprocess.run(["tar", "-xf", str(tmp_path / "layer.tar"), "-C", str(rootfs)], check=True)
    (tmp_path / "layer.tar").unlink()
    assert not (rootfs / "root" / ".pyenv").exists()

    shell = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", "echo ok"],
                           capture_output=True, text=True, timeout=30)
    assert shell.stdout == "ok\n", shell.stderr

    port = _free_port()
    env = {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}", "PATH": "/usr/local/bin:/bin"}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc = subprocess.Popen([chroot, str(rootfs), *entrypoint, *config["config"]["Cmd"]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    proc.stdout.read() if proc.stdout else "")
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        data = b"a blob pushed into the chroot"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = requests.post(f"http://127.0.0.1:{port}/v2/t/blobs/uploads/?digest={digest}",
                          data=data, timeout=10)
        assert r.status_code == 201
        stored = rootfs / "var/lib/registry/blobs/sha256" / digest[7:9] / digest[7:]
        assert stored.read_bytes() == data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
