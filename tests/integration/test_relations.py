"""/relations and the bundled aggregations (`unsigned["m.relations"]`) of edits and references."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest_twisted
from twisted.internet.task import deferLater

from tests.integration.harness import V3, Client, TestServer, create_room, send

V1 = "/_matrix/client/v1"


async def send_event(client: Client, room_id: str, event_type: str, content: dict[str, Any], txn: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/{event_type}/{txn}", content)
    assert resp.code == 200, resp
    return resp.json["event_id"]


async def relate(client: Client, room_id: str, rel_type: str, target: str, txn: str, *,
                 event_type: str = "m.room.message", **content: Any) -> str:
    body = {"msgtype": "m.text", "body": txn, **content} if event_type == "m.room.message" else dict(content)
    body["m.relates_to"] = {"rel_type": rel_type, "event_id": target, **({"key": txn} if rel_type == "m.annotation"
                                                                         else {})}
    return await send_event(client, room_id, event_type, body, txn)


async def edit(client: Client, room_id: str, target: str, new_body: str, txn: str, **content: Any) -> str:
    """An edit; a short pause first so that edits have distinct timestamps (the newest one wins)."""
    from twisted.internet import reactor  # pytest-twisted's, installed at start-up

    await deferLater(reactor, 0.003, lambda: None)
    return await send_event(client, room_id, "m.room.message", {
        "msgtype": "m.text", "body": f"* {new_body}", "m.new_content": {"msgtype": "m.text", "body": new_body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target}, **content}, txn)


async def relations(client: Client, room_id: str, event_id: str, suffix: str = "", **params: Any) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    return await client.get(f"{V1}/rooms/{room_id}/relations/{event_id}{suffix}{query}")


def ids(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in chunk]


@pytest_twisted.ensureDeferred
async def test_relations_filtered_by_rel_type_and_event_type(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    parent = await send(alice, room_id, "parent", "p")
    reaction = await relate(alice, room_id, "m.annotation", parent, "r1", event_type="m.reaction")
    ref1 = await relate(alice, room_id, "m.reference", parent, "ref1")
    ref2 = await relate(alice, room_id, "m.reference", parent, "ref2")
    edit_id = await edit(alice, room_id, parent, "parent!", "e1")
    await send(alice, room_id, "unrelated", "u")

    everything = await relations(alice, room_id, parent)
    assert everything.code == 200
    assert ids(everything.json["chunk"]) == [edit_id, ref2, ref1, reaction]  # newest first
    assert "next_batch" not in everything.json and "prev_batch" not in everything.json
    assert "recursion_depth" not in everything.json
    assert everything.json["chunk"][0]["room_id"] == room_id
    by_type = await relations(alice, room_id, parent, "/m.reference")
    assert ids(by_type.json["chunk"]) == [ref2, ref1]
    by_event_type = await relations(alice, room_id, parent, "/m.annotation/m.reaction")
    assert ids(by_event_type.json["chunk"]) == [reaction]
    assert (await relations(alice, room_id, parent, "/m.annotation/m.room.message")).json["chunk"] == []
    forwards = await relations(alice, room_id, parent, dir="f")
    assert ids(forwards.json["chunk"]) == [reaction, ref1, ref2, edit_id]
    assert (await relations(alice, room_id, edit_id)).json == {"chunk": []}


@pytest_twisted.ensureDeferred
async def test_relations_pagination_both_directions(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    parent = await send(alice, room_id, "parent", "p")
    children = [await relate(alice, room_id, "m.reference", parent, f"c{i}") for i in range(5)]

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"limit": 2, **({"from": token} if token else {})}
        page = (await relations(alice, room_id, parent, **params)).json
        pages += 1
        seen += ids(page["chunk"])
        if token:
            assert page["prev_batch"] == token
        token = page.get("next_batch")
        if token is None:
            break
    assert seen == children[::-1] and pages == 3

    first = (await relations(alice, room_id, parent, dir="f", limit=3)).json
    assert ids(first["chunk"]) == children[:3]
    rest = (await relations(alice, room_id, parent, dir="f", limit=3, **{"from": first["next_batch"]})).json
    assert ids(rest["chunk"]) == children[3:] and "next_batch" not in rest

    # `to` stops at a token from an earlier page: from page 1's start to page 2's end.
    page1 = (await relations(alice, room_id, parent, limit=2)).json
    page2 = (await relations(alice, room_id, parent, limit=2, **{"from": page1["next_batch"]})).json
    ranged = (await relations(alice, room_id, parent, limit=10, to=page2["next_batch"])).json
    assert ids(ranged["chunk"]) == children[::-1][:4]

    # A /sync token is a valid starting point; malformed ones are refused.
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    later = await relate(alice, room_id, "m.reference", parent, "later")
    from_sync = (await relations(alice, room_id, parent, **{"from": since})).json
    assert later not in ids(from_sync["chunk"]) and ids(from_sync["chunk"])[0] == children[-1]
    bad = await relations(alice, room_id, parent, **{"from": "nonsense"})
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_PARAM")
    bad_dir = await relations(alice, room_id, parent, dir="up")
    assert (bad_dir.code, bad_dir.json["errcode"]) == (400, "M_INVALID_PARAM")


@pytest_twisted.ensureDeferred
async def test_relations_recurse_up_to_three_levels(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, "root", "root")
    chain = []
    target = root
    for level in range(1, 5):
        target = await relate(alice, room_id, "m.reference", target, f"level{level}")
        chain.append(target)
    sibling_reaction = await relate(alice, room_id, "m.annotation", chain[0], "r", event_type="m.reaction")

    direct = (await relations(alice, room_id, root)).json
    assert ids(direct["chunk"]) == [chain[0]]
    not_recursing = (await relations(alice, room_id, root, recurse="false")).json
    assert ids(not_recursing["chunk"]) == [chain[0]] and not_recursing["recursion_depth"] == 1
    deep = (await relations(alice, room_id, root, recurse="true")).json
    assert deep["recursion_depth"] == 3
    assert ids(deep["chunk"]) == [sibling_reaction, chain[2], chain[1], chain[0]]  # not level 4
    only_refs = (await relations(alice, room_id, root, "/m.reference", recurse="true")).json
    assert ids(only_refs["chunk"]) == [chain[2], chain[1], chain[0]]
    paged = (await relations(alice, room_id, root, recurse="true", limit=2)).json
    assert ids(paged["chunk"]) == [sibling_reaction, chain[2]]
    rest = (await relations(alice, room_id, root, recurse="true", limit=2, **{"from": paged["next_batch"]})).json
    assert ids(rest["chunk"]) == [chain[1], chain[0]]


@pytest_twisted.ensureDeferred
async def test_relations_errors_and_visibility(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    mallory = await server.register("mallory")
    room_id = await create_room(alice, preset="public_chat")
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.history_visibility/", {"history_visibility": "joined"})
    before_bob = await send(alice, room_id, "before bob", "b")
    await relate(alice, room_id, "m.reference", before_bob, "old-child")
    other_room = await create_room(alice)
    elsewhere = await send(alice, other_room, "elsewhere", "e")

    unknown = await relations(alice, room_id, "$doesnotexist")
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    wrong_room = await relations(alice, room_id, elsewhere)
    assert (wrong_room.code, wrong_room.json["errcode"]) == (404, "M_NOT_FOUND")
    outsider = await relations(mallory, room_id, before_bob)
    assert (outsider.code, outsider.json["errcode"]) == (403, "M_FORBIDDEN")

    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    hidden = await relations(bob, room_id, before_bob)  # sent before bob joined a "joined" room
    assert (hidden.code, hidden.json["errcode"]) == (404, "M_NOT_FOUND")

    # Children bob may not see, or from users he ignores, are left out.
    assert (await mallory.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    parent = await send(bob, room_id, "parent", "p")
    from_alice = await relate(alice, room_id, "m.reference", parent, "a1")
    from_mallory = await relate(mallory, room_id, "m.reference", parent, "m1")
    assert ids((await relations(bob, room_id, parent)).json["chunk"]) == [from_mallory, from_alice]
    ignore = {"ignored_users": {mallory.user_id: {}}}
    path = f"{V3}/user/{urllib.parse.quote(bob.user_id)}/account_data/m.ignored_user_list"
    assert (await bob.put(path, ignore)).code == 200
    assert ids((await relations(bob, room_id, parent)).json["chunk"]) == [from_alice]
    bundled = (await bob.get(f"{V3}/rooms/{room_id}/event/{parent}")).json["unsigned"]["m.relations"]
    assert bundled == {"m.reference": {"chunk": [{"event_id": from_alice}]}}


@pytest_twisted.ensureDeferred
async def test_edits_are_bundled_on_every_read_endpoint(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/rooms/{room_id}/join", {})).code == 200
    original = await send(alice, room_id, "helo", "o")
    await edit(alice, room_id, original, "hello", "e1")
    latest_edit = await edit(alice, room_id, original, "hello!", "e2")
    await edit(bob, room_id, original, "hijacked", "bob-edit")  # not the original sender: ignored
    await send_event(alice, room_id, "m.room.message", {  # no m.new_content: not a valid edit
        "msgtype": "m.text", "body": "* broken", "m.relates_to": {"rel_type": "m.replace", "event_id": original}},
        "broken")
    ref = await relate(bob, room_id, "m.reference", original, "ref")

    def check(event: dict[str, Any]) -> None:
        assert event["content"]["body"] == "helo"  # the original content stays (spec v1.7)
        bundled = event["unsigned"]["m.relations"]
        replace = bundled["m.replace"]
        assert replace["event_id"] == latest_edit and replace["sender"] == alice.user_id
        assert replace["content"]["m.new_content"]["body"] == "hello!"
        assert isinstance(replace["origin_server_ts"], int)
        assert bundled["m.reference"] == {"chunk": [{"event_id": ref}]}
        assert "m.thread" not in bundled

    check((await bob.get(f"{V3}/rooms/{room_id}/event/{original}")).json)
    messages = (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=50")).json["chunk"]
    check(next(e for e in messages if e["event_id"] == original))
    context = (await bob.get(f"{V3}/rooms/{room_id}/context/{original}?limit=4")).json
    check(context["event"])

    # /relations bundles its own chunk: an edit of a reference shows on that reference.
    ref_edit = await edit(bob, room_id, ref, "ref (edited)", "ref-edit")
    chunk = (await bob.get(f"{V1}/rooms/{room_id}/relations/{original}/m.reference")).json["chunk"]
    assert chunk[0]["unsigned"]["m.relations"]["m.replace"]["event_id"] == ref_edit

    # A redacted original keeps its references but loses its edits.
    resp = await alice.put(f"{V3}/rooms/{room_id}/redact/{original}/r1", {})
    assert resp.code == 200, resp
    redacted = (await bob.get(f"{V3}/rooms/{room_id}/event/{original}")).json
    assert redacted["unsigned"]["m.relations"] == {"m.reference": {"chunk": [{"event_id": ref}]}}
    # Redacting the latest edit falls back to the one before it.
    other = await send(alice, room_id, "second", "s")
    first_fix = await edit(alice, room_id, other, "second!", "s1")
    second_fix = await edit(alice, room_id, other, "second!!", "s2")
    assert (await alice.put(f"{V3}/rooms/{room_id}/redact/{second_fix}/r2", {})).code == 200
    shown = (await bob.get(f"{V3}/rooms/{room_id}/event/{other}")).json["unsigned"]["m.relations"]
    assert shown["m.replace"]["event_id"] == first_fix


@pytest_twisted.ensureDeferred
async def test_sync_bundles_limited_timelines_only(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    original = await send(alice, room_id, "original", "o")
    latest_edit = await edit(alice, room_id, original, "edited", "e")
    timeline_filter = urllib.parse.quote(json.dumps({"room": {"timeline": {"limit": 2}}}))
    initial = (await alice.get(f"{V3}/sync?filter={timeline_filter}")).json
    timeline = initial["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    root = next(e for e in timeline["events"] if e["event_id"] == original)
    assert root["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest_edit
    assert "room_id" not in root["unsigned"]["m.relations"]["m.replace"]  # same form as the timeline

    since = initial["next_batch"]
    newer = await send(alice, room_id, "newer", "n")
    await edit(alice, room_id, newer, "newer!", "n2")
    incremental = (await alice.get(f"{V3}/sync?since={since}&filter={timeline_filter}")).json
    timeline = incremental["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is False
    assert all("m.relations" not in e["unsigned"] for e in timeline["events"])
