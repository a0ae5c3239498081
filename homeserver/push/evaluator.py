"""Evaluating push rules against an event, for one recipient.

`evaluate` returns the actions of the first enabled rule that matches (an empty list when none
does, or when the recipient sent the event). `notifies`/`is_highlight` read those actions the
way /sync's `unread_notifications` needs. Patterns are compiled once and cached, since send
evaluates every member's rules for every event.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from homeserver.push.rules import HISTORICAL_ACTIONS, PushRule, PushRuleset
from homeserver.util.dotted_paths import MISSING, lookup

_MAX_SAFE_INT = 2**53 - 1
# A word boundary for `content.body`: the value's start or end, or a character outside [A-Za-z0-9_].
_WORD_START = r"(?<![A-Za-z0-9_])"
_WORD_END = r"(?![A-Za-z0-9_])"
_MEMBER_COUNT_RE = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


def _glob_regex(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    body = _glob_regex(pattern)
    if word_boundary:
        return re.compile(_WORD_START + body + _WORD_END, re.IGNORECASE | re.DOTALL)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, word_boundary: bool = False) -> bool:
    """The spec's glob (`*`, `?`), case-insensitive; on a word-bounded substring for `content.body`."""
    regex = _compiled(pattern, word_boundary)
    return (regex.search(value) if word_boundary else regex.fullmatch(value)) is not None


def _is_simple_value(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def _same_value(a: Any, b: Any) -> bool:
    # true is not 1 and "1" is not 1: no casting between JSON types.
    return type(a) is type(b) and a == b


def _power(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


class _Context:
    __slots__ = ("event", "display_name", "room_member_count", "power_levels", "sender_power_level")

    def __init__(self, event: Mapping[str, Any], display_name: str | None, room_member_count: int,
                 power_levels: Mapping[str, Any], sender_power_level: int) -> None:
        self.event = event
        self.display_name = display_name
        self.room_member_count = room_member_count
        self.power_levels = power_levels
        self.sender_power_level = sender_power_level


def condition_matches(condition: Mapping[str, Any], ctx: _Context) -> bool:
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup(ctx.event, key)
        return isinstance(value, str) and glob_matches(pattern, value, word_boundary=key == "content.body")
    if kind == "event_property_is":
        key, expected = condition.get("key"), condition.get("value", MISSING)
        if not isinstance(key, str) or expected is MISSING or not _is_simple_value(expected):
            return False
        value = lookup(ctx.event, key)
        return value is not MISSING and _is_simple_value(value) and _same_value(value, expected)
    if kind == "event_property_contains":
        key, expected = condition.get("key"), condition.get("value", MISSING)
        if not isinstance(key, str) or expected is MISSING or not _is_simple_value(expected):
            return False
        value = lookup(ctx.event, key)
        return isinstance(value, list) and any(_is_simple_value(v) and _same_value(v, expected) for v in value)
    if kind == "contains_display_name":
        body = lookup(ctx.event, "content.body")
        if not ctx.display_name or not isinstance(body, str):
            return False
        regex = _compiled_literal(ctx.display_name)
        return regex.search(body) is not None
    if kind == "room_member_count":
        spec = condition.get("is")
        match = _MEMBER_COUNT_RE.match(spec) if isinstance(spec, str) else None
        if match is None:
            return False
        op, number = match.group(1) or "==", int(match.group(2))
        count = ctx.room_member_count
        return {"==": count == number, "<": count < number, ">": count > number,
                "<=": count <= number, ">=": count >= number}[op]
    if kind == "sender_notification_permission":
        key = condition.get("key")
        if not isinstance(key, str):
            return False
        notifications = ctx.power_levels.get("notifications")
        required = _power(notifications.get(key) if isinstance(notifications, dict) else None, 50)
        return ctx.sender_power_level >= required
    # Unrecognised conditions never match (spec), which disables their rule.
    return False


@functools.lru_cache(maxsize=1024)
def _compiled_literal(text: str) -> re.Pattern[str]:
    return re.compile(_WORD_START + re.escape(text) + _WORD_END, re.IGNORECASE)


def _rule_matches(rule: PushRule, ctx: _Context) -> bool:
    if rule.kind in ("override", "underride"):
        return all(condition_matches(c, ctx) for c in rule.conditions or ())
    if rule.kind == "content":
        body = lookup(ctx.event, "content.body")
        return rule.pattern is not None and isinstance(body, str) and glob_matches(rule.pattern, body, word_boundary=True)
    if rule.kind == "room":
        return ctx.event.get("room_id") == rule.rule_id
    if rule.kind == "sender":
        return ctx.event.get("sender") == rule.rule_id
    return False


def evaluate(ruleset: PushRuleset, event: Mapping[str, Any], *, user_id: str, display_name: str | None,
             room_member_count: int, power_levels: Mapping[str, Any] | None, sender_power_level: int) -> list[Any]:
    """The actions for `user_id` of `event` (a client-format dict with `room_id`).

    `display_name` is the user's name in that room, `power_levels` the room's power-levels content
    (empty or None if it has none), `sender_power_level` the sender's level in the room.
    """
    if event.get("sender") == user_id:
        return []
    ctx = _Context(event, display_name, room_member_count, power_levels or {}, sender_power_level)
    for rule in ruleset.ordered():
        if rule.enabled and _rule_matches(rule, ctx):
            return [a for a in rule.actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)]
    return []


def notifies(actions: list[Any]) -> bool:
    return "notify" in actions


def is_highlight(actions: list[Any]) -> bool:
    """A `highlight` tweak with no value means true; no tweak at all means false."""
    for action in actions:
        if isinstance(action, dict) and action.get("set_tweak") == "highlight":
            return action.get("value", True) is True
    return False
