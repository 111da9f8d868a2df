"""A container's network as the network controller sees it: the requests built from a
container record, and the controller's results written back into it.

The controller never reads or edits container records; this module is the one place
that translates between the two. It does no networking itself.
"""

from __future__ import annotations

import copy

from berth.containers.model import Container
from berth.network.model import EndpointSpec, PortRequest, Sandbox, SandboxRequest


def sandbox_request(c: Container) -> SandboxRequest:
    """What `c` asks of its sandbox: its names, its endpoints in order, its ports."""
    h = c.host_config
    return SandboxRequest(
        c.id, c.name, c.config.hostname, h.network_mode or "bridge",
        tuple(EndpointSpec(name, ep.network_id, copy.deepcopy(ep.request)) for name, ep in c.networks.items()),
        PortRequest(copy.deepcopy(h.port_bindings), h.publish_all_ports, tuple(c.config.exposed_ports)),
        tuple(h.dns), tuple(h.links))


def sandbox_of(c: Container) -> Sandbox:
    """The sandbox `c`'s record says was made for it (empty when it has none)."""
    joined = {name: r for name, ep in c.networks.items() if (r := ep.result()) is not None}
    return Sandbox(c.id, c.sandbox_key, joined, list(c.ports))


def keep_sandbox(c: Container, sb: Sandbox | None) -> str | None:
    """The sandbox made for `c`, written into its record; its namespace's path (None
    when it got none of its own)."""
    if sb is None:
        return None
    c.sandbox_key = sb.key
    for name, result in sb.networks.items():
        c.networks[name].assign(result)
    c.ports = list(sb.ports)
    return sb.key


def forget_sandbox(c: Container) -> None:
    """`c`'s sandbox is gone: its record holds no addresses, ports or namespace."""
    for ep in c.networks.values():
        ep.clear()
    c.ports = []
    c.sandbox_key = ""
