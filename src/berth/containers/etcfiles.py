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
import ipaddress
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
    own = resolv_conf(h.dns, h.dns_search, h.dns_options, ipv6=any(ep.ipv6 for ep in c.networks.values()),
                      legacy=bool(c.networks))
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


HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"  # when the host's only server is resolved's stub
EMBEDDED_DNS = "127.0.0.11"
EMBEDDED_DNS_OPTIONS = ("ndots:0",)  # what the embedded server asks of the container's resolver
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
DEFAULT_IPV6_NAMESERVERS = ("2001:4860:4860::8888", "2001:4860:4860::8844")
HEADER = ("# Generated by Docker Engine.\n"
          "# This file can be edited; Docker Engine will not make further changes once it\n"
          "# has been modified.")


def resolv_conf(dns: Sequence[str], search: Sequence[str] = (), options: Sequence[str] = (),
                embedded: bool = False, ipv6: bool = False, host_file: str = "", legacy: bool = True) -> str:
    """resolv.conf as dockerd writes it: the host's file with the container's --dns,
    --dns-search and --dns-option in place of its own, then, for the embedded DNS
    (`embedded`), its server as the only nameserver (the others become the servers it
    forwards to, the host's dialled from the host: "host(…)") and ndots:0 unless an
    ndots is set; else, for a `legacy` network (the default bridge), without the host's
    loopback servers, nor its IPv6 ones unless `ipv6`, and Google's when none is left
    (with no network, or the host's, the servers stay as they are). Comments at the end
    say where it all came from, as dockerd's do."""
    host_file = host_file or origin_resolv_conf()
    nameservers: list[str] = []
    invalid: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    other: list[str] = []
    try:
        with open(host_file) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split()
        if not words or words[0][0] in "#;":
            continue
        if words[0] == "nameserver":
            if len(words) > 1:
                (nameservers if _is_ip(words[1]) else invalid).append(words[1])
        elif words[0] in ("search", "domain"):
            if len(words) > 1:
                host_search = words[1:]  # the last one counts
        elif words[0] == "options":
            host_options += words[1:]
        else:
            other.append(line)
    ndots_from = "host" if _option(host_options, "ndots") else ""
    overrides: list[str] = []
    if dns:
        nameservers = list(dns)
        overrides.append("nameservers")
    if search:
        host_search = [d for d in search if d != "."]
        overrides.append("search")
    if options:
        host_options = list(options)
        ndots_from = "override" if _option(host_options, "ndots") else ""
        overrides.append("options")
    warnings: list[str] = []
    ext_servers: list[str] = []
    if embedded:
        transform = "internal resolver"
        ext_servers = [server if dns else f"host({server})" for server in nameservers]
        nameservers = [EMBEDDED_DNS]
        for opt in EMBEDDED_DNS_OPTIONS:
            name = opt.partition(":")[0]
            if name == "ndots":
                host_options = [o for o in host_options if o.partition(":")[0] != "ndots" or _ndots_valid(o)]
            if not _option(host_options, name):
                host_options.append(opt)
                if name == "ndots":
                    ndots_from = "internal"
        if not ext_servers:
            warnings.append("NO EXTERNAL NAMESERVERS DEFINED")
    elif not legacy:
        transform = ""
    else:
        transform = "legacy"
        if not dns:
            nameservers = [n for n in nameservers if not _is_loopback(n) and (ipv6 or ":" not in n)]
            if not nameservers:
                nameservers = list(DEFAULT_NAMESERVERS) + (list(DEFAULT_IPV6_NAMESERVERS) if ipv6 else [])
                warnings.append("Used default nameservers.")
    text = HEADER + "\n\n"
    text += "".join(f"nameserver {n}\n" for n in nameservers)
    if host_search:
        text += "search " + " ".join(host_search) + "\n"
    if host_options:
        text += "options " + " ".join(host_options) + "\n"
    text += "".join(line + "\n" for line in other)
    text += f"\n# Based on host file: '{host_file}'" + (f" ({transform})\n" if transform else "\n")
    text += "".join(f"# {w}\n" for w in warnings)
    if ext_servers:
        text += f"# ExtServers: [{' '.join(ext_servers)}]\n"
    if invalid:
        text += f"# Invalid nameservers: [{' '.join(invalid)}]\n"
    text += f"# Overrides: [{' '.join(overrides)}]\n"
    if ndots_from:
        text += f"# Option ndots from: {ndots_from}\n"
    return text


def origin_resolv_conf() -> str:
    """The host file containers' resolv.conf starts from: systemd-resolved's own list
    when the host's names only its stub (127.0.0.53), as dockerd picks it."""
    try:
        with open(HOST_RESOLV_CONF) as f:
            servers = [w[1] for line in f if len(w := line.split()) > 1 and w[0] == "nameserver"]
    except OSError:
        return HOST_RESOLV_CONF
    return SYSTEMD_RESOLV_CONF if servers == ["127.0.0.53"] else HOST_RESOLV_CONF


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_loopback(text: str) -> bool:
    return ipaddress.ip_address(text).is_loopback if _is_ip(text) else False


def _option(options: Sequence[str], name: str) -> bool:
    return any(o.partition(":")[0] == name for o in options)


def _ndots_valid(option: str) -> bool:
    value = option.partition(":")[2]
    return value.isdigit() or (value.startswith("+") and value[1:].isdigit())


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
