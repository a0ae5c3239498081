"""Memberships kept by the event writer: rooms of a user, members of a room, changes for /sync."""

from __future__ import annotations

import pytest_twisted

from storage.datastore import DataStore
from storage.stores.memberships import MemberProfile, MembershipChange, RoomMembership
from tests.storage.room_builder import ALICE, BOB, CAROL, SERVER, RoomBuilder

DAVE = f"@dave:{SERVER}"


@pytest_twisted.ensureDeferred
async def test_memberships_follow_member_events(datastore: DataStore) -> None:
    events = datastore.events
    room = RoomBuilder(datastore)
    await room.create()
    start = datastore.events_stream.get_current_token()
    alice_join = await room.member(ALICE, "join", displayname="Alice", avatar_url="mxc://example.org/a")
    bob_invite = await room.member(BOB, "invite", sender=ALICE)
    await room.member(CAROL, "join")
    assert await events.get_users_in_room(room.room_id) == [ALICE, CAROL]
    assert await events.get_local_users_in_room(room.room_id, SERVER) == [ALICE]
    assert await events.get_rooms_for_user(BOB) == []
    bob_rooms = await events.get_rooms_for_user(BOB, ("invite",))
    assert bob_rooms == [
        RoomMembership(room.room_id, "invite", bob_invite.event_id,
                       (await events.get_event(bob_invite.event_id)).stream_ordering)  # type: ignore[union-attr]
    ]
    room_id, membership, event_id, _ = bob_rooms[0]  # unpacks like a tuple
    assert (room_id, membership, event_id) == (room.room_id, "invite", bob_invite.event_id)

    bob_join = await room.member(BOB, "join")
    await room.member(CAROL, "leave")
    await room.member(DAVE, "ban", sender=ALICE)
    assert await events.get_users_in_room(room.room_id) == [ALICE, BOB]
    assert (await events.get_membership(room.room_id, CAROL)).membership == "leave"  # type: ignore[union-attr]
    assert await events.get_membership(room.room_id, "@nobody:x") is None
    assert await events.get_member_counts([room.room_id, "!empty:x"]) == {
        room.room_id: {"join": 2, "leave": 1, "ban": 1},
        "!empty:x": {},
    }
    assert set(await events.get_members_by_membership(room.room_id, ("leave", "ban"))) == {CAROL, DAVE}
    assert await events.get_joined_members_with_profiles(room.room_id) == {
        ALICE: MemberProfile("Alice", "mxc://example.org/a"),
        BOB: MemberProfile(None, None),
    }

    changes = await events.get_membership_changes(BOB, start, datastore.events_stream.get_current_token())
    assert [(c.membership, c.event_id) for c in changes] == [
        ("invite", bob_invite.event_id),
        ("join", bob_join.event_id),
    ]
    assert isinstance(changes[0], MembershipChange)
    later = await events.get_membership_changes(BOB, changes[0].stream_ordering, changes[1].stream_ordering)
    assert [c.event_id for c in later] == [bob_join.event_id]
    assert alice_join.event_id not in [c.event_id for c in changes]

    other = RoomBuilder(datastore)
    await other.create(BOB)
    await other.member(BOB, "join")
    assert await events.get_rooms_for_users([ALICE, BOB, DAVE]) == {
        ALICE: {room.room_id},
        BOB: {room.room_id, other.room_id},
        DAVE: set(),
    }
    assert [m.room_id for m in await events.get_rooms_for_user(BOB, None)] == sorted(
        [room.room_id, other.room_id]
    )


@pytest_twisted.ensureDeferred
async def test_heroes_prefer_joined_and_invited_members_in_arrival_order(datastore: DataStore) -> None:
    events = datastore.events
    busy = RoomBuilder(datastore)
    await busy.create()
    for user in (ALICE, CAROL, BOB, DAVE):
        await busy.member(user, "join")
    await busy.member("@eve:example.org", "invite", sender=ALICE)
    await busy.member(CAROL, "leave")
    deserted = RoomBuilder(datastore)
    await deserted.create()
    for user in (ALICE, BOB, CAROL):
        await deserted.member(user, "join")
    await deserted.member(CAROL, "leave")
    await deserted.member(BOB, "leave")

    heroes = await events.get_heroes([busy.room_id, deserted.room_id, "!none:x"], ALICE, limit=3)
    assert heroes == {
        busy.room_id: [BOB, DAVE, "@eve:example.org"],
        deserted.room_id: [CAROL, BOB],
        "!none:x": [],
    }


@pytest_twisted.ensureDeferred
async def test_out_of_band_invite_is_a_membership_without_room_state(datastore: DataStore) -> None:
    # An invite from another server's room: we hold only the invite event, as an outlier.
    remote = RoomBuilder(datastore)
    remote.room_id = "!remote:remote.example"
    invite = remote.build("m.room.member", {"membership": "invite"}, state_key=ALICE, sender=CAROL)
    start = datastore.events_stream.get_current_token()
    await datastore.events.persist_event(
        invite, prev_state_group=None, outlier=True, out_of_band_membership=True
    )
    rooms = await datastore.events.get_rooms_for_user(ALICE, ("invite",))
    assert [(m.room_id, m.event_id) for m in rooms] == [(remote.room_id, invite.event_id)]
    changes = await datastore.events.get_membership_changes(
        ALICE, start, datastore.events_stream.get_current_token()
    )
    assert [c.event_id for c in changes] == [invite.event_id]
    assert await datastore.state.get_current_state(remote.room_id) == {}
    assert await datastore.events.get_forward_extremities(remote.room_id) == []


@pytest_twisted.ensureDeferred
async def test_memberships_unchanged_since_is_proved_from_memory_or_not_at_all(datastore: DataStore) -> None:
    events = datastore.events
    before_memory = datastore.events_stream.get_current_token()
    room = RoomBuilder(datastore)
    await room.create()
    other = RoomBuilder(datastore)
    await other.create()
    # Positions from before this process started writing: memory can't tell.
    assert not events.memberships_unchanged_since(BOB, [room.room_id], before_memory - 1)
    await room.member(ALICE, "join")
    since = datastore.events_stream.get_current_token()
    assert events.memberships_unchanged_since(BOB, [room.room_id, other.room_id], since)
    await room.message("hello")  # not a membership change
    assert events.memberships_unchanged_since(BOB, [room.room_id], since)
    await room.member(CAROL, "join")  # someone joins one of bob's rooms
    assert not events.memberships_unchanged_since(BOB, [room.room_id], since)
    assert events.memberships_unchanged_since(BOB, [other.room_id], since)
    since = datastore.events_stream.get_current_token()
    await other.member(BOB, "join")  # bob's own membership, in a room he doesn't list
    assert not events.memberships_unchanged_since(BOB, [room.room_id], since)
