"""The event log: history, live subscribers, Docker's filters and timestamps."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from berth.api.events import parse_filters, render
from berth.errors import InvalidParameter
from berth.events import Event, EventFilter, EventLog, parse_timestamp

S = 1_000_000_000


def clock(start: int = 100 * S, step: int = S) -> itertools.count[int]:
    return itertools.count(start, step)


def make_log(history: int = 1024) -> EventLog:
    ticks = clock()
    return EventLog(history, clock=lambda: next(ticks))


def ev(kind: str = "container", action: str = "start", actor: str = "abc123",
       attrs: dict[str, str] | None = None, **attributes: str) -> Event:
    return Event(kind, action, actor, {**(attrs or {}), **attributes}, 0)


# -- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, nanos", [
    ("", None),
    ("0", 0),
    ("1700000000", 1700000000 * S),
    ("1700000000.5", 1700000000 * S + 500_000_000),
    ("1700000000.000000001", 1700000000 * S + 1),
    ("1700000000.123456789", 1700000000 * S + 123456789),
    ("-5", -5 * S),
])
def test_parse_timestamp(text: str, nanos: int | None) -> None:
    assert parse_timestamp(text) == nanos


@pytest.mark.parametrize("text, part", [
    ("1m", "1m"), ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"), ("1.", ""), ("1.x", "x"),
    (" 1", " 1"), ("1_000", "1_000"),
])
def test_parse_timestamp_refuses_what_dockerd_refuses(text: str, part: str) -> None:
    # the CLI turns durations and dates into seconds; the API takes only seconds
    with pytest.raises(InvalidParameter) as e:
        parse_timestamp(text)
    assert str(e.value) == f'strconv.ParseInt: parsing "{part}": invalid syntax'


# -- filters ------------------------------------------------------------------------------

def test_no_filter_takes_everything() -> None:
    assert EventFilter().matches(ev())
    assert EventFilter({"type": []}).matches(ev())


def test_type_and_event_are_exact_and_ored() -> None:
    f = EventFilter({"type": ["container", "network"]})
    assert f.matches(ev("container")) and f.matches(ev("network")) and not f.matches(ev("image"))
    f = EventFilter({"event": ["die", "start"]})
    assert f.matches(ev(action="die")) and not f.matches(ev(action="destroy"))
    assert not EventFilter({"event": ["sta"]}).matches(ev(action="start"))


def test_keys_are_anded() -> None:
    f = EventFilter({"type": ["container"], "event": ["die"]})
    assert f.matches(ev("container", "die"))
    assert not f.matches(ev("container", "start"))
    assert not f.matches(ev("network", "die"))


def test_exec_and_health_events_match_by_prefix() -> None:
    f = EventFilter({"event": ["exec_start"]})
    assert f.matches(ev(action="exec_start: sh -c true"))
    assert not f.matches(ev(action="exec_die"))
    assert EventFilter({"event": ["health_status"]}).matches(ev(action="health_status: healthy"))


def test_container_matches_id_prefix_or_name() -> None:
    e = ev(actor="3f2a" + "0" * 60, name="web", image="busybox")
    assert EventFilter({"container": ["3f2a"]}).matches(e)
    assert EventFilter({"container": ["web"]}).matches(e)
    assert EventFilter({"container": ["we"]}).matches(e)  # dockerd: a prefix of the name too
    assert not EventFilter({"container": ["db"]}).matches(e)
    # other types' events do not name the container: filtered out, as in dockerd
    assert not EventFilter({"container": ["web"]}).matches(ev("network", "connect", "n1", container="3f2a", name="net"))


def test_volume_network_daemon_filters() -> None:
    vol = ev("volume", "create", "data", driver="local")
    assert EventFilter({"volume": ["data"]}).matches(vol)
    assert not EventFilter({"volume": ["other"]}).matches(vol)
    net = ev("network", "create", "a1b2c3", {"name": "front", "type": "bridge"})
    assert EventFilter({"network": ["front"]}).matches(net)
    assert EventFilter({"network": ["a1b2"]}).matches(net)
    assert not EventFilter({"network": ["back"]}).matches(net)
    assert EventFilter({"daemon": ["d1"]}).matches(ev("daemon", "reload", "d1"))


def test_image_filter_takes_image_and_container_events() -> None:
    f = EventFilter({"image": ["busybox"]})
    assert f.matches(ev("container", "start", image="busybox:latest", name="x"))
    assert f.matches(ev("container", "start", image="docker.io/library/busybox", name="x"))
    assert f.matches(ev("image", "tag", "sha256:aa", name="busybox:mine"))
    assert not f.matches(ev("image", "tag", "sha256:aa", name="alpine:3"))
    assert EventFilter({"image": ["sha256:aa"]}).matches(ev("image", "delete", "sha256:aa", name="sha256:aa"))
    assert EventFilter({"image": ["busybox:latest"]}).matches(ev("container", "die", image="busybox:latest"))
    assert not EventFilter({"image": ["busybox:1"]}).matches(ev("container", "die", image="busybox:latest"))


def test_labels_must_all_hold() -> None:
    e = ev(name="x", tier="web", team="a")
    assert EventFilter({"label": ["tier"]}).matches(e)
    assert EventFilter({"label": ["tier=web", "team=a"]}).matches(e)
    assert not EventFilter({"label": ["tier=web", "team=b"]}).matches(e)
    assert not EventFilter({"label": ["missing"]}).matches(e)
    assert not EventFilter({"label": ["tier"]}).matches(ev())


def test_scope_filter() -> None:
    assert EventFilter({"scope": ["local"]}).matches(ev())
    assert not EventFilter({"scope": ["swarm"]}).matches(ev())


def test_unknown_filter_keys_are_ignored_as_dockerd_does() -> None:
    assert EventFilter({"colour": ["blue"]}).matches(ev())
    assert parse_filters('{"colour":{"blue":true}}') == {"colour": ["blue"]}


def test_parse_filters_both_forms_and_errors() -> None:
    assert parse_filters("") == {}
    assert parse_filters('{"type":{"container":true,"image":false}}') == {"type": ["container"]}
    assert parse_filters('{"type":["container"]}') == {"type": ["container"]}
    for bad in ("{", "[]", '{"type":"container"}', '{"type":[1]}'):
        with pytest.raises(InvalidParameter, match="^invalid filter$"):
            parse_filters(bad)


# -- history and subscribers ------------------------------------------------------------------

def test_history_only_with_since_or_until() -> None:
    async def go() -> None:
        log = make_log()
        log.log("container", "create", "c1")
        past, sub = log.subscribe()
        assert past == []
        sub.close()
        past, sub = log.subscribe(since=0)
        assert [e.action for e in past] == ["create"]
        sub.close()
        past, sub = log.subscribe(until=10**30)
        assert [e.action for e in past] == ["create"]
        sub.close()

    asyncio.run(go())


def test_since_and_until_bound_history() -> None:
    async def go() -> None:
        log = make_log()  # times 100 s, 101 s, 102 s, 103 s
        for action in ("create", "start", "die", "destroy"):
            log.log("container", action, "c1")
        past, sub = log.subscribe(since=101 * S, until=102 * S)
        assert [e.action for e in past] == ["start", "die"]
        sub.close()
        past, sub = log.subscribe(since=102 * S + 1)
        assert [e.action for e in past] == ["destroy"]
        sub.close()

    asyncio.run(go())


def test_history_is_bounded() -> None:
    async def go() -> None:
        log = make_log(history=3)
        for i in range(5):
            log.log("volume", "create", f"v{i}")
        past, sub = log.subscribe(since=0)
        assert [e.actor_id for e in past] == ["v2", "v3", "v4"]
        sub.close()

    asyncio.run(go())


def test_history_is_filtered() -> None:
    async def go() -> None:
        log = make_log()
        log.log("container", "create", "c1")
        log.log("volume", "create", "v1")
        past, sub = log.subscribe(since=0, event_filter=EventFilter({"type": ["volume"]}))
        assert [e.actor_id for e in past] == ["v1"]
        sub.close()

    asyncio.run(go())


def test_subscribers_get_new_matching_events_until_closed() -> None:
    async def go() -> None:
        log = make_log()
        _, everything = log.subscribe()
        _, volumes = log.subscribe(event_filter=EventFilter({"type": ["volume"]}))
        assert log.listeners == 2
        log.log("container", "create", "c1")
        log.log("volume", "create", "v1")
        assert (await everything.next()).actor_id == "c1"
        assert (await everything.next()).actor_id == "v1"
        assert (await asyncio.wait_for(volumes.next(), 1)).actor_id == "v1"
        volumes.close()
        volumes.close()  # closing twice is harmless
        assert log.listeners == 1
        log.log("volume", "destroy", "v1")
        assert volumes.queue.empty()
        everything.close()
        assert log.listeners == 0

    asyncio.run(go())


def test_a_slow_subscriber_loses_events_and_never_blocks() -> None:
    async def go() -> None:
        log = make_log()
        _, sub = log.subscribe()
        for i in range(sub.queue.maxsize + 10):
            log.log("volume", "create", f"v{i}")
        assert sub.queue.qsize() == sub.queue.maxsize
        assert sub.dropped == 10
        sub.close()

    asyncio.run(go())


# -- the wire format --------------------------------------------------------------------------

def test_container_message_has_dockers_legacy_fields() -> None:
    e = Event("container", "die", "c1", {"name": "web", "image": "busybox", "exitCode": "0"}, 1700000000123456789)
    assert render(e) == {
        "status": "die", "id": "c1", "from": "busybox", "Type": "container", "Action": "die",
        "Actor": {"ID": "c1", "Attributes": {"exitCode": "0", "image": "busybox", "name": "web"}},
        "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789,
    }
    assert list(render(e)) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]


def test_image_message_has_status_and_id_others_do_not() -> None:
    img = render(Event("image", "tag", "sha256:aa", {"name": "busybox:x"}, S))
    assert img["status"] == "tag" and img["id"] == "sha256:aa" and "from" not in img
    net = render(Event("network", "create", "n1", {"name": "front", "type": "bridge"}, S))
    assert "status" not in net and "id" not in net and net["Actor"]["ID"] == "n1"


def test_events_logged_from_a_thread_reach_the_loop() -> None:
    async def go() -> None:
        log = make_log()
        _, sub = log.subscribe()
        await asyncio.to_thread(log.log, "image", "delete", "sha256:aa")
        got = await asyncio.wait_for(sub.next(), 1)
        assert (got.type, got.action, got.actor_id) == ("image", "delete", "sha256:aa")
        sub.close()

    asyncio.run(go())
