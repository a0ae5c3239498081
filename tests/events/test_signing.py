"""Signing and verifying, against the spec's cryptographic test vectors (appendix)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from homeserver.events.hashing import add_content_hash, check_content_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import InvalidSignatureError, sign_pdu, verify_pdu_signature

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
KEY = decode_signing_key_base64("ed25519", "1", SEED)
V1 = KNOWN_ROOM_VERSIONS["1"]


def test_json_signing_vectors() -> None:
    assert sign_json({}, "domain", KEY)["signatures"] == {
        "domain": {
            "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        }
    }
    assert sign_json({"one": 1, "two": "Two"}, "domain", KEY) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }


def minimal_event() -> dict[str, Any]:
    return {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }


def redactable_event() -> dict[str, Any]:
    return {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }


# The vectors predate room version 11, whose redaction algorithm drops `origin` (which they carry).
PRE_V11 = [v for v in KNOWN_ROOM_VERSIONS.values() if not v.updated_redaction_rules]


@pytest.mark.parametrize("room_version", PRE_V11, ids=lambda v: f"v{v.identifier}")
def test_event_signing_vector_minimal_event(room_version: Any) -> None:
    signed = sign_pdu(add_content_hash(minimal_event()), room_version, "domain", KEY)
    assert signed == {
        **minimal_event(),
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "signatures": {
            "domain": {
                "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
            }
        },
    }
    verify_pdu_signature(signed, room_version, "domain", get_verify_key(KEY))


@pytest.mark.parametrize("room_version", PRE_V11, ids=lambda v: f"v{v.identifier}")
def test_event_signing_vector_redactable_event(room_version: Any) -> None:
    signed = sign_pdu(add_content_hash(redactable_event()), room_version, "domain", KEY)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        }
    }
    assert signed["unsigned"] == {"age_ts": 1000000}
    assert check_content_hash(signed)


def test_v11_signs_without_origin() -> None:
    v11 = KNOWN_ROOM_VERSIONS["11"]
    signed = sign_pdu(add_content_hash(minimal_event()), v11, "domain", KEY)
    assert signed["signatures"]["domain"]["ed25519:1"] != (
        "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
    )
    # ...and so changing `origin` no longer invalidates the signature.
    verify_pdu_signature({**signed, "origin": "elsewhere"}, v11, "domain", get_verify_key(KEY))
    with pytest.raises(InvalidSignatureError):
        verify_pdu_signature({**signed, "origin": "elsewhere"}, V1, "domain", get_verify_key(KEY))


def test_signature_survives_redactable_changes_but_not_others() -> None:
    signed = sign_pdu(add_content_hash(redactable_event()), V1, "domain", KEY)
    verify_key = get_verify_key(KEY)
    edited = copy.deepcopy(signed)
    edited["content"]["body"] = "something else"
    verify_pdu_signature(edited, V1, "domain", verify_key)  # content is outside the redacted form...
    assert not check_content_hash(edited)  # ...which is what the content hash catches
    for key, value in [("type", "m.room.topic"), ("sender", "@v:domain"), ("origin_server_ts", 1)]:
        with pytest.raises(InvalidSignatureError):
            verify_pdu_signature({**signed, key: value}, V1, "domain", verify_key)


def test_missing_or_foreign_signatures_fail() -> None:
    signed = sign_pdu(add_content_hash(minimal_event()), V1, "domain", KEY)
    with pytest.raises(InvalidSignatureError):
        verify_pdu_signature(signed, V1, "other", get_verify_key(KEY))
    stranger = generate_signing_key("1")
    with pytest.raises(InvalidSignatureError):
        verify_pdu_signature(signed, V1, "domain", get_verify_key(stranger))


def test_signing_keeps_other_servers_signatures_and_does_not_mutate() -> None:
    first = sign_pdu(add_content_hash(minimal_event()), V1, "domain", KEY)
    before = copy.deepcopy(first)
    other_key = generate_signing_key("abc")
    both = sign_pdu(first, V1, "other.example", other_key)
    assert first == before
    assert set(both["signatures"]) == {"domain", "other.example"}
    verify_pdu_signature(both, V1, "domain", get_verify_key(KEY))
    verify_pdu_signature(both, V1, "other.example", get_verify_key(other_key))
