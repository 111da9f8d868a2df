"""Images through the docker CLI: list, tag, untag, inspect, and refusing to remove one
that a container uses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.cli import Cli, describe, import_image

IMAGES_COLUMNS = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]


def image_rows(docker: Cli) -> list[dict[str, str]]:
    lines = docker.ok("images").splitlines()
    header = lines[0]
    assert re.split(r"\s{2,}", header.strip()) == IMAGES_COLUMNS, header
    starts = [header.index(col) for col in IMAGES_COLUMNS]
    rows = []
    for line in lines[1:]:
        ends = starts[1:] + [len(line)]
        cells = [line[a:b].strip() for a, b in zip(starts, ends, strict=True)]
        rows.append(dict(zip(IMAGES_COLUMNS, cells, strict=True)))
    return rows


def find(rows: list[dict[str, str]], repo: str, tag: str) -> dict[str, str] | None:
    return next((r for r in rows if r["REPOSITORY"] == repo and r["TAG"] == tag), None)


@pytest.fixture
def busybox_kept(docker: Cli, busybox: str, busybox_tar: Path) -> Iterator[str]:
    """busybox:latest, put back after the test if a daemon bug removed it."""
    yield busybox
    if docker("image", "inspect", busybox).returncode != 0:
        import_image(docker, busybox_tar, busybox)
        pytest.fail(f"{busybox} disappeared during the test (re-imported it)", pytrace=False)


def test_images_lists_busybox(docker: Cli, busybox: str) -> None:
    row = find(image_rows(docker), "busybox", "latest")
    assert row is not None, docker.ok("images")
    assert re.fullmatch(r"[0-9a-f]{12}", row["IMAGE ID"]), row
    full_id = docker.ok("image", "inspect", "-f", "{{.Id}}", busybox).strip()
    assert full_id.startswith(f"sha256:{row['IMAGE ID']}"), full_id
    assert re.fullmatch(r"\d+(\.\d+)?[kMG]?B", row["SIZE"]), row
    assert docker.ok("images", "-q").split().count(row["IMAGE ID"]) == 1


def test_image_inspect(docker: Cli, busybox: str) -> None:
    [image] = json.loads(docker.ok("image", "inspect", busybox))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["Id"]), image["Id"]
    assert "busybox:latest" in image["RepoTags"]
    assert image["Config"]["Cmd"] == ["sh"]
    assert image["Os"] == "linux"
    assert image["Architecture"] == "amd64"
    assert image["RootFS"]["Type"] == "layers"
    assert len(image["RootFS"]["Layers"]) == 1
    assert image["Size"] > 500_000  # a static busybox alone is about 2 MB
    # The same object by id, and through plain `docker inspect`.
    by_id = json.loads(docker.ok("image", "inspect", image["Id"]))
    assert by_id[0]["Id"] == image["Id"]
    assert docker.ok("inspect", "-f", "{{.Id}}", busybox).strip() == image["Id"]


def test_tag_and_untag(docker: Cli, busybox_kept: str) -> None:
    busybox_id = docker.ok("image", "inspect", "-f", "{{.Id}}", busybox_kept).strip()
    try:
        assert docker.ok("tag", "busybox:latest", "mybox:v1") == ""
        row = find(image_rows(docker), "mybox", "v1")
        assert row is not None
        assert busybox_id.startswith(f"sha256:{row['IMAGE ID']}")
        tags = json.loads(docker.ok("image", "inspect", "-f", "{{json .RepoTags}}", "mybox:v1"))
        assert sorted(tags) == ["busybox:latest", "mybox:v1"]

        assert docker.ok("rmi", "mybox:v1") == "Untagged: mybox:v1\n"
        rows = image_rows(docker)
        assert find(rows, "mybox", "v1") is None
        assert find(rows, "busybox", "latest") is not None
        res = docker("image", "inspect", "mybox:v1")
        assert res.returncode == 1, describe(res)
        assert "no such image: mybox:v1" in res.stderr.lower(), describe(res)
    finally:
        docker("rmi", "mybox:v1")


def test_rmi_of_an_image_in_use_is_a_conflict(
    docker: Cli, busybox_kept: str, new_name: Callable[[str], str]
) -> None:
    name = new_name("user")
    cid = docker.ok("create", "--name", name, "busybox", "true").strip()
    res = docker("rmi", "busybox")
    assert res.returncode == 1, describe(res)
    assert "conflict" in res.stderr.lower(), describe(res)
    assert cid[:12] in res.stderr, describe(res)
    assert len(res.stderr.strip().splitlines()) == 1, describe(res)
    assert find(image_rows(docker), "busybox", "latest") is not None
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name) == "created\n"


def test_rmi_of_an_unknown_image(docker: Cli) -> None:
    res = docker("rmi", "nosuchimage:v9")
    assert res.returncode == 1, describe(res)
    assert "No such image: nosuchimage:v9" in res.stderr, describe(res)
