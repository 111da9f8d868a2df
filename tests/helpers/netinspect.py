"""What the network tests read back through the docker CLI: a container's inspect, its
endpoint on a network and address there, and the A records of busybox nslookup."""

from __future__ import annotations

import json
import re
from typing import Any

from helpers.cli import Cli


def container(docker: Cli, name: str) -> dict[str, Any]:
    data = json.loads(docker.ok("container", "inspect", name))
    assert isinstance(data, list) and len(data) == 1, data
    info: dict[str, Any] = data[0]
    return info


def endpoint(docker: Cli, name: str, network: str) -> dict[str, Any]:
    networks = container(docker, name)["NetworkSettings"]["Networks"]
    assert network in networks, f"{name} is not on {network}: {sorted(networks)}"
    ep: dict[str, Any] = networks[network]
    return ep


def ip(docker: Cli, name: str, network: str) -> str:
    address: str = endpoint(docker, name, network)["IPAddress"]
    assert address, f"{name} has no address on {network}"
    return address


def answers(out: str) -> list[str]:
    """The A records in busybox nslookup's output (the server's own line ends in :53)."""
    return re.findall(r"^Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$", out, re.M)
