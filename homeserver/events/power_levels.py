"""Power levels: who may do what in a room, from `m.room.power_levels` and `m.room.create`, per room version.

Shared by the auth rules, state resolution (ordering by sender power) and the client path (may this user send
that? is this power-levels content acceptable?), so all of them read levels the same way.

Room version differences handled here:
- v1–9 accept integers written as strings (`" +050 "`); v1–5 also accept floats, truncated (spec:
  "stringy" and "floaty" power levels). v10+ accept integers only.
- With no `m.room.power_levels` event the room creator has 100 and everyone else 0 (v1–11). The creator is
  `content.creator` of the create event up to v10 and its `sender` from v11.
- v12: the room creators (create event sender + `content.additional_creators`) have an infinite level,
  `CREATOR_POWER_LEVEL` (= `math.inf`, which compares above every integer), whatever the power-levels event
  says; they may not appear in its `users`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from homeserver.events.canonical import MAX_SAFE_INTEGER, MIN_SAFE_INTEGER
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from homeserver.events.user_ids import is_valid_user_id, server_of

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")

# A float only so that it can be infinite; every finite level is an int.
PowerLevel = int | float
CREATOR_POWER_LEVEL: float = math.inf
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100  # v1–11, when the room has no m.room.power_levels event

# The spec's defaults for properties absent from the content (or for a room without the event).
DEFAULT_LEVELS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "invite": 0,
    "kick": 50,
    "ban": 50,
    "redact": 50,
}
LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite")
DEFAULT_NOTIFICATION_LEVEL = 50  # the spec gives `room` a default of 50; other keys get the same

# v1–9 string form: optional whitespace, one optional sign, decimal digits, optional whitespace.
_STRINGY_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)


def parse_level(value: Any, room_version: RoomVersion) -> int | None:
    """The integer a power-levels value stands for in `room_version`, or None if it stands for no level."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str):
        return int(value) if _STRINGY_INT_RE.fullmatch(value) else None
    if isinstance(value, float) and not room_version.strict_canonicaljson and math.isfinite(value):
        return int(value)  # truncates towards zero, as the spec asks
    return None


def room_creators(create_event: Event | None) -> frozenset[str]:
    """The users the create event names as creators, per its room version.

    v1–10: `content.creator`; v11: the sender; v12: the sender plus valid `content.additional_creators`.
    """
    if create_event is None:
        return frozenset()
    version = create_event.room_version
    if not version.implicit_room_creator:
        creator = create_event.content.get("creator")
        return frozenset([creator]) if isinstance(creator, str) else frozenset()
    creators = {create_event.sender}
    if version.hydra:
        additional = create_event.content.get("additional_creators")
        if isinstance(additional, list):
            creators.update(u for u in additional if isinstance(u, str))
    return frozenset(creators)


def format_level(level: PowerLevel) -> str:
    """A level for error messages: creators' infinite level reads as such, not as 'inf'."""
    return "infinite (room creator)" if level == CREATOR_POWER_LEVEL else str(level)


@dataclass(frozen=True)
class PowerLevels:
    """The levels in force in a room: its power-levels content (None without the event) and its creators."""

    room_version: RoomVersion
    content: Mapping[str, Any] | None
    creators: frozenset[str]

    @classmethod
    def from_state(cls, state: Mapping[StateKey, Event], room_version: RoomVersion) -> "PowerLevels":
        """Read from a state map (or auth events keyed by (type, state_key)); other entries are ignored."""
        pl_event = state.get(POWER_LEVELS_KEY)
        return cls(
            room_version=room_version,
            content=pl_event.content if pl_event is not None else None,
            creators=room_creators(state.get(CREATE_KEY)),
        )

    def _value(self, key: str) -> int:
        if self.content is not None and key in self.content:
            level = parse_level(self.content[key], self.room_version)
            if level is not None:
                return level
        return DEFAULT_LEVELS[key]

    def level(self, key: str) -> int:
        """One of `LEVEL_KEYS` ("invite", "kick", "ban", "redact", "users_default", …), defaults applied."""
        return self._value(key)

    def user_level(self, user_id: str) -> PowerLevel:
        if self.room_version.hydra and user_id in self.creators:
            return CREATOR_POWER_LEVEL
        if self.content is None:
            if not self.room_version.hydra and user_id in self.creators:
                return CREATOR_LEVEL_WITHOUT_POWER_LEVELS
            return DEFAULT_LEVELS["users_default"]
        users = self.content.get("users")
        if isinstance(users, dict) and user_id in users:
            level = parse_level(users[user_id], self.room_version)
            if level is not None:
                return level
        return self._value("users_default")

    def event_level(self, event_type: str, is_state: bool) -> int:
        """The level needed to send an event of `event_type` (state or not): `events`, else the defaults."""
        events = self.content.get("events") if self.content is not None else None
        if isinstance(events, dict) and event_type in events:
            level = parse_level(events[event_type], self.room_version)
            if level is not None:
                return level
        return self._value("state_default" if is_state else "events_default")

    def notification_level(self, key: str) -> int:
        """The level needed to trigger the `key` notification (e.g. "room" for @room)."""
        notifications = self.content.get("notifications") if self.content is not None else None
        if isinstance(notifications, dict) and key in notifications:
            level = parse_level(notifications[key], self.room_version)
            if level is not None:
                return level
        return DEFAULT_NOTIFICATION_LEVEL


def _version_of(state: Mapping[StateKey, Event]) -> RoomVersion | None:
    for key in (POWER_LEVELS_KEY, CREATE_KEY):
        event = state.get(key)
        if event is not None:
            return event.room_version
    return None


def user_power_level(user_id: str, state: Mapping[StateKey, Event], room_version: RoomVersion) -> PowerLevel:
    """`user_id`'s level in a room with `state`; `CREATOR_POWER_LEVEL` (math.inf) for v12 creators.

    For v12 `state` must hold the create event (state resolution adds it: auth events never list it).
    """
    return PowerLevels.from_state(state, room_version).user_level(user_id)


def required_power_level(event_type: str, state_key: str | None, state: Mapping[StateKey, Event]) -> int:
    """The level needed to send an event of `event_type` (a state event iff `state_key` is not None)."""
    version = _version_of(state)
    if version is None:  # no power levels and no create event: only the spec's defaults apply
        return DEFAULT_LEVELS["state_default" if state_key is not None else "events_default"]
    return PowerLevels.from_state(state, version).event_level(event_type, state_key is not None)


def notification_level(key: str, state: Mapping[StateKey, Event]) -> int:
    """The level needed to trigger the `key` notification (push condition sender_notification_permission)."""
    version = _version_of(state)
    if version is None:
        return DEFAULT_NOTIFICATION_LEVEL
    return PowerLevels.from_state(state, version).notification_level(key)


def can_redact(redaction: Event, original: Event, state: Mapping[StateKey, Event]) -> bool:
    """Whether `redaction` takes effect on `original`, given the room state at the redaction.

    v3+ (spec: "handling redactions"): the redaction sender has the redact level, or is on the same server as
    the original's sender. v1–2 (auth rule 11): the redact level, or both event IDs are from one server.
    """
    version = redaction.room_version
    levels = PowerLevels.from_state(state, version)
    if levels.user_level(redaction.sender) >= levels.level("redact"):
        return True
    if version.event_format == 1:
        return server_of(redaction.event_id) == server_of(original.event_id) != ""
    return server_of(redaction.sender) == server_of(original.sender)


def can_user_redact(
    user_id: str, original_sender: str, state: Mapping[StateKey, Event], room_version: RoomVersion
) -> bool:
    """The client-server rule for a local user's redaction: own events, or others' with the redact level.

    Stricter than `can_redact`, whose same-server clause would let any local user redact another's events.
    """
    if user_id == original_sender:
        return True
    levels = PowerLevels.from_state(state, room_version)
    return levels.user_level(user_id) >= levels.level("redact")


def power_levels_content_error(
    content: Mapping[str, Any],
    room_version: RoomVersion,
    *,
    creators: frozenset[str] = frozenset(),
    require_integers: bool = False,
) -> str | None:
    """Why `content` is not acceptable as `m.room.power_levels` content, or None when it is.

    Applies the content checks of the auth rules for `room_version` (v1–9: `users`; v10+: every value an
    integer; v12: no creator in `users` — pass the room's `creators`). `require_integers=True` is for the
    client path: new events get integers within the canonical JSON range in every room version (the spec asks
    servers not to let clients send string levels even where old versions accept them).
    """
    strict = require_integers or room_version.enforce_int_power_levels

    def problem(value: Any) -> str | None:
        if strict:
            if isinstance(value, bool) or not isinstance(value, int):
                return "must be an integer"
            if require_integers and not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return f"must be between {MIN_SAFE_INTEGER} and {MAX_SAFE_INTEGER}"
            return None
        return None if parse_level(value, room_version) is not None else "must be an integer"

    if strict:
        for key in LEVEL_KEYS:
            if key in content and (reason := problem(content[key])):
                return f"'{key}' {reason}"
        for key in ("events", "notifications"):
            if key not in content:
                continue
            mapping = content[key]
            if not isinstance(mapping, dict):
                return f"'{key}' must be an object"
            for name, value in mapping.items():
                if reason := problem(value):
                    return f"'{key}.{name}' {reason}"
    if "users" in content:
        users = content["users"]
        if not isinstance(users, dict):
            return "'users' must be an object mapping user IDs to power levels"
        for user_id, value in users.items():
            if not is_valid_user_id(user_id):
                return f"'users' has a key that is not a valid user ID: {user_id!r}"
            if reason := problem(value):
                return f"'users.{user_id}' {reason}"
            if room_version.hydra and user_id in creators:
                return (
                    f"'users' must not list {user_id}: room creators have infinite power in room "
                    f"version {room_version.identifier} and can't be given a level"
                )
    return None
