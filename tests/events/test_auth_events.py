"""Auth events selection, and the rules about an event's own `auth_events` (rule 2; rules 2–3 in v12)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.auth import (
    AuthError,
    auth_types_for_event,
    check_auth_events,
    required_signature_servers,
)
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, VERSIONS, Room, altered, standard_room, vid

CREATE = ("m.room.create", "")
PL = ("m.room.power_levels", "")
JR = ("m.room.join_rules", "")
V7, V8, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("7", "8", "11", "12"))


def member(user: str) -> tuple[str, str]:
    return ("m.room.member", user)


SELECTION: list[tuple[RoomVersion, str, str | None, str, dict[str, Any], list[tuple[str, str]]]] = [
    (V11, "m.room.create", "", ALICE, {}, []),
    (V12, "m.room.create", "", ALICE, {}, []),
    (V11, "m.room.message", None, BOB, {"body": "x"}, [CREATE, PL, member(BOB)]),
    (V12, "m.room.message", None, BOB, {"body": "x"}, [PL, member(BOB)]),
    (V11, "m.room.name", "", BOB, {"name": "x"}, [CREATE, PL, member(BOB)]),
    (V11, "m.room.member", BOB, BOB, {"membership": "join"}, [CREATE, PL, member(BOB), JR]),
    (V12, "m.room.member", BOB, BOB, {"membership": "join"}, [PL, member(BOB), JR]),
    (
        V11,
        "m.room.member",
        BOB,
        ALICE,
        {"membership": "invite"},
        [CREATE, PL, member(ALICE), member(BOB), JR],
    ),
    (V11, "m.room.member", BOB, BOB, {"membership": "knock"}, [CREATE, PL, member(BOB), JR]),
    (V11, "m.room.member", BOB, BOB, {"membership": "leave"}, [CREATE, PL, member(BOB)]),
    (V11, "m.room.member", BOB, ALICE, {"membership": "ban"}, [CREATE, PL, member(ALICE), member(BOB)]),
    (
        V11,
        "m.room.member",
        BOB,
        ALICE,
        {"membership": "invite", "third_party_invite": {"signed": {"mxid": BOB, "token": "tok"}}},
        [CREATE, PL, member(ALICE), member(BOB), JR, ("m.room.third_party_invite", "tok")],
    ),
    (
        V11,
        "m.room.member",
        BOB,
        ALICE,
        {"membership": "invite", "third_party_invite": {"signed": {"mxid": BOB, "token": 7}}},
        [CREATE, PL, member(ALICE), member(BOB), JR],
    ),
    (
        V8,
        "m.room.member",
        BOB,
        BOB,
        {"membership": "join", "join_authorised_via_users_server": CAROL},
        [CREATE, PL, member(BOB), JR, member(CAROL)],
    ),
    (
        V7,
        "m.room.member",
        BOB,
        BOB,
        {"membership": "join", "join_authorised_via_users_server": CAROL},
        [CREATE, PL, member(BOB), JR],
    ),
    (
        V8,
        "m.room.member",
        BOB,
        BOB,
        {"membership": "leave", "join_authorised_via_users_server": CAROL},
        [CREATE, PL, member(BOB)],
    ),
]


@pytest.mark.parametrize("version, type, state_key, sender, content, expected", SELECTION)
def test_auth_events_selection(
    version: RoomVersion,
    type: str,
    state_key: str | None,
    sender: str,
    content: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    assert auth_types_for_event(version, type, state_key, sender, content) == expected


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_well_formed_auth_events_pass(version: RoomVersion) -> None:
    room = standard_room(version)
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    check_auth_events(message, room.events)
    join = room.member(BOB, BOB, "join")
    check_auth_events(join, room.events)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_unknown_auth_event_is_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    known = {k: v for k, v in room.events.items() if k != room.state[PL].event_id}
    with pytest.raises(AuthError, match="is unknown"):
        check_auth_events(message, known)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_duplicate_auth_events_are_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    first_pl = room.state[PL].event_id
    room.send(
        ALICE, "m.room.power_levels", {"users": room.state[PL].content["users"], "ban": 60}, state_key=""
    )
    auth = room.build(ALICE, "m.room.message", {"body": "x"}).auth_event_ids + [first_pl]
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="two auth events for m.room.power_levels"):
        check_auth_events(message, room.events)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_unexpected_auth_events_are_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    auth = room.build(ALICE, "m.room.message", {"body": "x"}).auth_event_ids + [room.state[JR].event_id]
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="not needed to authorise it"):
        check_auth_events(message, room.events)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_non_state_auth_events_are_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    chat = room.send(ALICE, "m.room.message", {"body": "x"})
    auth = room.build(ALICE, "m.room.message", {"body": "x"}).auth_event_ids + [chat.event_id]
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="not needed to authorise it"):
        check_auth_events(message, room.events)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_rejected_auth_events_are_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    with pytest.raises(AuthError, match="was rejected"):
        check_auth_events(message, room.events, rejected_event_ids={room.state[PL].event_id})


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.hydra], ids=vid)
def test_create_event_must_be_cited_before_v12(version: RoomVersion) -> None:
    room = standard_room(version)
    auth = [e for e in room.build(ALICE, "m.room.message", {}).auth_event_ids if e != room.create.event_id]
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="does not cite the room's m.room.create"):
        check_auth_events(message, room.events)


def test_v12_create_event_must_not_be_cited() -> None:
    room = standard_room(V12)
    auth = [room.create.event_id] + room.build(ALICE, "m.room.message", {}).auth_event_ids
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="implies the create event from the room ID"):
        check_auth_events(message, room.events)


def test_v12_create_event_must_be_known_and_accepted() -> None:
    room = standard_room(V12)
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    check_auth_events(message, room.events)
    without_create = {k: v for k, v in room.events.items() if k != room.create.event_id}
    with pytest.raises(AuthError, match="create event .* is unknown"):
        check_auth_events(message, without_create)
    with pytest.raises(AuthError, match="create event .* was rejected"):
        check_auth_events(message, room.events, rejected_event_ids={room.create.event_id})


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_auth_events_from_another_room_are_rejected(version: RoomVersion) -> None:
    room = standard_room(version)
    other = standard_room(version, create_content={"topic": "other"})
    auth = [e for e in room.build(ALICE, "m.room.message", {}).auth_event_ids if e != room.state[PL].event_id]
    auth.append(other.state[PL].event_id)
    message = room.build(ALICE, "m.room.message", {"body": "x"}, auth=auth)
    with pytest.raises(AuthError, match="belongs to room"):
        check_auth_events(message, {**room.events, **other.events})


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_rules_apply_to_the_cited_state_only(version: RoomVersion) -> None:
    """Without citing the power levels, Bob (a joined member) is held to the defaults, not the room's."""
    room = standard_room(version, power_levels={"state_default": 0})
    room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
    topic = room.build(BOB, "m.room.topic", {"topic": "x"}, state_key="")
    check_auth_events(topic, room.events)  # state_default 0 in the cited power levels
    auth = [e for e in topic.auth_event_ids if e != room.state[PL].event_id]
    uncited = room.build(BOB, "m.room.topic", {"topic": "x"}, state_key="", auth=auth)
    with pytest.raises(AuthError, match="needs power 50, you have 0"):
        check_auth_events(uncited, room.events)


def test_v1_redaction_needs_the_redacting_event_id_server_to_sign() -> None:
    room = standard_room(KNOWN_ROOM_VERSIONS["1"])
    assert required_signature_servers(room.create) == {"a.test"}
    message = room.build(BOB, "m.room.message", {"body": "x"})
    assert required_signature_servers(message) == {"b.test"}  # event IDs are minted by the sender's server
    forged = altered(message, event_id="$forged:c.test")
    assert required_signature_servers(forged) == {"b.test", "c.test"}


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_restricted_join_authoriser_must_sign(version: RoomVersion) -> None:
    room = standard_room(version)
    join = room.member(BOB, BOB, "join", join_authorised_via_users_server="@carol:c.test")
    expected = {"b.test", "c.test"} if version.restricted_join_rule else {"b.test"}
    assert required_signature_servers(join) == expected


def test_selection_for_a_room_with_a_real_event() -> None:
    room: Room = standard_room(V11)
    join = room.member(BOB, BOB, "join")
    cited = {room.events[e].state_tuple() for e in join.auth_event_ids}
    assert cited == {CREATE, PL, JR}  # Bob has no membership yet, so none is cited
