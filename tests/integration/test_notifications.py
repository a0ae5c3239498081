"""Notification counts in /sync (`unread_notifications`, `unread_thread_notifications`) and
`GET /notifications`, from push rules evaluated in each send, over real HTTP."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest_twisted
from twisted.internet import defer

from tests.integration.harness import Client, TestServer

V3 = "/_matrix/client/v3"
THREAD_FILTER = {"room": {"timeline": {"unread_thread_notifications": True}}}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def create_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.code == 200, resp
    return resp.json["room_id"]


async def join(client: Client, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{q(room_id)}", {})
    assert resp.code == 200, resp


async def send(client: Client, room_id: str, content: dict[str, Any], *, event_type: str = "m.room.message") -> str:
    send.counter += 1  # type: ignore[attr-defined]
    resp = await client.put(f"{V3}/rooms/{q(room_id)}/send/{event_type}/t{send.counter}", content)  # type: ignore[attr-defined]
    assert resp.code == 200, resp
    return resp.json["event_id"]


send.counter = 0  # type: ignore[attr-defined]


def text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


async def receipt(client: Client, room_id: str, event_id: str, receipt_type: str = "m.read",
                  thread_id: str | None = None) -> None:
    body = {} if thread_id is None else {"thread_id": thread_id}
    resp = await client.post(f"{V3}/rooms/{q(room_id)}/receipt/{receipt_type}/{q(event_id)}", body)
    assert resp.code == 200, resp


async def sync(client: Client, *, since: str | None = None, sync_filter: dict[str, Any] | None = None,
               timeout: int | None = None) -> dict[str, Any]:
    params = {}
    if since is not None:
        params["since"] = since
    if sync_filter is not None:
        params["filter"] = json.dumps(sync_filter)
    if timeout is not None:
        params["timeout"] = str(timeout)
    resp = await client.get(f"{V3}/sync" + ("?" + urllib.parse.urlencode(params) if params else ""))
    assert resp.code == 200, resp
    return resp.json


async def counts(client: Client, room_id: str) -> tuple[int, int]:
    unread = (await sync(client))["rooms"]["join"][room_id]["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


async def room_of_three(server: TestServer) -> tuple[Client, Client, Client, str]:
    """Alice's public room with Bob and Carol in it (three members: no one-to-one rules)."""
    alice, bob, carol = [await server.register(name) for name in ("alice", "bob", "carol")]
    room_id = await create_room(alice, preset="public_chat")
    await join(bob, room_id)
    await join(carol, room_id)
    return alice, bob, carol, room_id


@pytest_twisted.ensureDeferred
async def test_messages_count_until_read_and_own_messages_never_count(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    assert await counts(alice, room_id) == (0, 0)  # joins and room set-up don't notify
    await send(alice, room_id, text("alice's own"))
    assert await counts(alice, room_id) == (0, 0)
    sent = [await send(bob, room_id, text(f"m{i}")) for i in range(3)]
    await send(bob, room_id, {"msgtype": "m.notice", "body": "a bot's notice"})  # suppressed by default
    assert await counts(alice, room_id) == (3, 0)
    await receipt(alice, room_id, sent[0])
    assert await counts(alice, room_id) == (2, 0)
    # The later of m.read and m.read.private wins; an older m.read doesn't rewind the count.
    await receipt(alice, room_id, sent[2], "m.read.private")
    assert await counts(alice, room_id) == (0, 0)
    await receipt(alice, room_id, sent[1], "m.read")
    assert await counts(alice, room_id) == (0, 0)
    await send(bob, room_id, text("m3"))
    assert await counts(alice, room_id) == (1, 0)


@pytest_twisted.ensureDeferred
async def test_sending_a_message_marks_the_room_read_for_the_sender(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    for i in range(2):
        await send(bob, room_id, text(f"m{i}"))
    assert await counts(alice, room_id) == (2, 0)
    await send(alice, room_id, text("answering"))  # the spec counts sending as reading up to it
    assert await counts(alice, room_id) == (0, 0)
    assert await counts(bob, room_id) == (1, 0)


@pytest_twisted.ensureDeferred
async def test_mentions_highlight(server: TestServer) -> None:
    alice, bob, carol, room_id = await room_of_three(server)
    await send(bob, room_id, text("alice, look", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    assert await counts(alice, room_id) == (1, 1)
    assert await counts(carol, room_id) == (1, 0)
    # A mention only in the body is not a mention any more (the legacy body rules are gone).
    await send(bob, room_id, text(f"{alice.user_id} and alice"))
    assert await counts(alice, room_id) == (2, 1)


@pytest_twisted.ensureDeferred
async def test_room_mention_needs_the_notifications_power(server: TestServer) -> None:
    alice, bob, carol, room_id = await room_of_three(server)
    at_room = text("@room hello", **{"m.mentions": {"room": True}})
    await send(bob, room_id, at_room)  # Bob has 0, `notifications.room` defaults to 50
    assert await counts(carol, room_id) == (1, 0)
    levels = (await alice.get(f"{V3}/rooms/{q(room_id)}/state/m.room.power_levels/")).json
    levels["users"][bob.user_id] = 50
    assert (await alice.put(f"{V3}/rooms/{q(room_id)}/state/m.room.power_levels/", levels)).code == 200
    await send(bob, room_id, at_room)
    assert await counts(carol, room_id) == (2, 1)
    assert await counts(alice, room_id) == (2, 1)  # her power-levels change (a state event) read nothing
    await send(alice, room_id, at_room)  # the room creator (v12: infinite power) may @room too
    assert await counts(bob, room_id) == (1, 1)


@pytest_twisted.ensureDeferred
async def test_counts_for_several_rooms_in_one_sync(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    rooms = []
    for _ in range(3):
        room_id = await create_room(alice, preset="public_chat")
        await join(bob, room_id)
        rooms.append(room_id)
    for n, room_id in enumerate(rooms):
        for i in range(n + 1):
            await send(bob, room_id, text(f"{room_id} {i}"))
    initial = await sync(alice)
    joined = initial["rooms"]["join"]
    # Two members: the one-to-one rule notifies (with a sound).
    assert [joined[r]["unread_notifications"] for r in rooms] == [
        {"notification_count": n, "highlight_count": 0} for n in (1, 2, 3)]
    assert "unread_thread_notifications" not in joined[rooms[0]]
    # Incremental: a new message in one room; a receipt (on another device) in another.
    await send(bob, rooms[0], text("again"))
    latest_in_third = (await sync(alice))["rooms"]["join"][rooms[2]]["timeline"]["events"][-1]["event_id"]
    await receipt(alice, rooms[2], latest_in_third)
    later = (await sync(alice, since=initial["next_batch"]))["rooms"]["join"]
    assert later[rooms[0]]["unread_notifications"] == {"notification_count": 2, "highlight_count": 0}
    assert later[rooms[2]]["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert rooms[1] not in later


@pytest_twisted.ensureDeferred
async def test_long_poll_delivers_the_message_with_its_count(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    since = (await sync(alice))["next_batch"]
    for i in range(3):
        poll = defer.ensureDeferred(sync(alice, since=since, timeout=20000))
        await server.hs.clock.sleep(0.05)
        await send(bob, room_id, text(f"m{i}"))
        result = await poll
        while room_id not in result["rooms"]["join"]:  # woken by something else first (Bob's presence)
            result = await sync(alice, since=result["next_batch"], timeout=20000)
        room = result["rooms"]["join"][room_id]
        assert [e["content"]["body"] for e in room["timeline"]["events"]] == [f"m{i}"]
        assert room["unread_notifications"] == {"notification_count": i + 1, "highlight_count": 0}
        since = result["next_batch"]


@pytest_twisted.ensureDeferred
async def test_ignored_users_never_notify(server: TestServer) -> None:
    alice, bob, carol, room_id = await room_of_three(server)
    resp = await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/m.ignored_user_list",
                           {"ignored_users": {bob.user_id: {}}})
    assert resp.code == 200, resp
    await send(bob, room_id, text("hi", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    await send(carol, room_id, text("hello"))
    assert await counts(alice, room_id) == (1, 0)


@pytest_twisted.ensureDeferred
async def test_threads_are_counted_separately_when_asked(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    root = await send(bob, room_id, text("root"))
    in_thread = {"rel_type": "m.thread", "event_id": root}
    replies = [await send(bob, room_id, text(f"reply {i}", **{"m.relates_to": in_thread})) for i in range(2)]
    # A reference to a thread reply is part of the thread (spec: follow relations to the thread).
    await send(bob, room_id, text("see above", **{"m.relates_to": {"rel_type": "m.reference", "event_id": replies[0]}}))
    # A reference to the root stays in the main timeline; a mention in the thread highlights.
    await send(bob, room_id, text("about root", **{"m.relates_to": {"rel_type": "m.reference", "event_id": root}}))
    await send(bob, room_id, text("alice?", **{"m.relates_to": in_thread, "m.mentions": {"user_ids": [alice.user_id]}}))

    def thread_view(response: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
        room = response["rooms"]["join"][room_id]
        return room["unread_notifications"], room["unread_thread_notifications"]

    assert thread_view(await sync(alice, sync_filter=THREAD_FILTER)) == (
        {"notification_count": 2, "highlight_count": 0},
        {root: {"notification_count": 4, "highlight_count": 1}},
    )
    assert await counts(alice, room_id) == (6, 1)  # without the flag: everything together
    # A threaded receipt reads its thread only, a "main" one the main timeline only.
    await receipt(alice, room_id, replies[1], thread_id=root)
    assert thread_view(await sync(alice, sync_filter=THREAD_FILTER)) == (
        {"notification_count": 2, "highlight_count": 0},
        {root: {"notification_count": 2, "highlight_count": 1}},
    )
    await receipt(alice, room_id, root, thread_id="main")
    assert thread_view(await sync(alice, sync_filter=THREAD_FILTER)) == (
        {"notification_count": 1, "highlight_count": 0},
        {root: {"notification_count": 2, "highlight_count": 1}},
    )
    assert await counts(alice, room_id) == (3, 1)
    # An unthreaded receipt on the latest event reads everything.
    latest = (await sync(alice))["rooms"]["join"][room_id]["timeline"]["events"][-1]["event_id"]
    await receipt(alice, room_id, latest)
    assert thread_view(await sync(alice, sync_filter=THREAD_FILTER)) == (
        {"notification_count": 0, "highlight_count": 0}, {})


@pytest_twisted.ensureDeferred
async def test_notifications_endpoint(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    plain = [await send(bob, room_id, text(f"m{i}")) for i in range(3)]
    mention = await send(bob, room_id, text("alice!", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    await receipt(alice, room_id, plain[1])
    first = (await alice.get(f"{V3}/notifications?limit=3")).json
    assert [n["event"]["event_id"] for n in first["notifications"]] == [mention, plain[2], plain[1]]
    assert [n["read"] for n in first["notifications"]] == [False, False, True]
    assert first["notifications"][0]["actions"] == ["notify", {"set_tweak": "highlight"}]
    assert first["notifications"][1]["actions"] == ["notify"]
    assert {n["room_id"] for n in first["notifications"]} == {room_id}
    rest = (await alice.get(f"{V3}/notifications?limit=3&from={q(first['next_token'])}")).json
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [plain[0]]
    assert "next_token" not in rest
    only = (await alice.get(f"{V3}/notifications?only=highlight")).json
    assert [n["event"]["event_id"] for n in only["notifications"]] == [mention]
    bad = await alice.get(f"{V3}/notifications?from=nonsense")
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await server.client().get(f"{V3}/notifications")).code == 401


@pytest_twisted.ensureDeferred
async def test_prune_drops_read_rows_after_one_interval(server: TestServer) -> None:
    alice, bob, carol, room_id = await room_of_three(server)
    sent = [await send(bob, room_id, text(f"m{i}")) for i in range(3)]
    await receipt(alice, room_id, sent[1])
    assert (await carol.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200
    store = server.hs.store.push_actions
    assert len(await store.get_notifications(carol.user_id, before=None, limit=10, only_highlight=False)) == 3
    handler = server.hs.push_actions_handler
    await handler.prune()  # the first run only notes where the stream is
    listed = (await alice.get(f"{V3}/notifications")).json["notifications"]
    assert [n["event"]["event_id"] for n in listed] == sent[::-1]
    await handler.prune()
    listed = (await alice.get(f"{V3}/notifications")).json["notifications"]
    assert [n["event"]["event_id"] for n in listed] == [sent[2]]
    assert await counts(alice, room_id) == (1, 0)
    assert await store.get_notifications(carol.user_id, before=None, limit=10, only_highlight=False) == []


@pytest_twisted.ensureDeferred
async def test_rows_are_stored_with_the_event(server: TestServer) -> None:
    alice, bob, _, room_id = await room_of_three(server)
    hs = server.hs
    sent = await hs.event_sender.send(room_id, sender=bob.user_id, event_type="m.room.message", content=text("now"))
    # Written in the event's own transaction: a reader right after the send sees them, no waiting.
    rows = await hs.store.push_actions.get_notifications(alice.user_id, before=None, limit=10, only_highlight=False)
    assert [(r.event_id, r.stream_ordering) for r in rows] == [(sent.event.event_id, sent.stream_ordering)]
    counted = await hs.push_actions_handler.get_counts(alice.user_id, [room_id], up_to=sent.stream_ordering)
    assert counted[room_id]["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    # A sync's counts stop at its position: an event after it is counted by the next sync.
    before = await hs.push_actions_handler.get_counts(alice.user_id, [room_id], up_to=sent.stream_ordering - 1)
    assert before[room_id]["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
