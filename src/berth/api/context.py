"""The daemon's context: the services berthd built at start-up, as the API reaches them.

daemon/main.py builds every service once and passes each to the ones that need it
(constructor injection), then hands this record to the API; the handlers get it typed,
so that mypy checks route code against the services. It is declared here, by the layer
that uses it, so that the API never imports the daemon's start-up code (daemon/ sits
above api/). It holds references only: it builds, starts and stops nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.builder.builder import Builder
from berth.containers.execs import ExecService
from berth.containers.manager import ContainerManager
from berth.distribution.service import DistributionService
from berth.events import EventLog
from berth.images.store import ImageStore
from berth.layers.store import LayerStore
from berth.network.controller import NetworkController
from berth.plugins.manager import PluginManager
from berth.volumes.store import VolumeStore


@dataclass(frozen=True)
class DaemonInfo:
    """What `/info` tells of the daemon's own configuration."""

    daemon_id: str
    data_root: str
    log_driver: str
    live_restore: bool
    debug: bool
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    seccomp_profile: str = "builtin"  # --seccomp-profile: "builtin", "unconfined" or the file's path
    security_options: tuple[str, ...] = ()  # `docker info`'s, e.g. "name=userns"
    warnings: tuple[str, ...] = ()  # `docker info`'s (an API on TCP without client verification)


@dataclass(frozen=True)
class DaemonContext:
    """What the API handlers reach: the daemon's facts and the services."""

    info: DaemonInfo
    events: EventLog
    layers: LayerStore
    images: ImageStore
    volumes: VolumeStore
    network: NetworkController
    containers: ContainerManager
    execs: ExecService
    builder: Builder
    distribution: DistributionService
    plugins: PluginManager
