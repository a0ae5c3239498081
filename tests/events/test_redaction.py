"""The redaction algorithm per room version: one row per rule the versions changed."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS

ALL = range(1, 13)


def pdu(event_type: str, content: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "room_id": "!r:x",
        "sender": "@u:x",
        "state_key": "",
        "content": content,
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
        "origin_server_ts": 1,
        "hashes": {"sha256": "h"},
        "signatures": {"x": {"ed25519:a": "s"}},
        **top,
    }


MEMBER = {
    "membership": "join",
    "displayname": "Alice",
    "join_authorised_via_users_server": "@admin:x",
    "third_party_invite": {"display_name": "a", "signed": {"mxid": "@u:x", "token": "t"}},
}
POWER = {
    "ban": 50,
    "events": {"m.room.name": 50},
    "events_default": 0,
    "invite": 10,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@u:x": 100},
    "users_default": 0,
    "notifications": {"room": 50},
}
POWER_KEPT = {k: v for k, v in POWER.items() if k not in ("invite", "notifications")}

# (event type, content, versions, expected content after redaction)
CASES: list[tuple[str, dict[str, Any], range, dict[str, Any]]] = [
    ("m.room.member", MEMBER, range(1, 9), {"membership": "join"}),
    (
        "m.room.member",
        MEMBER,
        range(9, 11),
        {"membership": "join", "join_authorised_via_users_server": "@admin:x"},
    ),
    (
        "m.room.member",
        MEMBER,
        range(11, 13),
        {
            "membership": "join",
            "join_authorised_via_users_server": "@admin:x",
            "third_party_invite": {"signed": {"mxid": "@u:x", "token": "t"}},
        },
    ),
    ("m.room.member", {"membership": "invite", "third_party_invite": {"display_name": "a"}}, range(11, 13),
     {"membership": "invite"}),
    ("m.room.create", {"creator": "@u:x", "room_version": "9", "m.federate": False}, range(1, 11),
     {"creator": "@u:x"}),
    ("m.room.create", {"room_version": "11", "m.federate": False, "additional_creators": ["@b:y"]}, range(11, 13),
     {"room_version": "11", "m.federate": False, "additional_creators": ["@b:y"]}),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
     range(1, 8), {"join_rule": "restricted"}),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
     range(8, 13), {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]}),
    ("m.room.power_levels", POWER, range(1, 11), POWER_KEPT),
    ("m.room.power_levels", POWER, range(11, 13), {**POWER_KEPT, "invite": 10}),
    ("m.room.history_visibility", {"history_visibility": "shared", "x": 1}, ALL, {"history_visibility": "shared"}),
    ("m.room.aliases", {"aliases": ["#a:x"], "x": 1}, range(1, 6), {"aliases": ["#a:x"]}),
    ("m.room.aliases", {"aliases": ["#a:x"], "x": 1}, range(6, 13), {}),
    ("m.room.redaction", {"redacts": "$e", "reason": "spam"}, range(1, 11), {}),
    ("m.room.redaction", {"redacts": "$e", "reason": "spam"}, range(11, 13), {"redacts": "$e"}),
    ("m.room.message", {"body": "secret", "msgtype": "m.text"}, ALL, {}),
    ("m.room.name", {"name": "n"}, ALL, {}),
]


@pytest.mark.parametrize(
    "event_type,content,number,expected",
    [(t, c, n, e) for t, c, versions, e in CASES for n in versions],
    ids=lambda x: x if isinstance(x, (str, int)) else "",
)
def test_content_rules(event_type: str, content: dict[str, Any], number: int, expected: dict[str, Any]) -> None:
    pruned = prune_event_dict(KNOWN_ROOM_VERSIONS[str(number)], pdu(event_type, content))
    assert pruned["content"] == expected


OBSOLETE_TOP_LEVEL = {"prev_state": [], "origin": "x", "membership": "join"}


@pytest.mark.parametrize("number", ALL)
def test_top_level_keys(number: int) -> None:
    room_version = KNOWN_ROOM_VERSIONS[str(number)]
    original = pdu(
        "m.room.redaction",
        {},
        event_id="$e:x",
        redacts="$target",
        unsigned={"age": 1},
        custom="dropped",
        **OBSOLETE_TOP_LEVEL,
    )
    pruned = prune_event_dict(room_version, original)
    always = {
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures", "depth",
        "prev_events", "auth_events", "origin_server_ts",
    }
    expected = always if number >= 11 else always | set(OBSOLETE_TOP_LEVEL)
    assert set(pruned) == expected
    assert all(pruned[k] == original[k] for k in expected if k != "content")


def test_does_not_mutate_and_survives_odd_content() -> None:
    original = pdu("m.room.member", dict(MEMBER))
    snapshot = {**original, "content": dict(original["content"])}
    prune_event_dict(KNOWN_ROOM_VERSIONS["11"], original)
    assert original == snapshot
    assert prune_event_dict(KNOWN_ROOM_VERSIONS["11"], pdu("m.room.member", "not an object"))["content"] == {}  # type: ignore[arg-type]
    odd = {**MEMBER, "third_party_invite": "x"}
    assert "third_party_invite" not in prune_event_dict(KNOWN_ROOM_VERSIONS["11"], pdu("m.room.member", odd))["content"]
