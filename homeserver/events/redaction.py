"""The redaction algorithm: what of an event survives redaction, per room version.

The redacted form is also what signatures and the reference hash (event ID) cover, so this must match every
other server bit for bit.
"""

from __future__ import annotations

from typing import Any

from homeserver.events.room_versions import RoomVersion

_TOP_LEVEL_KEYS_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
# v11 (MSC2176/MSC3821/MSC3989) stopped keeping the obsolete `prev_state`, `origin` and `membership`.
_TOP_LEVEL_KEYS_V11 = _TOP_LEVEL_KEYS_V1 - {"prev_state", "origin", "membership"}

_POWER_LEVEL_KEYS = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def _pruned_content(room_version: RoomVersion, event_type: Any, content: dict[str, Any]) -> dict[str, Any]:
    def keep(*keys: str) -> dict[str, Any]:
        return {k: content[k] for k in keys if k in content}

    if event_type == "m.room.member":
        kept = keep("membership")
        if room_version.restricted_join_rule_fix:
            kept.update(keep("join_authorised_via_users_server"))
        if room_version.updated_redaction_rules:
            invite = content.get("third_party_invite")
            if isinstance(invite, dict) and "signed" in invite:
                kept["third_party_invite"] = {"signed": invite["signed"]}
        return kept
    if event_type == "m.room.create":
        return dict(content) if room_version.updated_redaction_rules else keep("creator")
    if event_type == "m.room.join_rules":
        return keep("join_rule", "allow") if room_version.restricted_join_rule else keep("join_rule")
    if event_type == "m.room.power_levels":
        if room_version.updated_redaction_rules:
            return keep(*_POWER_LEVEL_KEYS, "invite")
        return keep(*_POWER_LEVEL_KEYS)
    if event_type == "m.room.history_visibility":
        return keep("history_visibility")
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return keep("aliases")
    if event_type == "m.room.redaction" and room_version.updated_redaction_rules:
        return keep("redacts")
    return {}


def prune_event_dict(room_version: RoomVersion, pdu: dict[str, Any]) -> dict[str, Any]:
    """A new dict holding what the redaction algorithm of `room_version` keeps of `pdu` (which is not changed)."""
    allowed = _TOP_LEVEL_KEYS_V11 if room_version.updated_redaction_rules else _TOP_LEVEL_KEYS_V1
    pruned = {k: v for k, v in pdu.items() if k in allowed}
    content = pdu.get("content")
    pruned["content"] = (
        _pruned_content(room_version, pdu.get("type"), content) if isinstance(content, dict) else {}
    )
    return pruned
