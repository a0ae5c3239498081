"""Room aliases and the published room directory over real HTTP."""

from __future__ import annotations


import pytest_twisted

from tests.integration.harness import V3, Client, TestServer, create_room, q



async def put_alias(client: Client, alias: str, room_id: str) -> int:
    return (await client.put(f"{V3}/directory/room/{q(alias)}", {"room_id": room_id})).code


@pytest_twisted.ensureDeferred
async def test_alias_create_resolve_list_delete(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    assert await put_alias(alice, "#team:test.local", room_id) == 200
    resolved = await server.client().get(f"{V3}/directory/room/{q('#team:test.local')}")
    assert resolved.json == {"room_id": room_id, "servers": ["test.local"]}
    taken = await alice.put(f"{V3}/directory/room/{q('#team:test.local')}", {"room_id": room_id})
    assert (taken.code, taken.json["errcode"]) == (409, "M_UNKNOWN")
    assert await put_alias(alice, "#team2:test.local", room_id) == 200
    listed = await alice.get(f"{V3}/rooms/{room_id}/aliases")
    assert listed.json == {"aliases": ["#team2:test.local", "#team:test.local"]}
    # Joining by the alias works.
    bob = await server.register("bob")
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.join_rules/", {"join_rule": "public"})
    assert (await bob.post(f"{V3}/join/{q('#team:test.local')}", {})).json == {"room_id": room_id}
    deleted = await alice.delete(f"{V3}/directory/room/{q('#team:test.local')}")
    assert deleted.code == 200
    gone = await alice.get(f"{V3}/directory/room/{q('#team:test.local')}")
    assert (gone.code, gone.json["errcode"]) == (404, "M_NOT_FOUND")
    again = await alice.delete(f"{V3}/directory/room/{q('#team:test.local')}")
    assert (again.code, again.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await alice.get(f"{V3}/rooms/{room_id}/aliases")).json == {"aliases": ["#team2:test.local"]}


@pytest_twisted.ensureDeferred
async def test_alias_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice)
    for bad in ("#other:elsewhere.example", "team:test.local", "#:test.local", "#no server", "#a b:test.local"):
        resp = await alice.put(f"{V3}/directory/room/{q(bad)}", {"room_id": room_id})
        assert (resp.code, resp.json["errcode"]) == (400, "M_INVALID_PARAM"), bad
    unknown_room = await alice.put(f"{V3}/directory/room/{q('#x:test.local')}", {"room_id": "!nope:test.local"})
    assert (unknown_room.code, unknown_room.json["errcode"]) == (404, "M_NOT_FOUND")
    not_member = await bob.put(f"{V3}/directory/room/{q('#x:test.local')}", {"room_id": room_id})
    assert (not_member.code, not_member.json["errcode"]) == (403, "M_FORBIDDEN")
    missing = await alice.put(f"{V3}/directory/room/{q('#x:test.local')}", {})
    assert (missing.code, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    no_token = await server.client().put(f"{V3}/directory/room/{q('#x:test.local')}", {"room_id": room_id})
    assert no_token.code == 401
    remote = await alice.get(f"{V3}/directory/room/{q('#x:elsewhere.example')}")
    assert (remote.code, remote.json["errcode"]) == (404, "M_NOT_FOUND")
    invalid = await alice.get(f"{V3}/directory/room/{q('nohash')}")
    assert (invalid.code, invalid.json["errcode"]) == (400, "M_INVALID_PARAM")
    # Nothing was created by the refused requests.
    assert (await alice.get(f"{V3}/rooms/{room_id}/aliases")).json == {"aliases": []}
    # Outsiders may not list a private room's aliases.
    outsider = await bob.get(f"{V3}/rooms/{room_id}/aliases")
    assert (outsider.code, outsider.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest_twisted.ensureDeferred
async def test_aliases_of_world_readable_room_are_listed_to_anyone(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, room_alias_name="open")
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.history_visibility/",
                    {"history_visibility": "world_readable"})
    assert (await bob.get(f"{V3}/rooms/{room_id}/aliases")).json == {"aliases": ["#open:test.local"]}


@pytest_twisted.ensureDeferred
async def test_alias_delete_permissions_and_canonical_alias(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    room_id = await create_room(alice, preset="public_chat", room_alias_name="main")
    for user in (bob, carol):
        assert (await user.post(f"{V3}/join/{room_id}", {})).code == 200
    # Bob (no power) makes an alias: he may delete his own, but not alice's.
    assert await put_alias(bob, "#bobs:test.local", room_id) == 200
    assert await put_alias(carol, "#carols:test.local", room_id) == 200
    refused = await bob.delete(f"{V3}/directory/room/{q('#main:test.local')}")
    assert (refused.code, refused.json["errcode"]) == (403, "M_FORBIDDEN")
    assert (await bob.delete(f"{V3}/directory/room/{q('#bobs:test.local')}")).code == 200
    # Alice (power to set the canonical alias) may delete carol's alias.
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias/",
                    {"alias": "#main:test.local", "alt_aliases": ["#carols:test.local"]})
    assert (await alice.delete(f"{V3}/directory/room/{q('#carols:test.local')}")).code == 200
    canonical = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias/")
    assert canonical.json == {"alias": "#main:test.local", "alt_aliases": []}
    # Deleting the canonical alias removes it from the state event.
    assert (await alice.delete(f"{V3}/directory/room/{q('#main:test.local')}")).code == 200
    canonical = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias/")
    assert canonical.json == {"alt_aliases": []}
    # A server admin may delete any alias, even outside the room.
    assert await put_alias(bob, "#bobs2:test.local", room_id) == 200
    admin = await server.register_admin("root")
    assert (await admin.delete(f"{V3}/directory/room/{q('#bobs2:test.local')}")).code == 200
    assert (await alice.get(f"{V3}/rooms/{room_id}/aliases")).json == {"aliases": []}


@pytest_twisted.ensureDeferred
async def test_directory_visibility(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    path = f"{V3}/directory/list/room/{room_id}"
    assert (await server.client().get(path)).json == {"visibility": "private"}
    assert (await alice.put(path, {"visibility": "public"})).code == 200
    assert (await server.client().get(path)).json == {"visibility": "public"}
    await bob.post(f"{V3}/join/{room_id}", {})
    refused = await bob.put(path, {"visibility": "private"})
    assert (refused.code, refused.json["errcode"]) == (403, "M_FORBIDDEN")
    bad = await alice.put(path, {"visibility": "secret"})
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_PARAM")
    unknown = await alice.get(f"{V3}/directory/list/room/{q('!nope:test.local')}")
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    unknown_put = await alice.put(f"{V3}/directory/list/room/{q('!nope:test.local')}", {"visibility": "public"})
    assert (unknown_put.code, unknown_put.json["errcode"]) == (404, "M_NOT_FOUND")
    admin = await server.register_admin("root")
    assert (await admin.put(path, {"visibility": "private"})).code == 200
    assert (await server.client().get(path)).json == {"visibility": "private"}
    assert (await alice.put(path, {})).code == 200  # visibility defaults to public
    assert (await server.client().get(path)).json == {"visibility": "public"}


@pytest_twisted.ensureDeferred
async def test_public_rooms_list_entries(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    general = await create_room(alice, visibility="public", preset="public_chat", name="General",
                                topic="Everything", room_alias_name="general")
    await alice.put(f"{V3}/rooms/{general}/state/m.room.avatar/", {"url": "mxc://test.local/abc"})
    await alice.put(f"{V3}/rooms/{general}/state/m.room.history_visibility/",
                    {"history_visibility": "world_readable"})
    await bob.post(f"{V3}/join/{general}", {})
    space = await create_room(alice, visibility="public", name="Our space", creation_content={"type": "m.space"},
                              initial_state=[{"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}])
    await create_room(alice, name="Secret")  # private: never listed

    resp = await alice.get(f"{V3}/publicRooms")
    assert resp.code == 200
    assert resp.json["total_room_count_estimate"] == 2
    assert "next_batch" not in resp.json and "prev_batch" not in resp.json
    first, second = resp.json["chunk"]
    assert first == {
        "room_id": general, "name": "General", "topic": "Everything", "avatar_url": "mxc://test.local/abc",
        "canonical_alias": "#general:test.local", "num_joined_members": 2, "world_readable": True,
        "guest_can_join": False, "join_rule": "public",
    }
    assert second == {
        "room_id": space, "name": "Our space", "num_joined_members": 1, "world_readable": False,
        "guest_can_join": True, "join_rule": "public", "room_type": "m.space",
    }
    assert (await server.client().get(f"{V3}/publicRooms")).code == 401


@pytest_twisted.ensureDeferred
async def test_public_rooms_pagination_and_filters(server: TestServer) -> None:
    alice = await server.register("alice")
    rooms = []
    for i in range(5):
        rooms.append(await create_room(alice, visibility="public", preset="public_chat", name=f"Room {i}",
                                       topic="cats" if i % 2 else "dogs"))
    space = await create_room(alice, visibility="public", name="Space", creation_content={"type": "m.space"})

    seen: list[str] = []
    since = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&since={since}" if since else "")
        page = (await alice.get(f"{V3}/publicRooms{query}")).json
        assert page["total_room_count_estimate"] == 6
        assert len(page["chunk"]) <= 2
        if pages:
            assert "prev_batch" in page
        seen += [r["room_id"] for r in page["chunk"]]
        pages += 1
        since = page.get("next_batch")
        if since is None:
            break
    assert pages == 3 and sorted(seen) == sorted(rooms + [space])
    # prev_batch leads back to the previous page.
    second = (await alice.get(f"{V3}/publicRooms?limit=2&since=p2")).json
    back = (await alice.get(f"{V3}/publicRooms?limit=2&since={second['prev_batch']}")).json
    assert [r["room_id"] for r in back["chunk"]] == seen[:2]

    cats = (await alice.post(f"{V3}/publicRooms", {"filter": {"generic_search_term": "CAT"}})).json
    assert sorted(r["room_id"] for r in cats["chunk"]) == sorted([rooms[1], rooms[3]])
    assert cats["total_room_count_estimate"] == 2
    by_name = (await alice.post(f"{V3}/publicRooms", {"filter": {"generic_search_term": "room 4"}})).json
    assert [r["room_id"] for r in by_name["chunk"]] == [rooms[4]]
    spaces = (await alice.post(f"{V3}/publicRooms", {"filter": {"room_types": ["m.space"]}})).json
    assert [r["room_id"] for r in spaces["chunk"]] == [space]
    plain = (await alice.post(f"{V3}/publicRooms", {"filter": {"room_types": [None]}})).json
    assert sorted(r["room_id"] for r in plain["chunk"]) == sorted(rooms)
    dogs_paged = (await alice.post(f"{V3}/publicRooms", {"limit": 2, "filter": {"generic_search_term": "dogs"}})).json
    assert len(dogs_paged["chunk"]) == 2 and dogs_paged["total_room_count_estimate"] == 3
    rest = (await alice.post(f"{V3}/publicRooms", {"limit": 2, "since": dogs_paged["next_batch"],
                                                   "filter": {"generic_search_term": "dogs"}})).json
    assert "next_batch" not in rest
    assert sorted(r["room_id"] for r in dogs_paged["chunk"] + rest["chunk"]) == sorted([rooms[0], rooms[2], rooms[4]])
    # Search by canonical alias.
    await alice.put(f"{V3}/directory/room/{q('#kennel:test.local')}", {"room_id": rooms[0]})
    await alice.put(f"{V3}/rooms/{rooms[0]}/state/m.room.canonical_alias/", {"alias": "#kennel:test.local"})
    kennel = (await alice.post(f"{V3}/publicRooms", {"filter": {"generic_search_term": "kennel"}})).json
    assert [r["room_id"] for r in kennel["chunk"]] == [rooms[0]]


@pytest_twisted.ensureDeferred
async def test_public_rooms_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bad_since = await alice.get(f"{V3}/publicRooms?since=garbage")
    assert (bad_since.code, bad_since.json["errcode"]) == (400, "M_INVALID_PARAM")
    bad_limit = await alice.get(f"{V3}/publicRooms?limit=-1")
    assert (bad_limit.code, bad_limit.json["errcode"]) == (400, "M_INVALID_PARAM")
    bad_types = await alice.post(f"{V3}/publicRooms", {"filter": {"room_types": [1]}})
    assert (bad_types.code, bad_types.json["errcode"]) == (400, "M_BAD_JSON")
    bad_term = await alice.post(f"{V3}/publicRooms", {"filter": {"generic_search_term": 5}})
    assert (bad_term.code, bad_term.json["errcode"]) == (400, "M_BAD_JSON")
    remote = await alice.get(f"{V3}/publicRooms?server=elsewhere.example")
    assert (remote.code, remote.json["errcode"]) == (404, "M_NOT_FOUND")
    invalid_server = await alice.post(f"{V3}/publicRooms?server={q('not a server')}", {})
    assert (invalid_server.code, invalid_server.json["errcode"]) == (400, "M_INVALID_PARAM")
    ours = await alice.get(f"{V3}/publicRooms?server=test.local")
    assert ours.code == 200 and ours.json["chunk"] == []


def transaction_count(server: TestServer) -> float:
    """Database transactions run so far (from the server's own metrics)."""
    return sum(sample.value for metric in server.hs.metrics_registry.collect()
               if metric.name == "piman_db_transaction_seconds"
               for sample in metric.samples if sample.name.endswith("_count"))


@pytest_twisted.ensureDeferred
async def test_public_rooms_reads_state_in_bounded_queries(server: TestServer) -> None:
    """The listed rooms' state is read in one batch: the query count doesn't grow with the number of rooms."""
    alice = await server.register("alice")
    rooms = [await create_room(alice, visibility="public", name="one")]

    async def queries_for_listing() -> float:
        await server.hs.clock.sleep(0.2)  # let the work that follows each new event settle first
        for room_id in rooms:  # cold cache: every room's current state comes from the database
            server.hs.store.state._current.pop(room_id)
        before = transaction_count(server)
        filtered = await alice.post(f"{V3}/publicRooms", {"filter": {"generic_search_term": "o"}})
        assert len(filtered.json["chunk"]) == len(rooms)
        assert len((await alice.get(f"{V3}/publicRooms")).json["chunk"]) == len(rooms)
        return transaction_count(server) - before

    few = await queries_for_listing()
    for i in range(6):
        rooms.append(await create_room(alice, visibility="public", name=f"room {i}"))
    assert await queries_for_listing() == few
