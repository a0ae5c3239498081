"""`Event.from_pdu`: shape validation per format, size limits, strict JSON, v12 room IDs, properties."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from canonicaljson import encode_canonical_json
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.events.event import Event, EventFormatError
from homeserver.events.hashing import compute_event_id
from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS

V = KNOWN_ROOM_VERSIONS


def pdu_for(number: int, **changes: Any) -> dict[str, Any]:
    """A well-formed message PDU in the wire format of room version `number`."""
    ref: Any = ["$p:x", {"sha256": "h"}] if number <= 2 else "$p"
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!r:x",
        "sender": "@u:x",
        "content": {"body": "hi"},
        "prev_events": [ref],
        "auth_events": [ref],
        "depth": 3,
        "origin_server_ts": 1000,
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"x": {"ed25519:a": "c2ln"}},
    }
    if number <= 2:
        pdu["event_id"] = "$e:x"
    pdu.update(changes)
    return {k: v for k, v in pdu.items() if v is not DROP}


DROP = object()


def format_error(pdu: dict[str, Any], number: int) -> str:
    with pytest.raises(EventFormatError) as caught:
        Event.from_pdu(pdu, V[str(number)])
    return str(caught.value)


@pytest.mark.parametrize("number", range(1, 13))
def test_well_formed_pdu_gives_its_fields(number: int) -> None:
    pdu = pdu_for(number, state_key="", type="m.room.member", content={"membership": "join"})
    event = Event.from_pdu(pdu, V[str(number)])
    assert event.pdu is pdu
    assert (event.room_id, event.type, event.state_key, event.sender) == ("!r:x", "m.room.member", "", "@u:x")
    assert event.content == {"membership": "join"} and event.membership == "join"
    assert event.prev_event_ids == (["$p:x"] if number <= 2 else ["$p"])
    assert event.auth_event_ids == event.prev_event_ids
    assert (event.depth, event.origin_server_ts, event.unsigned) == (3, 1000, {})
    assert event.is_state() and event.state_tuple() == ("m.room.member", "")
    assert event.event_id == ("$e:x" if number <= 2 else compute_event_id(pdu, V[str(number)]))


def test_message_is_not_state() -> None:
    event = Event.from_pdu(pdu_for(10), V["10"])
    assert not event.is_state() and event.state_key is None and event.membership is None
    with pytest.raises(ValueError):
        event.state_tuple()


# (field, bad value, words the message must contain, versions)
SHAPE_ERRORS: list[tuple[str, Any, str]] = [
    ("room_id", 5, "room_id"),
    ("room_id", DROP, "room_id"),
    ("room_id", "r:x", "room_id"),
    ("sender", ["@u:x"], "sender"),
    ("sender", DROP, "sender"),
    ("sender", "u:x", "sender"),
    ("type", None, "type"),
    ("type", DROP, "type"),
    ("state_key", 1, "state_key"),
    ("content", "text", "content"),
    ("content", DROP, "content"),
    ("content", [], "content"),
    ("prev_events", "$p", "prev_events"),
    ("prev_events", DROP, "prev_events"),
    ("auth_events", {"$p": 1}, "auth_events"),
    ("depth", "3", "depth"),
    ("depth", True, "depth"),
    ("depth", DROP, "depth"),
    ("depth", -1, "depth"),
    ("origin_server_ts", 1.5, "origin_server_ts"),
    ("origin_server_ts", DROP, "origin_server_ts"),
    ("hashes", DROP, "hashes"),
    ("hashes", {"sha256": 5}, "hashes"),
    ("hashes", [], "hashes"),
    ("signatures", DROP, "signatures"),
    ("signatures", {"x": "sig"}, "signatures"),
    ("signatures", {"x": {"ed25519:a": 1}}, "signatures"),
    ("unsigned", [], "unsigned"),
]


@pytest.mark.parametrize("number", [1, 3, 5, 11, 12])
@pytest.mark.parametrize("field,value,words", SHAPE_ERRORS, ids=lambda x: str(x)[:20])
def test_shape_errors_name_the_field(number: int, field: str, value: Any, words: str) -> None:
    assert words in format_error(pdu_for(number, **{field: value}), number)


@pytest.mark.parametrize("number", [1, 2])
def test_v1_format_needs_pairs_and_event_id(number: int) -> None:
    assert "prev_events" in format_error(pdu_for(number, prev_events=["$p:x"]), number)
    assert "auth_events" in format_error(pdu_for(number, auth_events=[["$p:x"]]), number)
    assert "auth_events" in format_error(pdu_for(number, auth_events=[[1, {}]]), number)
    assert "event_id" in format_error(pdu_for(number, event_id=DROP), number)
    assert Event.from_pdu(pdu_for(number, event_id=DROP), V[str(number)], event_id="$given:x").event_id == "$given:x"


@pytest.mark.parametrize("number", [3, 4, 12])
def test_v3_format_needs_plain_ids(number: int) -> None:
    assert "prev_events" in format_error(pdu_for(number, prev_events=[["$p", {}]]), number)
    assert "auth_events" in format_error(pdu_for(number, auth_events=[None]), number)


def test_reference_counts_are_limited() -> None:
    Event.from_pdu(pdu_for(10, prev_events=[f"$p{i}" for i in range(20)]), V["10"])
    assert "prev_events" in format_error(pdu_for(10, prev_events=[f"$p{i}" for i in range(21)]), 10)
    Event.from_pdu(pdu_for(10, auth_events=[f"$a{i}" for i in range(10)]), V["10"])
    assert "auth_events" in format_error(pdu_for(10, auth_events=[f"$a{i}" for i in range(11)]), 10)


@pytest.mark.parametrize("field", ["sender", "room_id", "type", "state_key"])
def test_identifier_fields_are_limited_to_255_bytes(field: str) -> None:
    prefix = {"sender": "@", "room_id": "!"}.get(field, "")
    fits = prefix + "a" * (253 - len(prefix)) + ":x"
    Event.from_pdu(pdu_for(10, **{field: fits}), V["10"])
    # 254 characters but 256 bytes: the limit counts UTF-8 bytes.
    too_long = prefix + "a" * (250 - len(prefix)) + "é" * 2 + ":x"
    assert len(too_long) < 256 and len(too_long.encode()) > 255
    assert field in format_error(pdu_for(10, **{field: too_long}), 10)


def test_event_too_large() -> None:
    base = len(encode_canonical_json(pdu_for(10, content={"body": ""})))
    at_limit = pdu_for(10, content={"body": "a" * (65536 - base)})
    Event.from_pdu(at_limit, V["10"])
    over = pdu_for(10, content={"body": "a" * (65536 - base + 1)})
    assert format_error(over, 10) == "event too large"


@pytest.mark.parametrize("number", range(6, 13))
def test_strict_canonical_json_from_v6(number: int) -> None:
    assert "content.n" in format_error(pdu_for(number, content={"n": 1.5}), number)
    assert "content.n" in format_error(pdu_for(number, content={"n": 2**53}), number)
    assert "depth" in format_error(pdu_for(number, depth=2**53), number)
    Event.from_pdu(pdu_for(number, content={"n": 2**53 - 1, "m": -(2**53) + 1}), V[str(number)])


@pytest.mark.parametrize("number", range(1, 6))
def test_lenient_json_before_v6(number: int) -> None:
    event = Event.from_pdu(pdu_for(number, content={"n": 1.5, "big": 2**60}, depth=2**60), V[str(number)])
    assert event.content["big"] == 2**60 and event.depth == 2**60
    assert "JSON" in format_error(pdu_for(number, content={"n": float("inf")}), number)


def test_not_an_object() -> None:
    with pytest.raises(EventFormatError):
        Event.from_pdu([], V["10"])  # type: ignore[arg-type]


def test_redacts_moves_into_content_in_v11() -> None:
    v10 = Event.from_pdu(pdu_for(10, type="m.room.redaction", redacts="$t", content={}), V["10"])
    assert v10.redacts == "$t"
    assert "redacts" in format_error(pdu_for(10, type="m.room.redaction", redacts=5), 10)
    v11 = Event.from_pdu(pdu_for(11, type="m.room.redaction", redacts="$old", content={"redacts": "$t"}), V["11"])
    assert v11.redacts == "$t"
    assert Event.from_pdu(pdu_for(11, type="m.room.redaction", content={"redacts": 5}), V["11"]).redacts is None
    assert Event.from_pdu(pdu_for(11, content={"redacts": "$t"}), V["11"]).redacts is None


def v12_create() -> dict[str, Any]:
    return pdu_for(
        12, type="m.room.create", state_key="", room_id=DROP, prev_events=[], auth_events=[],
        depth=1, content={"room_version": "12", "additional_creators": ["@b:y"]},
    )


def test_v12_create_event_gives_the_room_id() -> None:
    create = v12_create()
    event = Event.from_pdu(create, V["12"])
    assert event.event_id.startswith("$") and len(event.event_id) == 44
    assert event.room_id == "!" + event.event_id[1:]
    assert event.room_id == "!" + compute_event_id(create, V["12"])[1:]
    assert "room_id" not in event.pdu


def test_v11_create_event_still_needs_a_room_id() -> None:
    assert "room_id" in format_error({**v12_create()}, 11)


def test_events_are_immutable_and_compare_by_id() -> None:
    pdu = pdu_for(10)
    a, b = Event.from_pdu(pdu, V["10"]), Event.from_pdu(copy.deepcopy(pdu), V["10"])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Event.from_pdu(pdu_for(10, depth=4), V["10"])
    with pytest.raises(AttributeError):
        a.event_id = "$x"  # type: ignore[misc]
    assert "hi" not in repr(a)


def test_redacted_event_keeps_id() -> None:
    event = Event.from_pdu(pdu_for(10), V["10"])
    redacted = event.redacted()
    assert redacted.event_id == event.event_id and redacted.content == {}
    assert compute_event_id(redacted.pdu, V["10"]) == event.event_id


# ---------------------------------------------------------------------------------------------- properties

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
EVENT_TYPES = ["m.room.message", "m.room.member", "m.room.create", "m.room.power_levels", "m.room.join_rules",
               "m.room.redaction", "m.room.history_visibility", "org.example.custom"]


def reordered(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys inserted in a shuffled order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: reordered(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [reordered(v, rng) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(
    number=st.integers(3, 12),
    event_type=st.sampled_from(EVENT_TYPES),
    content=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    extra=st.dictionaries(st.sampled_from(["origin", "unsigned", "membership", "custom"]), json_values),
    seed=st.integers(),
)
def test_event_id_is_stable_under_key_reordering_and_redaction(
    number: int, event_type: str, content: dict[str, Any], extra: dict[str, Any], seed: int
) -> None:
    room_version = V[str(number)]
    pdu = {**pdu_for(number, type=event_type, content=content), **extra}
    event_id = compute_event_id(pdu, room_version)
    assert compute_event_id(reordered(pdu, random.Random(seed)), room_version) == event_id
    pruned = prune_event_dict(room_version, pdu)
    assert compute_event_id(pruned, room_version) == event_id
    assert prune_event_dict(room_version, pruned) == pruned
