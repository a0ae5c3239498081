"""/sync: initial, incremental, long-poll wake-up, invites, leaves, typing."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import defer

from tests.integration.harness import V3, TestServer, create_room, send


@pytest_twisted.ensureDeferred
async def test_initial_then_incremental_sync(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice, name="Room")
    await send(alice, room_id, "one", "t1")
    initial = (await alice.get(f"{V3}/sync")).json
    room = initial["rooms"]["join"][room_id]
    bodies = [e["content"].get("body") for e in room["timeline"]["events"]]
    assert bodies[-1] == "one"
    assert room["timeline"]["events"][-1]["unsigned"]["transaction_id"] == "t1"
    state_types = {e["type"] for e in room["state"]["events"]} | {e["type"] for e in room["timeline"]["events"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= state_types
    since = initial["next_batch"]
    await send(alice, room_id, "two", "t2")
    incremental = (await alice.get(f"{V3}/sync?since={since}")).json
    events = incremental["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["two"]
    assert incremental["rooms"]["join"][room_id]["timeline"]["limited"] is False
    empty = (await alice.get(f"{V3}/sync?since={incremental['next_batch']}")).json
    assert room_id not in empty["rooms"]["join"]


@pytest_twisted.ensureDeferred
async def test_long_poll_wakes_on_new_message(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    since = (await bob.get(f"{V3}/sync")).json["next_batch"]
    started = time.monotonic()
    poll = defer.ensureDeferred(bob.get(f"{V3}/sync?since={since}&timeout=20000"))
    await server.hs.clock.sleep(0.2)
    assert not poll.called
    await send(alice, room_id, "wake up", "t1")
    result = (await poll).json
    assert time.monotonic() - started < 10  # woken by the notifier, not by the 20 s timeout
    events = result["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["wake up"]


@pytest_twisted.ensureDeferred
async def test_long_poll_times_out_empty(server: TestServer) -> None:
    alice = await server.register("alice")
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    started = time.monotonic()
    result = (await alice.get(f"{V3}/sync?since={since}&timeout=300")).json
    assert time.monotonic() - started >= 0.25
    assert result["rooms"]["join"] == {}


@pytest_twisted.ensureDeferred
async def test_invite_and_leave_sections(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    since = (await bob.get(f"{V3}/sync")).json["next_batch"]
    room_id = await create_room(alice, name="Secret plans", invite=[bob.user_id])
    invited = (await bob.get(f"{V3}/sync?since={since}")).json
    invite_state = invited["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert {e["type"] for e in invite_state} >= {"m.room.create", "m.room.name", "m.room.member"}
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    joined = (await bob.get(f"{V3}/sync?since={invited['next_batch']}")).json
    assert room_id in joined["rooms"]["join"]
    await bob.post(f"{V3}/rooms/{room_id}/leave", {})
    left = (await bob.get(f"{V3}/sync?since={joined['next_batch']}")).json
    assert room_id in left["rooms"]["leave"]
    assert room_id not in left["rooms"]["join"]


@pytest_twisted.ensureDeferred
async def test_limited_timeline_gives_prev_batch_that_paginates(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    sent = [await send(alice, room_id, f"m{i}", f"t{i}") for i in range(15)]
    result = (await alice.get(f'{V3}/sync?since={since}&filter={{"room":{{"timeline":{{"limit":5}}}}}}')).json
    timeline = result["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    assert [e["event_id"] for e in timeline["events"]] == sent[-5:]
    page = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=5&from={timeline['prev_batch']}")).json
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(sent[-10:-5]))


@pytest_twisted.ensureDeferred
async def test_typing_in_sync(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    since = (await bob.get(f"{V3}/sync")).json["next_batch"]
    assert (await alice.put(f"{V3}/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 10000})).code == 200
    result = (await bob.get(f"{V3}/sync?since={since}&timeout=5000")).json
    ephemeral = result["rooms"]["join"][room_id]["ephemeral"]["events"]
    assert {"type": "m.typing", "content": {"user_ids": [alice.user_id]}} in ephemeral


@pytest_twisted.ensureDeferred
async def test_bad_since_token(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.get(f"{V3}/sync?since=garbage")
    assert (resp.code, resp.json["errcode"]) == (400, "M_INVALID_PARAM")


@pytest_twisted.ensureDeferred
async def test_messages_from_a_sync_token(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    first = await send(alice, room_id, "before", "t1")
    token = (await alice.get(f"{V3}/sync")).json["next_batch"]
    await send(alice, room_id, "after", "t2")
    page = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=1&from={token}")).json
    assert [e["event_id"] for e in page["chunk"]] == [first]


@pytest_twisted.ensureDeferred
async def test_ignored_users_messages_and_invites_are_hidden(server: TestServer) -> None:
    alice = await server.register("alice")
    mallory = await server.register("mallory")
    room_id = await create_room(alice, preset="public_chat")
    await mallory.post(f"{V3}/rooms/{room_id}/join", {})
    ignore = {"ignored_users": {mallory.user_id: {}}}
    assert (await alice.put(f"{V3}/user/{alice.user_id}/account_data/m.ignored_user_list", ignore)).code == 200
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    await send(mallory, room_id, "spam", "t1")
    await send(alice, room_id, "hello", "t2")
    result = (await alice.get(f"{V3}/sync?since={since}")).json
    bodies = [e["content"].get("body") for e in result["rooms"]["join"][room_id]["timeline"]["events"]]
    assert bodies == ["hello"]
    page = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=10")).json
    assert "spam" not in [e["content"].get("body") for e in page["chunk"]]
    other = await create_room(mallory, invite=[alice.user_id])
    invites = (await alice.get(f"{V3}/sync?since={result['next_batch']}")).json
    assert other not in invites["rooms"]["invite"]


@pytest_twisted.ensureDeferred
async def test_use_state_after(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice, name="Before")
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.name/", {"name": "After"})
    result = (await alice.get(f"{V3}/sync?since={since}&use_state_after=true")).json
    room = result["rooms"]["join"][room_id]
    assert "state" not in room
    initial = (await alice.get(f"{V3}/sync?use_state_after=true")).json["rooms"]["join"][room_id]
    names = [e["content"]["name"] for e in initial["state_after"]["events"] if e["type"] == "m.room.name"]
    assert names == ["After"]


@pytest_twisted.ensureDeferred
async def test_filter_event_fields(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    await send(alice, room_id, "hello", "t1")
    # The spec's schema marks event_id, sender... required, which `event_fields` is there to cut out.
    result = (await alice.get(f'{V3}/sync?filter={{"event_fields":["type","content.body"]}}', check_spec=False)).json
    timeline = result["rooms"]["join"][room_id]["timeline"]["events"]
    assert timeline[-1] == {"type": "m.room.message", "content": {"body": "hello"}}
    assert all(set(e) <= {"type", "content"} for e in timeline)
