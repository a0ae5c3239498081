"""Building, hashing and signing new events in the wire format of their room version."""

from __future__ import annotations

import secrets
from typing import Any

from signedjson.key import SigningKey

from homeserver.events.event import Event
from homeserver.events.hashing import add_content_hash
from homeserver.events.room_versions import RoomVersion
from homeserver.events.signing import sign_pdu


def _refs(
    room_version: RoomVersion, event_ids: list[str], hashes: dict[str, dict[str, str]] | None
) -> list[Any]:
    if room_version.event_format != 1:
        return list(event_ids)
    known = hashes or {}
    return [[event_id, dict(known.get(event_id, {}))] for event_id in event_ids]


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str | None,
    type: str,
    state_key: str | None,
    sender: str,
    content: dict[str, Any],
    prev_event_ids: list[str],
    auth_event_ids: list[str],
    depth: int,
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    redacts: str | None = None,
    prev_event_hashes: dict[str, dict[str, str]] | None = None,
) -> Event:
    """A new signed event from `server_name`.

    `room_id` is None exactly for the create event of a v12 room (its ID derives from the event).
    `prev_event_hashes` maps event ID -> {"sha256": ...} for the [id, hashes] references of v1–2 rooms,
    used for both prev and auth events. `redacts` goes top level before v11 and into content from v11.
    Raises `EventFormatError` if the result is malformed (e.g. too large).
    """
    hydra_create = room_version.hydra and type == "m.room.create"
    if hydra_create and room_id is not None:
        raise ValueError("a room version 12 create event has no room_id")
    if not hydra_create and room_id is None:
        raise ValueError("room_id is required")

    pdu: dict[str, Any] = {
        "type": type,
        "sender": sender,
        "content": dict(content),
        "prev_events": _refs(room_version, prev_event_ids, prev_event_hashes),
        "auth_events": _refs(room_version, auth_event_ids, prev_event_hashes),
        "depth": depth,
        "origin_server_ts": origin_server_ts,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.updated_redaction_rules:
            pdu["content"]["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    if room_version.event_format == 1:
        pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{server_name}"

    pdu = sign_pdu(add_content_hash(pdu), room_version, server_name, signing_key)
    return Event.from_pdu(pdu, room_version)
