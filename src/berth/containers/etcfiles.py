"""/etc/hostname, /etc/hosts and /etc/resolv.conf of a container, as Docker writes them.

The files live in the container's directory and are bind-mounted into it; they are
rewritten (atomically: a reader inside never sees half a file) at each start and when
the container joins a network. This module writes those three files and nothing else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from berth.containers.model import Container


def write_etc_files(c: Container, links: Sequence[tuple[str, str]] = (), host_gateway: str = "") -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf as Docker writes them; `links`
    are (address, names) of `--link`ed containers; `host_gateway` is what
    `--add-host NAME:host-gateway` means (the default bridge's gateway, as Docker)."""
    hostname = c.config.hostname
    fqdn = f"{hostname}.{c.config.domainname}" if c.config.domainname else hostname
    _atomic_write(c.hostname_path, hostname + "\n")
    mode = c.host_config.network_mode
    if mode == "host":
        try:
            with open("/etc/hosts") as f:
                hosts = f.read()
        except OSError:
            hosts = "127.0.0.1\tlocalhost\n"
    else:
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    for entry in c.host_config.extra_hosts:
        name, _, ip = entry.partition(":")
        if ip == "host-gateway":
            ip = host_gateway
        hosts += f"{ip}\t{name}\n"
    for address, names in links:
        hosts += f"{address}\t{names}\n"
    if mode != "host":
        own = [ep for ep in c.networks.values() if ep.ipv4 or ep.ipv6]
        if own:
            ep = own[0]
            label = f"{fqdn} {hostname}" if fqdn != hostname else hostname
            for address in (ep.ipv4, ep.ipv6):
                if address:
                    hosts += f"{address}\t{label}\n"
        elif fqdn != hostname:
            hosts += f"127.0.1.1\t{fqdn}\n"
    _atomic_write(c.hosts_path, hosts)
    h = c.host_config
    embedded = any(name not in ("bridge", "host", "none") for name in c.networks) and mode != "host"
    _atomic_write(c.resolv_conf_path, resolv_conf(h.dns, h.dns_search, h.dns_options, embedded))


def resolv_conf(dns: list[str], search: Sequence[str] = (), options: Sequence[str] = (),
                 embedded: bool = False) -> str:
    """The host's resolv.conf without loopback servers (they can't be reached from inside);
    on user-defined networks, the embedded DNS server instead (it forwards to the others)."""
    servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                words = line.split()
                if words[:1] == ["nameserver"] and len(words) > 1:
                    if not words[1].startswith("127.") and words[1] != "::1":
                        servers.append(words[1])
                elif words[:1] == ["search"]:
                    host_search = words[1:]
                elif words[:1] == ["options"]:
                    host_options += words[1:]
    except OSError:
        pass
    if dns:
        servers = list(dns)
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]
    if embedded:
        servers = ["127.0.0.11"]
        host_options = [o for o in host_options if not o.startswith("ndots:")] + ["ndots:0"]
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search or host_search:
        text += "search " + " ".join(search or host_search) + "\n"
    opts = list(options) or host_options
    if opts:
        text += "options " + " ".join(opts) + "\n"
    return text


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{time.monotonic_ns()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)
