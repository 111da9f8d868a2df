"""resolv.conf as dockerd writes it (libnetwork's internal/resolvconf and its golden files)."""

from __future__ import annotations

from pathlib import Path

from berth.containers.etcfiles import HEADER, resolv_conf


def _host(tmp_path: Path, text: str) -> str:
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    return str(path)


def test_internal_resolver_keeps_the_hosts_servers_as_its_upstreams(tmp_path: Path) -> None:
    host = _host(tmp_path, "nameserver 10.0.0.1\nnameserver 127.0.0.53\nsearch example.com\n")
    assert resolv_conf([], embedded=True, host_file=host) == (
        f"{HEADER}\n\nnameserver 127.0.0.11\nsearch example.com\noptions ndots:0\n\n"
        f"# Based on host file: '{host}' (internal resolver)\n"
        "# ExtServers: [host(10.0.0.1) host(127.0.0.53)]\n# Overrides: []\n# Option ndots from: internal\n")


def test_internal_resolver_keeps_a_valid_ndots_and_drops_a_bad_one(tmp_path: Path) -> None:
    host = _host(tmp_path, "nameserver 127.0.0.53\noptions ndots:2\n")
    out = resolv_conf([], (), ["ndots:2"], embedded=True, host_file=host)
    assert out.endswith("# ExtServers: [host(127.0.0.53)]\n# Overrides: [options]\n# Option ndots from: override\n")
    assert "\noptions ndots:2\n" in out
    out = resolv_conf([], embedded=True, host_file=_host(tmp_path, "options ndots:-1 edns0\n"))
    assert "\noptions edns0 ndots:0\n" in out
    assert "# NO EXTERNAL NAMESERVERS DEFINED\n" in out


def test_overridden_servers_are_upstreams_in_the_container(tmp_path: Path) -> None:
    out = resolv_conf(["127.0.0.53"], embedded=True, host_file=_host(tmp_path, "nameserver 10.0.0.1\n"))
    assert "# ExtServers: [127.0.0.53]\n# Overrides: [nameservers]\n" in out


def test_legacy_network_drops_loopback_and_ipv6_servers(tmp_path: Path) -> None:
    host = _host(tmp_path, "nameserver 127.0.0.53\nnameserver fd00::53\nnameserver bogus\nsortlist 10.0.0.0\n")
    assert resolv_conf([], host_file=host) == (
        f"{HEADER}\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\nsortlist 10.0.0.0\n\n"
        f"# Based on host file: '{host}' (legacy)\n# Used default nameservers.\n"
        "# Invalid nameservers: [bogus]\n# Overrides: []\n")
    assert "nameserver fd00::53\n" in resolv_conf([], ipv6=True, host_file=host)
    # With no network of its own, nothing is taken away.
    assert "nameserver 127.0.0.53\nnameserver fd00::53\n" in resolv_conf([], host_file=host, legacy=False)
