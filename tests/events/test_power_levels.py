"""power_levels.py: parsing levels per version, users' levels (v12 creators), required levels, redaction
checks and content validation for the client path."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeserver.events.power_levels import (
    CREATOR_POWER_LEVEL,
    PowerLevels,
    can_redact,
    can_user_redact,
    format_level,
    notification_level,
    parse_level,
    power_levels_content_error,
    required_power_level,
    room_creators,
    user_power_level,
)
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, DAVE, VERSIONS, Room, altered, standard_room, vid

V1, V5, V6, V9, V10, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("1", "5", "6", "9", "10", "11", "12"))
PL = ("m.room.power_levels", "")

PARSE_CASES: list[tuple[Any, int | None, int | None, int | None]] = [
    # value, v1–5, v6–9, v10+
    (50, 50, 50, 50),
    (-7, -7, -7, -7),
    (0, 0, 0, 0),
    (True, None, None, None),
    ("50", 50, 50, None),
    ("  +0050 ", 50, 50, None),
    ("-50", -50, -50, None),
    ("\t12\n", 12, 12, None),
    ("1_000", None, None, None),
    ("\uff11\uff12", None, None, None),  # full-width digits are not base 10 ASCII
    ("+-5", None, None, None),
    ("5 5", None, None, None),
    ("5.0", None, None, None),
    ("", None, None, None),
    (50.9, 50, None, None),
    (-50.9, -50, None, None),
    (5.114698e4, 51146, None, None),
    (math.inf, None, None, None),
    (math.nan, None, None, None),
    (None, None, None, None),
    ([50], None, None, None),
]


@pytest.mark.parametrize("value, v1, v6, v10", PARSE_CASES, ids=[repr(c[0]) for c in PARSE_CASES])
def test_parse_level(value: Any, v1: int | None, v6: int | None, v10: int | None) -> None:
    assert parse_level(value, V1) == v1
    assert parse_level(value, V5) == v1
    assert parse_level(value, V6) == v6
    assert parse_level(value, V9) == v6
    assert parse_level(value, V10) == v10
    assert parse_level(value, V12) == v10


@given(
    n=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    zeros=st.integers(min_value=0, max_value=4),
    lead=st.sampled_from(["", " ", "  \t", "\n"]),
    trail=st.sampled_from(["", " ", "\r\n"]),
    plus=st.booleans(),
)
def test_stringy_levels_round_trip(n: int, zeros: int, lead: str, trail: str, plus: bool) -> None:
    sign = "-" if n < 0 else ("+" if plus else "")
    text = f"{lead}{sign}{'0' * zeros}{abs(n)}{trail}"
    assert parse_level(text, V9) == n
    assert parse_level(text, V10) is None


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_floats_truncate_towards_zero_before_v6(x: float) -> None:
    assert parse_level(x, V5) == math.trunc(x)
    assert parse_level(x, V6) is None


# --- users' levels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_levels_without_power_levels_event(version: RoomVersion) -> None:
    room = Room(version, create_content={"additional_creators": [CAROL]})
    expected_creator = CREATOR_POWER_LEVEL if version.hydra else 100
    assert user_power_level(ALICE, room.state, version) == expected_creator
    assert user_power_level(BOB, room.state, version) == 0
    assert user_power_level(CAROL, room.state, version) == (CREATOR_POWER_LEVEL if version.hydra else 0)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_levels_with_power_levels_event(version: RoomVersion) -> None:
    room = standard_room(version, users={BOB: 42}, power_levels={"users_default": 7})
    assert user_power_level(BOB, room.state, version) == 42
    assert user_power_level(DAVE, room.state, version) == 7
    assert user_power_level(ALICE, room.state, version) == (CREATOR_POWER_LEVEL if version.hydra else 100)


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.hydra], ids=vid)
def test_creator_has_no_special_level_once_power_levels_exist(version: RoomVersion) -> None:
    room = standard_room(version)
    room.send(ALICE, "m.room.power_levels", {"users": {BOB: 100}}, state_key="")
    assert user_power_level(ALICE, room.state, version) == 0


def test_v12_creators_are_infinite_even_if_listed() -> None:
    room = standard_room(V12)
    listed = room.build(ALICE, "m.room.power_levels", {"users": {ALICE: 1}}, state_key="")
    state = {**room.state, PL: listed}
    level = user_power_level(ALICE, state, V12)
    assert level == CREATOR_POWER_LEVEL and level > 2**63 and format_level(level) == "infinite (room creator)"


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_room_creators(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": CAROL, "additional_creators": [BOB]})
    expected = {
        False: {CAROL},  # v1–10: content.creator
        True: {ALICE, BOB} if version.hydra else {ALICE},
    }[version.implicit_room_creator]
    assert room_creators(room.create) == expected
    assert room_creators(None) == frozenset()


def test_room_creators_ignores_a_non_string_creator() -> None:
    room = Room(V1, create_content={"creator": ["@x:y"]})
    assert room_creators(room.create) == frozenset()


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.enforce_int_power_levels], ids=vid)
def test_unparseable_values_fall_back_to_defaults(version: RoomVersion) -> None:
    room = standard_room(version, users={BOB: 40}, power_levels={"users_default": "x", "ban": "lots"})
    levels = PowerLevels.from_state(room.state, version)
    assert levels.user_level(DAVE) == 0
    assert levels.level("ban") == 50


# --- required and named levels ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_required_power_level(version: RoomVersion) -> None:
    room = standard_room(
        version,
        power_levels={
            "events": {"m.room.name": 5, "m.sticker": 60},
            "events_default": 3,
            "state_default": 20,
        },
    )
    assert required_power_level("m.room.name", "", room.state) == 5
    assert required_power_level("m.sticker", None, room.state) == 60
    assert required_power_level("m.room.topic", "", room.state) == 20
    assert required_power_level("m.room.message", None, room.state) == 3


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_required_power_level_defaults(version: RoomVersion) -> None:
    room = Room(version)
    assert required_power_level("m.room.topic", "", room.state) == 50
    assert required_power_level("m.room.message", None, room.state) == 0
    assert required_power_level("m.room.topic", "", {}) == 50
    assert required_power_level("m.room.message", None, {}) == 0


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_named_level_defaults(version: RoomVersion) -> None:
    levels = PowerLevels.from_state(Room(version).state, version)
    assert [levels.level(k) for k in ("invite", "kick", "ban", "redact")] == [0, 50, 50, 50]
    custom = PowerLevels.from_state(
        standard_room(version, power_levels={"kick": 1, "invite": 2}).state, version
    )
    assert [custom.level(k) for k in ("invite", "kick", "ban", "redact")] == [2, 1, 50, 50]


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_notification_level(version: RoomVersion) -> None:
    assert notification_level("room", Room(version).state) == 50
    assert notification_level("room", {}) == 50
    room = standard_room(version, power_levels={"notifications": {"room": 20, "other": 90}})
    assert notification_level("room", room.state) == 20
    assert notification_level("other", room.state) == 90
    assert notification_level("unknown", room.state) == 50


def test_notification_level_string_before_v10() -> None:
    room = standard_room(V9, power_levels={"notifications": {"room": "10"}})
    assert notification_level("room", room.state) == 10


# --- redactions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_can_redact(version: RoomVersion) -> None:
    room = standard_room(version, users={CAROL: 50}, power_levels={"state_default": 0})
    for user in (BOB, CAROL, DAVE, "@bea:b.test"):
        room.send(user, "m.room.member", {"membership": "join"}, state_key=user)
    by_bob = room.send(BOB, "m.room.message", {"body": "x"})
    by_dave = room.send(DAVE, "m.room.message", {"body": "y"})

    def redaction(sender: str, target: Any) -> Any:
        return room.build(sender, "m.room.redaction", {}, redacts=target.event_id)

    assert can_redact(redaction(CAROL, by_dave), by_dave, room.state)  # redact level
    assert can_redact(redaction(BOB, by_bob), by_bob, room.state)
    assert can_redact(redaction("@bea:b.test", by_bob), by_bob, room.state)  # same server
    assert not can_redact(redaction(BOB, by_dave), by_dave, room.state)
    assert not can_redact(redaction(DAVE, by_bob), by_bob, room.state)


def test_can_redact_v1_uses_event_id_servers() -> None:
    """In v1–2 the event ID's server counts, not the sender's (an event ID can be minted elsewhere)."""
    room = standard_room(V1)
    room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
    by_bob = room.send(BOB, "m.room.message", {"body": "x"})
    redaction = room.build(BOB, "m.room.redaction", {}, redacts=by_bob.event_id)
    assert can_redact(redaction, by_bob, room.state)
    elsewhere = altered(redaction, event_id="$r:elsewhere.test")
    assert not can_redact(elsewhere, by_bob, room.state)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_can_user_redact(version: RoomVersion) -> None:
    room = standard_room(version, users={CAROL: 50})
    assert can_user_redact(BOB, BOB, room.state, version)
    assert not can_user_redact("@bea:b.test", BOB, room.state, version)  # same server is not enough here
    assert can_user_redact(CAROL, BOB, room.state, version)
    assert can_user_redact(ALICE, BOB, room.state, version)


# --- content validation for the client path -----------------------------------------------------------------

CLIENT_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"users": {ALICE: 100}, "ban": 50, "events": {"m.room.name": 50}, "notifications": {"room": 50}}, None),
    ({}, None),
    ({"ban": "50"}, "'ban' must be an integer"),
    ({"kick": 2**53}, "'kick' must be between"),
    ({"invite": -(2**53)}, "'invite' must be between"),
    ({"events": {"m.room.name": "50"}}, "'events.m.room.name' must be an integer"),
    ({"events": []}, "'events' must be an object"),
    ({"notifications": {"room": True}}, "'notifications.room' must be an integer"),
    ({"users": {BOB: "100"}}, f"'users.{BOB}' must be an integer"),
    ({"users": {"bob": 1}}, "not a valid user ID: 'bob'"),
    ({"users": "all"}, "'users' must be an object"),
]


@pytest.mark.parametrize("version", [V1, V9, V10, V11], ids=vid)
@pytest.mark.parametrize("content, error", CLIENT_CASES)
def test_client_validation_demands_integers_in_every_version(
    version: RoomVersion, content: dict[str, Any], error: str | None
) -> None:
    result = power_levels_content_error(content, version, require_integers=True)
    if error is None:
        assert result is None
    else:
        assert result is not None and error in result


def test_client_validation_v12_creators() -> None:
    message = power_levels_content_error({"users": {CAROL: 100}}, V12, creators=frozenset({ALICE, CAROL}))
    assert message is not None and "must not list @carol:a.test" in message and "infinite power" in message
    assert power_levels_content_error({"users": {BOB: 100}}, V12, creators=frozenset({ALICE})) is None
    assert power_levels_content_error({"users": {ALICE: 100}}, V11, creators=frozenset({ALICE})) is None


def test_auth_validation_is_lenient_before_v10() -> None:
    assert power_levels_content_error({"ban": "lots", "users": {BOB: " 5 "}}, V9) is None
    assert power_levels_content_error({"users": {BOB: "lots"}}, V9) == f"'users.{BOB}' must be an integer"
