"""The table of per-version answer differences (berth.api.versions), as pure functions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from berth.api import versions


def _image() -> dict[str, Any]:
    return {"Id": "sha256:x", "RepoTags": [], "RepoDigests": [], "Size": 10, "ContainerConfig": {"Volumes": None},
            "Config": {"Cmd": ["sh"], "User": ""}}


@pytest.mark.parametrize(("version", "container_config", "virtual_size", "hostname"), [
    ((1, 24), True, True, True), ((1, 43), True, True, True), ((1, 44), True, False, True),
    ((1, 45), False, False, True), ((1, 49), False, False, True), ((1, 50), False, False, False),
    ((1, 51), False, False, False),
])
def test_image_inspect_at_each_boundary(version: tuple[int, int], container_config: bool, virtual_size: bool,
                                        hostname: bool) -> None:
    doc = versions.shape(versions.IMAGE_INSPECT, _image(), version)
    assert ("ContainerConfig" in doc, "VirtualSize" in doc, "Hostname" in doc["Config"]) == (
        container_config, virtual_size, hostname)
    assert doc["Config"]["Cmd"] == ["sh"]  # what the image sets is kept whatever the version
    if not virtual_size:
        return
    assert doc["VirtualSize"] == 10


def test_compose_v1_keeps_container_config_and_nothing_else_older() -> None:
    doc = versions.shape(versions.IMAGE_INSPECT, _image(), (1, 51), "docker-compose/1.29.2 docker-py/5.0.3 Linux/6")
    assert "ContainerConfig" in doc and "VirtualSize" not in doc and "Hostname" not in doc["Config"]
    other = versions.shape(versions.IMAGE_INSPECT, _image(), (1, 51), "docker-compose/2.40.3")
    assert "ContainerConfig" not in other


def test_image_created_missing_is_go_zero_time_before_1_44() -> None:
    assert versions.shape(versions.IMAGE_INSPECT, _image(), (1, 43))["Created"] == "0001-01-01T00:00:00Z"
    assert "Created" not in versions.shape(versions.IMAGE_INSPECT, _image(), (1, 44))


def test_untagged_images_list_none_before_1_43_and_containers_are_counted_from_1_51() -> None:
    summary = {"Id": "sha256:x", "RepoTags": [], "RepoDigests": [], "Size": 5, "Containers": 2}
    old = versions.shape(versions.IMAGE_LIST, copy.deepcopy(summary), (1, 42))
    assert (old["RepoTags"], old["RepoDigests"], old["Containers"], old["VirtualSize"]) == (
        ["<none>:<none>"], ["<none>@<none>"], -1, 5)
    new = versions.shape(versions.IMAGE_LIST, copy.deepcopy(summary), (1, 51))
    assert (new["RepoTags"], new["Containers"], "VirtualSize" in new) == ([], 2, False)


def test_aliases_gain_the_short_id_and_hostname_on_user_networks_only() -> None:
    doc = {"Id": "0123456789abcdef", "Config": {"Hostname": "h"},
           "NetworkSettings": {"Networks": {"bridge": {"Aliases": None}, "front": {"Aliases": ["web", "h"]},
                                            "back": {"Aliases": None}}}}
    old = versions.shape(versions.CONTAINER_INSPECT, copy.deepcopy(doc), (1, 44))["NetworkSettings"]["Networks"]
    assert old == {"bridge": {"Aliases": None}, "front": {"Aliases": ["web", "h", "0123456789ab"]},
                   "back": {"Aliases": ["0123456789ab", "h"]}}
    assert versions.shape(versions.CONTAINER_INSPECT, copy.deepcopy(doc), (1, 45)) == doc


def test_info_security_options_are_names_before_1_25() -> None:
    doc = {"SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"], "RegistryConfig": {}}
    assert versions.shape(versions.INFO, doc, (1, 24))["SecurityOptions"] == ["seccomp", "cgroupns"]


def test_behaviour_names_are_checked() -> None:
    assert versions.at_least((1, 30), versions.WAIT_CONDITION)
    assert not versions.at_least((1, 29), versions.WAIT_CONDITION)
    with pytest.raises(KeyError):
        versions.at_least((1, 51), "no such behaviour")
