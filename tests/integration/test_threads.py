"""Threads: /threads, and the `m.thread` summary bundled on thread roots."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest_twisted

from tests.integration.harness import V3, Client, TestServer, create_room, send
from tests.integration.test_relations import V1, edit, ids, relate


async def reply(client: Client, room_id: str, root: str, txn: str) -> str:
    return await relate(client, room_id, "m.thread", root, txn)


async def threads(client: Client, room_id: str, **params: Any) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    return await client.get(f"{V1}/rooms/{room_id}/threads{query}")


async def ignore(client: Client, *user_ids: str) -> None:
    path = f"{V3}/user/{urllib.parse.quote(client.user_id or '')}/account_data/m.ignored_user_list"
    resp = await client.put(path, {"ignored_users": {u: {} for u in user_ids}})
    assert resp.code == 200, resp


async def three_users(server: TestServer) -> tuple[Client, Client, Client, str]:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    room_id = await create_room(alice, preset="public_chat")
    for member in (bob, carol):
        assert (await member.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    return alice, bob, carol, room_id


@pytest_twisted.ensureDeferred
async def test_thread_summary_is_bundled_on_the_root(server: TestServer) -> None:
    alice, bob, carol, room_id = await three_users(server)
    root = await send(alice, room_id, "root", "root")
    await reply(bob, room_id, root, "b1")
    latest = await reply(bob, room_id, root, "b2")

    def summary(event: dict[str, Any]) -> dict[str, Any]:
        return event["unsigned"]["m.relations"]["m.thread"]

    for client, participated in ((alice, True), (bob, True), (carol, False)):
        thread = summary((await client.get(f"{V3}/rooms/{room_id}/event/{root}")).json)
        assert thread["count"] == 2
        assert thread["current_user_participated"] is participated
        assert thread["latest_event"]["event_id"] == latest
        assert thread["latest_event"]["sender"] == bob.user_id
        assert thread["latest_event"]["content"]["body"] == "b2"
    messages = (await carol.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=20")).json["chunk"]
    assert summary(next(e for e in messages if e["event_id"] == root))["count"] == 2
    replies = (await carol.get(f"{V1}/rooms/{room_id}/relations/{root}/m.thread")).json["chunk"]
    assert ids(replies) == [latest, ids(replies)[1]] and len(replies) == 2

    # The latest reply carries its own aggregations (here its edit).
    fix = await edit(bob, room_id, latest, "b2!", "b2-edit")
    thread = summary((await carol.get(f"{V3}/rooms/{room_id}/event/{root}")).json)
    assert thread["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fix

    # A redacted reply no longer counts; the thread's latest event moves back.
    assert (await bob.put(f"{V3}/rooms/{room_id}/redact/{latest}/r1", {})).code == 200
    thread = summary((await carol.get(f"{V3}/rooms/{room_id}/event/{root}")).json)
    assert thread["count"] == 1 and thread["latest_event"]["content"]["body"] == "b1"


@pytest_twisted.ensureDeferred
async def test_ignored_users_replies_are_not_aggregated(server: TestServer) -> None:
    alice, bob, carol, room_id = await three_users(server)
    root = await send(alice, room_id, "root", "root")
    from_carol = await reply(carol, room_id, root, "c1")
    await reply(bob, room_id, root, "b1")
    await ignore(alice, bob.user_id)
    thread = (await alice.get(f"{V3}/rooms/{room_id}/event/{root}")).json["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 1 and thread["latest_event"]["event_id"] == from_carol
    only_bob = await send(alice, room_id, "second root", "root2")
    await reply(bob, room_id, only_bob, "b2")
    assert "m.relations" not in (await alice.get(f"{V3}/rooms/{room_id}/event/{only_bob}")).json["unsigned"]
    # Bob's own root is listed by /threads, but shown redacted to alice.
    bobs_root = await send(bob, room_id, "bob's root", "root3")
    await reply(carol, room_id, bobs_root, "c2")
    listed = {e["event_id"]: e for e in (await threads(alice, room_id)).json["chunk"]}
    assert listed[bobs_root]["content"] == {}
    assert listed[bobs_root]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    assert (await threads(carol, room_id)).json["chunk"][0]["content"]["body"] == "bob's root"


@pytest_twisted.ensureDeferred
async def test_threads_list_newest_activity_first_with_pagination(server: TestServer) -> None:
    alice, bob, carol, room_id = await three_users(server)
    first = await send(alice, room_id, "first", "r1")
    second = await send(alice, room_id, "second", "r2")
    third = await send(bob, room_id, "third", "r3")
    await send(alice, room_id, "not a thread", "plain")
    await reply(bob, room_id, first, "f1")
    await reply(bob, room_id, second, "s1")
    await reply(carol, room_id, third, "t1")
    await reply(alice, room_id, first, "f2")  # the first thread is now the most active

    listed = (await threads(bob, room_id)).json
    assert ids(listed["chunk"]) == [first, third, second] and "next_batch" not in listed
    root = listed["chunk"][0]
    assert root["room_id"] == room_id and root["content"]["body"] == "first"
    assert root["unsigned"]["m.relations"]["m.thread"]["count"] == 2

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = (await threads(bob, room_id, **params)).json
        assert len(page["chunk"]) == 1
        seen += ids(page["chunk"])
        if "next_batch" not in page:
            break
        params["from"] = page["next_batch"]
    assert seen == [first, third, second]

    assert ids((await threads(carol, room_id, include="participated")).json["chunk"]) == [third]
    assert ids((await threads(alice, room_id, include="participated")).json["chunk"]) == [first, second]
    assert ids((await threads(bob, room_id, include="all")).json["chunk"]) == [first, third, second]


@pytest_twisted.ensureDeferred
async def test_threads_errors_and_history_visibility(server: TestServer) -> None:
    alice, bob, _, room_id = await three_users(server)
    mallory = await server.register("mallory")
    root = await send(alice, room_id, "root", "root")
    await reply(bob, room_id, root, "b1")
    for params in ({"limit": 0}, {"include": "mine"}, {"from": "bogus"}, {"limit": "x"}):
        resp = await threads(alice, room_id, **params)
        assert (resp.code, resp.json["errcode"]) == (400, "M_INVALID_PARAM"), params
    outsider = await threads(mallory, room_id)
    assert (outsider.code, outsider.json["errcode"]) == (403, "M_FORBIDDEN")

    # With "joined" history, a newcomer doesn't see threads rooted before they joined.
    assert (await alice.put(f"{V3}/rooms/{room_id}/state/m.room.history_visibility/",
                            {"history_visibility": "joined"})).code == 200
    hidden_root = await send(alice, room_id, "before mallory", "root2")
    await reply(bob, room_id, hidden_root, "b2")
    assert (await mallory.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    later_root = await send(alice, room_id, "after mallory", "root3")
    await reply(bob, room_id, later_root, "b3")
    # The first root was sent under "shared" history, which every current member may read.
    assert ids((await threads(mallory, room_id)).json["chunk"]) == [later_root, root]
    assert ids((await threads(alice, room_id)).json["chunk"]) == [later_root, hidden_root, root]


@pytest_twisted.ensureDeferred
async def test_sync_limited_timeline_bundles_thread_summary(server: TestServer) -> None:
    alice, bob, _, room_id = await three_users(server)
    root = await send(alice, room_id, "root", "root")
    latest = await reply(bob, room_id, root, "b1")
    timeline_filter = urllib.parse.quote(json.dumps({"room": {"timeline": {"limit": 2}}}))
    synced = (await alice.get(f"{V3}/sync?filter={timeline_filter}")).json
    timeline = synced["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    thread = next(e for e in timeline["events"] if e["event_id"] == root)["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 1 and thread["current_user_participated"] is True
    assert thread["latest_event"]["event_id"] == latest and "room_id" not in thread["latest_event"]
