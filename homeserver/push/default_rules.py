"""The server-default push rules, as the current spec lists them (v1.17 removed the legacy rules
that looked for mentions in `content.body`: `.m.rule.contains_display_name`,
`.m.rule.contains_user_name`, `.m.rule.roomnotif`).

`USER_ID` in a condition stands for the owner's Matrix ID; `for_user` substitutes it.
"""

from __future__ import annotations

import copy
from typing import Any

USER_ID = "[the user's Matrix ID]"

KINDS = ("override", "content", "room", "sender", "underride")

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], enabled: bool = True) -> dict[str, Any]:
    return {"rule_id": rule_id, "default": True, "enabled": enabled, "conditions": conditions, "actions": actions}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


MASTER_RULE_ID = ".m.rule.master"

DEFAULT_RULES: dict[str, list[dict[str, Any]]] = {
    "override": [
        _rule(MASTER_RULE_ID, [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(".m.rule.invite_for_me",
              [_match("type", "m.room.member"), _match("content.membership", "invite"), _match("state_key", USER_ID)],
              ["notify", _SOUND_DEFAULT]),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(".m.rule.is_user_mention",
              [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": USER_ID}],
              ["notify", _SOUND_DEFAULT, _HIGHLIGHT]),
        _rule(".m.rule.is_room_mention",
              [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
               {"kind": "sender_notification_permission", "key": "room"}],
              ["notify", _HIGHLIGHT]),
        _rule(".m.rule.tombstone", [_match("type", "m.room.tombstone"), _match("state_key", "")], ["notify", _HIGHLIGHT]),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(".m.rule.room.server_acl", [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
        _rule(".m.rule.suppress_edits",
              [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}], []),
    ],
    "content": [],
    "room": [],
    "sender": [],
    "underride": [
        _rule(".m.rule.call", [_match("type", "m.call.invite")], ["notify", {"set_tweak": "sound", "value": "ring"}]),
        _rule(".m.rule.encrypted_room_one_to_one",
              [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
              ["notify", _SOUND_DEFAULT]),
        _rule(".m.rule.room_one_to_one",
              [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
              ["notify", _SOUND_DEFAULT]),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ],
}


def for_user(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """A fresh copy of the default rules with the owner's ID filled in."""
    rules = copy.deepcopy(DEFAULT_RULES)
    for kind_rules in rules.values():
        for rule in kind_rules:
            for condition in rule.get("conditions", ()):
                for field in ("pattern", "value"):
                    if condition.get(field) == USER_ID:
                        condition[field] = user_id
    return rules
