"""build_event for every room version: build -> wire JSON -> from_pdu -> verify, and the v12 room ID."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from signedjson.key import generate_signing_key, get_verify_key

from homeserver.events.builder import build_event
from homeserver.events.event import Event, EventFormatError
from homeserver.events.hashing import check_content_hash, compute_event_id, compute_reference_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import InvalidSignatureError, verify_pdu_signature

KEY = generate_signing_key("k1")
VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def build(room_version: RoomVersion, **overrides: Any) -> Event:
    args: dict[str, Any] = dict(
        room_id=None if room_version.hydra else "!room:hs.test",
        type="m.room.create",
        state_key="",
        sender="@alice:hs.test",
        content={"room_version": room_version.identifier},
        prev_event_ids=[],
        auth_event_ids=[],
        depth=1,
        origin_server_ts=1_700_000_000_000,
        server_name="hs.test",
        signing_key=KEY,
    )
    args.update(overrides)
    return build_event(room_version, **args)


@pytest.mark.parametrize("room_version", VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_round_trip(room_version: RoomVersion) -> None:
    create = build(room_version)
    room_id = create.room_id
    prev_hashes = {create.event_id: {"sha256": "x"}} if room_version.event_format == 1 else None
    message = build(
        room_version,
        room_id=room_id,
        type="m.room.message",
        state_key=None,
        content={"body": "hello", "msgtype": "m.text"},
        prev_event_ids=[create.event_id],
        auth_event_ids=[] if room_version.hydra else [create.event_id],
        depth=2,
        prev_event_hashes=prev_hashes,
    )
    wire = json.loads(json.dumps(message.pdu))
    received = Event.from_pdu(wire, room_version)
    assert received.event_id == message.event_id
    assert (received.room_id, received.type, received.sender, received.depth) == (
        room_id, "m.room.message", "@alice:hs.test", 2
    )
    assert received.prev_event_ids == [create.event_id]
    assert check_content_hash(wire)
    verify_pdu_signature(wire, room_version, "hs.test", get_verify_key(KEY))
    with pytest.raises(InvalidSignatureError):
        verify_pdu_signature({**wire, "depth": 3}, room_version, "hs.test", get_verify_key(KEY))
    if room_version.event_format == 1:
        assert wire["event_id"].endswith(":hs.test")
        assert wire["prev_events"] == [[create.event_id, {"sha256": "x"}]]
    else:
        assert wire["prev_events"] == [create.event_id]
        assert message.event_id == compute_event_id(wire, room_version)


def test_v1_ids_are_random_and_references_default_to_no_hashes() -> None:
    v1 = KNOWN_ROOM_VERSIONS["1"]
    a, b = build(v1), build(v1)
    assert a.event_id != b.event_id
    c = build(v1, type="m.room.message", state_key=None, prev_event_ids=[a.event_id], depth=2)
    assert c.pdu["prev_events"] == [[a.event_id, {}]]


def test_v12_room_id_is_the_create_event_id() -> None:
    v12 = KNOWN_ROOM_VERSIONS["12"]
    create = build(v12, content={"room_version": "12", "additional_creators": ["@bob:other.test"]})
    assert "room_id" not in create.pdu
    assert create.room_id == "!" + create.event_id[1:]
    assert len(create.room_id) == 44 and ":" not in create.room_id
    # The ID is the url-safe unpadded base64 reference hash.
    digest = compute_reference_hash(create.pdu, v12)
    assert create.room_id == "!" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    # Any content change (v11+ redaction keeps all create content) gives another room.
    assert build(v12, content={"room_version": "12"}).room_id != create.room_id


def test_v12_create_rejects_a_room_id_and_others_need_one() -> None:
    v12 = KNOWN_ROOM_VERSIONS["12"]
    with pytest.raises(ValueError):
        build(v12, room_id="!r:hs.test")
    with pytest.raises(ValueError):
        build(v12, type="m.room.message", state_key=None, room_id=None)
    with pytest.raises(ValueError):
        build(KNOWN_ROOM_VERSIONS["11"], room_id=None)


@pytest.mark.parametrize("number,top_level", [("10", True), ("11", False), ("12", False)])
def test_redacts_placement(number: str, top_level: bool) -> None:
    room_version = KNOWN_ROOM_VERSIONS[number]
    event = build(
        room_version, room_id="!r:hs.test", type="m.room.redaction", state_key=None,
        content={"reason": "spam"}, redacts="$target", depth=5,
    )
    assert event.redacts == "$target"
    assert ("redacts" in event.pdu) is top_level
    assert ("redacts" in event.pdu["content"]) is not top_level
    assert event.content["reason"] == "spam"


def test_builder_does_not_keep_a_reference_to_the_callers_content() -> None:
    content = {"body": "x"}
    event = build(KNOWN_ROOM_VERSIONS["11"], room_id="!r:hs.test", type="m.room.redaction", state_key=None,
                  content=content, redacts="$t")
    assert content == {"body": "x"}
    assert event.content == {"body": "x", "redacts": "$t"}


def test_oversized_event_is_refused() -> None:
    with pytest.raises(EventFormatError, match="event too large"):
        build(KNOWN_ROOM_VERSIONS["12"], room_id="!r", type="m.room.message", state_key=None,
              content={"body": "a" * 70000})
