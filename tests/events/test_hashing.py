"""Content hashes, reference hashes and event IDs, checked against independently computed digests."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from homeserver.events.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
)
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS

V = KNOWN_ROOM_VERSIONS


def message_pdu() -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!r:x.org",
        "sender": "@u:x.org",
        "content": {"body": "hi", "msgtype": "m.text"},
        "prev_events": ["$p"],
        "auth_events": ["$a"],
        "depth": 7,
        "origin_server_ts": 1234,
        "hashes": {"sha256": "ignored"},
        "signatures": {"x.org": {"ed25519:k": "sig"}},
        "unsigned": {"age": 5},
    }


def b64(raw: bytes, *, urlsafe: bool) -> str:
    encoded = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    return encoded.decode().rstrip("=")


# The redacted form, without signatures/unsigned, written out by hand in canonical JSON.
REDACTED_CANONICAL = (
    b'{"auth_events":["$a"],"content":{},"depth":7,"hashes":{"sha256":"ignored"},'
    b'"origin_server_ts":1234,"prev_events":["$p"],"room_id":"!r:x.org","sender":"@u:x.org",'
    b'"type":"m.room.message"}'
)
CONTENT_CANONICAL = (
    b'{"auth_events":["$a"],"content":{"body":"hi","msgtype":"m.text"},"depth":7,'
    b'"origin_server_ts":1234,"prev_events":["$p"],"room_id":"!r:x.org","sender":"@u:x.org",'
    b'"type":"m.room.message"}'
)


def test_content_hash_covers_all_but_unsigned_signatures_hashes() -> None:
    assert compute_content_hash(message_pdu()) == hashlib.sha256(CONTENT_CANONICAL).digest()


def test_reference_hash_covers_the_redacted_form() -> None:
    expected = hashlib.sha256(REDACTED_CANONICAL).digest()
    for number in range(3, 13):
        assert compute_reference_hash(message_pdu(), V[str(number)]) == expected


@pytest.mark.parametrize("number", range(4, 13))
def test_event_id_is_urlsafe_reference_hash_from_v4(number: int) -> None:
    digest = hashlib.sha256(REDACTED_CANONICAL).digest()
    assert compute_event_id(message_pdu(), V[str(number)]) == "$" + b64(digest, urlsafe=True)


def test_event_id_is_standard_base64_in_v3() -> None:
    digest = hashlib.sha256(REDACTED_CANONICAL).digest()
    assert compute_event_id(message_pdu(), V["3"]) == "$" + b64(digest, urlsafe=False)


def test_v3_and_v4_ids_differ_only_in_alphabet() -> None:
    saw_difference = False
    for depth in range(1, 40):
        pdu = {**message_pdu(), "depth": depth}
        v3_id, v4_id = compute_event_id(pdu, V["3"]), compute_event_id(pdu, V["4"])
        assert v3_id.replace("+", "-").replace("/", "_") == v4_id
        saw_difference |= v3_id != v4_id
    assert saw_difference


def test_v1_event_id_comes_from_the_pdu() -> None:
    assert compute_event_id({**message_pdu(), "event_id": "$abc:x.org"}, V["1"]) == "$abc:x.org"
    with pytest.raises(ValueError):
        compute_event_id(message_pdu(), V["2"])


def test_event_id_ignores_redactable_parts_but_not_the_rest() -> None:
    base = compute_event_id(message_pdu(), V["10"])
    assert compute_event_id({**message_pdu(), "content": {"body": "other"}}, V["10"]) == base
    assert compute_event_id({**message_pdu(), "unsigned": {"age": 99}}, V["10"]) == base
    assert compute_event_id({**message_pdu(), "signatures": {}}, V["10"]) == base
    assert compute_event_id({**message_pdu(), "depth": 8}, V["10"]) != base
    assert compute_event_id({**message_pdu(), "hashes": {"sha256": "x"}}, V["10"]) != base


def test_add_and_check_content_hash() -> None:
    original = message_pdu()
    hashed = add_content_hash(original)
    assert original["hashes"] == {"sha256": "ignored"}  # not mutated
    assert hashed["hashes"]["sha256"] == b64(hashlib.sha256(CONTENT_CANONICAL).digest(), urlsafe=False)
    assert check_content_hash(hashed)
    assert check_content_hash({**hashed, "unsigned": {"x": 1}, "signatures": {}})
    assert not check_content_hash({**hashed, "content": {"body": "edited"}})
    assert not check_content_hash(message_pdu())
    assert not check_content_hash({**hashed, "hashes": {}})
    assert not check_content_hash({**hashed, "hashes": {"sha256": "!!!not base64"}})
    assert not check_content_hash({**hashed, "hashes": "nope"})
