"""Network drivers behind one interface (`NetworkDriver`, in driver.py), one module each:
bridge, macvlan, host, null. The controller picks a network's driver by the name in its
record through `Drivers` and never asks which one it has; a driver of cluster scope
(overlay) is one more `register`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from berth.errors import InvalidParameter, NotFound
from berth.network.drivers.bridge import BridgeDriver
from berth.network.drivers.driver import HostNetworking, NetworkDriver
from berth.network.drivers.host import HostDriver
from berth.network.drivers.macvlan import MacvlanDriver
from berth.network.drivers.null import NullDriver
from berth.network.model import Network

# Docker's own drivers that berth does not have: refused as unsupported, where a name
# nobody knows is looked for as a plugin (and not found), as dockerd does
UNSUPPORTED = ("overlay", "ipvlan")


class Drivers:
    def __init__(self, drivers: Iterable[NetworkDriver] = ()) -> None:
        self._by_name: dict[str, NetworkDriver] = {}
        for d in drivers:
            self.register(d)

    def register(self, driver: NetworkDriver) -> None:
        self._by_name[driver.name] = driver

    def get(self, name: str) -> NetworkDriver:
        """The driver called `name`; Docker's error when there is none."""
        driver = self._by_name.get(name)
        if driver is not None:
            return driver
        if name in UNSUPPORTED:
            raise InvalidParameter(f"the {name} driver is not supported by berth")
        raise NotFound(f"could not find plugin {name} in v1 plugin registry: plugin not found")

    def names(self) -> list[str]:
        return sorted(self._by_name)


def local_drivers(host: HostNetworking, networks: Callable[[], Iterable[Network]]) -> Drivers:
    """The drivers of a single host; `networks` lists every network known (a bridge's
    name must not be another network's)."""
    return Drivers([BridgeDriver(host, networks), MacvlanDriver(host), HostDriver(), NullDriver()])


__all__ = ["Drivers", "HostNetworking", "NetworkDriver", "UNSUPPORTED", "local_drivers"]
