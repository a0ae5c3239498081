"""POST /rooms/{roomId}/forget: a left room disappears from the user's lists and history."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest_twisted

from tests.integration.harness import V3, Client, TestServer, create_room, send

INCLUDE_LEAVE = urllib.parse.quote(json.dumps({"room": {"include_leave": True}}))


async def forget(client: Client, room_id: str) -> Any:
    return await client.post(f"{V3}/rooms/{room_id}/forget", {})


async def left_rooms(client: Client, since: str | None = None) -> dict[str, Any]:
    query = f"?filter={INCLUDE_LEAVE}" + (f"&since={since}" if since else "")
    return (await client.get(f"{V3}/sync{query}")).json["rooms"]["leave"]


async def public_room(server: TestServer) -> tuple[Client, Client, str]:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    return alice, bob, room_id


@pytest_twisted.ensureDeferred
async def test_forget_requires_leaving_first(server: TestServer) -> None:
    alice, bob, room_id = await public_room(server)
    joined = await forget(bob, room_id)
    assert (joined.code, joined.json["errcode"]) == (400, "M_UNKNOWN")
    carol = await server.register("carol")
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite", {"user_id": carol.user_id})).code == 200
    invited = await forget(carol, room_id)
    assert (invited.code, invited.json["errcode"]) == (400, "M_UNKNOWN")
    # Never having been in a room is not an error (the spec lists none; Synapse answers 200).
    dave = await server.register("dave")
    assert (await forget(dave, room_id)).json == {}
    assert (await forget(dave, "!nosuchroom:test.local")).code == 200
    assert await server.hs.store.events.get_rooms_for_user(bob.user_id) != []
    unauthenticated = await server.client().post(f"{V3}/rooms/{room_id}/forget", {})
    assert (unauthenticated.code, unauthenticated.json["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest_twisted.ensureDeferred
async def test_forgotten_room_leaves_sync_and_history(server: TestServer) -> None:
    alice, bob, room_id = await public_room(server)
    message = await send(alice, room_id, "hello", "t1")
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).code == 200
    assert room_id in await left_rooms(bob)
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).code == 200  # former members can read

    assert (await forget(bob, room_id)).json == {}
    assert room_id not in await left_rooms(bob)
    for path in ("messages?dir=b", f"event/{message}", f"context/{message}", "state", "members"):
        resp = await bob.get(f"{V3}/rooms/{room_id}/{path}")
        assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN"), path
    assert (await forget(bob, room_id)).code == 200  # again: still fine
    # Alice, still in the room, is not affected.
    assert (await alice.get(f"{V3}/rooms/{room_id}/event/{message}")).code == 200


@pytest_twisted.ensureDeferred
async def test_forgotten_room_absent_from_incremental_sync(server: TestServer) -> None:
    alice, bob, room_id = await public_room(server)
    since = (await bob.get(f"{V3}/sync?filter={INCLUDE_LEAVE}")).json["next_batch"]
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).code == 200
    assert room_id in await left_rooms(bob, since)
    assert (await forget(bob, room_id)).code == 200
    assert room_id not in await left_rooms(bob, since)
    await send(alice, room_id, "after bob left", "t1")
    assert room_id not in await left_rooms(bob, since)


@pytest_twisted.ensureDeferred
async def test_rejoining_or_being_invited_unforgets(server: TestServer) -> None:
    alice, bob, room_id = await public_room(server)
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).code == 200
    assert (await forget(bob, room_id)).code == 200
    assert room_id not in await left_rooms(bob)
    assert (await bob.post(f"{V3}/join/{room_id}", {})).code == 200
    assert (await bob.get(f"{V3}/joined_rooms")).json == {"joined_rooms": [room_id]}
    assert room_id in (await bob.get(f"{V3}/sync")).json["rooms"]["join"]
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).code == 200
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).code == 200
    assert room_id in await left_rooms(bob)  # the earlier forget is for an older membership

    # Forgotten again, then invited back: the invite shows up.
    assert (await forget(bob, room_id)).code == 200
    assert room_id not in await left_rooms(bob)
    since = (await bob.get(f"{V3}/sync")).json["next_batch"]
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite", {"user_id": bob.user_id})).code == 200
    assert room_id in (await bob.get(f"{V3}/sync?since={since}")).json["rooms"]["invite"]
    assert room_id in (await bob.get(f"{V3}/sync")).json["rooms"]["invite"]


@pytest_twisted.ensureDeferred
async def test_kicked_or_banned_users_can_forget(server: TestServer) -> None:
    alice, bob, room_id = await public_room(server)
    carol = await server.register("carol")
    assert (await carol.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    assert (await alice.post(f"{V3}/rooms/{room_id}/kick", {"user_id": bob.user_id})).code == 200
    assert (await alice.post(f"{V3}/rooms/{room_id}/ban", {"user_id": carol.user_id})).code == 200
    for user in (bob, carol):
        assert room_id in await left_rooms(user)
        assert (await forget(user, room_id)).code == 200
        assert room_id not in await left_rooms(user)
    # An unban is a new membership (leave): the room is back in carol's list.
    assert (await alice.post(f"{V3}/rooms/{room_id}/unban", {"user_id": carol.user_id})).code == 200
    assert room_id in await left_rooms(carol)
