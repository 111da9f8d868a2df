"""/etc/hostname, /etc/hosts and /etc/resolv.conf of a container, as Docker writes them.

The files live in the container's directory and are bind-mounted into it, each file on
its own. Before a start they are written whole under a new name and renamed into place
(atomically: the mount made next sees the new file). While the container runs, a rename
would go unseen (its mount holds the old file), so what changes then -- its addresses
in /etc/hosts when it joins or leaves a network, resolv.conf when its first user-defined
network brings the embedded DNS -- is written into the mounted file itself, as dockerd
does. This module writes those three files and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence

from berth.containers.model import Container


def write_etc_files(c: Container, links: Sequence[tuple[str, str]] = (), host_gateway: str = "") -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf as Docker writes them before a
    start; `links` are (address, names) of `--link`ed containers; `host_gateway` is
    what `--add-host NAME:host-gateway` means (the default bridge's gateway, as Docker)."""
    _atomic_write(c.hostname_path, c.config.hostname + "\n")
    _atomic_write(c.hosts_path, hosts_file(c, links, host_gateway))
    h = c.host_config
    own = resolv_conf(h.dns, h.dns_search, h.dns_options)
    _atomic_write(c.resolv_conf_path, resolv_conf(h.dns, h.dns_search, h.dns_options, embedded=True)
                  if _embedded_dns(c) else own)
    # the digest of the file without the embedded DNS, as dockerd's (it writes that
    # one first and switches to its embedded server without a new digest): once
    # switched, the file is never rewritten before the next start
    _atomic_write(_hash_path(c), _digest(own))


def update_running(c: Container, links: Sequence[tuple[str, str]] = (), host_gateway: str = "") -> None:
    """The running container `c` joined or left a network: its addresses in /etc/hosts
    follow, and on a user-defined network resolv.conf names the embedded DNS. Leaving
    the last one changes nothing there: dockerd writes the embedded server in once, and
    only a restart (which rewrites the file) gives the container its own nameservers back.
    A resolv.conf changed since the start (by the container, or by a switch, which gets
    no digest of its own) is left alone."""
    _write_in_place(c.hosts_path, hosts_file(c, links, host_gateway))
    if _embedded_dns(c) and not _resolv_conf_modified(c):
        h = c.host_config
        _write_in_place(c.resolv_conf_path, resolv_conf(h.dns, h.dns_search, h.dns_options, embedded=True))


def _hash_path(c: Container) -> str:
    return c.resolv_conf_path + ".hash"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _resolv_conf_modified(c: Container) -> bool:
    """Whether resolv.conf is no longer what was written at the start (dockerd's
    UserModified: no digest, nothing to compare with, counts as unmodified)."""
    try:
        with open(_hash_path(c)) as f:
            digest = f.read().strip()
    except FileNotFoundError:
        return False
    try:
        with open(c.resolv_conf_path) as f:
            return _digest(f.read()) != digest
    except OSError:
        return True


def hosts_file(c: Container, links: Sequence[tuple[str, str]] = (), host_gateway: str = "") -> str:
    """/etc/hosts: localhost, --add-host, --link entries, and the container's own name at
    each address it holds (one line per address, networks in order, as dockerd)."""
    hostname = c.config.hostname
    fqdn = f"{hostname}.{c.config.domainname}" if c.config.domainname else hostname
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
        own = [a for ep in c.networks.values() for a in (ep.ipv4, ep.ipv6) if a]
        label = f"{fqdn} {hostname}" if fqdn != hostname else hostname
        for address in own:
            hosts += f"{address}\t{label}\n"
        if not own and fqdn != hostname:
            hosts += f"127.0.1.1\t{fqdn}\n"
    return hosts


def _embedded_dns(c: Container) -> bool:
    """Whether `c` asks the embedded DNS: it is on a user-defined network."""
    return c.host_config.network_mode != "host" and any(
        name not in ("bridge", "host", "none") for name in c.networks)


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


def _write_in_place(path: str, text: str) -> None:
    """Into the file itself, which a running container has mounted (one write, as
    dockerd's: a reader sees the old text, an empty file for a moment, or the new)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
