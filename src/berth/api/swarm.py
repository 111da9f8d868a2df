"""The swarm endpoints of a node that is not in a swarm: what dockerd answers before
`swarm init` or `join` (503, with its words), so that clients which probe them — the
docker CLI's `node ls`, `service ls`, `stack`, `secret`, `config`; docker-py's
`swarm`, `services`, `nodes` — see Docker's error rather than a 404. Swarm mode itself is
issue 20's.
Must not: keep any state.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.server import Routes
from berth.errors import Unavailable

routes = Routes()

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 "to connect this node to swarm and try again.")
NOT_IN_A_SWARM = "This node is not part of a swarm"


async def _not_a_manager(request: web.Request) -> web.Response:
    raise Unavailable(NOT_A_MANAGER)


async def _not_in_a_swarm(request: web.Request) -> web.Response:
    raise Unavailable(NOT_IN_A_SWARM)


# dockerd's swarm routes; leaving and unlocking a swarm one is not in say "not part of a swarm"
for _path in ("/swarm", "/swarm/unlockkey", "/nodes", "/nodes/{id}", "/services", "/services/{id}",
              "/services/{id}/logs", "/tasks", "/tasks/{id}", "/tasks/{id}/logs", "/secrets",
              "/secrets/{id}", "/configs", "/configs/{id}"):
    routes.get(_path)(_not_a_manager)
for _path in ("/swarm/update", "/nodes/{id}/update", "/services/create", "/services/{id}/update",
              "/secrets/create", "/secrets/{id}/update", "/configs/create", "/configs/{id}/update"):
    routes.post(_path)(_not_a_manager)
for _path in ("/nodes/{id}", "/services/{id}", "/secrets/{id}", "/configs/{id}"):
    routes.delete(_path)(_not_a_manager)
for _path in ("/swarm/leave", "/swarm/unlock"):
    routes.post(_path)(_not_in_a_swarm)
