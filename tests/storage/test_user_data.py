"""Stores of per-user data on both engines: streams, atomic updates, and sealing at rest."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from storage.datastore import DataStore
from storage.stores.presence import PresenceUpdate

ALICE = "@alice:example.org"
BOB = "@bob:example.org"


async def _dump(datastore: DataStore, table: str, column: str) -> bytes:
    rows = await datastore.db.execute("dump", f"SELECT {column} FROM {table}")
    return b"".join(bytes(row[0]) for row in rows if row[0] is not None)


@pytest_twisted.ensureDeferred
async def test_account_data_changes_follow_the_stream(datastore: DataStore) -> None:
    store = datastore.account_data
    start = store.stream.get_current_token()
    p1 = await store.put(ALICE, None, "m.direct", {"@bob:example.org": ["!dm:x"]})
    p2 = await store.put(ALICE, "!room:x", "m.tag", {"tags": {"u.work": {}}})
    p3 = await store.put(BOB, None, "m.direct", {})
    assert start < p1 < p2 < p3 == store.stream.get_current_token()
    everything = await store.get_changes(ALICE, 0, p3)
    assert everything.global_data == {"m.direct": {"@bob:example.org": ["!dm:x"]}}
    assert everything.room_data == {"!room:x": {"m.tag": {"tags": {"u.work": {}}}}}
    later = await store.get_changes(ALICE, p1, p3)
    assert later.global_data == {} and list(later.room_data) == ["!room:x"]
    # Rewriting moves the row to the new position: it shows up once, with the latest content.
    p4 = await store.put(ALICE, None, "m.direct", {"new": True})
    assert (await store.get_changes(ALICE, p3, p4)).global_data == {"m.direct": {"new": True}}
    assert await store.get(ALICE, None, "m.direct") == {"new": True}
    assert await store.get(ALICE, "!other:x", "m.tag") is None


@pytest_twisted.ensureDeferred
async def test_concurrent_updates_lose_nothing(datastore: DataStore) -> None:
    store = datastore.account_data

    def adder(tag: str):
        def add(content):
            tags = dict((content or {}).get("tags", {}))
            tags[tag] = {}
            return {"tags": tags}
        return add

    await defer.gatherResults([
        defer.ensureDeferred(store.update(ALICE, "!r:x", "m.tag", adder(f"u.{i}"))) for i in range(8)
    ])
    assert sorted((await store.get(ALICE, "!r:x", "m.tag"))["tags"]) == [f"u.{i}" for i in range(8)]


@pytest_twisted.ensureDeferred
async def test_a_failed_update_writes_nothing(datastore: DataStore) -> None:
    store = datastore.account_data
    position = await store.put(ALICE, None, "x.kept", {"v": 1})

    def refuse(_content):
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.update(ALICE, None, "x.kept", refuse)
    assert await store.get(ALICE, None, "x.kept") == {"v": 1}
    assert store.stream.get_current_token() == position


@pytest_twisted.ensureDeferred
async def test_filters_are_deduplicated_per_user_and_sealed(datastore: DataStore) -> None:
    store = datastore.filters
    definition = {"room": {"timeline": {"limit": 10, "not_senders": ["@secret-spammer:example.org"]}}}
    first = await store.add_filter(ALICE, definition)
    assert await store.add_filter(ALICE, dict(definition)) == first
    other = await store.add_filter(ALICE, {"room": {"timeline": {"limit": 5}}})
    bobs = await store.add_filter(BOB, definition)
    assert len({first, other, bobs}) == 3
    assert await store.get_filter(ALICE, first) == definition
    assert await store.get_filter(BOB, first) is None
    assert b"secret-spammer" not in await _dump(datastore, "user_filters", "filter_json")


@pytest_twisted.ensureDeferred
async def test_profiles_update_atomically_and_are_sealed(datastore: DataStore) -> None:
    await datastore.users.register_user(ALICE, None, 1)
    await datastore.users.register_user(BOB, None, 1)
    store = datastore.profiles

    def set_name(profile):
        profile["displayname"] = "Alice Liddell"
        profile["m.tz"] = "Europe/Paris"
        return profile

    old, new = await store.update_profile(ALICE, set_name)
    assert old == {} and new == {"displayname": "Alice Liddell", "m.tz": "Europe/Paris"}
    assert await store.get_profile(ALICE) == new

    def drop_tz(profile):
        del profile["m.tz"]
        return profile

    await store.update_profile(ALICE, drop_tz)
    assert await store.get_profile(ALICE) == {"displayname": "Alice Liddell"}
    assert await store.get_profiles([ALICE, BOB], ["displayname", "avatar_url"]) == {ALICE: {"displayname": "Alice Liddell"}}
    assert await store.get_directory(["displayname"]) == [(ALICE, {"displayname": "Alice Liddell"}), (BOB, {})]
    assert b"Liddell" not in await _dump(datastore, "profiles", "value")


@pytest_twisted.ensureDeferred
async def test_presence_changes_and_sealed_status(datastore: DataStore) -> None:
    store = datastore.presence
    [a] = await store.set_presence([PresenceUpdate(ALICE, "online", "In a meeting about cake", 1000)])
    [b] = await store.set_presence([PresenceUpdate(BOB, "unavailable", None, 500)])
    assert (await store.get_presence([ALICE]))[ALICE].status_msg == "In a meeting about cake"
    assert [s.user_id for s in await store.get_changes(0, b.stream_id)] == [ALICE, BOB]
    assert [s.user_id for s in await store.get_changes(a.stream_id, b.stream_id)] == [BOB]
    [c] = await store.set_presence([PresenceUpdate(ALICE, "offline", None, 1000)])
    assert [s.user_id for s in await store.get_not_offline()] == [BOB]
    assert [(s.user_id, s.state) for s in await store.get_changes(b.stream_id, c.stream_id)] == [(ALICE, "offline")]
    [d] = await store.set_presence([PresenceUpdate(ALICE, "online", "Lunch", 2000)])
    assert b"Lunch" not in await _dump(datastore, "presence", "status_msg")
    assert d.stream_id == store.stream.get_current_token()


@pytest_twisted.ensureDeferred
async def test_receipts_keep_the_latest_per_type_user_and_thread(datastore: DataStore) -> None:
    store = datastore.receipts
    p1 = await store.put_receipt("!r:x", "m.read", ALICE, None, "$1", 10)
    await store.put_receipt("!r:x", "m.read", ALICE, "main", "$2", 11)
    await store.put_receipt("!r:x", "m.read.private", ALICE, None, "$3", 12)
    p4 = await store.put_receipt("!r:x", "m.read", ALICE, None, "$4", 13)
    await store.put_receipt("!other:x", "m.read", BOB, None, "$9", 14)
    latest = {(r.receipt_type, r.thread_id): r.event_id for r in await store.get_changes(["!r:x"], 0, p4)}
    assert latest == {("m.read", None): "$4", ("m.read", "main"): "$2", ("m.read.private", None): "$3"}
    assert [r.event_id for r in await store.get_changes(["!r:x"], p1, p4)] == ["$2", "$3", "$4"]
    assert await store.get_changes([], 0, p4) == []
    own = await store.get_user_receipts(ALICE, ["!r:x", "!other:x"], ["m.read.private"])
    assert [r.event_id for r in own] == ["$3"]


@pytest_twisted.ensureDeferred
async def test_push_rules_document_shares_the_account_data_stream(datastore: DataStore) -> None:
    assert await datastore.push_rules.get_rules(ALICE) is None
    before = await datastore.account_data.put(ALICE, None, "x.y", {})
    position, doc = await datastore.push_rules.update_rules(ALICE, lambda d: {"rules": {"room": [{"rule_id": "!secret-room:x"}]}})
    assert position > before and position == datastore.account_data.stream.get_current_token()
    assert await datastore.push_rules.get_rules(ALICE) == (doc, position)
    assert b"secret-room" not in await _dump(datastore, "push_rules", "rules")


@pytest_twisted.ensureDeferred
async def test_reports_seal_the_reason(datastore: DataStore) -> None:
    first = await datastore.reports.add_report(reporter=ALICE, received_ts=5, reason="rude words here",
                                               room_id="!r:x", event_id="$e")
    second = await datastore.reports.add_report(reporter=BOB, received_ts=6, reason="", reported_user_id=ALICE)
    reports = await datastore.reports.get_reports()
    assert [r.id for r in reports] == [second, first]
    assert reports[1].reason == "rude words here" and reports[0].reported_user_id == ALICE
    assert [r.id for r in await datastore.reports.get_reports(before_id=second)] == [first]
    assert b"rude words" not in await _dump(datastore, "reports", "reason")
