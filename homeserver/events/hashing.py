"""Content hashes, reference hashes and the event IDs derived from them (room versions 3+)."""

from __future__ import annotations

import hashlib
from typing import Any

from unpaddedbase64 import decode_base64, encode_base64

from homeserver.events.canonical import canonical_json
from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import RoomVersion


def compute_content_hash(pdu: dict[str, Any]) -> bytes:
    """sha256 over the canonical JSON of the PDU without `unsigned`, `signatures` and `hashes`."""
    stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(canonical_json(stripped)).digest()


def add_content_hash(pdu: dict[str, Any]) -> dict[str, Any]:
    """A copy of `pdu` with `hashes.sha256` set (other hash algorithms already present are kept)."""
    hashes = dict(pdu.get("hashes") or {})
    hashes["sha256"] = encode_base64(compute_content_hash(pdu))
    return {**pdu, "hashes": hashes}


def check_content_hash(pdu: dict[str, Any]) -> bool:
    """Whether `hashes.sha256` matches the content; False when it is missing or not valid base64.

    A mismatch means the event must be redacted before use (spec: checks performed on receipt of a PDU).
    """
    hashes = pdu.get("hashes")
    if not isinstance(hashes, dict) or not isinstance(hashes.get("sha256"), str):
        return False
    try:
        claimed = decode_base64(hashes["sha256"])
    except ValueError:
        return False
    return claimed == compute_content_hash(pdu)


def compute_reference_hash(pdu: dict[str, Any], room_version: RoomVersion) -> bytes:
    """sha256 over the redacted PDU without `signatures` and `unsigned`."""
    pruned = prune_event_dict(room_version, pdu)
    pruned.pop("signatures", None)
    pruned.pop("unsigned", None)
    return hashlib.sha256(canonical_json(pruned)).digest()


def compute_event_id(pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """The event ID: `$` + unpadded base64 of the reference hash (url-safe from v4).

    Room versions 1–2 carry their event ID in the PDU instead; it is returned from there.
    """
    if room_version.event_format == 1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("room versions 1-2 need 'event_id' in the PDU")
        return event_id
    encoded = encode_base64(
        compute_reference_hash(pdu, room_version), urlsafe=room_version.event_format >= 3
    )
    return "$" + encoded
