"""The event log: what happened to containers, images, volumes and networks.

Components report through hooks that berthd connects to one `EventLog` (the container
manager's `on_event`, and those of the image, volume and network stores). The log keeps
the most recent events in memory and hands each new one to every live subscriber,
which is all `GET /events` needs: the history between `since` and `until`, then the
live stream.

As in dockerd, nothing is persisted: a restarted berthd has no history. Each subscriber
has a bounded queue; one that falls that far behind loses events instead of making
the daemon wait (dockerd gives a subscriber 100 ms). `log` never blocks, and may be
called from a worker thread as well as from the event loop.

Filters and timestamps follow dockerd's rules (daemon/events/filter.go and
api/types/time in moby 28), including its quirks: a filter key it does not know is
ignored, not refused; the live stream is not held to `since`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.errors import BerthError, InvalidParameter
from berth.images import reference

if TYPE_CHECKING:
    from berth.containers.model import Container
    from berth.network.model import Network

log = logging.getLogger(__name__)

HISTORY_SIZE = 1024  # dockerd keeps 256; more costs little and serves `--since` better
SUBSCRIBER_BUFFER = 1024  # as dockerd's

# the event types whose filter key matches the actor's ID or name by prefix
_NAMED_TYPES = ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config")
# an `event` filter with one of these matches actions by prefix ("exec_start: sh -c …")
_PREFIX_ACTIONS = {"health_status", "exec_create", "exec_start"}
_INT_RE = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Event:
    type: str  # "container", "image", "volume", "network", "daemon" …
    action: str  # "create", "die", "exec_start: sh -c true" …
    actor_id: str
    attributes: Mapping[str, str]
    time_nano: int
    scope: str = "local"


class EventFilter:
    """Docker's `filters` for events: keys are ANDed, the values of a key ORed,
    except `label`, whose values must all hold."""

    def __init__(self, filters: Mapping[str, Iterable[str]] | None = None) -> None:
        self.filters = {k: set(v) for k, v in (filters or {}).items() if v}

    def matches(self, ev: Event) -> bool:
        return (self._match_action(ev)
                and self._exact("type", ev.type)
                and self._exact("scope", ev.scope)
                and all(self._named(key, ev) for key in _NAMED_TYPES)
                and self._match_image(ev)
                and self._match_labels(ev.attributes))

    def _exact(self, key: str, value: str) -> bool:
        wanted = self.filters.get(key)
        return not wanted or value in wanted

    def _fuzzy(self, key: str, value: str) -> bool:
        wanted = self.filters.get(key)
        return not wanted or value in wanted or any(value.startswith(p) for p in wanted)

    def _match_action(self, ev: Event) -> bool:
        if self.filters.get("event", set()) & _PREFIX_ACTIONS:
            return self._fuzzy("event", ev.action)
        return self._exact("event", ev.action)

    def _named(self, key: str, ev: Event) -> bool:
        return self._fuzzy(key, ev.actor_id) or self._fuzzy(key, ev.attributes.get("name", ""))

    def _match_image(self, ev: Event) -> bool:
        """An image filter takes image events and the events of containers made from it,
        by ID, by name, or by repository without its tag."""
        if not self.filters.get("image"):
            return True
        name = ev.attributes.get("name" if ev.type == "image" else "image", "")
        candidates = {ev.actor_id, name, _familiar_name(ev.actor_id), _familiar_name(name)}
        return bool(candidates & self.filters["image"])

    def _match_labels(self, attributes: Mapping[str, str]) -> bool:
        wanted = self.filters.get("label")
        if not wanted:
            return True
        if not attributes:
            return False
        for spec in wanted:
            key, eq, value = spec.partition("=")
            if key not in attributes or (eq and attributes[key] != value):
                return False
        return True


def _familiar_name(name: str) -> str:
    """`docker.io/library/busybox:latest` → `busybox`; what is no reference stays."""
    try:
        return reference.parse(name, default_tag=False).familiar_name
    except BerthError:  # not a reference: compared as it is
        return name


def parse_timestamp(value: str) -> int | None:
    """`since`/`until` as the API receives them: Unix seconds with an optional fraction
    ("1700000000", "1700000000.123456789"), in nanoseconds; None when empty.

    The CLI converts durations and dates before it sends them; the API takes only this.
    Errors name the part that failed, in Go's words, as dockerd reports them.
    """
    if value == "":
        return None
    secs, dot, frac = value.partition(".")
    seconds = _parse_int(secs)
    if not dot:
        return seconds * 1_000_000_000
    nanos = _parse_int(frac)
    # dockerd scales the fraction by its number of digits (float math: digits past 9 drop)
    nanos = int(nanos * 10.0 ** (9 - len(frac)))
    return seconds * 1_000_000_000 + nanos


def _parse_int(text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise InvalidParameter(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise InvalidParameter(f'strconv.ParseInt: parsing "{text}": value out of range')
    return number


class Subscription:
    """A live subscriber: new events that pass its filter, in order."""

    def __init__(self, log: EventLog, event_filter: EventFilter) -> None:
        self._log = log
        self._loop = asyncio.get_running_loop()
        self.filter = event_filter
        self.queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self.dropped = 0

    def offer(self, ev: Event) -> None:
        if not self.filter.matches(ev):
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._put(ev)
        else:  # an asyncio.Queue is not thread-safe: hand the event to its loop
            self._loop.call_soon_threadsafe(self._put, ev)

    def _put(self, ev: Event) -> None:
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._log.unsubscribe(self)


class EventLog:
    def __init__(self, history: int = HISTORY_SIZE, clock: Callable[[], int] = time.time_ns) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscribers: list[Subscription] = []
        self._clock = clock
        self._lock = threading.Lock()  # history, subscribers and the order of events

    def log(self, type: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None) -> None:
        with self._lock:
            ev = Event(type, action, actor_id, dict(attributes or {}), self._clock())
            self._history.append(ev)
            for sub in self._subscribers:
                sub.offer(ev)

    def container(self, action: str, c: Container, extra: Mapping[str, str]) -> None:
        """A container's event: `extra`, then its labels (which win, as in dockerd), its
        image as the user named it, and its name."""
        attributes = {**extra, **c.config.labels}
        if c.config.image:
            attributes["image"] = c.config.image
        attributes["name"] = c.name
        self.log("container", action, c.id, attributes)

    def network(self, action: str, n: Network, extra: Mapping[str, str]) -> None:
        self.log("network", action, n.id, {**extra, "name": n.name, "type": n.driver})

    def subscribe(self, since: int | None = None, until: int | None = None,
                  event_filter: EventFilter | None = None) -> tuple[list[Event], Subscription]:
        """The past events between `since` and `until` (nanoseconds; none at all when
        both are None, as in dockerd) that pass the filter, and a subscription to the
        new ones. Close the subscription when done."""
        event_filter = event_filter or EventFilter()
        past: list[Event] = []
        sub = Subscription(self, event_filter)
        with self._lock:  # no event between the history and the subscription is lost
            if since is not None or until is not None:
                low = since or 0
                past = [ev for ev in self._history if ev.time_nano >= low
                        and (not until or ev.time_nano <= until) and event_filter.matches(ev)]
            self._subscribers.append(sub)
        return past, sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub not in self._subscribers:
                return
            self._subscribers.remove(sub)
        if sub.dropped:
            log.warning("an events subscriber fell behind and lost %d events", sub.dropped)

    @property
    def listeners(self) -> int:
        return len(self._subscribers)
