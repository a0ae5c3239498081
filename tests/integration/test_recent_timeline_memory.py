"""Incremental syncs read recent timeline events from memory: the answers must equal the database's."""

from __future__ import annotations

import random

import pytest_twisted

from storage.stores.events import RECENT_EVENTS_PER_ROOM
from tests.integration.harness import V3, TestServer, create_room, send


@pytest_twisted.ensureDeferred
async def test_memory_and_database_agree_including_after_eviction(server: TestServer) -> None:
    alice = await server.register("alice")
    store = server.hs.store.events
    await alice.get(f"{V3}/sync")  # memory starts here
    rooms = [await create_room(alice) for _ in range(2)]
    for i in range(RECENT_EVENTS_PER_ROOM + 40):
        await send(alice, rooms[i % 8 == 0], f"m{i}", f"t{i}")
    now = store._stream.get_current_token()
    rng = random.Random(7)
    served_from_memory = 0
    for _ in range(40):
        after = rng.randint(0, now)
        before = rng.randint(after, now + 1)
        limit = rng.choice([1, 5, 10, 50])
        got = await store.get_latest_events_for_rooms(rooms, limit=limit, before_stream=before, after_stream=after)
        expected_ids = await store._db.run_interaction("t", store._latest_ids_txn, rooms, limit, before, after)
        for room_id in rooms:
            events, limited = got[room_id]
            newest_first = expected_ids.get(room_id, [])
            assert [e.event.event_id for e in events] == list(reversed(newest_first[:limit]))
            assert limited == (len(newest_first) > limit)
            served_from_memory += store.recent_event_ids(room_id, after, before) is not None
    assert served_from_memory > 0  # the memory path was exercised
    # The busier room evicted its oldest events: old windows must fall back to the database.
    assert any(store.recent_event_ids(r, 0, None) is None for r in rooms)
