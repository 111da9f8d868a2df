"""The null driver: the one `none` network, whose containers have a loopback only.

The runtime makes the container a private network namespace with nothing in it but
`lo`; there is no endpoint to make (see host.NoEndpoints).
"""

from __future__ import annotations

from berth.network.drivers.host import NoEndpoints


class NullDriver(NoEndpoints):
    name = "null"
