"""Room versions 1–12 as flags, so the event model asks "does this version do X?" rather than comparing numbers."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # 1: v1–2 (event_id in the PDU, prev/auth events as [id, {hashes}] pairs);
    # 2: v3 (event ID is the standard-base64 reference hash); 3: v4+ (url-safe base64 reference hash).
    event_format: int
    state_res: int  # 1 for v1, 2 for v2+
    enforce_key_validity: bool  # v5+
    special_case_aliases_auth: bool  # v1–5
    strict_canonicaljson: bool  # v6+
    limit_notifications_power_levels: bool  # v6+
    knock_join_rule: bool  # v7+
    restricted_join_rule: bool  # v8+
    restricted_join_rule_fix: bool  # v9+
    knock_restricted_join_rule: bool  # v10+
    enforce_int_power_levels: bool  # v10+
    implicit_room_creator: bool  # v11+: the create event has no `creator`; its sender is the creator
    updated_redaction_rules: bool  # v11+
    # v12: room ID = '!' + the create event's reference hash; the create event has no room_id and is not
    # listed in auth_events; `additional_creators`; creators have infinite power.
    hydra: bool


_V1 = RoomVersion(
    identifier="1",
    event_format=1,
    state_res=1,
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    strict_canonicaljson=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    restricted_join_rule_fix=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    updated_redaction_rules=False,
    hydra=False,
)
_V2 = replace(_V1, identifier="2", state_res=2)
_V3 = replace(_V2, identifier="3", event_format=2)
_V4 = replace(_V3, identifier="4", event_format=3)
_V5 = replace(_V4, identifier="5", enforce_key_validity=True)
_V6 = replace(
    _V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonicaljson=True,
    limit_notifications_power_levels=True,
)
_V7 = replace(_V6, identifier="7", knock_join_rule=True)
_V8 = replace(_V7, identifier="8", restricted_join_rule=True)
_V9 = replace(_V8, identifier="9", restricted_join_rule_fix=True)
_V10 = replace(_V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True)
_V11 = replace(_V10, identifier="11", implicit_room_creator=True, updated_redaction_rules=True)
_V12 = replace(_V11, identifier="12", hydra=True)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)
}
DEFAULT_ROOM_VERSION = "12"
