"""m.room.member auth rules for every room version: join (every join rule), invite, leave/kick, ban, knock."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.auth import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, DAVE, VERSIONS, Room, standard_room, vid

MEMBER = "m.room.member"


def ok(room: Room, event: Event) -> None:
    room.check(event)


def denied(room: Room, event: Event, match: str) -> None:
    with pytest.raises(AuthError, match=match):
        room.check(event)


def join(room: Room, user: str, **content: Any) -> Event:
    return room.send(user, MEMBER, {"membership": "join", **content}, state_key=user)


def versions(predicate: Any) -> list[RoomVersion]:
    return [v for v in VERSIONS if predicate(v)]


# --- join --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_creator_first_join_needs_create_as_only_prev_event(version: RoomVersion) -> None:
    room = Room(version)
    ok(room, room.member(ALICE, ALICE, "join"))
    not_first = room.build(ALICE, MEMBER, {"membership": "join"}, state_key=ALICE, prev=[])
    denied(room, not_first, "needs an invite")
    denied(room, room.member(BOB, BOB, "join"), "needs an invite")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_creator_is_content_creator_until_v10_then_sender(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": CAROL})
    carol_join, alice_join = room.member(CAROL, CAROL, "join"), room.member(ALICE, ALICE, "join")
    if version.implicit_room_creator:
        ok(room, alice_join)
        denied(room, carol_join, "needs an invite")
    else:
        ok(room, carol_join)
        denied(room, alice_join, "needs an invite")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_join_on_behalf_of_another_user_is_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    denied(room, room.member(ALICE, BOB, "join"), "on behalf of")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_public_room_join(version: RoomVersion) -> None:
    room = standard_room(version, "public")
    ok(room, room.member(BOB, BOB, "join"))
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "join"), "banned")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("rule", ["invite", "knock"])
def test_invite_and_knock_rooms_need_invite(version: RoomVersion, rule: str) -> None:
    room = standard_room(version, rule)
    supported = rule == "invite" or version.knock_join_rule
    denied(room, room.member(BOB, BOB, "join"), "needs an invite" if supported else "can't join")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    if supported:
        join(room, BOB)
        ok(room, room.member(BOB, BOB, "join", displayname="Bob"))  # already joined: a profile change
    else:
        denied(room, room.member(BOB, BOB, "join"), "can't join this room")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_invited_but_banned_user_cannot_join(version: RoomVersion) -> None:
    room = standard_room(version, "invite")
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "join"), "banned")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("rule", ["private", "secret", None])
def test_other_join_rules_reject_joins(version: RoomVersion, rule: Any) -> None:
    room = standard_room(version, rule)
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "join"), "can't join this room")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_missing_join_rules_act_as_invite(version: RoomVersion) -> None:
    room = Room(version)
    join(room, ALICE)
    denied(room, room.member(BOB, BOB, "join"), "needs an invite")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    ok(room, room.member(BOB, BOB, "join"))


RESTRICTED = ["restricted", "knock_restricted"]


def restricted_supported(version: RoomVersion, rule: str) -> bool:
    return version.knock_restricted_join_rule if rule == "knock_restricted" else version.restricted_join_rule


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("rule", RESTRICTED)
def test_restricted_join_via_authorising_member(version: RoomVersion, rule: str) -> None:
    room = standard_room(version, rule)
    authorised = room.build(
        BOB,
        MEMBER,
        {"membership": "join", "join_authorised_via_users_server": ALICE},
        state_key=BOB,
        also_signed_by=("a.test",),
    )
    if restricted_supported(version, rule):
        ok(room, authorised)
    else:
        denied(room, authorised, "can't join this room")


RESTRICTED_CASES = [(v, rule) for v in VERSIONS for rule in RESTRICTED if restricted_supported(v, rule)]


@pytest.mark.parametrize(
    "version, rule", RESTRICTED_CASES, ids=[f"{vid(v)}-{r}" for v, r in RESTRICTED_CASES]
)
def test_restricted_join_failures(version: RoomVersion, rule: str) -> None:
    room = standard_room(version, rule, power_levels={"invite": 50})
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=CAROL)
    join(room, CAROL)  # joined, but power 0 < invite 50

    def attempt(authoriser: Any, signers: tuple[str, ...] = ("a.test",)) -> Event:
        content = {"membership": "join", "join_authorised_via_users_server": authoriser}
        return room.build(BOB, MEMBER, content, state_key=BOB, also_signed_by=signers)

    denied(room, room.member(BOB, BOB, "join"), "needs an invite or a member who can invite")
    denied(room, attempt(CAROL), "inviting needs power 50, they have 0")
    denied(room, attempt("@zed:a.test"), "they are not in the room")
    denied(room, attempt(ALICE, signers=()), "has not signed it")
    denied(room, attempt("not a user"), "must be a user ID")
    ok(room, attempt(ALICE))


@pytest.mark.parametrize("version", versions(lambda v: v.restricted_join_rule), ids=vid)
def test_restricted_room_invited_or_joined_users_need_no_authoriser(version: RoomVersion) -> None:
    room = standard_room(version, "restricted")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    join(room, BOB)
    ok(room, room.member(BOB, BOB, "join", displayname="B"))


@pytest.mark.parametrize("version", versions(lambda v: v.restricted_join_rule), ids=vid)
def test_authoriser_signature_checked_on_any_membership(version: RoomVersion) -> None:
    room = standard_room(version)
    join(room, BOB)
    leave = room.build(
        BOB, MEMBER, {"membership": "leave", "join_authorised_via_users_server": ALICE}, state_key=BOB
    )
    denied(room, leave, "has not signed it")


def test_authoriser_is_ignored_before_v8() -> None:
    room = standard_room(KNOWN_ROOM_VERSIONS["7"])
    ok(room, room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE))


# --- malformed and unknown memberships ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_member_event_needs_state_key_and_membership(version: RoomVersion) -> None:
    room = standard_room(version)
    denied(room, room.build(BOB, MEMBER, {"membership": "join"}), "needs a state key")
    denied(room, room.build(BOB, MEMBER, {"displayname": "B"}, state_key=BOB), "'membership'")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("membership", ["dance", "", 7, None])
def test_unknown_membership_is_rejected(version: RoomVersion, membership: Any) -> None:
    room = standard_room(version)
    denied(room, room.member(ALICE, ALICE, membership), "Unknown membership")


# --- invite ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_invite_rules(version: RoomVersion) -> None:
    room = standard_room(version, "invite", power_levels={"invite": 50})
    ok(room, room.member(ALICE, BOB, "invite"))
    denied(room, room.member(CAROL, BOB, "invite"), "not in the room")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=CAROL)
    join(room, CAROL)
    denied(
        room, room.member(CAROL, BOB, "invite"), r"permission to invite users \(needs power 50, you have 0\)"
    )
    denied(room, room.member(ALICE, CAROL, "invite"), "already in the room")
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=DAVE)
    denied(room, room.member(ALICE, DAVE, "invite"), "banned from the room")
    room.send(ALICE, MEMBER, {"membership": "leave"}, state_key=CAROL)  # kicked: may be invited again
    ok(room, room.member(ALICE, CAROL, "invite"))
    ok(room, room.member(ALICE, BOB, "invite"))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_default_invite_level_is_zero(version: RoomVersion) -> None:
    room = standard_room(version, "public")
    join(room, BOB)
    ok(room, room.member(BOB, DAVE, "invite"))


# --- leave, kick, unban ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_leaving(version: RoomVersion) -> None:
    room = standard_room(version, "invite")
    denied(room, room.member(BOB, BOB, "leave"), "their membership is leave")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    ok(room, room.member(BOB, BOB, "leave"))  # rejecting the invite
    join(room, BOB)
    room.send(BOB, MEMBER, {"membership": "leave"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "leave"), "their membership is leave")
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "leave"), "their membership is ban")


@pytest.mark.parametrize("version", versions(lambda v: v.knock_join_rule), ids=vid)
def test_knocking_user_may_withdraw(version: RoomVersion) -> None:
    room = standard_room(version, "knock")
    room.send(BOB, MEMBER, {"membership": "knock"}, state_key=BOB)
    ok(room, room.member(BOB, BOB, "leave"))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_kicking(version: RoomVersion) -> None:
    room = standard_room(version, users={CAROL: 50, BOB: 10}, power_levels={"kick": 10})
    for user in (BOB, CAROL, DAVE):
        join(room, user)
    ok(room, room.member(ALICE, BOB, "leave"))
    ok(room, room.member(CAROL, BOB, "leave"))
    ok(room, room.member(BOB, DAVE, "leave"))  # 10 >= kick 10 and 0 < 10
    denied(room, room.member(DAVE, BOB, "leave"), r"permission to kick users \(needs power 10, you have 0\)")
    denied(room, room.member(BOB, CAROL, "leave"), "their power \\(50\\) is not below yours \\(10\\)")
    denied(room, room.member(CAROL, ALICE, "leave"), "is not below yours")
    room.send(CAROL, MEMBER, {"membership": "leave"}, state_key=CAROL)
    denied(room, room.member(CAROL, BOB, "leave"), "they are not in the room")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_kick_of_equal_level_is_rejected(version: RoomVersion) -> None:
    room = standard_room(version, users={BOB: 50, CAROL: 50})
    join(room, BOB)
    join(room, CAROL)
    denied(room, room.member(BOB, CAROL, "leave"), "is not below yours")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_unbanning_needs_kick_and_ban_levels(version: RoomVersion) -> None:
    room = standard_room(version, users={BOB: 40, CAROL: 60}, power_levels={"kick": 30, "ban": 50})
    join(room, BOB)
    join(room, CAROL)
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=DAVE)
    denied(room, room.member(BOB, DAVE, "leave"), r"unban users \(needs power 50, you have 40\)")
    ok(room, room.member(CAROL, DAVE, "leave"))


# --- ban ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_banning(version: RoomVersion) -> None:
    room = standard_room(version, users={CAROL: 50, BOB: 49})
    for user in (BOB, CAROL):
        join(room, user)
    ok(room, room.member(ALICE, BOB, "ban"))
    ok(room, room.member(CAROL, DAVE, "ban"))  # not in the room: may still be banned
    denied(room, room.member(BOB, DAVE, "ban"), r"ban users \(needs power 50, you have 49\)")
    denied(room, room.member(CAROL, ALICE, "ban"), "is not below yours")
    denied(room, room.member(DAVE, BOB, "ban"), "they are not in the room")


# --- knock -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("rule", ["knock", "knock_restricted", "public", "invite", "restricted"])
def test_knock_needs_a_knock_join_rule(version: RoomVersion, rule: str) -> None:
    room = standard_room(version, rule)
    knock = room.member(BOB, BOB, "knock")
    if not version.knock_join_rule:
        denied(room, knock, "Unknown membership 'knock'")
    elif rule == "knock" or (rule == "knock_restricted" and version.knock_restricted_join_rule):
        ok(room, knock)
    else:
        denied(room, knock, "does not accept knocks")


@pytest.mark.parametrize("version", versions(lambda v: v.knock_join_rule), ids=vid)
def test_knock_failures(version: RoomVersion) -> None:
    room = standard_room(version, "knock")
    denied(room, room.member(ALICE, BOB, "knock"), "on behalf of")
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "knock"), "already invite")
    join(room, BOB)
    denied(room, room.member(BOB, BOB, "knock"), "already join")
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    denied(room, room.member(BOB, BOB, "knock"), "already ban")
    room.send(ALICE, MEMBER, {"membership": "leave"}, state_key=BOB)
    ok(room, room.member(BOB, BOB, "knock"))


# --- v12 creators -------------------------------------------------------------------------------------------


def test_v12_creators_outrank_everyone() -> None:
    version = KNOWN_ROOM_VERSIONS["12"]
    room = standard_room(version, users={CAROL: 2**53 - 1}, create_content={"additional_creators": [BOB]})
    join(room, BOB)
    join(room, CAROL)
    join(room, DAVE)
    ok(room, room.member(BOB, CAROL, "ban"))  # an additional creator outranks the highest integer
    denied(room, room.member(CAROL, BOB, "ban"), r"their power \(infinite \(room creator\)\) is not below")
    denied(room, room.member(CAROL, ALICE, "leave"), "is not below")
    denied(room, room.member(ALICE, BOB, "leave"), "is not below")  # creators can't remove each other
    ok(room, room.member(ALICE, DAVE, "leave"))


def test_v12_additional_creator_joins_like_anyone_else() -> None:
    version = KNOWN_ROOM_VERSIONS["12"]
    room = Room(version, create_content={"additional_creators": [BOB]})
    denied(room, room.member(BOB, BOB, "join"), "needs an invite")
    ok(room, room.member(ALICE, ALICE, "join"))
