"""The build context the client sends: .dockerignore semantics and the tar itself."""

import io
import tarfile
from pathlib import Path

import pytest

from berth.client.buildcontext import DockerIgnore, read_dockerignore, write_context_tar


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.log"], "x.log", True),
        (["*.log"], "sub/x.log", False),
        (["**/*.log"], "sub/deep/x.log", True),
        (["**/*.log"], "x.log", True),
        (["logs"], "logs/a/b.txt", True),
        (["logs", "!logs/keep.log"], "logs/keep.log", False),
        (["logs", "!logs/keep.log"], "logs/other.log", True),
        (["/top.txt"], "top.txt", True),
        (["./a/../b"], "b", True),
        (["a/b/**"], "a/b/c/d", True),
        (["a/b/**"], "a/b", False),
        (["?.txt"], "ab.txt", False),
        (["?.txt"], "a.txt", True),
        (["[ab].txt"], "b.txt", True),
        (["[!ab].txt"], "b.txt", False),
        (["*", "!keep"], "keep", False),
        (["# comment", ""], "anything", False),
    ],
)
def test_dockerignore_matching(patterns: list[str], path: str, excluded: bool) -> None:
    assert DockerIgnore(patterns).excluded(path) is excluded


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(m.name for m in tar.getmembers())


def test_context_tar_honours_dockerignore(tmp_path: Path) -> None:
    for rel in ["Dockerfile", "a.txt", "logs/1.log", "logs/keep.log", "vendor/drop.go", "vendor/keep/k.go"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / ".dockerignore").write_text("logs\n!logs/keep.log\nvendor/*\n!vendor/keep\nDockerfile\n")
    buf = io.BytesIO()
    write_context_tar(str(tmp_path), read_dockerignore(str(tmp_path)), ["Dockerfile", ".dockerignore"], buf)
    data = buf.getvalue()
    assert _names(data) == [
        ".dockerignore", "Dockerfile", "a.txt", "logs/keep.log", "vendor", "vendor/keep", "vendor/keep/k.go"
    ]
    assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())
