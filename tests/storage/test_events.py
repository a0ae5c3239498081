"""Persisting events: one transaction, sealed at rest, extremities, txn ids, redactions."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from storage.datastore import DataStore
from storage.sealing import DataKeyError, generate_data_key_file, load_sealer
from storage.stores.event_fetch import EventFetcher
from storage.stores.events import EventStore, TxnIdInUseError
from storage.stores.state import StateStore
from tests.storage.room_builder import ALICE, BOB, CAROL, RoomBuilder, count_rows

_GRAPH_TABLES = (
    "events",
    "event_edges",
    "event_auth",
    "event_forward_extremities",
    "state_groups",
    "state_group_entries",
    "event_to_state_groups",
    "current_state_events",
    "room_memberships",
    "current_memberships",
    "event_txn_ids",
    "event_relations",
    "threads",
    "redactions",
)


def _cold_events(datastore: DataStore) -> EventStore:
    """An EventStore with empty caches, so every read goes to the database."""
    sealer = datastore.events._sealer
    fetcher = EventFetcher(datastore.db, sealer)
    return EventStore(
        datastore.db, sealer, datastore.events_stream, StateStore(datastore.db, fetcher), fetcher
    )


@pytest_twisted.ensureDeferred
async def test_persist_and_read_back(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    create = await room.create()
    before = datastore.events_stream.get_current_token()
    message = room.build("m.room.message", {"msgtype": "m.text", "body": "hi"})
    persisted = await room.persist(message)
    assert persisted.stream_ordering == datastore.events_stream.get_current_token() == before + 1
    assert persisted.state_group == await datastore.state.get_state_group_for_event(create.event_id)

    for events in (datastore.events, _cold_events(datastore)):
        stored = await events.get_event(message.event_id)
        assert stored is not None
        assert stored.event.pdu == message.pdu and stored.event.content["body"] == "hi"
        assert (stored.stream_ordering, stored.redacted_by, stored.rejected_reason, stored.outlier) == (
            persisted.stream_ordering, None, None, False
        )
        both = await events.get_events([create.event_id, message.event_id, "$missing"])
        assert set(both) == {create.event_id, message.event_id}
    assert await datastore.events.get_event("$missing") is None
    assert await datastore.events.get_max_depth([create.event_id, message.event_id, "$x"]) == 2
    assert await datastore.events.get_max_depth([]) == 0

    # Persisting the same event again changes nothing and says where it is.
    assert await datastore.events.persist_event(message, prev_state_group=None) == persisted
    assert await count_rows(datastore, "events") == 2


@pytest_twisted.ensureDeferred
async def test_content_is_sealed_at_rest(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    await room.message("the launch code is 0000")
    await room.send("m.room.topic", {"topic": "secret project"}, state_key="")
    rows = await datastore.db.execute("dump", "SELECT * FROM events")
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)
    assert b"m.room.message" in raw  # metadata stays clear...
    assert b"launch code" not in raw and b"secret project" not in raw  # ...content does not


@pytest_twisted.ensureDeferred
async def test_forward_extremities_fork_and_merge(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    base = await room.message("base")
    group = room.last_group
    left = room.build("m.room.message", {"body": "left"}, prev=[base])
    right = room.build("m.room.message", {"body": "right"}, sender=BOB, prev=[base])
    await datastore.events.persist_event(left, prev_state_group=group)
    await datastore.events.persist_event(right, prev_state_group=group)
    for events in (datastore.events, _cold_events(datastore)):
        assert sorted(await events.get_forward_extremities(room.room_id)) == sorted(
            [left.event_id, right.event_id]
        )
    merge = room.build("m.room.message", {"body": "merge"}, prev=[left, right])
    assert merge.depth == 4
    await datastore.events.persist_event(merge, prev_state_group=group)
    assert await datastore.events.get_forward_extremities(room.room_id) == [merge.event_id]
    assert await _cold_events(datastore).get_forward_extremities(room.room_id) == [merge.event_id]

    # An event arriving after its child (backfill) is no extremity.
    early = room.build("m.room.message", {"body": "early"}, prev=[merge])
    late_child = room.build("m.room.message", {"body": "child"}, prev=[early])
    await datastore.events.persist_event(late_child, prev_state_group=group)
    await datastore.events.persist_event(early, prev_state_group=group)
    assert await datastore.events.get_forward_extremities(room.room_id) == [late_child.event_id]


@pytest_twisted.ensureDeferred
async def test_outliers_and_rejected_events_leave_the_room_alone(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    create = await room.create()
    last = await room.message("last accepted")
    state_before = await datastore.state.get_current_state(room.room_id)

    rejected = room.build("m.room.name", {"name": "Hijacked"}, state_key="", sender=CAROL)
    persisted = await datastore.events.persist_event(
        rejected, prev_state_group=room.last_group, rejected_reason="auth"
    )
    assert persisted.state_group == room.last_group  # a rejected state event changes no state
    outlier = room.build("m.room.member", {"membership": "join"}, state_key=CAROL, sender=CAROL)
    persisted = await datastore.events.persist_event(outlier, prev_state_group=None, outlier=True)
    assert persisted.state_group is None

    assert await datastore.events.get_forward_extremities(room.room_id) == [last.event_id]
    assert await datastore.state.get_current_state(room.room_id) == state_before
    assert await datastore.events.get_users_in_room(room.room_id) == []
    assert await datastore.events.get_event(rejected.event_id) is None
    stored = await datastore.events.get_event(rejected.event_id, allow_rejected=True)
    assert stored is not None and stored.rejected_reason == "auth"
    assert await datastore.events.get_event(outlier.event_id, allow_outlier=False) is None
    stored = await datastore.events.get_event(outlier.event_id)
    assert stored is not None and stored.outlier
    window = await datastore.events.get_room_events_window(
        room.room_id, from_stream=None, to_stream=None, limit=10
    )
    assert [s.event.event_id for s in window] == [last.event_id, create.event_id]


@pytest_twisted.ensureDeferred
async def test_txn_ids_make_sends_idempotent(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    key = (ALICE, "PHONE", "txn1")
    assert await datastore.events.get_event_id_for_txn(*key) is None
    first = await room.send("m.room.message", {"body": "once"}, txn_key=key)
    assert await datastore.events.get_event_id_for_txn(*key) == first.event_id
    assert await datastore.events.get_event_id_for_txn(ALICE, "LAPTOP", "txn1") is None

    position = datastore.events_stream.get_current_token()
    retry = room.build("m.room.message", {"body": "once"})
    with pytest.raises(TxnIdInUseError) as raised:
        await datastore.events.persist_event(retry, prev_state_group=room.last_group, txn_key=key)
    assert raised.value.event_id == first.event_id
    assert await datastore.events.get_event(retry.event_id) is None
    assert await count_rows(datastore, "events") == 2
    assert datastore.events_stream.get_current_token() == position

    other_device = await room.send("m.room.message", {"body": "twice"}, txn_key=(ALICE, "LAPTOP", "txn1"))
    assert await datastore.events.get_event_id_for_txn(ALICE, "LAPTOP", "txn1") == other_device.event_id
    assert await datastore.events.get_txn_ids_for_events(
        ALICE, "PHONE", [first.event_id, other_device.event_id, "$x"]
    ) == {first.event_id: "txn1"}
    assert await datastore.events.get_txn_ids_for_events(ALICE, "PHONE", []) == {}
    assert await datastore.events.delete_txn_ids_before(room.clock + 1) == 2
    assert await datastore.events.get_event_id_for_txn(*key) is None


@pytest_twisted.ensureDeferred
async def test_failure_mid_persist_leaves_nothing(datastore: DataStore, tmp_path: Path) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    await room.member(ALICE, "join")
    target = await room.message("sealed with the original key")
    counts = {table: await count_rows(datastore, table) for table in _GRAPH_TABLES}
    position = datastore.events_stream.get_current_token()
    state = await datastore.state.get_current_state(room.room_id)
    extremities = await datastore.events.get_forward_extremities(room.room_id)

    # A server that lost the data key sealing the target fails to prune it, after the
    # redaction's row, edges, extremities, relation and txn id were written.
    generate_data_key_file(str(tmp_path / "other.key"))
    other = DataStore(datastore.db, load_sealer(str(tmp_path / "other.key")))
    await other.events_stream.setup()
    redaction = room.build(
        "m.room.redaction",
        {"m.relates_to": {"rel_type": "m.reference", "event_id": target.event_id}},
        redacts=target.event_id,
    )
    with pytest.raises(DataKeyError):
        await other.events.persist_event(
            redaction, prev_state_group=room.last_group, txn_key=(ALICE, "D", "t")
        )
    # So does a state event on an unknown state group, before writing anything.
    bad = room.build("m.room.member", {"membership": "join"}, state_key=BOB, sender=BOB)
    with pytest.raises(ValueError, match="unknown state group"):
        await datastore.events.persist_event(bad, prev_state_group=987_654)

    assert {table: await count_rows(datastore, table) for table in _GRAPH_TABLES} == counts
    assert datastore.events_stream.get_current_token() == position
    for event in (redaction, bad):
        assert await datastore.events.get_event(event.event_id, allow_rejected=True) is None
    assert await datastore.events.get_event_id_for_txn(ALICE, "D", "t") is None
    assert await datastore.state.get_current_state(room.room_id) == state
    assert await datastore.events.get_forward_extremities(room.room_id) == extremities
    assert await datastore.events.get_users_in_room(room.room_id) == [ALICE]
    # The room carries on normally afterwards.
    ok = await room.member(BOB, "join")
    assert await datastore.events.get_forward_extremities(room.room_id) == [ok.event_id]
    assert await _cold_events(datastore).get_users_in_room(room.room_id) == [ALICE, BOB]


@pytest.mark.parametrize("version", ["10", "12"])
@pytest_twisted.ensureDeferred
async def test_redaction_prunes_the_stored_pdu(datastore: DataStore, version: str) -> None:
    room = RoomBuilder(datastore, version=version)
    await room.create()
    secret = await room.message("my password is hunter2", url="mxc://example.org/abc")
    assert (await datastore.events.get_event(secret.event_id)) is not None  # now cached
    redaction = await room.send("m.room.redaction", {"reason": "oops"}, redacts=secret.event_id)

    rows = await datastore.db.execute(
        "raw", "SELECT pdu, redacted_by, contains_url FROM events WHERE event_id = ?", secret.event_id
    )
    blob, redacted_by, contains_url = rows[0]
    opened = datastore.events._sealer.open(blob)
    assert b"hunter2" not in opened and b"mxc://" not in opened
    assert redacted_by == redaction.event_id and not contains_url
    for events in (datastore.events, _cold_events(datastore)):
        stored = await events.get_event(secret.event_id)
        assert stored is not None
        assert stored.redacted_by == redaction.event_id
        assert stored.event.content == {} and stored.event.event_id == secret.event_id
    # The redaction keeps its own reason.
    stored_redaction = await datastore.events.get_event(redaction.event_id)
    assert stored_redaction is not None and stored_redaction.event.content["reason"] == "oops"


@pytest_twisted.ensureDeferred
async def test_redaction_received_before_its_target(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    target = room.build("m.room.message", {"body": "will be gone"}, sender=CAROL)
    other = room.build("m.room.message", {"body": "stays"}, sender=CAROL)
    redaction = room.build("m.room.redaction", {}, sender=CAROL, redacts=target.event_id)
    foreign = room.build("m.room.redaction", {}, sender=ALICE, redacts=other.event_id)
    for event in (redaction, foreign, target, other):
        await datastore.events.persist_event(event, prev_state_group=room.last_group)
    gone = await datastore.events.get_event(target.event_id)
    assert gone is not None and gone.redacted_by == redaction.event_id and gone.event.content == {}
    rows = await datastore.db.execute("raw", "SELECT pdu FROM events WHERE event_id = ?", target.event_id)
    assert b"will be gone" not in datastore.events._sealer.open(rows[0][0])
    # A redaction from another server than the target's sender is not applied by the store.
    kept = await datastore.events.get_event(other.event_id)
    assert kept is not None and kept.redacted_by is None and kept.event.content["body"] == "stays"


@pytest_twisted.ensureDeferred
async def test_concurrent_writers_in_one_room_fork_and_caches_stay_true(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    base = await room.message("base")
    group = room.last_group
    # Warm the caches the writers must keep true.
    assert await datastore.events.get_forward_extremities(room.room_id) == [base.event_id]
    before = await datastore.state.get_current_state(room.room_id)
    users = [f"@user{i}:example.org" for i in range(6)]
    joins = [
        room.build("m.room.member", {"membership": "join"}, state_key=u, sender=u, prev=[base]) for u in users
    ]
    results = await defer.gatherResults(
        [defer.ensureDeferred(datastore.events.persist_event(e, prev_state_group=group)) for e in joins]
    )
    assert len({r.stream_ordering for r in results}) == len(joins)
    assert len({r.state_group for r in results}) == len(joins)

    fork = sorted(e.event_id for e in joins)
    current = {**before, **{("m.room.member", e.state_key): e.event_id for e in joins}}
    for events in (datastore.events, _cold_events(datastore)):
        assert sorted(await events.get_forward_extremities(room.room_id)) == fork
        assert await events.get_users_in_room(room.room_id) == sorted(users)
    assert await datastore.state.get_current_state(room.room_id) == current
    assert await StateStore(datastore.db, EventFetcher(datastore.db, datastore.events._sealer)).get_current_state(
        room.room_id
    ) == current
    # Each join's own state: the base state plus that join only.
    for event, result in zip(joins, results):
        assert await datastore.state.get_state_for_group(result.state_group) == {  # type: ignore[arg-type]
            **before, ("m.room.member", event.state_key): event.event_id
        }


@pytest_twisted.ensureDeferred
async def test_concurrent_writers_in_many_rooms(datastore: DataStore) -> None:
    rooms = [RoomBuilder(datastore) for _ in range(5)]
    for room in rooms:
        await room.create()

    async def chat(room: RoomBuilder) -> None:
        for i in range(10):
            await room.message(f"{i}")

    await defer.gatherResults([defer.ensureDeferred(chat(room)) for room in rooms])
    latest = await datastore.events.get_latest_events_for_rooms([r.room_id for r in rooms], limit=20)
    for room in rooms:
        timeline, limited = latest[room.room_id]
        assert [s.event.event_id for s in timeline] == list(room.expected) and not limited
    orderings = [s.stream_ordering for timeline, _ in latest.values() for s in timeline]
    assert len(set(orderings)) == 55
    assert datastore.events_stream.get_current_token() == max(orderings)


@pytest_twisted.ensureDeferred
async def test_the_same_event_persisted_concurrently_is_stored_once(datastore: DataStore) -> None:
    room = RoomBuilder(datastore)
    await room.create()
    event = room.build("m.room.message", {"body": "retransmitted"}, sender=CAROL)
    results = await defer.gatherResults(
        [
            defer.ensureDeferred(datastore.events.persist_event(event, prev_state_group=room.last_group))
            for _ in range(4)
        ]
    )
    assert len(set(results)) == 1
    assert await count_rows(datastore, "events") == 2
    assert await count_rows(datastore, "event_edges") == 1
    assert await datastore.events.get_forward_extremities(room.room_id) == [event.event_id]
