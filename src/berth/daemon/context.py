"""The daemon's context: the services berthd built at start-up, as the API reaches them.

daemon/main.py builds every service once and passes each to the ones that need it
(constructor injection); this record is what the API's handlers get, typed, so that
mypy checks route code against the services. It holds references only: it builds,
starts and stops nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.builder.builder import Builder
from berth.containers.execs import ExecService
from berth.containers.manager import ContainerManager
from berth.daemon.config import DaemonConfig
from berth.events import EventLog
from berth.images.store import ImageStore
from berth.layers.store import LayerStore
from berth.network.controller import NetworkController
from berth.volumes.store import VolumeStore


@dataclass(frozen=True)
class DaemonContext:
    """What the API handlers reach: the configuration and the services."""

    config: DaemonConfig
    daemon_id: str
    events: EventLog
    layers: LayerStore
    images: ImageStore
    volumes: VolumeStore
    network: NetworkController
    containers: ContainerManager
    execs: ExecService
    builder: Builder
