"""Where a registry is reached, and with which TLS: moby's registry/endpoints, in pure
functions, plus the one function that reads certs.d into an ssl.SSLContext.

For docker.io a pull tries the daemon's registry-mirrors in order, then
registry-1.docker.io; any other registry is reached over https, verified with the
system's CAs and certs.d/<host:port>/*.crt (client.cert + client.key offered), unless it
is insecure (insecure-registries, or loopback as Docker always treats it): then https
without verification is tried first and plain http after it. It sends no requests.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
DEFAULT_HOST = "registry-1.docker.io"
_DOCKER_IO_NAMES = ("", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class RegistryConfig:
    """daemon.json's registry settings, and the client's retry policy and timeouts.

    `loopback_insecure` is Docker's fixed rule that 127.0.0.0/8 and ::1 are insecure
    registries; only tests of TLS verification on loopback turn it off."""

    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[str, ...] = ("/etc/berth/certs.d", "/etc/docker/certs.d")
    retries: int = 5
    retry_delay: float = 1.0
    loopback_insecure: bool = True
    connect_timeout: float = 30.0  # to connect, as Docker's dialer
    read_timeout: float = 60.0  # for each next piece of an answer: a stalled registry is given up
    api_timeout: float = 300.0  # for a whole API exchange (not a blob's body)


@dataclass(frozen=True)
class Endpoint:
    """One way to reach a registry: `base` ("https://localhost:5000", no trailing
    slash), the `host` ("localhost:5000") that names its certs.d directory, whether TLS
    is verified, and whether it is a mirror (any error there falls through to the
    next endpoint, as Docker does)."""

    base: str
    host: str
    verify: bool = True
    mirror: bool = False

    @property
    def secure(self) -> bool:
        return self.base.startswith("https://")


def registry_host(domain: str) -> str:
    """The host a reference's domain is reached at: docker.io is registry-1.docker.io."""
    return DEFAULT_HOST if domain.lower() in _DOCKER_IO_NAMES else domain


def server_host(server: str) -> str:
    """A login's server address ("", "https://index.docker.io/v1/", "localhost:5000",
    "https://localhost:5000/") as the host it names."""
    text = server.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    text = text.split("/", 1)[0]
    return registry_host(text)


def _split_host(host: str) -> str:
    """The host name or IP of "host:port", "[::1]:5000", "::1"."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_insecure(host: str, config: RegistryConfig) -> bool:
    """Whether `host` ("localhost:5000") is an insecure registry: named in
    insecure-registries, or an IP (or localhost) in one of its CIDRs or on loopback.
    Unlike Docker, names other than localhost are not resolved to check their IPs."""
    if host in config.insecure:
        return True
    name = _split_host(host)
    if name == "localhost":
        ips = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    else:
        try:
            ips = [ipaddress.ip_address(name)]
        except ValueError:
            return False
    networks = list(_LOOPBACK) if config.loopback_insecure else []
    for entry in config.insecure:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return any(ip.version == net.version and ip in net for ip in ips for net in networks)


def endpoints(domain: str, config: RegistryConfig, push: bool = False) -> list[Endpoint]:
    """The endpoints to try, in order, for a repository on `domain` (moby's
    lookupV2Endpoints): mirrors first for a docker.io pull."""
    host = registry_host(domain)
    found: list[Endpoint] = []
    if host == DEFAULT_HOST:
        if not push:
            for mirror in config.mirrors:
                base = mirror.rstrip("/")
                if "://" not in base:
                    base = "https://" + base
                mirror_host = base.split("://", 1)[1].split("/", 1)[0]
                found.append(Endpoint(base, mirror_host, not is_insecure(mirror_host, config), True))
        found.append(Endpoint(f"https://{DEFAULT_HOST}", DEFAULT_HOST))
        return found
    if is_insecure(host, config):
        return [Endpoint(f"https://{host}", host, verify=False), Endpoint(f"http://{host}", host, verify=False)]
    return [Endpoint(f"https://{host}", host)]


def certs_stamp(endpoint: Endpoint, config: RegistryConfig) -> tuple[tuple[str, int, int], ...]:
    """What `endpoint`'s certs.d directories hold now (names, sizes, mtimes): a TLS
    set-up made from other contents is stale. Docker reads certs.d at every pull, push
    and login, so a CA added (or removed) takes effect without a restart."""
    found = []
    for root in config.certs_dirs:
        directory = os.path.join(root, endpoint.host)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            try:
                st = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            found.append((os.path.join(directory, name), st.st_size, st.st_mtime_ns))
    return tuple(found)


def tls_context(endpoint: Endpoint, config: RegistryConfig) -> ssl.SSLContext | bool:
    """The TLS set-up for `endpoint` (reads files: call it in a thread). Verified: the
    system's CAs, plus every certs.d/<host>/*.crt, and client.cert/client.key (or any
    NAME.cert with NAME.key) as the client certificate. Unverified: no checks at all,
    as Docker's InsecureSkipVerify; still offering a client certificate if one is
    there."""
    if not endpoint.secure:
        return True
    ctx = ssl.create_default_context()
    if not endpoint.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for root in config.certs_dirs:
        directory = os.path.join(root, endpoint.host)  # named host:port, as written
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if name.endswith(".crt") and endpoint.verify:
                ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = path[: -len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise ValueError(f"missing key {name[:-5]}.key for client certificate {name}")
                ctx.load_cert_chain(path, key)
            elif name.endswith(".key") and not os.path.exists(path[: -len(".key")] + ".cert"):
                raise ValueError(f"missing client certificate {name[:-4]}.cert for key {name}")
    return ctx
