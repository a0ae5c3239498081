"""The privacy policy's promises, one test each, on both engines: the page a data-protection officer reads.

Each test states a promise in the policy's words and breaks if the server stops keeping it. The
feature modules test each mechanism in depth (test_sealed_everywhere, test_residency,
test_retention, test_undelivered_ttl, test_account_erasure, test_holds_audit, test_export,
test_privacy_policy, tests/e2e/test_no_third_party_calls, tests/e2e/test_key_files); this module
is the short proof of each promise as a user would check it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from config import ConfigError, load_config_dict
from tests.integration.harness import V3, TestServer, base_config, create_room, merge, q, send
from tests.integration.test_account_erasure import ERASED_ROWS, count, give_data_everywhere
from tests.integration.test_media import upload
from tests.integration.test_privacy_policy import (POLICY_1, POLICY_2, notice_invite, overrides,
                                                   register_accepting_terms, start_server, sync)
from tests.integration.test_retention import RETENTION, freeze
from tests.integration.test_sealed_everywhere import canary_hits, canary_token, database_bytes, media_bytes

DAY_MS = 86_400_000


@pytest_twisted.ensureDeferred
async def test_messages_are_encrypted_in_storage(server: TestServer, database_config: dict[str, Any],
                                                 tmp_path: Path) -> None:
    """"Stored messages are encrypted in storage": a room name, a topic, a message, a to-device
    payload and an uploaded file, each carrying a unique canary, are nowhere in the raw database
    file (or its WAL), in pg_dump's output, or in the media store."""
    token = canary_token()
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, name=f"{token}-room_name", topic=f"{token}-topic")
    await send(alice, room_id, f"{token}-message", "m1")
    resp = await alice.put(f"{V3}/sendToDevice/m.test/t1",
                           {"messages": {bob.user_id: {bob.device_id: {"note": f"{token}-to_device"}}}})
    assert resp.code == 200, resp
    await upload(alice, f"{token}-media_file".encode() * 100, "application/octet-stream")
    # The writes happened: the server reads every canary back.
    state = (await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.name/")).json
    assert state["name"] == f"{token}-room_name"
    at_rest = {**database_bytes(database_config), **media_bytes(tmp_path / "media")}
    leaks = {where: found for where, data in at_rest.items() if (found := canary_hits(data, token))}
    assert not leaks, f"found in clear at rest: {leaks}"


def test_servers_are_hosted_in_france(tmp_path: Path, database_config: dict[str, Any]) -> None:
    """"Servers are hosted in France": with data_residency FR, a database declared in another
    country stops the start-up with one message naming the target."""
    config = merge(base_config(tmp_path, database_config), {
        "data_residency": {"country": "FR"},
        "database": {"location": {"country": "DE", "provider": "Hetzner"}},
        "media_store_location": {"country": "FR"},
    })
    with pytest.raises(ConfigError) as refused:
        load_config_dict(config, source="homeserver.yaml", base_dir=str(tmp_path))
    message = str(refused.value)
    assert message.startswith("homeserver.yaml: database.location") and "must be declared in FR" in message
    assert "not DE" in message and "\n" not in message
    config["database"]["location"] = {"country": "FR"}
    load_config_dict(config, source="homeserver.yaml", base_dir=str(tmp_path))  # declared in FR: starts


@pytest.mark.hs_config(RETENTION)
@pytest_twisted.ensureDeferred
async def test_the_organisation_sets_how_long_messages_are_kept(server: TestServer) -> None:
    """"The organisation's admin sets how long messages are kept": past max_lifetime a message is
    gone from /messages at once and from the database after the purge job, while a room under a
    legal hold keeps its messages (still hidden from its members)."""
    alice = await server.register("alice")
    room_id = await create_room(alice, preset="public_chat")
    held_room = await create_room(alice, preset="public_chat")
    expired = await send(alice, room_id, "old news", "a1")
    held = await send(alice, held_room, "evidence", "a2")
    await send(alice, room_id, "the room's last event", "a3")  # a forward extremity: kept as a stub
    await send(alice, held_room, "the room's last event", "a4")
    await server.hs.store.holds.place_hold("room", held_room, reason="case 7", created_by="@dpo:test.local",
                                           now_ms=0)
    now = freeze(server, server.hs.clock.time_msec() + 8 * DAY_MS)  # the default max_lifetime is 7 days

    page = (await alice.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=50")).json
    assert expired not in [e["event_id"] for e in page["chunk"]]
    assert await count(server, "events", "event_id = ?", expired) == 1  # hidden, not yet purged
    await server.hs.retention_purger.run_all(now_ms=now)
    assert await count(server, "events", "event_id = ?", expired) == 0
    stored = await server.hs.store.events.get_event(held)
    assert stored is not None and stored.event.content["body"] == "evidence"


@pytest_twisted.ensureDeferred
async def test_undelivered_messages_are_deleted_after_30_days(server: TestServer) -> None:
    """"A message that cannot be delivered is kept 30 days at most, then deleted"."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    resp = await alice.put(f"{V3}/sendToDevice/m.test/t1", {"messages": {bob.user_id: {bob.device_id: {"n": 1}}}})
    assert resp.code == 200, resp
    [(created,)] = await server.hs.store.db.execute("promise", "SELECT created_ts FROM device_inbox")
    assert await server.hs.undelivered_sweeper.sweep(now_ms=created + 30 * DAY_MS + 1) == 1
    assert await server.hs.store.db.execute("promise", "SELECT 1 FROM device_inbox") == []
    assert (await bob.get(f"{V3}/sync")).json.get("to_device", {}).get("events", []) == []


@pytest_twisted.ensureDeferred
async def test_a_deleted_account_is_deleted(server: TestServer) -> None:
    """"When an admin deletes an account, its unsent messages go with it": every row the account
    had (ERASED_ROWS lists them) is gone, and its ID can never be registered again."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    await give_data_everywhere(server, alice, bob)
    had = {table: n for table, where, _ in ERASED_ROWS if (n := await count(server, table, where, alice.user_id))}
    assert len(had) >= len(ERASED_ROWS) - 2, had  # the fixture really filled the tables
    await server.hs.erasure_handler.erase(alice.user_id, requested_by="@dpo:test.local")
    left = {table: n for table, where, _ in ERASED_ROWS if (n := await count(server, table, where, alice.user_id))}
    assert left == {}, left
    again = await server.client().post(f"{V3}/register", {"username": "alice", "password": "another one 123"})
    assert (again.code, again.json["errcode"]) == (400, "M_USER_IN_USE")


@pytest.mark.hs_config(overrides(POLICY_2))
@pytest_twisted.ensureDeferred
async def test_users_are_told_when_the_policy_changes(reactor: Any, tmp_path: Path,
                                                      database_config: dict[str, Any]) -> None:
    """"Users are told when the privacy policy changes": a new version puts a notice in every
    user's /sync."""
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_1))
    try:
        users = [await register_accepting_terms(server, name) for name in ("alice", "bob", "carol")]
        await server.hs.consent_handler.wait_for_announcement()
        tokens = [(u.token, u.user_id) for u in users]
    finally:
        await server.stop()
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_2))
    try:
        await server.hs.consent_handler.wait_for_announcement()
        for token, user_id in tokens:
            client = server.client(token)
            room_id = notice_invite(await sync(client))
            assert (await client.post(f"{V3}/join/{q(room_id)}", {})).code == 200, user_id
            timeline = (await sync(client))["rooms"]["join"][room_id]["timeline"]["events"]
            notices = [e for e in timeline if e["content"].get("msgtype") == "m.server_notice"]
            assert notices and POLICY_2["url"] in notices[-1]["content"]["body"], (user_id, timeline)
    finally:
        await server.stop()
