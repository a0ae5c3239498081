"""RoomStore and AliasStore on both engines."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer

from storage.datastore import DataStore
from storage.stores.rooms import RoomInfo
from tests.storage.room_builder import ALICE, BOB, CAROL, RoomBuilder


@pytest_twisted.ensureDeferred
async def test_store_and_get_room(datastore: DataStore) -> None:
    rooms = datastore.rooms
    assert await rooms.get_room("!a:example.org") is None
    assert await rooms.store_room("!a:example.org", "12", ALICE, False, 1234)
    assert not await rooms.store_room("!a:example.org", "10", BOB, True, 5678)
    assert await rooms.get_room("!a:example.org") == RoomInfo("!a:example.org", "12", ALICE, False, 1234)
    assert await rooms.set_room_is_public("!a:example.org", True)
    assert not await rooms.set_room_is_public("!missing:example.org", True)
    room = await rooms.get_room("!a:example.org")
    assert room is not None and room.is_public
    await rooms.store_room("!b:example.org", "10", BOB, False, 1)
    assert await rooms.get_room_versions(["!a:example.org", "!b:example.org", "!c:x"]) == {
        "!a:example.org": "12",
        "!b:example.org": "10",
    }


@pytest_twisted.ensureDeferred
async def test_public_rooms_most_members_first(datastore: DataStore) -> None:
    builders = []
    for members in ([ALICE], [ALICE, BOB, CAROL], [], [ALICE, BOB]):
        room = RoomBuilder(datastore)
        await room.create(is_public=True)
        for user in members:
            await room.member(user, "join")
        builders.append(room)
    private = RoomBuilder(datastore)
    await private.create(is_public=False)
    await private.member(ALICE, "join")
    ids = [b.room_id for b in builders]

    ordered = [ids[1], ids[3], ids[0], ids[2]]
    assert await datastore.rooms.get_public_room_ids(10) == (ordered, 4)
    assert await datastore.rooms.get_public_room_ids(2) == (ordered[:2], 4)
    assert await datastore.rooms.get_public_room_ids(2, 2) == (ordered[2:], 4)
    await datastore.rooms.set_room_is_public(ids[1], False)
    assert await datastore.rooms.get_public_room_ids(10) == ([ids[3], ids[0], ids[2]], 3)


@pytest_twisted.ensureDeferred
async def test_aliases(datastore: DataStore) -> None:
    aliases = datastore.aliases
    assert await aliases.create_alias("#ops:example.org", "!a:example.org", ALICE)
    assert not await aliases.create_alias("#ops:example.org", "!b:example.org", BOB)
    assert await aliases.create_alias("#ops-team:example.org", "!a:example.org", BOB)
    assert await aliases.get_alias("#ops:example.org") == "!a:example.org"
    assert await aliases.get_alias_creator("#ops-team:example.org") == BOB
    assert await aliases.get_aliases_for_room("!a:example.org") == ["#ops-team:example.org", "#ops:example.org"]
    assert await aliases.delete_alias("#ops:example.org") == "!a:example.org"
    assert await aliases.delete_alias("#ops:example.org") is None
    assert await aliases.get_alias("#ops:example.org") is None
    assert await aliases.get_aliases_for_room("!a:example.org") == ["#ops-team:example.org"]


@pytest_twisted.ensureDeferred
async def test_concurrent_alias_claims_one_wins(datastore: DataStore) -> None:
    results = await defer.gatherResults(
        [
            defer.ensureDeferred(datastore.aliases.create_alias("#race:example.org", f"!r{i}:example.org", ALICE))
            for i in range(8)
        ]
    )
    assert sorted(results) == [False] * 7 + [True]
    winner = await datastore.aliases.get_alias("#race:example.org")
    assert winner == f"!r{results.index(True)}:example.org"
