"""Message retention set by the organisation (MSC1763), over real HTTP on both engines.

Policies are checked against the organisation's bounds when sent; new rooms get the default
policy; an expired event disappears from every read path at once, and the purge job deletes it
from the database (current state and forward extremities kept, as stubs where they must be),
skipping legal holds; media expire by age. Expired events also leave `/timestamp_to_event`,
unread counts and thread summaries at once, state at a past point shows them pruned, and a room
upgrade keeps the policy. Time moves by giving the retention handler a clock set in the future;
the purge job is run directly with that time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from homeserver.clock import Clock
from tests.integration.harness import V3, Client, TestServer, create_room, q, send
from tests.integration.test_media import CLIENT_MEDIA, media_files, upload
from tests.integration.test_relations import V1, relate

DAY = 86_400_000
CONFIG_PATH = "/_matrix/client/unstable/org.matrix.msc1763/retention/configuration"
RETENTION = {
    "retention": {
        "enabled": True,
        "default_policy": {"min_lifetime": "1d", "max_lifetime": "7d"},
        "allowed_lifetime_min": "1d",
        "allowed_lifetime_max": "30d",
    },
}


class FrozenClock(Clock):
    """The retention handler's idea of now, fixed where a test puts it."""

    def __init__(self, reactor: Any, now_ms: int) -> None:
        super().__init__(reactor)
        self.now_ms = now_ms

    def time_msec(self) -> int:
        return self.now_ms

    def time(self) -> float:
        return self.now_ms / 1000


def freeze(server: TestServer, now_ms: int) -> int:
    server.hs.retention.clock = FrozenClock(server.hs.reactor, now_ms)
    return now_ms


async def a_moment() -> None:
    """Let the wall clock tick past the last event's millisecond, so the next one is strictly later."""
    from twisted.internet import reactor

    await deferLater(reactor, 0.003, lambda: None)


async def put_state(client: Client, room_id: str, event_type: str, content: Any, state_key: str = "") -> Any:
    return await client.put(f"{V3}/rooms/{q(room_id)}/state/{event_type}/{state_key}", content)


async def event_ts(server: TestServer, event_id: str) -> int:
    stored = await server.hs.store.events.get_event(event_id)
    assert stored is not None
    return stored.event.origin_server_ts


async def rows(server: TestServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return await server.hs.store.db.execute("test_retention", sql, *args)


async def count(server: TestServer, table: str, column: str, value: str) -> int:
    return int((await rows(server, f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", value))[0][0])


async def pair(server: TestServer) -> tuple[Client, Client, str]:
    """alice's public room with bob in it: two members, so bob is notified of alice's messages."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    return alice, bob, room_id


# -- policies --------------------------------------------------------------------------------------


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_policy_outside_the_bounds_or_malformed_is_refused(server: TestServer) -> None:
    alice, _, room_id = await pair(server)
    refused = [
        ({"max_lifetime": "2d"}, "max_lifetime must be a whole number"),
        ({"max_lifetime": -5}, "max_lifetime must be a whole number"),
        ({"max_lifetime": 1.5 * DAY}, "max_lifetime must be a whole number"),
        ({"max_lifetime": True}, "max_lifetime must be a whole number"),
        ({"max_lifetime": 2 * DAY, "min_lifetime": "1d"}, "min_lifetime must be a whole number"),
        ({"max_lifetime": 2 * DAY, "min_lifetime": 3 * DAY}, "must not be longer than max_lifetime"),
        ({"max_lifetime": 31 * DAY}, "at most 2592000000 ms (30d, the allowed_lifetime_max"),
        ({}, "no max_lifetime (kept for ever) is longer than this server allows"),
        ({"max_lifetime": 3_600_000}, "at least 86400000 ms (1d, the allowed_lifetime_min"),
    ]
    for content, message in refused:
        resp = await put_state(alice, room_id, "m.room.retention", content)
        assert resp.code == 400 and resp.json["errcode"] == "M_BAD_JSON", (content, resp)
        assert message in resp.json["error"], (content, resp.json["error"])
    policy = (await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.retention/")).json
    assert policy == {"max_lifetime": 7 * DAY, "min_lifetime": DAY}  # unchanged

    assert (await put_state(alice, room_id, "m.room.retention", {"max_lifetime": 2 * DAY})).code == 200
    assert (await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.retention/")).json == {"max_lifetime": 2 * DAY}
    assert await server.hs.retention.cutoffs([room_id], 10 * DAY) == {room_id: 8 * DAY}  # 2 days before now


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_create_room_refuses_a_bad_policy_before_writing_anything(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.post(f"{V3}/createRoom", {"initial_state": [
        {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": 365 * DAY}}]})
    assert resp.code == 400 and resp.json["errcode"] == "M_BAD_JSON"
    assert "allowed_lifetime_max" in resp.json["error"]
    assert (await alice.get(f"{V3}/joined_rooms")).json["joined_rooms"] == []
    # Within the bounds, the room's own policy replaces the default.
    room_id = await create_room(alice, initial_state=[
        {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": 20 * DAY}}])
    assert (await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.retention/")).json == {"max_lifetime": 20 * DAY}


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_new_rooms_get_the_default_policy_and_only_the_powerful_change_it(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    assert (await bob.get(f"{V3}/rooms/{q(room_id)}/state/m.room.retention/")).json == {
        "max_lifetime": 7 * DAY, "min_lifetime": DAY}
    # m.room.retention is a state event like any other: state_default (50) is needed, bob has 0.
    resp = await put_state(bob, room_id, "m.room.retention", {"max_lifetime": 2 * DAY})
    assert resp.code == 403 and resp.json["errcode"] == "M_FORBIDDEN"
    assert (await put_state(alice, room_id, "m.room.retention", {"max_lifetime": 2 * DAY})).code == 200


@pytest_twisted.ensureDeferred
async def test_retention_is_off_unless_the_organisation_turns_it_on(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    resp = await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.retention/")
    assert resp.code == 404  # no default policy written
    old = await send(alice, room_id, "old", "t1")
    freeze(server, await event_ts(server, old) + 10_000 * DAY)
    assert (await alice.get(f"{V3}/rooms/{q(room_id)}/event/{old}")).code == 200
    assert await server.hs.retention_purger.run_all() == 0
    assert await count(server, "events", "event_id", old) == 1
    assert (await alice.get(CONFIG_PATH, check_spec=False)).json == {"policies": {}, "limits": {}}


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_configuration_endpoint(server: TestServer) -> None:
    assert (await server.client().get(CONFIG_PATH, check_spec=False)).code == 401
    alice = await server.register("alice")
    resp = await alice.get(CONFIG_PATH, check_spec=False)  # unstable: not in the spec yet
    assert resp.code == 200
    assert resp.json == {
        "policies": {"*": {"max_lifetime": 7 * DAY, "min_lifetime": DAY}},
        "limits": {"max_lifetime": {"min": DAY, "max": 30 * DAY}},
    }
    # Media follow the organisation's default max_lifetime unless media_retention says otherwise.
    assert server.hs.retention_purger.media_lifetime == 7 * DAY


# -- hidden at once --------------------------------------------------------------------------------


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_expired_events_are_hidden_from_every_read_path_at_once(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    old_topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "first"})).json["event_id"]
    old = await send(alice, room_id, "old secret", "old")
    reply = await relate(alice, room_id, "m.thread", old, "reply")
    topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "current"})).json["event_id"]
    await a_moment()
    boundary = await event_ts(server, topic) + 1
    new = await send(alice, room_id, "new", "new")
    assert await event_ts(server, new) >= boundary
    before = await bob.get(f"{V3}/notifications")
    assert {n["event"]["event_id"] for n in before.json["notifications"]} >= {old, new}

    freeze(server, boundary + 7 * DAY)  # everything up to the current topic expired, `new` did not
    hidden = {old, reply, old_topic}

    chunk = (await bob.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=100")).json["chunk"]
    shown = {e["event_id"] for e in chunk}
    assert not hidden & shown and {new, topic} <= shown
    assert "m.room.create" in {e["type"] for e in chunk}  # current state is never hidden

    sync = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]
    timeline = {e["event_id"] for e in sync["timeline"]["events"]}
    assert new in timeline and not hidden & timeline
    assert "old secret" not in json.dumps(sync)

    for event_id in hidden:
        resp = await bob.get(f"{V3}/rooms/{q(room_id)}/event/{event_id}")
        assert resp.code == 404 and resp.json["errcode"] == "M_NOT_FOUND"
        assert (await bob.get(f"{V3}/rooms/{q(room_id)}/context/{event_id}")).code == 404
    context = (await bob.get(f"{V3}/rooms/{q(room_id)}/context/{new}?limit=20")).json
    assert not hidden & {e["event_id"] for e in context["events_before"]}
    assert (await bob.get(f"{V1}/rooms/{q(room_id)}/relations/{old}")).code == 404
    assert (await bob.get(f"{V1}/rooms/{q(room_id)}/threads")).json["chunk"] == []
    notified = {n["event"]["event_id"] for n in (await bob.get(f"{V3}/notifications")).json["notifications"]}
    assert new in notified and not hidden & notified
    state = (await bob.get(f"{V3}/rooms/{q(room_id)}/state/m.room.topic/")).json
    assert state == {"topic": "current"}


# -- purge -----------------------------------------------------------------------------------------


@pytest.mark.hs_config({**RETENTION, "retention": {**RETENTION["retention"], "purge_batch_size": 3}})
@pytest_twisted.ensureDeferred
async def test_purge_deletes_expired_rows_and_keeps_what_the_graph_needs(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    old_topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "first topic"})).json["event_id"]
    old = await send(alice, room_id, "old secret", "old-txn")
    reply = await relate(alice, room_id, "m.thread", old, "reply")
    topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "current topic"})).json["event_id"]
    last_old = await send(alice, room_id, "last", "last")  # the room's forward extremity
    assert await count(server, "event_push_actions", "event_id", old) == 1  # bob was notified
    now = freeze(server, await event_ts(server, last_old) + 7 * DAY + 1)

    purged = await server.hs.retention_purger.run_all(now_ms=now)
    assert purged >= 4

    # Deleted, with every row that existed because of them (batches of 3: several transactions).
    for event_id in (old, reply):
        assert await count(server, "events", "event_id", event_id) == 0
        for table in ("event_edges", "event_auth", "event_relations", "event_push_actions", "event_txn_ids"):
            assert await count(server, table, "event_id", event_id) == 0, (table, event_id)
        assert await server.hs.store.events.get_event(event_id) is None  # gone from the caches too
    assert await count(server, "threads", "thread_id", old) == 0
    # Current state whole; an old state event a stub (state groups name it); the extremity a stub.
    current = await server.hs.store.events.get_event(topic)
    assert current is not None and current.event.content == {"topic": "current topic"}
    for stub_id in (old_topic, last_old):
        stub = await server.hs.store.events.get_event(stub_id)
        assert stub is not None and stub.event.content == {}, stub_id
    assert (await rows(server, "SELECT reason FROM retention_kept WHERE event_id = ?", last_old)) == [("extremity",)]
    assert (await rows(server, "SELECT COUNT(*) FROM retention_purge_progress WHERE room_id = ?", room_id))[0][0] == 1

    # The room goes on: the next event points at the stub, which the next pass then deletes.
    await a_moment()
    fresh = await send(alice, room_id, "fresh", "fresh")
    assert (await bob.get(f"{V3}/rooms/{q(room_id)}/event/{fresh}")).code == 200
    assert await server.hs.retention_purger.run_all(now_ms=now) == 1
    assert await count(server, "events", "event_id", last_old) == 0
    assert await count(server, "retention_kept", "event_id", last_old) == 0
    assert (await rows(server, "SELECT event_id FROM event_forward_extremities WHERE room_id = ?", room_id)) == [
        (fresh,)]
    members = (await bob.get(f"{V3}/rooms/{q(room_id)}/joined_members")).json["joined"]
    assert set(members) == {alice.user_id, bob.user_id}

    metrics = (await server.client().get("/_synapse/metrics")).raw.decode()
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith("piman_retention_") and not line.startswith("#")}
    assert values["piman_retention_events_purged_total"] >= 5
    assert values["piman_retention_bytes_purged_total"] > 0
    assert values["piman_retention_purge_lag_seconds"] == 0  # a pass just started at `now`
    assert values["piman_retention_media_purged_total"] == 0


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_a_purge_stopped_half_way_carries_on_where_it_stopped(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    sent = [await send(alice, room_id, f"m{i}", f"m{i}") for i in range(5)]
    now = freeze(server, server.hs.clock.time_msec() + 8 * DAY)
    cutoff = now - 7 * DAY
    store = server.hs.store.retention
    # One batch, as if the server stopped after it: it got as far as its last event.
    first = await store.purge_batch(room_id, cutoff, limit=2, held_users=())
    assert not first.done and first.deleted + first.kept + first.stubbed == 2
    [(progress_ts, progress_stream)] = await rows(
        server, "SELECT purged_ts, purged_stream FROM retention_purge_progress WHERE room_id = ?", room_id)
    remaining = await rows(server, "SELECT COUNT(*) FROM events WHERE room_id = ? AND (origin_server_ts > ?"
                                   " OR (origin_server_ts = ? AND stream_ordering > ?))",
                           room_id, progress_ts, progress_ts, progress_stream)
    assert remaining[0][0] > 0
    # A new pass (a new purger after a restart would read the same row) finishes the room.
    await server.hs.retention_purger.run_all(now_ms=now)
    assert [await count(server, "events", "event_id", e) for e in sent] == [0, 0, 0, 0, 1]  # the last: a stub
    assert (await store.purge_batch(room_id, cutoff, limit=2, held_users=())).done


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_legal_holds_keep_rooms_and_users_out_of_the_purge(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    other_room = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/join/{q(other_room)}", {})).code == 200
    held_room_msg = await send(alice, room_id, "in the held room", "a1")
    held_user_msg = await send(bob, other_room, "by the held user", "b1")
    free_msg = await send(alice, other_room, "nobody holds this", "a2")
    await send(alice, other_room, "extremity", "a3")
    await send(alice, room_id, "extremity", "a4")
    holds = server.hs.store.holds
    await holds.place_hold("room", room_id, reason="case 12", created_by="@admin:test.local", now_ms=0)
    await holds.place_hold("user", bob.user_id, reason="case 13", created_by="@admin:test.local", now_ms=0)
    now = freeze(server, server.hs.clock.time_msec() + 8 * DAY)

    await server.hs.retention_purger.run_all(now_ms=now)
    assert await count(server, "events", "event_id", free_msg) == 0
    for kept in (held_room_msg, held_user_msg):
        stored = await server.hs.store.events.get_event(kept)
        assert stored is not None and stored.event.content["body"], kept  # whole, not a stub
    # Hidden all the same: a hold keeps data for legal requests, not for the room's members.
    assert (await alice.get(f"{V3}/rooms/{q(room_id)}/event/{held_room_msg}")).code == 404

    await holds.release_hold("room", room_id, released_by="@admin:test.local", now_ms=1)
    await holds.release_hold("user", bob.user_id, released_by="@admin:test.local", now_ms=1)
    await server.hs.retention_purger.run_all(now_ms=now)
    for released in (held_room_msg, held_user_msg):
        assert await count(server, "events", "event_id", released) == 0, released


@pytest.mark.hs_config({"retention": {**RETENTION["retention"], "purge_jobs": [
    {"longest_max_lifetime": "3d", "interval": "1h"}, {"shortest_max_lifetime": "3d", "interval": "1d"}]}})
@pytest_twisted.ensureDeferred
async def test_each_purge_job_takes_the_rooms_of_its_range(server: TestServer) -> None:
    alice = await server.register("alice")
    short_room = await create_room(alice, initial_state=[
        {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": 2 * DAY}}])
    long_room = await create_room(alice)  # the default, 7d
    short_msg = await send(alice, short_room, "short", "s")
    long_msg = await send(alice, long_room, "long", "l")
    await send(alice, short_room, "extremity", "s2")
    await send(alice, long_room, "extremity", "l2")
    now = server.hs.clock.time_msec() + 8 * DAY
    short_job, long_job = server.hs.retention_purger.jobs
    await server.hs.retention_purger.run_job(short_job, now_ms=now)
    assert await count(server, "events", "event_id", short_msg) == 0
    assert await count(server, "events", "event_id", long_msg) == 1
    await server.hs.retention_purger.run_job(long_job, now_ms=now)
    assert await count(server, "events", "event_id", long_msg) == 0


# -- media -----------------------------------------------------------------------------------------


@pytest.mark.hs_config({**RETENTION, "media_retention": {"local_media_lifetime": "2d"}})
@pytest_twisted.ensureDeferred
async def test_media_expire_by_age_except_those_of_held_users(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    old = await upload(alice, b"alice's old file")
    held = await upload(bob, b"bob's file, under a hold")
    await server.hs.store.holds.place_hold("user", bob.user_id, reason=None, created_by="@admin:test.local",
                                           now_ms=0)
    assert len(media_files(server)) == 2
    purger = server.hs.retention_purger
    assert await purger.purge_media(now_ms=server.hs.clock.time_msec() + DAY) == 0  # not old enough yet
    # Downloads don't make media younger: only the upload time counts.
    assert (await alice.get(f"{CLIENT_MEDIA}/download/test.local/{old}")).code == 200
    assert await purger.purge_media(now_ms=server.hs.clock.time_msec() + 3 * DAY) == 1
    assert (await alice.get(f"{CLIENT_MEDIA}/download/test.local/{old}")).code == 404
    assert (await bob.get(f"{CLIENT_MEDIA}/download/test.local/{held}")).code == 200
    assert len(media_files(server)) == 1
    assert await count(server, "local_media", "media_id", old) == 0
    metrics = (await server.client().get("/_synapse/metrics")).raw.decode()
    assert "piman_retention_media_purged_total 1.0" in metrics


# -- jump to date, unread counts, thread summaries, upgrades, state at a point, woken /sync ------------


async def state_event_id(client: Client, room_id: str, event_type: str, state_key: str) -> str:
    state = (await client.get(f"{V3}/rooms/{q(room_id)}/state")).json
    return next(e["event_id"] for e in state if (e["type"], e["state_key"]) == (event_type, state_key))


def sync_filter(body: dict[str, Any]) -> str:
    return q(json.dumps(body))


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_timestamp_to_event_skips_expired_events(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    bob_join = await state_event_id(alice, room_id, "m.room.member", bob.user_id)
    await a_moment()
    m1 = await send(alice, room_id, "m1", "m1")
    await a_moment()
    m2 = await send(alice, room_id, "m2", "m2")
    await a_moment()
    topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "current"})).json["event_id"]
    await a_moment()
    new = await send(alice, room_id, "new", "new")
    ts = {e: await event_ts(server, e) for e in (m1, m2, topic, new)}

    async def nearest(at: int, direction: str) -> str:
        resp = await bob.get(f"{V1}/rooms/{q(room_id)}/timestamp_to_event?ts={at}&dir={direction}")
        return resp.json["event_id"] if resp.code == 200 else (resp.code, resp.json["errcode"])

    assert await nearest(ts[m1], "f") == m1  # not expired yet
    freeze(server, ts[topic] + 1 + 7 * DAY)  # m1 and m2 expired; the topic is current state
    assert await nearest(ts[m1], "f") == topic
    assert await nearest(ts[topic] + 1, "f") == new
    assert await nearest(ts[m2], "b") == bob_join  # before them, only current state shows
    assert await nearest(ts[new] - 1, "b") == topic
    assert await nearest(ts[new], "b") == new
    freeze(server, ts[new] + 1 + 7 * DAY)  # now `new` too
    assert await nearest(ts[topic] + 1, "f") == (404, "M_NOT_FOUND")
    assert await nearest(ts[new] + 60_000, "b") == topic


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_expired_events_stop_counting_as_unread_at_once(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    await send(alice, room_id, "old", "old")
    root = await send(alice, room_id, "old root", "root")
    reply = await relate(alice, room_id, "m.thread", root, "old reply")
    await a_moment()
    boundary = await event_ts(server, reply) + 1
    await send(alice, room_id, "new", "new")
    threaded = sync_filter({"room": {"timeline": {"unread_thread_notifications": True}}})

    async def unread() -> tuple[int, int, dict[str, Any]]:
        total = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["unread_notifications"]
        room = (await bob.get(f"{V3}/sync?filter={threaded}")).json["rooms"]["join"][room_id]
        return (total["notification_count"], room["unread_notifications"]["notification_count"],
                {t: c["notification_count"] for t, c in room["unread_thread_notifications"].items()})

    assert await unread() == (4, 3, {root: 1})  # and now the counts are cached in memory
    freeze(server, boundary + 7 * DAY)
    assert await unread() == (1, 1, {})  # no purge has run: the rows are all still there
    assert await count(server, "event_push_actions", "event_id", reply) == 1
    # A longer policy brings them back: nothing was deleted yet, and the cached counts follow it.
    assert (await put_state(alice, room_id, "m.room.retention", {"max_lifetime": 30 * DAY})).code == 200
    assert await unread() == (4, 3, {root: 1})


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_an_expired_notification_that_is_current_state_still_counts(server: TestServer) -> None:
    """The tombstone of an upgraded room stays current state, so stays shown and counted however
    old; and it doesn't make every later /sync read the counts again."""
    from tests.integration.test_sync_cold_cache import _transactions

    alice, bob, room_id = await pair(server)
    await send(alice, room_id, "old", "old")
    resp = await alice.post(f"{V3}/rooms/{q(room_id)}/upgrade", {"new_version": "12"})
    assert resp.code == 200, resp
    tombstone = await state_event_id(alice, room_id, "m.room.tombstone", "")

    async def unread() -> dict[str, int]:
        return (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["unread_notifications"]

    assert await unread() == {"notification_count": 2, "highlight_count": 1}
    freeze(server, await event_ts(server, tombstone) + 30 * DAY)
    assert await unread() == {"notification_count": 1, "highlight_count": 1}
    before = _transactions(server).get("get_unread_counts", 0)
    assert await unread() == {"notification_count": 1, "highlight_count": 1}
    assert _transactions(server).get("get_unread_counts", 0) == before  # served from memory


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_thread_summaries_leave_out_expired_replies(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    root = await send(alice, room_id, "root", "root")
    # Bob's first replies carry a timestamp 10 days old (a server whose clock is behind): expired,
    # although the root is not.
    sender = server.hs.event_sender
    real_clock = sender._clock
    sender._clock = FrozenClock(server.hs.reactor, real_clock.time_msec() - 10 * DAY)
    try:
        late = await relate(bob, room_id, "m.thread", root, "late reply")
        late_ref = await relate(bob, room_id, "m.reference", root, "late reference")
    finally:
        sender._clock = real_clock
    reply = await relate(alice, room_id, "m.thread", root, "reply")
    assert (await bob.get(f"{V3}/rooms/{q(room_id)}/event/{late}")).code == 404

    relations = (await bob.get(f"{V3}/rooms/{q(room_id)}/event/{root}")).json["unsigned"]["m.relations"]
    assert relations["m.thread"]["count"] == 1
    assert relations["m.thread"]["latest_event"]["event_id"] == reply
    assert relations["m.thread"]["current_user_participated"] is False  # bob's only reply expired
    assert "m.reference" not in relations  # late_ref is expired too
    threads = (await bob.get(f"{V1}/rooms/{q(room_id)}/threads")).json["chunk"]
    assert [t["unsigned"]["m.relations"]["m.thread"]["count"] for t in threads] == [1]
    children = (await bob.get(f"{V1}/rooms/{q(room_id)}/relations/{root}")).json["chunk"]
    assert {e["event_id"] for e in children} == {reply}
    assert late_ref not in json.dumps(relations)


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_room_upgrade_keeps_the_retention_policy(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    assert (await put_state(alice, room_id, "m.room.retention", {"max_lifetime": 2 * DAY})).code == 200

    async def upgrade(old: str) -> str:
        resp = await alice.post(f"{V3}/rooms/{q(old)}/upgrade", {"new_version": "12"})
        assert resp.code == 200, resp
        return resp.json["replacement_room"]

    new_room = await upgrade(room_id)
    assert (await alice.get(f"{V3}/rooms/{q(new_room)}/state/m.room.retention/")).json == {"max_lifetime": 2 * DAY}
    assert await server.hs.retention.cutoffs([new_room], 10 * DAY) == {new_room: 8 * DAY}  # 2 days before now
    # A policy emptied by a redaction: the replacement gets the organisation's default, like any new room.
    copied = await state_event_id(alice, new_room, "m.room.retention", "")
    assert (await alice.put(f"{V3}/rooms/{q(new_room)}/redact/{copied}/r1", {})).code == 200
    assert (await alice.get(f"{V3}/rooms/{q(new_room)}/state/m.room.retention/")).json == {}
    newest = await upgrade(new_room)
    assert (await alice.get(f"{V3}/rooms/{q(newest)}/state/m.room.retention/")).json == {
        "max_lifetime": 7 * DAY, "min_lifetime": DAY}


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_state_at_a_point_shows_expired_state_events_pruned(server: TestServer) -> None:
    """`/context`'s state, `/members?at=` and `unsigned.prev_content` name state events that are no
    longer current: expired, they show as the purge will leave them (pruned), never whole."""
    alice, bob, room_id = await pair(server)
    carol = await server.register("carol")
    await carol.put(f"{V3}/profile/{q(carol.user_id)}/displayname", {"displayname": "Carol Canary"})
    assert (await carol.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    old_topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "first topic"})).json["event_id"]
    carol_join = await state_event_id(alice, room_id, "m.room.member", carol.user_id)
    await a_moment()
    boundary = await event_ts(server, old_topic) + 1
    event = await send(alice, room_id, "after the boundary", "e")
    at_event = (await bob.get(f"{V3}/sync")).json["next_batch"]
    new_topic = (await put_state(alice, room_id, "m.room.topic", {"topic": "second topic"})).json["event_id"]
    assert (await carol.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200
    freeze(server, boundary + 7 * DAY)

    context = (await bob.get(f"{V3}/rooms/{q(room_id)}/context/{event}?limit=0")).json
    state = {(e["type"], e["state_key"]): e for e in context["state"]}
    assert state[("m.room.topic", "")]["event_id"] == old_topic and state[("m.room.topic", "")]["content"] == {}
    assert state[("m.room.member", carol.user_id)]["event_id"] == carol_join
    assert state[("m.room.member", carol.user_id)]["content"] == {"membership": "join"}
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "join"  # current: whole
    members = (await bob.get(f"{V3}/rooms/{q(room_id)}/members?at={at_event}")).json["chunk"]
    carol_then = next(m for m in members if m["state_key"] == carol.user_id)
    assert carol_then["content"] == {"membership": "join"}
    messages = (await bob.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=100")).json["chunk"]
    shown_topic = next(e for e in messages if e["event_id"] == new_topic)
    assert shown_topic["unsigned"]["prev_content"] == {}
    sync = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]
    assert new_topic in {e["event_id"] for e in sync["timeline"]["events"]}
    for shown in (context, members, messages, sync):
        assert "first topic" not in json.dumps(shown) and "Carol Canary" not in json.dumps(shown)


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_left_room_initial_sync_hides_expired_events(server: TestServer) -> None:
    alice, bob, room_id = await pair(server)
    old = await send(alice, room_id, "old secret", "old")
    await a_moment()
    boundary = await event_ts(server, old) + 1
    recent = await send(alice, room_id, "recent", "recent")
    assert (await bob.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200
    freeze(server, boundary + 7 * DAY)
    include_leave = sync_filter({"room": {"include_leave": True, "timeline": {"limit": 50}}})
    left = (await bob.get(f"{V3}/sync?filter={include_leave}")).json["rooms"]["leave"][room_id]
    shown = {e["event_id"] for e in left["timeline"]["events"]}
    assert recent in shown and old not in shown
    assert "old secret" not in json.dumps(left)


async def _woken_sync_transactions(server: TestServer) -> dict[str, float]:
    """The database transactions of an incremental /sync that a new message wakes, caches warm."""
    from tests.integration.test_sync_cold_cache import _transactions

    alice, bob, room_id = await pair(server)
    since = (await bob.get(f"{V3}/sync")).json["next_batch"]
    for i in range(2):  # the first round warms the caches
        sent = await send(alice, room_id, f"hello {i}", f"h{i}")
        before = _transactions(server)
        body = (await bob.get(f"{V3}/sync?since={since}&timeout=0")).json
        after = _transactions(server)
        since = body["next_batch"]
        room = body["rooms"]["join"][room_id]
        assert sent in {e["event_id"] for e in room["timeline"]["events"]}
        assert room["unread_notifications"]["notification_count"] == 1 + i
    return {desc: n - before.get(desc, 0) for desc, n in after.items() if n > before.get(desc, 0)}


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_a_woken_sync_makes_no_database_round_trip_with_retention_on(server: TestServer) -> None:
    assert await _woken_sync_transactions(server) == {}


@pytest.mark.hs_config({"retention": {"enabled": True, "default_policy": {"max_lifetime": "7d"}}})
@pytest_twisted.ensureDeferred
async def test_a_woken_sync_reads_policies_from_memory_without_a_lower_bound(server: TestServer) -> None:
    # Without allowed_lifetime_min any event may have expired: the policies are looked up, in memory.
    assert await _woken_sync_transactions(server) == {}


@pytest_twisted.ensureDeferred
async def test_a_woken_sync_makes_no_database_round_trip_with_retention_off(server: TestServer) -> None:
    assert await _woken_sync_transactions(server) == {}
