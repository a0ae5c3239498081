"""Rooms over real HTTP: creation, membership, sending, state, reading, redaction."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.harness import V3, Client, TestServer, create_room, send


@pytest_twisted.ensureDeferred
async def test_create_room_v12_has_hashed_room_id_and_state(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice, name="Team", topic="Plans", preset="private_chat")
    assert room_id.startswith("!") and ":" not in room_id  # v12: the create event's hash
    state = (await alice.get(f"{V3}/rooms/{room_id}/state")).json
    by_type = {(e["type"], e["state_key"]): e for e in state}
    assert by_type[("m.room.create", "")]["content"]["room_version"] == "12"
    assert by_type[("m.room.name", "")]["content"] == {"name": "Team"}
    assert by_type[("m.room.topic", "")]["content"] == {"topic": "Plans"}
    assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    assert by_type[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    name = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.name/")
    assert name.json == {"name": "Team"}
    assert (await alice.get(f"{V3}/joined_rooms")).json == {"joined_rooms": [room_id]}


@pytest.mark.parametrize("version", ["10", "11"])
@pytest_twisted.ensureDeferred
async def test_create_room_older_versions(server: TestServer, version: str) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice, room_version=version)
    assert room_id.endswith(":test.local")
    create = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.create/")
    assert create.json["room_version"] == version
    await send(alice, room_id, "hello", "t1")


@pytest_twisted.ensureDeferred
async def test_create_room_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bad_version = await alice.post(f"{V3}/createRoom", {"room_version": "99"})
    assert (bad_version.code, bad_version.json["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    await create_room(alice, room_alias_name="lobby")
    taken = await alice.post(f"{V3}/createRoom", {"room_alias_name": "lobby"})
    assert (taken.code, taken.json["errcode"]) == (400, "M_ROOM_IN_USE")
    bad_state = await alice.post(f"{V3}/createRoom", {"initial_state": [{"type": 1}]})
    assert (bad_state.code, bad_state.json["errcode"]) == (400, "M_INVALID_ROOM_STATE")
    bad_type = await alice.post(f"{V3}/createRoom", {"name": 12})
    assert (bad_type.code, bad_type.json["errcode"]) == (400, "M_BAD_JSON")
    # None of the refused requests left a room behind.
    assert len((await alice.get(f"{V3}/joined_rooms")).json["joined_rooms"]) == 1


@pytest_twisted.ensureDeferred
async def test_invite_join_send_and_read(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, invite=[bob.user_id])
    early = await bob.put(f"{V3}/rooms/{room_id}/send/m.room.message/x", {"msgtype": "m.text", "body": "hi"})
    assert (early.code, early.json["errcode"]) == (403, "M_FORBIDDEN")
    join = await bob.post(f"{V3}/join/{room_id}", {})
    assert join.json == {"room_id": room_id}
    event_id = await send(bob, room_id, "hello alice", "t1")
    again = await bob.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hello alice"})
    assert again.json["event_id"] == event_id  # idempotent per device and txn id
    event = await alice.get(f"{V3}/rooms/{room_id}/event/{event_id}")
    assert event.json["content"]["body"] == "hello alice"
    assert event.json["sender"] == bob.user_id
    members = await alice.get(f"{V3}/rooms/{room_id}/joined_members")
    assert set(members.json["joined"]) == {alice.user_id, bob.user_id}


@pytest_twisted.ensureDeferred
async def test_uninvited_cannot_join_private_room(server: TestServer) -> None:
    alice = await server.register("alice")
    eve = await server.register("eve")
    room_id = await create_room(alice)
    resp = await eve.post(f"{V3}/rooms/{room_id}/join", {})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    read = await eve.get(f"{V3}/rooms/{room_id}/state")
    assert read.code == 403
    unknown = await eve.post(f"{V3}/join/!nope:test.local", {})
    assert unknown.code == 404


@pytest_twisted.ensureDeferred
async def test_public_room_join_by_alias_leave_and_rejoin(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat", room_alias_name="town")
    assert (await bob.post(f"{V3}/join/%23town:test.local", {})).json == {"room_id": room_id}
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).code == 200
    assert (await bob.get(f"{V3}/joined_rooms")).json["joined_rooms"] == []
    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200


@pytest_twisted.ensureDeferred
async def test_kick_ban_unban_need_power(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    room_id = await create_room(alice, preset="public_chat")
    for user in (bob, carol):
        assert (await user.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    denied = await bob.post(f"{V3}/rooms/{room_id}/kick", {"user_id": carol.user_id})
    assert (denied.code, denied.json["errcode"]) == (403, "M_FORBIDDEN")
    assert (await alice.post(f"{V3}/rooms/{room_id}/kick", {"user_id": carol.user_id, "reason": "spam"})).code == 200
    assert (await alice.post(f"{V3}/rooms/{room_id}/ban", {"user_id": carol.user_id})).code == 200
    banned = await carol.post(f"{V3}/rooms/{room_id}/join", {})
    assert banned.code == 403
    assert (await alice.post(f"{V3}/rooms/{room_id}/unban", {"user_id": carol.user_id})).code == 200
    assert (await carol.post(f"{V3}/rooms/{room_id}/join", {})).code == 200


@pytest_twisted.ensureDeferred
async def test_state_power_levels_enforced(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    denied = await bob.put(f"{V3}/rooms/{room_id}/state/m.room.name/", {"name": "Bob's room"})
    assert (denied.code, denied.json["errcode"]) == (403, "M_FORBIDDEN")
    ok = await alice.put(f"{V3}/rooms/{room_id}/state/m.room.name/", {"name": "Alice's room"})
    assert ok.code == 200
    assert (await bob.get(f"{V3}/rooms/{room_id}/state/m.room.name/")).json == {"name": "Alice's room"}
    missing = await bob.get(f"{V3}/rooms/{room_id}/state/m.room.topic/")
    assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_too_large_event_refused_and_nothing_stored(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    resp = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.message/big", {"msgtype": "m.text", "body": "x" * 70000})
    assert (resp.code, resp.json["errcode"]) == (413, "M_TOO_LARGE")
    page = await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=50")
    assert all(e.get("content", {}).get("body") != "x" * 70000 for e in page.json["chunk"])


@pytest_twisted.ensureDeferred
async def test_messages_paginate_back_through_everything(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    sent = [await send(alice, room_id, f"message {i}", f"t{i}") for i in range(25)]
    seen: list[str] = []
    token = None
    for _ in range(20):
        query = "dir=b&limit=7" + (f"&from={token}" if token else "")
        page = (await alice.get(f"{V3}/rooms/{room_id}/messages?{query}")).json
        seen.extend(e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message")
        token = page.get("end")
        if token is None:
            break
    assert seen == list(reversed(sent))
    forward = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=f&limit=100")).json
    messages = [e["event_id"] for e in forward["chunk"] if e["type"] == "m.room.message"]
    assert messages == sent
    assert forward["chunk"][0]["type"] == "m.room.create"


@pytest_twisted.ensureDeferred
async def test_messages_filter_and_context(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    ids = [await send(alice, room_id, f"m{i}", f"t{i}") for i in range(5)]
    only_names = await alice.get(f'{V3}/rooms/{room_id}/messages?dir=b&limit=50&filter={{"types":["m.room.name"]}}')
    assert only_names.json["chunk"] == []
    ctx = (await alice.get(f"{V3}/rooms/{room_id}/context/{ids[2]}?limit=2")).json
    assert ctx["event"]["event_id"] == ids[2]
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[1]]
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[3]]
    assert any(e["type"] == "m.room.create" for e in ctx["state"])


@pytest_twisted.ensureDeferred
async def test_redaction(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    target = await send(bob, room_id, "oops, secret", "t1")
    other = await send(alice, room_id, "alice's", "t2")
    denied = await bob.put(f"{V3}/rooms/{room_id}/redact/{other}/r1", {})
    assert (denied.code, denied.json["errcode"]) == (403, "M_FORBIDDEN")
    redaction = await bob.put(f"{V3}/rooms/{room_id}/redact/{target}/r2", {"reason": "typo"})
    assert redaction.code == 200
    event = (await alice.get(f"{V3}/rooms/{room_id}/event/{target}")).json
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]
    # The redacted text is gone from storage, not just hidden.
    raw = await server.hs.store.db.execute("raw_events", "SELECT pdu FROM events WHERE event_id = ?", target)
    assert b"secret" not in server.hs.sealer.open(bytes(raw[0][0]))


@pytest_twisted.ensureDeferred
async def test_members_and_membership_filters(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, invite=[bob.user_id])
    members = (await alice.get(f"{V3}/rooms/{room_id}/members")).json["chunk"]
    assert {m["state_key"]: m["content"]["membership"] for m in members} == {alice.user_id: "join", bob.user_id: "invite"}
    joined = (await alice.get(f"{V3}/rooms/{room_id}/members?membership=join")).json["chunk"]
    assert [m["state_key"] for m in joined] == [alice.user_id]
    not_joined = (await alice.get(f"{V3}/rooms/{room_id}/members?not_membership=join")).json["chunk"]
    assert [m["state_key"] for m in not_joined] == [bob.user_id]


@pytest_twisted.ensureDeferred
async def test_prev_content_on_state_changes(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice, topic="first")
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.topic/", {"topic": "second"})
    page = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=3")).json["chunk"]
    topic = next(e for e in page if e["type"] == "m.room.topic")
    assert topic["content"] == {"topic": "second"}
    assert topic["unsigned"]["prev_content"] == {"topic": "first"}
    assert topic["unsigned"]["prev_sender"] == alice.user_id
    timeline = (await alice.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["timeline"]["events"]
    synced = next(e for e in timeline if e["type"] == "m.room.topic" and e["content"]["topic"] == "second")
    assert synced["unsigned"]["prev_content"] == {"topic": "first"}


@pytest_twisted.ensureDeferred
async def test_malformed_state_content_is_bad_json(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    bad_levels = await alice.put(f"{V3}/rooms/{room_id}/state/m.room.power_levels/", {"users_default": "high"})
    assert (bad_levels.code, bad_levels.json["errcode"]) == (400, "M_BAD_JSON")
    assert "users_default" in bad_levels.json["error"]
    bad_member = await alice.put(f"{V3}/rooms/{room_id}/state/m.room.member/{alice.user_id}", {"membership": "dance"})
    assert (bad_member.code, bad_member.json["errcode"]) == (400, "M_BAD_JSON")
    not_json = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", raw=b"[1]")
    assert (not_json.code, not_json.json["errcode"]) == (400, "M_NOT_JSON")


@pytest_twisted.ensureDeferred
async def test_sync_token_survives_a_restart(server: TestServer, reactor, tmp_path) -> None:
    from homeserver.app import start, stop
    from homeserver.server import HomeServer

    alice = await server.register("alice")
    room_id = await create_room(alice)
    token = (await alice.get(f"{V3}/sync")).json["next_batch"]
    config = server.hs.config
    await server.stop()
    hs = HomeServer(config, reactor)
    listeners = await start(hs)
    try:
        port = listeners[0].port.getHost().port
        again = Client(f"http://127.0.0.1:{port}", alice.token)
        await send(again, room_id, "after restart", "t9")
        result = (await again.get(f"{V3}/sync?since={token}")).json
        bodies = [e["content"].get("body") for e in result["rooms"]["join"][room_id]["timeline"]["events"]]
        assert bodies == ["after restart"]
    finally:
        await stop(hs, listeners)
        server.ports = []  # the first server is already stopped; the fixture only closes it again
