"""Timeline reads: sync windows, the batched latest-events query, /messages pagination."""

from __future__ import annotations

import pytest_twisted

from homeserver.events.event import Event
from storage.datastore import DataStore
from storage.stores.event_fetch import StoredEvent
from tests.storage.room_builder import ALICE, BOB, RoomBuilder
from tests.storage.test_events import _cold_events


def _ids(stored: list[StoredEvent]) -> list[str]:
    return [s.event.event_id for s in stored]


def _event_ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


@pytest_twisted.ensureDeferred
async def test_latest_events_for_rooms_in_one_query(datastore: DataStore) -> None:
    rooms = [RoomBuilder(datastore) for _ in range(3)]
    sent: list[list[Event]] = [[], [], []]
    create_ids = [(await room.create()).event_id for room in rooms]
    # Interleave the rooms' events so stream orderings of different rooms alternate.
    for i in range(12):
        for index, count in enumerate((0, 3, 12)):
            if i < count:
                sent[index].append(await rooms[index].message(f"{index}/{i}"))
    middle = datastore.events_stream.get_current_token()
    for i in range(2):
        sent[2].append(await rooms[2].message(f"late {i}"))
    ids = [r.room_id for r in rooms]

    latest = await datastore.events.get_latest_events_for_rooms(ids + ["!none:x"], limit=5)
    assert _ids(latest[ids[0]][0]) == [create_ids[0]] and not latest[ids[0]][1]
    assert _ids(latest[ids[1]][0]) == [create_ids[1]] + _event_ids(sent[1]) and not latest[ids[1]][1]
    assert _ids(latest[ids[2]][0]) == _event_ids(sent[2][-5:]) and latest[ids[2]][1]
    assert latest["!none:x"] == ([], False)

    # Incremental: only what came after a position, up to another.
    since = await datastore.events.get_latest_events_for_rooms(ids, limit=5, after_stream=middle)
    assert since[ids[0]] == ([], False) and since[ids[1]] == ([], False)
    assert _ids(since[ids[2]][0]) == _event_ids(sent[2][-2:]) and not since[ids[2]][1]
    # Up to a position: strictly before `before_stream`.
    before = await datastore.events.get_latest_events_for_rooms(ids, limit=3, before_stream=middle + 1)
    assert _ids(before[ids[2]][0]) == _event_ids(sent[2][9:12]) and before[ids[2]][1]
    assert _ids(before[ids[1]][0]) == _event_ids(sent[1]) and before[ids[1]][1]
    before = await datastore.events.get_latest_events_for_rooms(ids[2:], limit=3, before_stream=middle)
    assert _ids(before[ids[2]][0]) == _event_ids(sent[2][8:11])

    # A cheap check of which rooms changed: from memory for this process's writes...
    assert await datastore.events.get_rooms_changed_since(ids, middle) == {ids[2]}
    assert await datastore.events.get_rooms_changed_since(ids, 0) == set(ids)
    # ...and from the database for positions before it started (a restarted server).
    restarted = _cold_events(datastore)
    assert await restarted.get_rooms_changed_since(ids, middle) == {ids[2]}
    assert await restarted.get_rooms_changed_since(ids[:2], 0) == set(ids[:2])
    assert await restarted.get_rooms_changed_since(ids, datastore.events_stream.get_current_token()) == set()


@pytest_twisted.ensureDeferred
async def test_room_events_window_by_stream_position(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    create = await room.create()
    messages = [await room.message(f"m{i}") for i in range(6)]
    orderings = [(await datastore.events.get_event(m.event_id)).stream_ordering for m in messages]  # type: ignore[union-attr]
    window = datastore.events.get_room_events_window
    assert _ids(await window(room.room_id, from_stream=None, to_stream=None, limit=3)) == _event_ids(
        messages[:2:-1]
    )
    # Backwards from a position includes the event at it; forwards excludes it.
    assert _ids(await window(room.room_id, from_stream=orderings[3], to_stream=orderings[0], limit=10)) == (
        _event_ids([messages[3], messages[2], messages[1]])
    )
    assert _ids(
        await window(room.room_id, from_stream=orderings[3], to_stream=None, limit=10, direction="f")
    ) == _event_ids(messages[4:])
    assert _ids(await window(room.room_id, from_stream=None, to_stream=orderings[1], limit=2, direction="f")) == [
        create.event_id, messages[0].event_id
    ]


@pytest_twisted.ensureDeferred
async def test_paginate_both_directions_with_filters(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    create = await room.create()
    everything: list[Event] = [create]
    for i in range(30):
        sender = ALICE if i % 3 else BOB
        if i % 5 == 0:
            event = await room.message(f"pic {i}", sender=sender, url=f"mxc://example.org/{i}")
        elif i % 7 == 0:
            event = await room.send("m.reaction", {}, sender=sender)
        elif i == 8:
            event = await room.send("M.ROOM.SHOUT", {}, sender=sender)
        else:
            event = await room.message(f"text {i}", sender=sender)
        everything.append(event)

    async def walk(direction: str, limit: int, **filters: object) -> list[str]:
        seen: list[str] = []
        token = None
        while True:
            page = await datastore.events.paginate_room_events(
                room.room_id, from_point=token, direction=direction, limit=limit, **filters  # type: ignore[arg-type]
            )
            if not page:
                return seen
            seen += _ids(page)
            last = page[-1]
            depth, stream = last.event.depth, last.stream_ordering
            token = (depth, stream - 1) if direction == "b" else (depth, stream)

    all_ids = _event_ids(everything)
    assert await walk("b", 7) == all_ids[::-1]
    assert await walk("f", 4) == all_ids

    def expect(predicate: object) -> list[str]:
        return [e.event_id for e in everything if predicate(e)]  # type: ignore[operator]

    assert await walk("f", 5, types=["m.room.*"]) == expect(lambda e: e.type.startswith("m.room."))
    assert await walk("b", 5, not_types=["m.room.message", "m.reaction"]) == expect(
        lambda e: e.type not in ("m.room.message", "m.reaction")
    )[::-1]
    assert await walk("f", 3, senders=[BOB]) == expect(lambda e: e.sender == BOB)
    assert await walk("f", 3, not_senders=[BOB], contains_url=True) == expect(
        lambda e: e.sender != BOB and "url" in e.content
    )
    assert await walk("f", 50, contains_url=False, types=["m.room.message"]) == expect(
        lambda e: e.type == "m.room.message" and "url" not in e.content
    )
    assert await walk("f", 5, types=[]) == []
    # Wildcards are case-sensitive and '_' / '%' are no wildcards.
    assert await walk("f", 50, types=["M.ROOM.*"]) == expect(lambda e: e.type == "M.ROOM.SHOUT")
    assert await walk("f", 50, types=["m_room*", "m.room.messag%"]) == []

    # A bounded range: from the 20th event back to (excluding) the 10th.
    stored = await datastore.events.get_events([all_ids[10], all_ids[20]])
    token = lambda s: (s.event.depth, s.stream_ordering)  # noqa: E731
    page = await datastore.events.paginate_room_events(
        room.room_id, from_point=token(stored[all_ids[20]]), to_point=token(stored[all_ids[10]]),
        direction="b", limit=100,
    )
    assert _ids(page) == all_ids[11:21][::-1]


@pytest_twisted.ensureDeferred
async def test_event_at_timestamp(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    messages = [await room.message(f"m{i}") for i in range(4)]
    ts = [m.origin_server_ts for m in messages]
    find = datastore.events.get_event_ids_before_ts
    assert await find(room.room_id, ts[2], "b") == messages[2].event_id
    assert await find(room.room_id, ts[2] - 1, "b") == messages[1].event_id
    assert await find(room.room_id, ts[2] - 1, "f") == messages[2].event_id
    assert await find(room.room_id, ts[3] + 1, "f") is None
    assert await find(room.room_id, 0, "b") is None
