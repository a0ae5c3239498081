"""Knocking and restricted joins (room versions 7+ and 8+)."""

from __future__ import annotations

import pytest_twisted

from tests.integration.harness import V3, TestServer, create_room


@pytest_twisted.ensureDeferred
async def test_knock_then_invite(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    knock = await bob.post(f"{V3}/knock/{room_id}", {"reason": "let me in"})
    assert knock.json == {"room_id": room_id}
    bob_sync = (await bob.get(f"{V3}/sync")).json
    assert room_id in bob_sync["rooms"]["knock"]
    alice_sync = (await alice.get(f"{V3}/sync?since={since}")).json
    members = [e for e in alice_sync["rooms"]["join"][room_id]["timeline"]["events"] if e["type"] == "m.room.member"]
    assert members[-1]["content"]["membership"] == "knock"
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite", {"user_id": bob.user_id})).code == 200
    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200


@pytest_twisted.ensureDeferred
async def test_knock_refused_where_join_rule_forbids(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice)  # invite-only
    resp = await bob.post(f"{V3}/knock/{room_id}", {})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest_twisted.ensureDeferred
async def test_restricted_join_through_membership_of_another_room(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    space = await create_room(alice, preset="public_chat")
    room_id = await create_room(alice, initial_state=[{"type": "m.room.join_rules", "content": {
        "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    refused = await bob.post(f"{V3}/rooms/{room_id}/join", {})
    assert (refused.code, refused.json["errcode"]) == (403, "M_FORBIDDEN")
    await bob.post(f"{V3}/rooms/{space}/join", {})
    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    member = (await bob.get(f"{V3}/rooms/{room_id}/state/m.room.member/{bob.user_id}")).json
    assert member["join_authorised_via_users_server"] == alice.user_id
    assert (await carol.post(f"{V3}/rooms/{room_id}/join", {})).code == 403
