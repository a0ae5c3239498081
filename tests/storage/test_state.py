"""State groups as delta chains, and current state, on both engines."""

from __future__ import annotations

import random

import pytest
import pytest_twisted

from storage.datastore import DataStore
from storage.stores.event_fetch import EventFetcher
from storage.stores.events import EventStore
from storage.stores.state import StateStore
from tests.storage.room_builder import ALICE, BOB, CAROL, RoomBuilder, count_rows


def _cold_state_store(datastore: DataStore, **kwargs: int) -> StateStore:
    """A StateStore with empty caches, so every read goes to the database."""
    return StateStore(datastore.db, EventFetcher(datastore.db, datastore.events._sealer), **kwargs)


@pytest_twisted.ensureDeferred
async def test_linear_room_state_rows_grow_with_state_changes_only(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    state_changes = 1
    for i in range(199):
        if i % 10 == 9:  # 19 more state changes, among 180 messages
            await room.send("m.room.topic", {"topic": f"topic {i}"}, state_key="")
            state_changes += 1
        else:
            await room.message(f"message {i}")
    assert state_changes == 20 and len(room.expected) == 200

    # One group per state change, each holding one entry: nothing per message.
    assert await count_rows(datastore, "state_groups") == 20
    assert await count_rows(datastore, "state_group_entries") == 20
    assert await count_rows(datastore, "event_to_state_groups") == 200

    # The state after every event equals the replay, read cold from the chains...
    cold = _cold_state_store(datastore)
    assert await cold.get_state_ids_for_events(room.expected) == room.expected
    # ...and warm from the writer's cache.
    assert await datastore.state.get_state_ids_for_events(room.expected) == room.expected
    assert await cold.get_current_state(room.room_id) == room.state


@pytest.mark.parametrize("parent_cached", [True, False])
@pytest_twisted.ensureDeferred
async def test_chain_bound_triggers_full_snapshots(datastore: DataStore, parent_cached: bool) -> None:
    # A cache too small to hold anything makes the writer load the parent from the database.
    state = _cold_state_store(datastore, max_delta_chain=3, group_cache_entries=10_000 if parent_cached else 0)
    events = EventStore(datastore.db, datastore.events._sealer, datastore.events_stream, state,
                        EventFetcher(datastore.db, datastore.events._sealer))
    room = RoomBuilder(datastore, events=events)
    await room.create()
    for i in range(9):
        await room.send("org.example.setting", {"n": i}, state_key=f"k{i}")
        await room.message("between")

    rows = await datastore.db.execute(
        "groups", "SELECT id, prev_group, delta_count FROM state_groups ORDER BY id"
    )
    assert [(prev is None, count) for _, prev, count in rows] == [
        (True, 0), (False, 1), (False, 2), (False, 3),
        (True, 0), (False, 1), (False, 2), (False, 3),
        (True, 0), (False, 1),
    ]
    # Snapshots hold the whole state (1, 5 and 9 entries), deltas one entry each.
    assert await count_rows(datastore, "state_group_entries") == 1 + 5 + 9 + 7
    assert await _cold_state_store(datastore).get_state_ids_for_events(room.expected) == room.expected


@pytest_twisted.ensureDeferred
async def test_store_state_group_works_out_deltas_and_removals(datastore: DataStore) -> None:
    state = datastore.state
    room_id = "!r:example.org"
    common = {("m.room.create", ""): "$c", ("m.room.join_rules", ""): "$j", ("m.room.power_levels", ""): "$p"}
    base = {**common, ("m.room.member", ALICE): "$a", ("m.room.member", BOB): "$b"}
    g1 = await state.store_state_group(room_id, None, None, None, base)
    # Bob gone, Alice's member event replaced, a topic added: a 3-entry delta, not a snapshot.
    new = {**common, ("m.room.member", ALICE): "$a2", ("m.room.topic", ""): "$t"}
    g2 = await state.store_state_group(room_id, None, g1, None, new)
    rows = await datastore.db.execute(
        "entries", "SELECT type, state_key, event_id FROM state_group_entries WHERE state_group = ?", g2
    )
    assert sorted(rows, key=str) == sorted(
        [("m.room.member", ALICE, "$a2"), ("m.room.member", BOB, None), ("m.room.topic", "", "$t")],
        key=str,
    )
    # The same state again is the same group; an explicit delta stacks on it.
    assert await state.store_state_group(room_id, None, g2, None, dict(new)) == g2
    g3 = await state.store_state_group(room_id, "$x", g2, {("m.room.topic", ""): None}, None)

    cold = _cold_state_store(datastore)
    assert await cold.get_state_for_group(g1) == base
    assert await cold.get_state_for_group(g2) == new
    assert await cold.get_state_for_group(g3) == {k: v for k, v in new.items() if k[0] != "m.room.topic"}
    assert await cold.get_state_for_group(g2, [("m.room.member", None)]) == {("m.room.member", ALICE): "$a2"}
    assert await cold.get_state_for_group(g2, [("m.room.topic", ""), ("m.room.name", "")]) == {
        ("m.room.topic", ""): "$t"
    }
    assert await cold.get_state_for_groups([g1, g3, 999_999]) == {
        g1: base, g3: await cold.get_state_for_group(g3)
    }
    with pytest.raises(KeyError):
        await cold.get_state_for_group(999_999)
    with pytest.raises(ValueError):
        await state.store_state_group(room_id, None, None, None, None)


@pytest_twisted.ensureDeferred
async def test_current_state_and_state_events(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    create = await room.create()
    join = await room.member(ALICE, "join", displayname="Alice")
    name = await room.send("m.room.name", {"name": "Ops"}, state_key="")
    await room.message("hello")
    renamed = await room.send("m.room.name", {"name": "Ops team"}, state_key="")

    expected = {
        ("m.room.create", ""): create.event_id,
        ("m.room.member", ALICE): join.event_id,
        ("m.room.name", ""): renamed.event_id,
    }
    assert await datastore.state.get_current_state(room.room_id) == expected
    assert await _cold_state_store(datastore).get_current_state(room.room_id) == expected
    assert await datastore.state.get_current_state(room.room_id, [("m.room.name", "")]) == {
        ("m.room.name", ""): renamed.event_id
    }
    events = await datastore.state.get_current_state_events(room.room_id, [("m.room.member", None)])
    assert list(events) == [("m.room.member", ALICE)]
    assert events[("m.room.member", ALICE)].event.content["displayname"] == "Alice"
    # The state after the first name event still has it.
    assert (await datastore.state.get_state_ids_for_events([name.event_id]))[name.event_id][
        ("m.room.name", "")
    ] == name.event_id

    other = RoomBuilder(datastore)
    await other.create(BOB)
    wanted = [("m.room.name", ""), ("m.room.create", "")]
    for state in (datastore.state, _cold_state_store(datastore)):
        assert await state.get_current_state_for_rooms([room.room_id, other.room_id, "!none:x"], wanted) == {
            room.room_id: {k: v for k, v in expected.items() if k[0] != "m.room.member"},
            other.room_id: {("m.room.create", ""): other.last.event_id},  # type: ignore[union-attr]
            "!none:x": {},
        }
    assert await datastore.state.get_current_state("!none:x") == {}
    full = await datastore.state.get_current_state_events_for_rooms([room.room_id, other.room_id])
    assert {k: s.event.event_id for k, s in full[room.room_id].items()} == expected
    assert list(full[other.room_id]) == [("m.room.create", "")]
    names = await _cold_state_store(datastore).get_current_state_events_for_rooms(
        [room.room_id, other.room_id], [("m.room.name", "")]
    )
    assert names[room.room_id][("m.room.name", "")].event.content == {"name": "Ops team"}
    assert names[other.room_id] == {}


@pytest_twisted.ensureDeferred
async def test_set_current_state_after_resolution_moves_memberships(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    alice = await room.member(ALICE, "join")
    bob = await room.member(BOB, "join")
    # A branch where Carol joined, persisted without touching current state.
    carol = room.build("m.room.member", {"membership": "join"}, state_key=CAROL, sender=CAROL, prev=[alice])
    alice_group = await datastore.state.get_state_group_for_event(alice.event_id)
    await datastore.events.persist_event(carol, prev_state_group=alice_group, update_current_state=False)
    assert await datastore.events.get_users_in_room(room.room_id) == [ALICE, BOB]
    before = await datastore.state.get_current_state(room.room_id)

    resolved = {k: v for k, v in before.items() if k != ("m.room.member", BOB)}
    resolved[("m.room.member", CAROL)] = carol.event_id
    await datastore.state.set_current_state(room.room_id, resolved)
    assert await datastore.state.get_current_state(room.room_id) == resolved
    assert await _cold_state_store(datastore).get_current_state(room.room_id) == resolved
    assert await datastore.events.get_users_in_room(room.room_id) == [ALICE, CAROL]
    assert bob.event_id not in resolved.values()
    with pytest.raises(ValueError, match="not stored"):
        await datastore.state.set_current_state(room.room_id, {**resolved, ("m.room.topic", ""): "$unknown"})
    assert await datastore.state.get_current_state(room.room_id) == resolved


@pytest_twisted.ensureDeferred
async def test_random_branching_groups_read_back_exactly(datastore: DataStore) -> None:
    """Many groups branching off random ancestors, with removals and full states, chain bound 4."""
    rng = random.Random(20240611)
    state = _cold_state_store(datastore, max_delta_chain=4)
    keys = [("m.room.member", f"@u{i}:example.org") for i in range(12)] + [("m.room.topic", "")]
    expected: dict[int, dict] = {}
    for step in range(120):
        parent = rng.choice(list(expected)) if expected else None
        base = expected.get(parent, {}) if parent is not None else {}
        new = dict(base)
        for key in rng.sample(keys, rng.randint(1, 4)):
            if key in new and rng.random() < 0.3:
                del new[key]
            else:
                new[key] = f"${step}-{rng.randrange(1000)}"
        if parent is not None and rng.random() < 0.5:
            delta = {k: new.get(k) for k in set(base) | set(new) if base.get(k) != new.get(k)}
            group = await state.store_state_group("!r:x", None, parent, delta, None)
        else:
            group = await state.store_state_group("!r:x", None, parent, None, new)
        expected[group] = new
    counts = await datastore.db.execute("max", "SELECT MAX(delta_count) FROM state_groups")
    assert counts[0][0] <= 4
    assert await _cold_state_store(datastore).get_state_for_groups(expected) == expected
