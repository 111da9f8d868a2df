"""The typed compose model: a loaded, merged, interpolated and normalized project.

Owns: the records (dataclasses) every compose command works on, each key in its long
form (ports, volumes, depends_on, build, secrets… as compose v2 normalizes them).
Durations are integer nanoseconds, sizes integer bytes, as compose-go keeps them.
Must not: parse files or talk to the Engine API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PortConfig:
    target: int
    published: str | None = None
    host_ip: str | None = None
    protocol: str = "tcp"
    mode: str = "ingress"
    name: str | None = None
    app_protocol: str | None = None


@dataclass
class BindOptions:
    propagation: str | None = None
    create_host_path: bool | None = None
    selinux: str | None = None


@dataclass
class VolumeOptions:
    nocopy: bool = False
    subpath: str | None = None


@dataclass
class TmpfsOptions:
    size: int | None = None
    mode: int | None = None


@dataclass
class ServiceVolume:
    type: str  # "bind", "volume", "tmpfs", "npipe", "cluster", "image"
    target: str
    source: str | None = None
    read_only: bool = False
    consistency: str | None = None
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None


@dataclass
class Dependency:
    condition: str = "service_started"
    required: bool = True
    restart: bool = False


@dataclass
class Healthcheck:
    test: list[str] | None = None
    interval: int | None = None
    timeout: int | None = None
    retries: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    disable: bool = False


@dataclass
class BuildConfig:
    context: str
    dockerfile: str = "Dockerfile"
    dockerfile_inline: str | None = None
    args: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    network: str | None = None
    shm_size: int | None = None
    extra_hosts: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    no_cache: bool = False
    pull: bool = False


@dataclass
class ServiceNetwork:
    aliases: list[str] = field(default_factory=list)
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: list[str] = field(default_factory=list)
    priority: int | None = None
    mac_address: str | None = None


@dataclass
class Logging:
    driver: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Ulimit:
    soft: int
    hard: int
    single: bool = False  # written as one number (`nproc: 65535`)


@dataclass
class RestartPolicy:
    condition: str | None = None
    delay: int | None = None
    max_attempts: int | None = None
    window: int | None = None


@dataclass
class ResourceSpec:
    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None


@dataclass
class Resources:
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None


@dataclass
class Deploy:
    mode: str | None = None
    replicas: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    resources: Resources | None = None
    restart_policy: RestartPolicy | None = None


@dataclass
class FileReference:
    """A service's use of a secret or config. A secret's target is /run/secrets/SOURCE
    when none is given; a relative target is kept as written (relative to /run/secrets),
    as compose v2 keeps it."""

    source: str
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


@dataclass
class DeviceMapping:
    source: str
    target: str
    permissions: str | None = None


@dataclass
class Hook:
    """post_start / pre_stop."""

    command: list[str]
    user: str | None = None
    privileged: bool = False
    working_dir: str | None = None
    environment: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Service:
    name: str
    image: str | None = None
    build: BuildConfig | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    ports: list[PortConfig] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    volumes: list[ServiceVolume] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    networks: dict[str, ServiceNetwork | None] = field(default_factory=dict)
    network_mode: str | None = None
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: str | None = None
    deploy: Deploy | None = None
    labels: dict[str, str] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    secrets: list[FileReference] = field(default_factory=list)
    configs: list[FileReference] = field(default_factory=list)
    logging: Logging | None = None
    ulimits: dict[str, Ulimit] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    extra_hosts: list[str] = field(default_factory=list)  # "host=ip", sorted
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    init: bool | None = None
    privileged: bool = False
    read_only: bool = False
    stdin_open: bool = False
    tty: bool = False
    stop_signal: str | None = None
    stop_grace_period: int | None = None
    pull_policy: str | None = None
    platform: str | None = None
    links: list[str] = field(default_factory=list)
    external_links: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    security_opt: list[str] = field(default_factory=list)
    devices: list[DeviceMapping] = field(default_factory=list)
    ipc: str | None = None
    pid: str | None = None
    shm_size: int | None = None
    scale: int | None = None
    post_start: list[Hook] = field(default_factory=list)
    pre_stop: list[Hook] = field(default_factory=list)
    # Keys of the specification berth passes through untyped (cpu_shares, develop…) and
    # the service's `x-` extensions, by their compose names, as loaded and interpolated.
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        if self.deploy is not None and self.deploy.replicas is not None:
            return self.deploy.replicas
        return self.scale if self.scale is not None else 1


@dataclass
class Network:
    name: str
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool | None = None
    ipam: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Volume:
    name: str
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class FileObject:
    """A top-level secret or config."""

    name: str
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False


@dataclass
class Project:
    name: str
    working_dir: str
    config_files: list[str]
    services: dict[str, Service]
    networks: dict[str, Network] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    secrets: dict[str, FileObject] = field(default_factory=dict)
    configs: dict[str, FileObject] = field(default_factory=dict)
    # The variables interpolation used: the process environment over the .env files.
    environment: dict[str, str] = field(default_factory=dict)
    # Services left out by their profiles.
    disabled_services: dict[str, Service] = field(default_factory=dict)
    # Interpolation warnings ("The "X" variable is not set…"), for the CLI to print.
    warnings: list[str] = field(default_factory=list)
    # Top-level `x-` keys, kept only so that `config` prints them as compose v2 does.
    extensions: dict[str, Any] = field(default_factory=dict)
