"""The environment of Docker's legacy links (`--link other:alias` on the default bridge).

A container linked to another gets, per link, variables that name the other and its
exposed ports (ALIAS_NAME, ALIAS_PORT, ALIAS_PORT_<port>_<PROTO>_{ADDR,PORT,PROTO},
the _START/_END of consecutive port ranges) and copies of its environment
(ALIAS_ENV_<var>, HOME and PATH left out), in the order dockerd writes them. Pure
functions of the two records' parts; which links a container has is the manager's.
"""

from __future__ import annotations

from collections.abc import Sequence


def _port_key(port: str) -> tuple[int, str, int]:
    """Ports sorted as dockerd sorts them: TCP first, then by protocol name, then number."""
    number, _, proto = port.partition("/")
    proto = (proto or "tcp").lower()
    return (0 if proto == "tcp" else 1, proto, int(number) if number.isdigit() else 0)


def link_env(parent_ip: str, child_ip: str, name: str, child_env: Sequence[str],
             exposed_ports: Sequence[str]) -> list[str]:
    """The variables of one link; `name` is the link's full name ("/parent/alias")."""
    del parent_ip  # dockerd takes it and writes nothing of it
    alias = name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = []
    for text in exposed_ports:
        digits, _, kind = text.partition("/")
        if digits.isdigit():  # a range ("8000-8010") is not a port of its own here
            ports.append((int(digits), kind or "tcp"))
    ports.sort(key=lambda p: _port_key(f"{p[0]}/{p[1]}"))
    env: list[str] = []
    start = end = ports[0] if ports else (0, "")
    for i, (number, proto) in enumerate(ports):
        if i == 0:
            env.append(f"{alias}_PORT={proto}://{child_ip}:{number}")
        prefix = f"{alias}_PORT_{number}_{proto.upper()}"
        env += [f"{prefix}={proto}://{child_ip}:{number}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={number}", f"{prefix}_PROTO={proto}"]
        if number == end[0] + 1 and proto.lower() == start[1].lower():
            end = (number, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{prefix}_START={start[1]}://{child_ip}:{start[0]}", f"{prefix}_PORT_START={start[0]}",
                    f"{prefix}_END={end[1]}://{child_ip}:{end[0]}", f"{prefix}_PORT_END={end[0]}"]
        start = end = (number, proto)
    env.append(f"{alias}_NAME={name}")
    for entry in child_env:
        key, sep, value = entry.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env
