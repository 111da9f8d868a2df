"""The container record: what a user asked for, and the state it is in.

Records are dataclasses; `to_doc`/`from_doc` give the JSON the store keeps. The API
layer renders Docker's JSON from them; nothing here knows Docker's field names.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from berth.images.model import Healthcheck
from berth.logs.drivers import ContainerInfo
from berth.network.model import Endpoint, PortBinding, PublishedPort


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@dataclass
class RunConfig:
    """What runs in the container (Docker's `Config`)."""

    image: str
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    healthcheck: Healthcheck | None = None


@dataclass
class MountSpec:
    """One `HostConfig.Mounts` entry (`--mount`), kept as asked so inspect can echo it."""

    type: str
    target: str = ""
    source: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_propagation: str = ""
    bind_create_mountpoint: bool = False
    has_bind_options: bool = False
    volume_no_copy: bool = False
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_driver: str = ""
    volume_driver_options: dict[str, str] = field(default_factory=dict)
    volume_subpath: str = ""  # VolumeOptions.Subpath (API 1.45): mount only this directory of it
    has_volume_options: bool = False
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    has_tmpfs_options: bool = False


@dataclass
class MountPoint:
    """A mount the container gets, resolved at create: a volume (named or anonymous),
    a host path (bind) or a tmpfs. `source` of a volume is filled in at start."""

    type: str  # "volume", "bind" or "tmpfs"
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    copy_data: bool = True
    create_source: bool = False  # -v makes a missing host directory; --mount refuses it
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    volume_options: dict[str, str] = field(default_factory=dict)  # for creating the volume
    volume_labels: dict[str, str] = field(default_factory=dict)
    subpath: str = ""  # a volume's: the directory inside it that is mounted (resolved at start)


@dataclass
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0


@dataclass
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class ThrottleDevice:
    """A per-device block I/O limit (`--device-read-bps` and the like): a rate or a weight."""

    path: str
    rate: int


@dataclass
class DeviceRequest:
    """`--gpus` and DeviceRequests: devices asked of a device driver, kept as asked."""

    driver: str = ""
    count: int = 0
    device_ids: list[str] | None = None
    capabilities: list[list[str]] | None = None
    options: dict[str, str] | None = None


@dataclass
class HostConfig:
    """How the host runs it (Docker's `HostConfig`)."""

    auto_remove: bool = False
    network_mode: str = "bridge"
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    log_config: LogConfig = field(default_factory=LogConfig)
    binds: list[str] = field(default_factory=list)
    mounts: list[MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    volume_driver: str = ""
    privileged: bool = False
    readonly_rootfs: bool = False
    init: bool | None = None
    console_size: tuple[int, int] = (0, 0)
    extra_hosts: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    port_bindings: dict[str, list[PortBinding]] = field(default_factory=dict)  # "80/tcp" -> bindings
    publish_all_ports: bool = False
    links: list[str] = field(default_factory=list)  # "name:alias"
    runtime: str = "berth"
    # resources
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    # security and the process's environment
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # "host:container:perms"
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    tmpfs: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0
    oom_score_adj: int = 0
    # namespaces: "" as Docker stores "not asked"; "host", "container:<id>", ...
    pid_mode: str = ""
    ipc_mode: str = ""  # filled in at create: the daemon's default ("private")
    uts_mode: str = ""
    userns_mode: str = ""
    cgroupns_mode: str = ""  # filled in at create: "host" on cgroup v1, "private" on v2
    cgroup: str = ""
    cgroup_parent: str = ""
    isolation: str = ""
    device_cgroup_rules: list[str] = field(default_factory=list)
    device_requests: list[DeviceRequest] | None = None
    blkio_weight_device: list[ThrottleDevice] | None = None
    blkio_device_read_bps: list[ThrottleDevice] | None = None
    blkio_device_write_bps: list[ThrottleDevice] | None = None
    blkio_device_read_iops: list[ThrottleDevice] | None = None
    blkio_device_write_iops: list[ThrottleDevice] | None = None
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_iops: int = 0
    io_maximum_bandwidth: int = 0
    kernel_memory_tcp: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    storage_opt: dict[str, str] = field(default_factory=dict)
    container_id_file: str = ""
    masked_paths: list[str] | None = None  # None: Docker's defaults, filled in at create
    readonly_paths: list[str] | None = None


@dataclass
class State:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"

    @property
    def running(self) -> bool:
        return self.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)


@dataclass
class HealthProbe:
    """One health probe's result, as the log keeps it."""

    start: str
    end: str
    exit_code: int
    output: str


@dataclass
class Health:
    """The health of a container with a health check: "starting", "healthy" or "unhealthy"."""

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthProbe] = field(default_factory=list)  # the last few probes, oldest first


@dataclass
class Container:
    id: str
    name: str  # without the leading "/"
    created: str
    image_id: str
    config: RunConfig
    host_config: HostConfig
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False  # by `docker stop`/`kill`: unless-stopped stays down
    health: Health | None = None  # from its first start with a health check on
    driver: str = "overlay2"
    log_path: str = ""
    resolv_conf_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    mounts: list[MountPoint] = field(default_factory=list)
    networks: dict[str, Endpoint] = field(default_factory=dict)  # by network name
    sandbox_key: str = ""  # the network namespace's file while it runs
    ports: list[PublishedPort] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def log_info(self) -> ContainerInfo:
        """What the log drivers may draw on for tags and `--details` attributes."""
        return ContainerInfo(self.id, self.name, self.image_id, self.config.image,
                             self.config.labels, self.config.env)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Container:
        return _build(cls, doc)


def _build(kind: Any, value: Any) -> Any:
    """Rebuild nested dataclasses (and enums) from `dataclasses.asdict` output."""
    if dataclasses.is_dataclass(kind) and isinstance(value, dict):
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _build(hints[k], v) for k, v in value.items() if k in known})  # type: ignore[operator]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(kind):
            if arg is type(None):
                if value is None:
                    return None
                continue
            return _build(arg, value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(kind) or (Any,)
        return [_build(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        _key, item = typing.get_args(kind) or (Any, Any)
        return {k: _build(item, v) for k, v in value.items()}
    return value
