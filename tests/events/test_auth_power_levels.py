"""m.room.power_levels auth rules (rule 10; 9 in v6–11): content checks, and what a sender may change."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.events.auth import AuthError
from homeserver.events.event import Event, EventFormatError
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, DAVE, VERSIONS, Room, standard_room, vid

PL = ("m.room.power_levels", "")
MEMBER = "m.room.member"


def setup(version: RoomVersion, **levels: Any) -> Room:
    """ALICE (creator) 100 / infinite, CAROL 50 (the sender under test), DAVE 50, BOB 40; all joined."""
    base: dict[str, Any] = {
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "state_default": 50,
        "events_default": 0,
        "users_default": 0,
        "events": {"m.room.topic": 70, "m.room.name": 40},
        "notifications": {"room": 70},
    }
    base.update(levels)
    room = standard_room(version, users={CAROL: 50, DAVE: 50, BOB: 40}, power_levels=base)
    for user in (BOB, CAROL, DAVE):
        room.send(user, MEMBER, {"membership": "join"}, state_key=user)
    return room


def changed(room: Room, mutate: Callable[[dict[str, Any]], None], sender: str = CAROL) -> Event:
    content = copy.deepcopy(room.state[PL].content)
    mutate(content)
    return room.power_levels(sender, content)


def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(content: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target = content
        for part in parents:
            target = target.setdefault(part, {})
        if value is DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


DELETE = object()

# (what, mutation by CAROL at 50, None if allowed else a fragment of the error)
CHANGES: list[tuple[str, Callable[[dict[str, Any]], None], str | None]] = [
    ("lower ban 50->40", setter("ban", 40), None),
    ("raise ban to own level", setter("ban", 50), None),
    ("raise ban above own level", setter("ban", 51), "can't set 'ban' to 51"),
    ("add state_default above", setter("state_default", 60), "can't set 'state_default' to 60"),
    ("remove kick at own level", setter("kick", DELETE), None),
    ("change users_default", setter("users_default", 10), None),
    ("users_default above own", setter("users_default", 51), "can't set 'users_default' to 51"),
    ("add events entry at own level", setter("events/m.room.avatar", 50), None),
    (
        "add events entry above",
        setter("events/m.room.avatar", 51),
        "can't set the level of events 'm.room.avatar'",
    ),
    (
        "lower events entry above own",
        setter("events/m.room.topic", 10),
        "can't change the level of events 'm.room.topic'",
    ),
    ("remove events entry above own", setter("events/m.room.topic", DELETE), "events 'm.room.topic' from 70"),
    ("raise events entry to own", setter("events/m.room.name", 50), None),
    ("remove events entry below own", setter("events/m.room.name", DELETE), None),
    ("demote a user below", setter(f"users/{BOB}", 0), None),
    ("remove a user below", setter(f"users/{BOB}", DELETE), None),
    ("promote a user to own level", setter(f"users/{BOB}", 50), None),
    ("promote a user above", setter(f"users/{BOB}", 51), "can't give @bob:b.test power 51"),
    ("add a user at own level", setter("users/@new:n.test", 50), None),
    ("demote a user at own level", setter(f"users/{DAVE}", 0), "can't change the power of @dave:d.test (50)"),
    ("remove a user at own level", setter(f"users/{DAVE}", DELETE), "can't change the power of @dave:d.test"),
    ("demote oneself", setter(f"users/{CAROL}", 10), None),
    ("promote oneself", setter(f"users/{CAROL}", 60), "can't give @carol:a.test power 60"),
    ("no change at all", lambda content: None, None),
]


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("what, mutate, error", CHANGES, ids=[c[0] for c in CHANGES])
def test_changes(
    version: RoomVersion, what: str, mutate: Callable[[dict[str, Any]], None], error: str | None
) -> None:
    room = setup(version)
    event = changed(room, mutate)
    if error is None:
        room.check(event)
    else:
        with pytest.raises(AuthError, match=error.replace("(", r"\(").replace(")", r"\)")):
            room.check(event)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("mutate", [setter("notifications/room", 0), setter("notifications/room", DELETE)])
def test_notification_levels_are_guarded_from_v6(version: RoomVersion, mutate: Any) -> None:
    room = setup(version)
    event = changed(room, mutate)
    if version.limit_notifications_power_levels:
        with pytest.raises(AuthError, match="notifications 'room' from 70"):
            room.check(event)
    else:
        room.check(event)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_adding_notification_level_above_own(version: RoomVersion) -> None:
    room = setup(version)
    event = changed(room, setter("notifications/bot", 99))
    if version.limit_notifications_power_levels:
        with pytest.raises(AuthError, match="can't set the level of notifications 'bot' to 99"):
            room.check(event)
    else:
        room.check(event)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_sending_power_levels_needs_its_required_level(version: RoomVersion) -> None:
    room = setup(version, events={"m.room.power_levels": 60})
    with pytest.raises(AuthError, match=r"send m.room.power_levels \(needs power 60, you have 50\)"):
        room.check(changed(room, setter("ban", 40)))
    with pytest.raises(AuthError, match="needs power 60, you have 40"):
        room.check(changed(room, setter("ban", 40), sender=BOB))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_first_power_levels_event_may_set_anything(version: RoomVersion) -> None:
    room = Room(version)
    room.send(ALICE, MEMBER, {"membership": "join"}, state_key=ALICE)
    room.check(room.power_levels(ALICE, {"users": {BOB: 10**9}, "ban": 10**9, "events": {"x": 10**9}}))


# --- content validation ------------------------------------------------------------------------------------

CONTENT_CASES: list[tuple[str, dict[str, Any], Callable[[RoomVersion], bool]]] = [
    ("users not an object", {"users": [BOB]}, lambda v: False),
    ("users key not a user ID", {"users": {"bob": 10}}, lambda v: False),
    ("users key without server", {"users": {"@bob": 10}}, lambda v: False),
    ("users value not an integer", {"users": {BOB: "ten"}}, lambda v: False),
    ("users value a decimal string", {"users": {BOB: "10.5"}}, lambda v: False),
    ("users value boolean", {"users": {BOB: True}}, lambda v: False),
    ("users value null", {"users": {BOB: None}}, lambda v: False),
    ("users value string integer", {"users": {BOB: "40"}}, lambda v: not v.enforce_int_power_levels),
    ("users value padded string", {"users": {BOB: " +040 "}}, lambda v: not v.enforce_int_power_levels),
    ("ban as string", {"ban": "40"}, lambda v: not v.enforce_int_power_levels),
    ("ban as garbage", {"ban": "lots"}, lambda v: not v.enforce_int_power_levels),
    ("events not an object", {"events": ["m.room.name"]}, lambda v: not v.enforce_int_power_levels),
    ("events value string", {"events": {"m.room.name": "40"}}, lambda v: not v.enforce_int_power_levels),
    (
        "notifications value string",
        {"notifications": {"room": "40"}},
        lambda v: not v.enforce_int_power_levels,
    ),
    ("notifications not an object", {"notifications": 5}, lambda v: not v.enforce_int_power_levels),
    ("historical user ID", {"users": {"@Bob Smith:b.test": 10}}, lambda v: True),
    ("users absent", {}, lambda v: True),
]


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize("what, content, allowed", CONTENT_CASES, ids=[c[0] for c in CONTENT_CASES])
def test_content_validation(
    version: RoomVersion, what: str, content: dict[str, Any], allowed: Callable[[RoomVersion], bool]
) -> None:
    room = setup(version)

    def mutate(current: dict[str, Any]) -> None:
        for key, value in content.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value

    event = changed(room, mutate, sender=ALICE)
    if allowed(version):
        room.check(event)
    else:
        with pytest.raises(AuthError, match="Invalid m.room.power_levels content"):
            room.check(event)


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.strict_canonicaljson], ids=vid)
def test_floats_are_truncated_before_v6(version: RoomVersion) -> None:
    room = setup(version)
    # 50.9 truncates to 50: equal to CAROL's level, so she may grant it.
    room.check(changed(room, setter(f"users/{BOB}", 50.9)))
    with pytest.raises(AuthError, match="power 51"):
        room.check(changed(room, setter(f"users/{BOB}", 51.2)))


@pytest.mark.parametrize("version", [v for v in VERSIONS if v.strict_canonicaljson], ids=vid)
def test_floats_cannot_appear_from_v6(version: RoomVersion) -> None:
    room = setup(version)
    with pytest.raises(EventFormatError, match="float"):
        changed(room, setter(f"users/{BOB}", 50.5))


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.enforce_int_power_levels], ids=vid)
def test_string_levels_compare_by_value(version: RoomVersion) -> None:
    """DAVE's 50 rewritten as "50" is no change, so CAROL (50) may send it; "051" is 51, which she can't."""
    room = setup(version)
    room.check(changed(room, setter(f"users/{DAVE}", "50")))
    with pytest.raises(AuthError, match="can't change the power of @dave:d.test"):
        room.check(changed(room, setter(f"users/{DAVE}", "051")))


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.enforce_int_power_levels], ids=vid)
def test_string_levels_apply_to_senders(version: RoomVersion) -> None:
    room = setup(version, events={"m.room.topic": " 45 "}, users_default="0")
    room.check(room.build(CAROL, "m.room.topic", {"topic": "t"}, state_key=""))
    with pytest.raises(AuthError, match="needs power 45, you have 40"):
        room.check(room.build(BOB, "m.room.topic", {"topic": "t"}, state_key=""))


# --- v12 creators -------------------------------------------------------------------------------------------

V12 = KNOWN_ROOM_VERSIONS["12"]


@pytest.mark.parametrize("creator", [ALICE, "@eve:e.test"])
def test_v12_creators_may_not_be_listed(creator: str) -> None:
    room = Room(V12, create_content={"additional_creators": ["@eve:e.test"]})
    room.send(ALICE, MEMBER, {"membership": "join"}, state_key=ALICE)
    with pytest.raises(AuthError, match=f"must not list {creator}"):
        room.check(room.power_levels(ALICE, {"users": {creator: 100}}))
    room.check(room.power_levels(ALICE, {"users": {BOB: 100}}))


def test_v12_creator_level_is_beyond_any_integer() -> None:
    room = setup(V12)
    huge = 2**53 - 1
    room.check(changed(room, setter(f"users/{DAVE}", huge), sender=ALICE))
    room.check(changed(room, setter("ban", huge), sender=ALICE))


def test_listing_the_creator_is_fine_before_v12() -> None:
    room = setup(KNOWN_ROOM_VERSIONS["11"])
    room.check(changed(room, setter(f"users/{ALICE}", 100), sender=ALICE))


# --- model check of the `users` rules -----------------------------------------------------------------------

LEVEL = st.integers(min_value=-5, max_value=105)
OTHERS = [BOB, DAVE, "@erin:e.test"]


@settings(max_examples=80, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    sender_level=LEVEL,
    old=st.dictionaries(st.sampled_from(OTHERS), LEVEL),
    new=st.dictionaries(st.sampled_from(OTHERS), LEVEL),
    new_own=st.one_of(st.none(), LEVEL),
)
def test_users_rules_match_the_spec_model(
    version: RoomVersion, sender_level: int, old: dict[str, int], new: dict[str, int], new_own: int | None
) -> None:
    """Rules 10.9/10.10 (v12 numbering) as a model: entries of others changed or removed need their old level
    below the sender's; entries added or changed may not exceed the sender's level."""
    room = standard_room(
        version, users={CAROL: sender_level, **old}, power_levels={"events": {"m.room.power_levels": -10}}
    )
    room.send(CAROL, MEMBER, {"membership": "join"}, state_key=CAROL)
    before = room.state[PL].content["users"]
    after = {k: v for k, v in before.items() if k not in OTHERS and k != CAROL} | new
    if new_own is not None:
        after[CAROL] = new_own
    expected = all(
        (user == CAROL or before.get(user) is None or before[user] < sender_level)
        and (after.get(user) is None or after[user] <= sender_level)
        for user in before.keys() | after.keys()
        if before.get(user) != after.get(user)
    )
    event = room.power_levels(CAROL, {"users": after, "events": {"m.room.power_levels": -10}})
    try:
        room.check(event)
        allowed = True
    except AuthError:
        allowed = False
    assert allowed is expected
