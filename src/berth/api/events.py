"""`GET /events`: the event log as a stream of JSON messages, one per line.

The past events between `since` and `until` come first, then new ones as they happen,
each flushed as it is written. The stream ends at `until` (at once when it is in the
past), or when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from berth.api import versions
from berth.api.server import Routes, context
from berth.errors import InvalidParameter
from berth.events import Event, EventFilter, EventLog, parse_timestamp

routes = Routes()

# how often a quiet stream checks that its client is still there
_LIVENESS_INTERVAL = 1.0


def _log(request: web.Request) -> EventLog:
    return context(request).events


def render(ev: Event) -> dict[str, Any]:
    """Docker's events.Message. Container and image events also carry the fields older
    clients read (status, id, from), as dockerd still sends them at API 1.51."""
    doc: dict[str, Any] = {}
    if ev.type in ("container", "image"):
        doc["status"] = ev.action
        if ev.actor_id:
            doc["id"] = ev.actor_id
        if ev.type == "container" and ev.attributes.get("image"):
            doc["from"] = ev.attributes["image"]
    doc["Type"] = ev.type
    doc["Action"] = ev.action
    doc["Actor"] = {"ID": ev.actor_id, "Attributes": dict(sorted(ev.attributes.items()))}
    doc["scope"] = ev.scope
    doc["time"] = ev.time_nano // 1_000_000_000
    doc["timeNano"] = ev.time_nano
    return doc


def parse_filters(raw: str) -> dict[str, list[str]]:
    """The `filters` parameter in either of Docker's forms, {"k": {"v": true}} or the
    older {"k": ["v"]}. Keys are not checked: dockerd ignores those it does not know."""
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidParameter("invalid filter") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid filter")
    out: dict[str, list[str]] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and all(isinstance(on, bool) for on in value.values()):
            out[key] = [v for v, on in value.items() if on]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise InvalidParameter("invalid filter")
    return out


def _timestamp(request: web.Request, name: str) -> int | None:
    value = request.query.get(name, "")
    try:
        return parse_timestamp(value)
    except InvalidParameter as e:
        raise InvalidParameter(f"invalid value for '{name}': {e}") from None


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    since = _timestamp(request, "since")
    until = _timestamp(request, "until")
    now = time.time_ns()
    if until is not None and "." not in request.query.get("until", "") and until <= now < until + 1_000_000_000:
        # The CLI sends a duration (`--until 0s`) in whole seconds: "now" would lose what
        # happened earlier in this second, the run the user just did. It means now.
        until = now
    if until is not None and since is not None and until < since:
        raise InvalidParameter(f"`since` time ({request.query.get('since')}) cannot be after "
                               f"`until` time ({request.query.get('until')})")
    event_filter = EventFilter(parse_filters(request.query.get("filters", "")))
    only_past = until is not None and until <= now

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    past, sub = _log(request).subscribe(since, until, event_filter)
    with_image_create = versions.client_at_least(request, versions.IMAGE_CREATE_EVENTS)

    def hidden(ev: Event) -> bool:
        return not with_image_create and ev.type == "image" and ev.action == "create"

    try:
        for ev in past:
            if hidden(ev):
                continue
            await response.write(json.dumps(render(ev)).encode() + b"\n")
        if only_past:
            return response
        while True:
            wait = _LIVENESS_INTERVAL
            if until is not None:
                remaining = (until - time.time_ns()) / 1e9
                if remaining <= 0:
                    break
                wait = min(wait, remaining)
            try:
                ev = await asyncio.wait_for(sub.next(), wait)
            except TimeoutError:
                if _gone(request):
                    break
                continue
            if hidden(ev):
                continue
            await response.write(json.dumps(render(ev)).encode() + b"\n")
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sub.close()
    return response
