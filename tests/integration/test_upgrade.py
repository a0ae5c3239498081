"""Room upgrades over real HTTP: tombstone, predecessor, copied state, moved aliases, power levels."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.integration.harness import V3, Client, TestServer, create_room, q


async def upgrade(client: Client, room_id: str, **body: Any) -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/upgrade", body)
    assert resp.code == 200, resp
    return resp.json["replacement_room"]


async def state_of(client: Client, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    resp = await client.get(f"{V3}/rooms/{room_id}/state")
    assert resp.code == 200, resp
    return {(e["type"], e["state_key"]): e for e in resp.json}


@pytest_twisted.ensureDeferred
async def test_upgrade_v10_room_to_v12(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    mallory = await server.register("mallory")
    old = await create_room(alice, room_version="10", preset="public_chat", visibility="public", name="Town",
                            topic="Square", room_alias_name="town", initial_state=[
                                {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                                {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
                            ])
    await alice.put(f"{V3}/directory/room/{q('#square:test.local')}", {"room_id": old})
    await alice.put(f"{V3}/rooms/{old}/state/m.room.canonical_alias/",
                    {"alias": "#town:test.local", "alt_aliases": ["#square:test.local"]})
    await alice.put(f"{V3}/rooms/{old}/state/m.room.avatar/", {"url": "mxc://test.local/pic"})
    await bob.post(f"{V3}/join/{old}", {})
    await mallory.post(f"{V3}/join/{old}", {})
    levels = (await alice.get(f"{V3}/rooms/{old}/state/m.room.power_levels/")).json
    levels["users"][bob.user_id] = 40
    await alice.put(f"{V3}/rooms/{old}/state/m.room.power_levels/", levels)
    await alice.post(f"{V3}/rooms/{old}/ban", {"user_id": mallory.user_id, "reason": "spam"})

    # Bob (40) may not upgrade: tombstones need 100 here.
    refused = await bob.post(f"{V3}/rooms/{old}/upgrade", {"new_version": "12"})
    assert (refused.code, refused.json["errcode"]) == (403, "M_FORBIDDEN")

    new = await upgrade(alice, old, new_version="12")
    assert new != old and ":" not in new
    new_state = await state_of(alice, new)
    create = new_state[("m.room.create", "")]
    assert create["sender"] == alice.user_id
    assert create["content"] == {"room_version": "12", "predecessor": {"room_id": old}}
    for event_type, content in [
        ("m.room.name", {"name": "Town"}), ("m.room.topic", {"topic": "Square"}),
        ("m.room.avatar", {"url": "mxc://test.local/pic"}), ("m.room.join_rules", {"join_rule": "public"}),
        ("m.room.history_visibility", {"history_visibility": "joined"}),
        ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        ("m.room.canonical_alias", {"alias": "#town:test.local", "alt_aliases": ["#square:test.local"]}),
    ]:
        assert new_state[(event_type, "")]["content"] == content, event_type
    new_levels = new_state[("m.room.power_levels", "")]["content"]
    assert new_levels["users"] == {bob.user_id: 40}  # alice is the v12 creator: never listed
    assert new_levels["events"] == levels["events"]
    assert new_state[("m.room.member", mallory.user_id)]["content"]["membership"] == "ban"
    assert new_state[("m.room.member", mallory.user_id)]["content"]["reason"] == "spam"
    # Memberships other than the upgrader's and bans are not carried over.
    assert ("m.room.member", bob.user_id) not in new_state
    assert new_state[("m.room.member", alice.user_id)]["content"]["membership"] == "join"

    # Aliases and the directory listing moved.
    for alias in ("#town:test.local", "#square:test.local"):
        assert (await alice.get(f"{V3}/directory/room/{q(alias)}")).json["room_id"] == new
    assert (await alice.get(f"{V3}/rooms/{old}/aliases")).json == {"aliases": []}
    assert (await alice.get(f"{V3}/rooms/{new}/aliases")).json == {
        "aliases": ["#square:test.local", "#town:test.local"]}
    assert (await alice.get(f"{V3}/directory/list/room/{old}")).json == {"visibility": "private"}
    assert (await alice.get(f"{V3}/directory/list/room/{new}")).json == {"visibility": "public"}
    listed = (await alice.get(f"{V3}/publicRooms")).json["chunk"]
    assert [r["room_id"] for r in listed] == [new]

    # The old room: tombstone, no canonical alias, members can no longer talk or invite.
    old_state = await state_of(alice, old)
    tombstone = old_state[("m.room.tombstone", "")]
    assert tombstone["sender"] == alice.user_id
    assert tombstone["content"] == {"body": "This room has been replaced", "replacement_room": new}
    assert old_state[("m.room.canonical_alias", "")]["content"] == {}
    old_levels = old_state[("m.room.power_levels", "")]["content"]
    assert (old_levels["events_default"], old_levels["invite"]) == (50, 50)
    muted = await bob.put(f"{V3}/rooms/{old}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"})
    assert (muted.code, muted.json["errcode"]) == (403, "M_FORBIDDEN")

    # Bob follows the tombstone and joins the new room.
    assert (await bob.post(f"{V3}/join/{q('#town:test.local')}", {})).json == {"room_id": new}
    # Mallory stays banned.
    banned = await mallory.post(f"{V3}/join/{new}", {})
    assert (banned.code, banned.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest_twisted.ensureDeferred
async def test_upgrade_v12_moves_creators(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    old = await create_room(alice, preset="public_chat", creation_content={"type": "m.space"})
    for user in (bob, carol):
        await user.post(f"{V3}/join/{old}", {})
    await alice.put(f"{V3}/rooms/{old}/state/m.space.child/{q('!child:test.local')}", {"via": ["test.local"]})
    levels = (await alice.get(f"{V3}/rooms/{old}/state/m.room.power_levels/")).json
    assert levels["events"]["m.room.tombstone"] == 150
    levels["users"] = {bob.user_id: 150, carol.user_id: 20}
    await alice.put(f"{V3}/rooms/{old}/state/m.room.power_levels/", levels)

    # Bob (150) upgrades and makes carol a co-creator: alice is no longer a creator but keeps top power.
    new = await upgrade(bob, old, new_version="12", additional_creators=[carol.user_id])
    new_state = await state_of(bob, new)
    create = new_state[("m.room.create", "")]
    assert create["sender"] == bob.user_id
    assert create["content"] == {"room_version": "12", "predecessor": {"room_id": old}, "type": "m.space",
                                 "additional_creators": [carol.user_id]}
    assert new_state[("m.room.power_levels", "")]["content"]["users"] == {alice.user_id: 150}
    assert new_state[("m.space.child", "!child:test.local")]["content"] == {"via": ["test.local"]}
    # Carol, a creator, may do what needs unlimited power there (e.g. upgrade it again).
    await carol.post(f"{V3}/join/{new}", {})
    again = await upgrade(carol, new, new_version="12")
    again_levels = (await carol.get(f"{V3}/rooms/{again}/state/m.room.power_levels/")).json
    assert again_levels["users"] == {alice.user_id: 150, bob.user_id: 150}


@pytest_twisted.ensureDeferred
async def test_upgrade_to_older_version_keeps_predecessor_event_and_creator_power(server: TestServer) -> None:
    alice = await server.register("alice")
    old = await create_room(alice, preset="private_chat", name="Old")
    await alice.put(f"{V3}/rooms/{old}/state/m.room.join_rules/", {"join_rule": "knock"})
    last = await alice.put(f"{V3}/rooms/{old}/send/m.room.message/t1", {"msgtype": "m.text", "body": "last"})
    new = await upgrade(alice, old, new_version="6")
    assert new.endswith(":test.local")
    new_state = await state_of(alice, new)
    create = new_state[("m.room.create", "")]["content"]
    assert create["creator"] == alice.user_id and create["room_version"] == "6"
    assert create["predecessor"]["room_id"] == old
    assert create["predecessor"]["event_id"] == last.json["event_id"]
    # Alice had unlimited power as the v12 creator: she keeps every level the room uses.
    assert new_state[("m.room.power_levels", "")]["content"]["users"] == {alice.user_id: 150}
    assert new_state[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}  # v6 has no knocking
    assert new_state[("m.room.name", "")]["content"] == {"name": "Old"}


@pytest_twisted.ensureDeferred
async def test_upgrade_between_versions_without_creator_power_keeps_levels(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    old = await create_room(alice, room_version="10", preset="public_chat")
    await bob.post(f"{V3}/join/{old}", {})
    levels = (await alice.get(f"{V3}/rooms/{old}/state/m.room.power_levels/")).json
    levels["users"][bob.user_id] = 100
    levels["events"]["m.room.topic"] = 75
    await alice.put(f"{V3}/rooms/{old}/state/m.room.power_levels/", levels)
    new = await upgrade(bob, old, new_version="11")
    new_levels = (await bob.get(f"{V3}/rooms/{new}/state/m.room.power_levels/")).json
    assert new_levels["users"] == {alice.user_id: 100, bob.user_id: 100}
    assert new_levels["events"]["m.room.topic"] == 75
    create = (await bob.get(f"{V3}/rooms/{new}/state/m.room.create/")).json
    assert "creator" not in create and create["room_version"] == "11"
    assert create["predecessor"]["room_id"] == old and create["predecessor"]["event_id"].startswith("$")


@pytest_twisted.ensureDeferred
async def test_upgrade_errors_leave_nothing_behind(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat")
    path = f"{V3}/rooms/{room_id}/upgrade"
    bad_version = await alice.post(path, {"new_version": "99"})
    assert (bad_version.code, bad_version.json["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    missing = await alice.post(path, {})
    assert (missing.code, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    wrong_type = await alice.post(path, {"new_version": 12})
    assert (wrong_type.code, wrong_type.json["errcode"]) == (400, "M_BAD_JSON")
    bad_creator = await alice.post(path, {"new_version": "12", "additional_creators": ["carol"]})
    assert (bad_creator.code, bad_creator.json["errcode"]) == (400, "M_INVALID_PARAM")
    outsider = await bob.post(path, {"new_version": "12"})
    assert (outsider.code, outsider.json["errcode"]) == (403, "M_FORBIDDEN")
    await bob.post(f"{V3}/join/{room_id}", {})
    no_power = await bob.post(path, {"new_version": "12"})
    assert (no_power.code, no_power.json["errcode"]) == (403, "M_FORBIDDEN")
    unknown = await alice.post(f"{V3}/rooms/{q('!nope:test.local')}/upgrade", {"new_version": "12"})
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await server.client().post(path, {"new_version": "12"})).code == 401
    assert (await alice.get(f"{V3}/joined_rooms")).json == {"joined_rooms": [room_id]}
    assert ("m.room.tombstone", "") not in await state_of(alice, room_id)
