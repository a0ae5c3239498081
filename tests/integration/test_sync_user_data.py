"""The /sync extensions for account data, receipts and presence, on data written over real HTTP."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest_twisted

from homeserver.auth import Requester
from homeserver.filtering import DEFAULT_FILTER, Filter
from homeserver.handlers.sync import SyncContext
from homeserver.handlers.sync_token import SyncToken
from homeserver.handlers.sync_user_data import extensions
from tests.integration.harness import V3, Client, TestServer


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def now_token(server: TestServer) -> SyncToken:
    return SyncToken(account_data=server.hs.account_data_handler.current_position(),
                     receipts=server.hs.receipts_handler.current_position(),
                     presence=server.hs.presence_handler.current_position())


async def run(server: TestServer, client: Client, rooms: list[str], since: SyncToken | None,
              sync_filter: Filter = DEFAULT_FILTER) -> tuple[dict[str, Any], bool]:
    assert client.user_id is not None
    ctx = SyncContext(Requester(client.user_id, client.device_id, False, False, 0), since, now_token(server),
                      sync_filter, False, joined_room_ids=rooms, response={"rooms": {"join": {}}})
    added = False
    for ext in extensions(server.hs):
        assert ext.current_position() == getattr(ctx.now, ext.token_field)
        added = await ext.fill(ctx) or added
    return ctx.response, added


@pytest_twisted.ensureDeferred
async def test_initial_then_incremental(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"{V3}/join/{q(room_id)}", {})
    event_id = (await alice.put(f"{V3}/rooms/{q(room_id)}/send/m.room.message/1",
                                {"msgtype": "m.text", "body": "hi"})).json["event_id"]
    await bob.put(f"{V3}/user/{q(bob.user_id)}/account_data/m.direct", {alice.user_id: [room_id]})
    await bob.put(f"{V3}/user/{q(bob.user_id)}/rooms/{q(room_id)}/tags/m.favourite", {"order": 0.5})
    await bob.post(f"{V3}/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})
    await alice.put(f"{V3}/presence/{q(alice.user_id)}/status", {"presence": "online"})

    initial, added = await run(server, bob, [room_id], None)
    assert added
    global_types = [e["type"] for e in initial["account_data"]["events"]]
    assert "m.direct" in global_types and "m.push_rules" in global_types
    room = initial["rooms"]["join"][room_id]
    assert room["account_data"]["events"] == [{"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}}]
    assert room["ephemeral"]["events"][0]["content"][event_id]["m.read"][bob.user_id]["ts"] > 0
    assert [e["sender"] for e in initial["presence"]["events"]] == [alice.user_id]

    since = now_token(server)
    nothing, added = await run(server, bob, [room_id], since)
    assert not added and nothing["rooms"]["join"] == {} and nothing["account_data"]["events"] == []

    await alice.post(f"{V3}/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})
    await alice.post(f"{V3}/rooms/{q(room_id)}/receipt/m.read.private/{q(event_id)}", {})
    incremental, added = await run(server, bob, [room_id], since)
    assert added
    [receipt] = incremental["rooms"]["join"][room_id]["ephemeral"]["events"]
    assert receipt["content"] == {event_id: {"m.read": {alice.user_id: receipt["content"][event_id]["m.read"][alice.user_id]}}}
    assert incremental["rooms"]["join"][room_id]["timeline"] == {"events": [], "limited": False,
                                                                 "prev_batch": now_token(server).serialize()}


@pytest_twisted.ensureDeferred
async def test_filters_apply(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    event_id = (await alice.put(f"{V3}/rooms/{q(room_id)}/send/m.room.message/1",
                                {"msgtype": "m.text", "body": "hi"})).json["event_id"]
    await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.a", {})
    await alice.put(f"{V3}/user/{q(alice.user_id)}/rooms/{q(room_id)}/tags/u.x", {})
    await alice.post(f"{V3}/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})
    await alice.put(f"{V3}/presence/{q(alice.user_id)}/status", {"presence": "online"})
    quiet = Filter({"account_data": {"not_types": ["*"]}, "presence": {"types": []},
                    "room": {"ephemeral": {"not_types": ["m.receipt"]}, "account_data": {"not_rooms": [room_id]}}})
    response, added = await run(server, alice, [room_id], None, quiet)
    assert not added
    assert response["account_data"]["events"] == [] and response["presence"]["events"] == []
    assert response["rooms"]["join"] == {}
    # Rooms the user is not joined to get nothing.
    response, _ = await run(server, alice, [], None)
    assert response["rooms"]["join"] == {}
