"""The environment of a legacy link, in dockerd's order."""

from __future__ import annotations

from berth.containers.links import link_env


def test_ports_tcp_first_ranges_and_env() -> None:
    env = link_env("172.17.0.3", "172.17.0.2", "/web/db-main", ["PATH=/bin", "HOME=/root", "A=b=c", "NOVALUE"],
                   ["53/udp", "81/tcp", "80/tcp"])
    ip = "172.17.0.2"
    assert env == [
        f"DB_MAIN_PORT=tcp://{ip}:80",
        f"DB_MAIN_PORT_80_TCP=tcp://{ip}:80", f"DB_MAIN_PORT_80_TCP_ADDR={ip}",
        "DB_MAIN_PORT_80_TCP_PORT=80", "DB_MAIN_PORT_80_TCP_PROTO=tcp",
        f"DB_MAIN_PORT_81_TCP=tcp://{ip}:81", f"DB_MAIN_PORT_81_TCP_ADDR={ip}",
        "DB_MAIN_PORT_81_TCP_PORT=81", "DB_MAIN_PORT_81_TCP_PROTO=tcp",
        f"DB_MAIN_PORT_53_UDP=udp://{ip}:53", f"DB_MAIN_PORT_53_UDP_ADDR={ip}",
        "DB_MAIN_PORT_53_UDP_PORT=53", "DB_MAIN_PORT_53_UDP_PROTO=udp",
        f"DB_MAIN_PORT_80_TCP_START=tcp://{ip}:80", "DB_MAIN_PORT_80_TCP_PORT_START=80",
        f"DB_MAIN_PORT_80_TCP_END=tcp://{ip}:81", "DB_MAIN_PORT_80_TCP_PORT_END=81",
        "DB_MAIN_NAME=/web/db-main",
        "DB_MAIN_ENV_A=b=c",
    ]


def test_no_ports() -> None:
    assert link_env("", "10.0.0.2", "/a/b", [], []) == ["B_NAME=/a/b"]
