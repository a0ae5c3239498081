"""Auth rule 1 (m.room.create) for every room version, and the v12 rule tying room ID and create event."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.auth import AuthError, check_auth_events, check_auth_rules
from homeserver.events.builder import build_event
from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.auth_room import ALICE, VERSIONS, Room, altered, signing_key, standard_room, vid


def make_create(version: RoomVersion, content: dict[str, Any] | None = None, sender: str = ALICE) -> Event:
    if content is None:
        content = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            content["creator"] = sender
    server = sender.split(":", 1)[1]
    return build_event(
        version,
        room_id=None if version.hydra else f"!new:{server}",
        type="m.room.create",
        state_key="",
        sender=sender,
        content=content,
        prev_event_ids=[],
        auth_event_ids=[],
        depth=1,
        origin_server_ts=1,
        server_name=server,
        signing_key=signing_key(server),
    )


def allowed(event: Event) -> bool:
    try:
        check_auth_rules(event, {})
    except AuthError:
        return False
    return True


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_valid_create_is_allowed(version: RoomVersion) -> None:
    event = make_create(version)
    assert allowed(event)
    check_auth_events(event, {})  # its auth events are empty and not examined


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_create_with_prev_events_is_rejected(version: RoomVersion) -> None:
    other = make_create(version)
    prev: list[Any] = [other.event_id] if version.event_format != 1 else [[other.event_id, {"sha256": "x"}]]
    event = altered(make_create(version), prev_events=prev)
    with pytest.raises(AuthError, match="prev_events"):
        check_auth_rules(event, {})


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.hydra], ids=vid)
def test_room_id_domain_must_match_sender_before_v12(version: RoomVersion) -> None:
    event = altered(make_create(version), room_id="!new:elsewhere.test")
    with pytest.raises(AuthError, match="only be created by a user of its server"):
        check_auth_rules(event, {})


def test_v12_create_must_not_have_a_room_id() -> None:
    version = KNOWN_ROOM_VERSIONS["12"]
    event = altered(make_create(version), room_id="!new:a.test")
    with pytest.raises(AuthError, match="must not have a room_id"):
        check_auth_rules(event, {})


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize(
    "room_version_value, ok",
    [("1", True), ("12", True), ("999", False), ("", False), (12, False), (None, False)],
)
def test_content_room_version_must_be_known(version: RoomVersion, room_version_value: Any, ok: bool) -> None:
    content: dict[str, Any] = {"creator": ALICE, "room_version": room_version_value}
    assert allowed(make_create(version, content)) is ok


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_room_version_may_be_absent(version: RoomVersion) -> None:
    assert allowed(make_create(version, {"creator": ALICE}))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_creator_required_up_to_v10(version: RoomVersion) -> None:
    event = make_create(version, {"room_version": version.identifier})
    assert allowed(event) is version.implicit_room_creator


ADDITIONAL_CREATORS = [
    (["@bob:b.test"], True),
    ([], True),
    (["@bob:b.test", "@carol:c.test:8448"], True),
    (["@:b.test"], True),  # historical grammar: an empty localpart is still a user ID
    ("@bob:b.test", False),
    ([42], False),
    (["bob"], False),
    (["@bob"], False),
    (["@bob:bad_server!"], False),
    (["@b\x00b:b.test"], False),
    ([None], False),
    ({"@bob:b.test": True}, False),
]


@pytest.mark.parametrize("value, ok", ADDITIONAL_CREATORS, ids=[repr(v) for v, _ in ADDITIONAL_CREATORS])
def test_v12_additional_creators_must_be_user_ids(value: Any, ok: bool) -> None:
    version = KNOWN_ROOM_VERSIONS["12"]
    assert allowed(make_create(version, {"room_version": "12", "additional_creators": value})) is ok


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.hydra], ids=vid)
def test_additional_creators_means_nothing_before_v12(version: RoomVersion) -> None:
    assert allowed(make_create(version, {"creator": ALICE, "additional_creators": "not a list"}))


def test_v12_room_id_must_be_the_create_event_id() -> None:
    version = KNOWN_ROOM_VERSIONS["12"]
    room = standard_room(version)
    other = Room(version, create_content={"topic": "another room"})  # a different create event
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    room.check(message)
    state = dict(room.state)
    state[("m.room.create", "")] = other.create
    with pytest.raises(AuthError, match="is not the ID of the create event"):
        check_auth_rules(message, state)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_events_need_a_create_event(version: RoomVersion) -> None:
    room = standard_room(version)
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    state = {k: v for k, v in room.state.items() if k != ("m.room.create", "")}
    with pytest.raises(AuthError, match="No m.room.create"):
        check_auth_rules(message, state)


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.hydra], ids=vid)
def test_create_event_of_another_room_is_refused(version: RoomVersion) -> None:
    room = standard_room(version)
    other = Room(version, creator="@zed:z.test")
    message = room.build(ALICE, "m.room.message", {"body": "x"})
    with pytest.raises(AuthError, match="belongs to another room"):
        check_auth_rules(message, {**room.state, ("m.room.create", ""): other.create})
