"""Account data, room tags and the ignore list over real HTTP."""

from __future__ import annotations

import urllib.parse

import pytest_twisted

from tests.integration.harness import V3, TestServer

ROOM = "!someroom:test.local"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest_twisted.ensureDeferred
async def test_global_account_data_round_trip(server: TestServer) -> None:
    alice = await server.register("alice")
    path = f"{V3}/user/{q(alice.user_id)}/account_data/org.example.config"
    missing = await alice.get(path)
    assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await alice.put(path, {"theme": "dark", "nested": {"a": [1, 2]}})).code == 200
    got = await alice.get(path)
    assert (got.code, got.json) == (200, {"theme": "dark", "nested": {"a": [1, 2]}})
    assert (await alice.put(path, {"theme": "light"})).code == 200
    assert (await alice.get(path)).json == {"theme": "light"}


@pytest_twisted.ensureDeferred
async def test_room_account_data_is_separate_from_global(server: TestServer) -> None:
    alice = await server.register("alice")
    room_path = f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/org.example.x"
    global_path = f"{V3}/user/{q(alice.user_id)}/account_data/org.example.x"
    assert (await alice.put(room_path, {"room": True})).code == 200
    assert (await alice.get(room_path)).json == {"room": True}
    assert (await alice.get(global_path)).code == 404
    other_room = await alice.get(f"{V3}/user/{q(alice.user_id)}/rooms/{q('!other:test.local')}/account_data/org.example.x")
    assert (other_room.code, other_room.json["errcode"]) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_someone_elses_account_data_is_forbidden(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.secret", {"s": 1})
    for method, path in [
        ("GET", f"{V3}/user/{q(alice.user_id)}/account_data/org.example.secret"),
        ("PUT", f"{V3}/user/{q(alice.user_id)}/account_data/org.example.secret"),
        ("GET", f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/org.example.secret"),
        ("PUT", f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/org.example.secret"),
        ("GET", f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/tags"),
        ("PUT", f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/tags/u.work"),
        ("DELETE", f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/tags/u.work"),
    ]:
        resp = await bob.request(method, path, {} if method == "PUT" else None)
        assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN"), (method, path)
    unauthenticated = await server.client().get(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.secret")
    assert (unauthenticated.code, unauthenticated.json["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest_twisted.ensureDeferred
async def test_server_managed_types_are_refused_but_readable(server: TestServer) -> None:
    alice = await server.register("alice")
    for path in (f"{V3}/user/{q(alice.user_id)}/account_data/m.fully_read",
                 f"{V3}/user/{q(alice.user_id)}/account_data/m.push_rules",
                 f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/m.fully_read",
                 f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/m.push_rules"):
        resp = await alice.put(path, {"event_id": "$x"})
        assert (resp.code, resp.json["errcode"]) == (405, "M_BAD_JSON"), path
    rules = await alice.get(f"{V3}/user/{q(alice.user_id)}/account_data/m.push_rules")
    assert rules.code == 200
    assert rules.json["global"]["override"][0]["rule_id"] == ".m.rule.master"


@pytest_twisted.ensureDeferred
async def test_bad_bodies_and_room_ids(server: TestServer) -> None:
    alice = await server.register("alice")
    path = f"{V3}/user/{q(alice.user_id)}/account_data/org.example.x"
    not_object = await alice.put(path, raw=b"[1, 2]")
    assert (not_object.code, not_object.json["errcode"]) == (400, "M_NOT_JSON")
    broken = await alice.put(path, raw=b"{nope")
    assert (broken.code, broken.json["errcode"]) == (400, "M_NOT_JSON")
    for method in ("GET", "PUT"):
        bad_room = await alice.request(method, f"{V3}/user/{q(alice.user_id)}/rooms/notaroom/account_data/x.y",
                                       {} if method == "PUT" else None)
        assert (bad_room.code, bad_room.json["errcode"]) == (400, "M_INVALID_PARAM")


@pytest_twisted.ensureDeferred
async def test_ignored_user_list_is_validated(server: TestServer) -> None:
    alice = await server.register("alice")
    path = f"{V3}/user/{q(alice.user_id)}/account_data/m.ignored_user_list"
    for body in ({}, {"ignored_users": []}, {"ignored_users": {"bob": {}}}, {"ignored_users": {"@bob:test.local": 1}}):
        resp = await alice.put(path, body)
        assert (resp.code, resp.json["errcode"]) == (400, "M_BAD_JSON"), body
    assert (await alice.put(path, {"ignored_users": {"@bob:test.local": {}}})).code == 200
    assert (await alice.get(path)).json == {"ignored_users": {"@bob:test.local": {}}}
    assert await server.hs.account_data_handler.get_ignored_users(alice.user_id) == {"@bob:test.local"}
    assert (await alice.put(path, {"ignored_users": {}})).code == 200
    assert await server.hs.account_data_handler.get_ignored_users(alice.user_id) == frozenset()


@pytest_twisted.ensureDeferred
async def test_room_tags(server: TestServer) -> None:
    alice = await server.register("alice")
    tags = f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/tags"
    assert (await alice.get(tags)).json == {"tags": {}}
    assert (await alice.put(f"{tags}/m.favourite", {"order": 0.25})).code == 200
    assert (await alice.put(f"{tags}/{q('u.Work stuff')}", {})).code == 200
    assert (await alice.get(tags)).json == {"tags": {"m.favourite": {"order": 0.25}, "u.Work stuff": {}}}
    # Tags are the room's m.tag account data.
    as_account_data = await alice.get(f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/account_data/m.tag")
    assert as_account_data.json == {"tags": {"m.favourite": {"order": 0.25}, "u.Work stuff": {}}}
    assert (await alice.delete(f"{tags}/m.favourite")).code == 200
    assert (await alice.delete(f"{tags}/m.never-set")).code == 200
    assert (await alice.get(tags)).json == {"tags": {"u.Work stuff": {}}}
    bad_order = await alice.put(f"{tags}/u.x", {"order": "first"})
    assert (bad_order.code, bad_order.json["errcode"]) == (400, "M_BAD_JSON")
    too_long = await alice.put(f"{tags}/{'u.' + 'x' * 254}", {})
    assert (too_long.code, too_long.json["errcode"]) == (400, "M_INVALID_PARAM")
    bad_room = await alice.get(f"{V3}/user/{q(alice.user_id)}/rooms/{q('#alias:test.local')}/tags")
    assert (bad_room.code, bad_room.json["errcode"]) == (400, "M_INVALID_PARAM")


@pytest_twisted.ensureDeferred
async def test_sync_changes_and_notifier(server: TestServer) -> None:
    alice = await server.register("alice")
    handler = server.hs.account_data_handler
    start = handler.current_position()
    await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.a", {"a": 1})
    await alice.put(f"{V3}/user/{q(alice.user_id)}/rooms/{q(ROOM)}/tags/u.x", {})
    now = handler.current_position()
    assert server.hs.notifier.positions["account_data"] == now > start
    initial_global, initial_rooms = await handler.get_sync_account_data(alice.user_id, 0, now, initial=True)
    types = {e["type"]: e["content"] for e in initial_global}
    assert types["org.example.a"] == {"a": 1} and "m.push_rules" in types  # push rules on an initial sync
    assert initial_rooms == {ROOM: [{"type": "m.tag", "content": {"tags": {"u.x": {}}}}]}
    since_first = await handler.get_sync_account_data(alice.user_id, start + 1, now, initial=False)
    assert since_first == ([], {ROOM: [{"type": "m.tag", "content": {"tags": {"u.x": {}}}}]})
    assert await handler.get_sync_account_data(alice.user_id, now, now, initial=False) == ([], {})
