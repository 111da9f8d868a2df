"""The Engine API over the raw UNIX socket: ping, versions, version negotiation, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from helpers.api import ApiClient, UnixHTTPConnection
from helpers.daemon import BerthDaemon


def test_ping(api: ApiClient) -> None:
    resp = api.get("/_ping")
    assert resp.status == 200
    assert resp.body == b"OK"
    assert resp.header("API-Version") == "1.51"
    assert resp.header("OSType") == "linux"
    assert resp.header("Server")
    assert (resp.header("Content-Type") or "").startswith("text/plain")
    assert "no-cache" in (resp.header("Cache-Control") or "")


def test_ping_head(api: ApiClient) -> None:
    resp = api.head("/_ping")
    assert resp.status == 200
    assert resp.body == b""
    assert resp.header("API-Version") == "1.51"
    assert resp.header("OSType") == "linux"


def test_versioned_ping(api: ApiClient) -> None:
    resp = api.get("/v1.51/_ping")
    assert resp.status == 200 and resp.body == b"OK"


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.51"])
def test_version(api: ApiClient, prefix: str) -> None:
    resp = api.get(f"{prefix}/version")
    assert resp.status == 200, resp.body
    assert (resp.header("Content-Type") or "").startswith("application/json")
    info = resp.json()
    assert info["ApiVersion"] == "1.51"
    assert info["MinAPIVersion"] == "1.24"
    assert info["Os"] == "linux"
    assert info["Arch"] == "amd64"
    assert isinstance(info["Version"], str) and info["Version"]
    assert isinstance(info["KernelVersion"], str) and info["KernelVersion"]
    assert resp.header("API-Version") == "1.51"


def test_version_too_new(api: ApiClient) -> None:
    resp = api.get("/v1.99/version")
    assert resp.status == 400
    assert resp.json() == {
        "message": "client version 1.99 is too new. Maximum supported API version is 1.51"
    }


def test_version_too_old(api: ApiClient) -> None:
    resp = api.get("/v1.12/version")
    assert resp.status == 400
    assert resp.json() == {
        "message": "client version 1.12 is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version"
    }


@pytest.mark.parametrize("path", ["/nosuchroute", "/v1.51/nosuchroute", "/v1.51/containers/x/y/z"])
def test_unknown_route(api: ApiClient, path: str) -> None:
    resp = api.get(path)
    assert resp.status == 404
    assert (resp.header("Content-Type") or "").startswith("application/json")
    assert resp.json() == {"message": "page not found"}


def test_info(api: ApiClient, berthd: BerthDaemon) -> None:
    resp = api.get("/v1.51/info")
    assert resp.status == 200, resp.body
    info = resp.json()
    for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                "Images", "NCPU", "MemTotal"):
        assert isinstance(info[key], int), (key, info.get(key))
    assert info["Containers"] == (
        info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]
    )
    assert info["Driver"] in ("overlay2", "overlayfs")  # graph driver / snapshotter names
    assert info["OSType"] == "linux"
    assert info["Architecture"] == "x86_64"
    assert info["DockerRootDir"] == str(berthd.data_root)
    assert isinstance(info["ID"], str) and info["ID"]
    assert isinstance(info["Name"], str) and info["Name"]
    assert isinstance(info["ServerVersion"], str) and info["ServerVersion"]


def test_info_counts_follow_containers(
    api: ApiClient, busybox: str, new_name: Callable[[str], str]
) -> None:
    before = api.get("/v1.51/info").json()
    name = new_name("count")
    resp = api.post_json(
        f"/v1.51/containers/create?name={name}", {"Image": busybox, "Cmd": ["true"]}
    )
    assert resp.status == 201, resp.body
    created = resp.json()
    assert set(created) == {"Id", "Warnings"}
    after = api.get("/v1.51/info").json()
    assert after["Containers"] == before["Containers"] + 1
    assert after["ContainersStopped"] == before["ContainersStopped"] + 1
    assert after["Images"] >= 1


def test_keep_alive(berthd: BerthDaemon) -> None:
    """Two requests on one connection, as docker-py and the CLI send them."""
    conn = UnixHTTPConnection(berthd.socket_path)
    try:
        for _ in range(2):
            conn.request("GET", "/_ping")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == b"OK"
    finally:
        conn.close()
