"""The remaining auth rules per version: m.federate, m.room.aliases (v1–5), membership of the sender,
m.room.third_party_invite, required power levels, `@`-state keys, and redactions (v1–2 vs v3+)."""

from __future__ import annotations

import pytest

from homeserver.events.auth import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, DAVE, VERSIONS, Room, standard_room, vid

MEMBER = "m.room.member"


def denied(room: Room, event: Event, match: str) -> None:
    with pytest.raises(AuthError, match=match):
        room.check(event)


def joined(room: Room, *users: str) -> Room:
    for user in users:
        room.send(user, MEMBER, {"membership": "join"}, state_key=user)
    return room


# --- m.federate ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_unfederated_room_refuses_other_servers(version: RoomVersion) -> None:
    room = joined(standard_room(version, create_content={"m.federate": False}), CAROL)
    denied(room, room.member(BOB, BOB, "join"), "not federated: only users of a.test")
    room.check(room.build(CAROL, "m.room.message", {"body": "x"}))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("value", [True, "false", 0])
def test_only_false_unfederates(version: RoomVersion, value: object) -> None:
    room = standard_room(version, create_content={"m.federate": value})
    room.check(room.member(BOB, BOB, "join"))


# --- m.room.aliases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_aliases_special_case(version: RoomVersion) -> None:
    room = standard_room(version, power_levels={"state_default": 50})
    own_server = room.build(DAVE, "m.room.aliases", {"aliases": ["#x:d.test"]}, state_key="d.test")
    other_server = room.build(DAVE, "m.room.aliases", {"aliases": ["#x:a.test"]}, state_key="a.test")
    no_state_key = room.build(DAVE, "m.room.aliases", {"aliases": []})
    if version.special_case_aliases_auth:
        room.check(own_server)  # not even a member: only the server matters
        denied(room, other_server, "Only users of a.test may set its aliases")
        denied(room, no_state_key, "needs a state key")
    else:
        for event in (own_server, other_server):
            denied(room, event, "not in room")
        joined(room, DAVE)
        denied(
            room, room.build(DAVE, "m.room.aliases", {"aliases": []}, state_key="d.test"), "needs power 50"
        )


# --- sender membership --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("membership", [None, "invite", "leave", "ban", "knock"])
def test_non_members_cannot_send(version: RoomVersion, membership: str | None) -> None:
    room = standard_room(version, "knock" if membership == "knock" else "invite")
    if membership == "knock" and not version.knock_join_rule:
        membership = "leave"
    if membership in ("invite", "leave", "ban"):
        room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=BOB)
    if membership in ("leave",):
        room.send(BOB, MEMBER, {"membership": "leave"}, state_key=BOB)
    if membership == "ban":
        room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    if membership == "knock":
        room.send(BOB, MEMBER, {"membership": "knock"}, state_key=BOB)
    denied(room, room.build(BOB, "m.room.message", {"body": "x"}), f"{BOB} is not in room")
    denied(room, room.build(BOB, "m.room.topic", {"topic": "x"}, state_key=""), "is not in room")


# --- m.room.third_party_invite -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_third_party_invite_event_needs_invite_level(version: RoomVersion) -> None:
    room = joined(
        standard_room(version, power_levels={"invite": 20, "state_default": 100}, users={CAROL: 20}),
        BOB,
        CAROL,
    )
    content = {"display_name": "x", "key_validity_url": "https://id.test", "public_key": "AAAA"}
    room.check(
        room.build(CAROL, "m.room.third_party_invite", content, state_key="t")
    )  # state_default not used
    denied(
        room,
        room.build(BOB, "m.room.third_party_invite", content, state_key="t"),
        r"invite users \(by third-party invite\) \(needs power 20, you have 0\)",
    )
    denied(room, room.build(DAVE, "m.room.third_party_invite", content, state_key="t"), "not in room")


# --- required power level -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_required_power_levels(version: RoomVersion) -> None:
    room = joined(
        standard_room(
            version,
            users={CAROL: 30},
            power_levels={
                "events_default": 10,
                "state_default": 30,
                "events": {"m.room.name": 5, "m.reaction": 0},
            },
        ),
        BOB,
        CAROL,
    )
    denied(
        room,
        room.build(BOB, "m.room.message", {"body": "x"}),
        r"You don't have permission to send m.room.message \(needs power 10, you have 0\)",
    )
    room.check(room.build(BOB, "m.reaction", {}))
    denied(room, room.build(BOB, "m.room.topic", {"topic": "x"}, state_key=""), "needs power 30, you have 0")
    room.check(room.build(CAROL, "m.room.topic", {"topic": "x"}, state_key=""))
    denied(room, room.build(BOB, "m.room.name", {"name": "x"}, state_key=""), "needs power 5, you have 0")
    # the level for a type applies to state and non-state events of that type alike
    denied(room, room.build(BOB, "m.room.name", {"name": "x"}), "needs power 5")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_defaults_without_power_levels(version: RoomVersion) -> None:
    """Creator 100 (infinite in v12), others 0; state needs 50, messages 0."""
    room = Room(version)
    joined(room, ALICE)
    room.send(ALICE, "m.room.join_rules", {"join_rule": "public"}, state_key="")
    joined(room, BOB)
    room.check(room.build(BOB, "m.room.message", {"body": "x"}))
    denied(room, room.build(BOB, "m.room.topic", {"topic": "x"}, state_key=""), "needs power 50, you have 0")
    room.check(room.build(ALICE, "m.room.topic", {"topic": "x"}, state_key=""))
    room.check(room.member(ALICE, BOB, "ban"))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_users_default(version: RoomVersion) -> None:
    room = joined(standard_room(version, power_levels={"users_default": 50}), BOB)
    room.check(room.build(BOB, "m.room.topic", {"topic": "x"}, state_key=""))


# --- state keys that are user IDs ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_user_state_keys_belong_to_their_user(version: RoomVersion) -> None:
    room = joined(standard_room(version, power_levels={"state_default": 0}), BOB)
    room.check(room.build(BOB, "org.example.status", {}, state_key=BOB))
    room.check(room.build(BOB, "org.example.status", {}, state_key="bob"))
    denied(room, room.build(BOB, "org.example.status", {}, state_key=ALICE), f"Only {ALICE} may send")
    denied(room, room.build(ALICE, "org.example.status", {}, state_key=BOB), f"Only {BOB} may send")


# --- redactions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_redactions(version: RoomVersion) -> None:
    room = joined(standard_room(version, users={CAROL: 50}), BOB, CAROL, DAVE)
    by_bob = room.send(BOB, "m.room.message", {"body": "x"})
    by_dave = room.send(DAVE, "m.room.message", {"body": "y"})
    moderator = room.build(CAROL, "m.room.redaction", {}, redacts=by_dave.event_id)
    own = room.build(BOB, "m.room.redaction", {}, redacts=by_bob.event_id)
    other_server = room.build(BOB, "m.room.redaction", {}, redacts=by_dave.event_id)
    room.check(moderator)
    room.check(own)
    if version.event_format == 1:  # v1–2: rule 11 decides
        denied(room, other_server, r"redact events from other servers \(needs power 50, you have 0\)")
    else:  # v3+: allowed here; whether it applies is decided when it is shown (power_levels.can_redact)
        room.check(other_server)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_redaction_still_needs_its_send_level(version: RoomVersion) -> None:
    room = joined(standard_room(version, power_levels={"events": {"m.room.redaction": 20}}), BOB)
    mine = room.send(BOB, "m.room.message", {"body": "x"})
    denied(room, room.build(BOB, "m.room.redaction", {}, redacts=mine.event_id), "send m.room.redaction")
