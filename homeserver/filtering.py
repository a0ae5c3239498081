"""Client filters (`POST /user/{userId}/filter`, `/sync?filter=`, `/messages?filter=`): parsing,
validation and matching, with no I/O.

`Filter(definition)` validates a filter object against the spec's schema (raising
`FilterError` with the offending field's path) and gives typed sub-filters. Event types may use
`*` as a wildcard for any sequence of characters; an empty `types`/`senders`/`rooms` list lets
nothing through, an absent one everything, and the `not_` lists always win.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Mapping

from homeserver.util.dotted_paths import MISSING, split_path


class FilterError(ValueError):
    """The filter does not follow the spec's schema; the message names the field."""


@functools.lru_cache(maxsize=1024)
def _type_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    return any(_type_pattern(p).fullmatch(event_type) for p in patterns)


def _bool(obj: Mapping[str, Any], key: str, path: str, default: bool | None = False) -> bool | None:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FilterError(f"'{path}{key}' must be a boolean.")
    return value


def _str_list(obj: Mapping[str, Any], key: str, path: str, prefix: str = "") -> frozenset[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise FilterError(f"'{path}{key}' must be an array of strings.")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FilterError(f"'{path}{key}[{i}]' must be a string.")
        if prefix and not item.startswith(prefix):
            raise FilterError(f"'{path}{key}[{i}]' must be an ID starting with '{prefix}'.")
    return frozenset(value)


def _object(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FilterError(f"'{path}{key}' must be an object.")
    return value


class EventFilter:
    """`EventFilter` of the spec: presence and global account data, and the base of room filters."""

    def __init__(self, definition: Mapping[str, Any], path: str = "") -> None:
        if not isinstance(definition, dict):
            raise FilterError(f"'{path.rstrip('.') or 'filter'}' must be a JSON object.")
        limit = definition.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise FilterError(f"'{path}limit' must be a non-negative integer.")
        self.limit: int | None = limit
        self.types = _str_list(definition, "types", path)
        self.not_types = _str_list(definition, "not_types", path)
        self.senders = _str_list(definition, "senders", path, "@")
        self.not_senders = _str_list(definition, "not_senders", path, "@")

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether `event` (a client-format dict) passes; a sender test only applies to events with one."""
        event_type = event.get("type")
        if isinstance(event_type, str):
            if self.not_types and type_matches(event_type, self.not_types):
                return False
            if self.types is not None and not type_matches(event_type, self.types):
                return False
        sender = event.get("sender")
        if isinstance(sender, str):
            if self.not_senders and sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        return True

    def filter(self, events: Iterable[Mapping[str, Any]]) -> list[Any]:
        return [e for e in events if self.matches(e)]

    def limit_or(self, default: int, maximum: int) -> int:
        """The filter's limit, or `default` if it gives none, never above `maximum`."""
        return min(self.limit if self.limit is not None else default, maximum)


class RoomEventFilter(EventFilter):
    """`RoomEventFilter`: also rooms, `contains_url`, and the lazy-loading switches."""

    def __init__(self, definition: Mapping[str, Any], path: str = "") -> None:
        super().__init__(definition, path)
        self.rooms = _str_list(definition, "rooms", path, "!")
        self.not_rooms = _str_list(definition, "not_rooms", path, "!")
        self.contains_url = _bool(definition, "contains_url", path, None)
        self.lazy_load_members = bool(_bool(definition, "lazy_load_members", path))
        self.include_redundant_members = bool(_bool(definition, "include_redundant_members", path))
        self.unread_thread_notifications = bool(_bool(definition, "unread_thread_notifications", path))

    def room_allowed(self, room_id: str) -> bool:
        if self.not_rooms and room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event: Mapping[str, Any], room_id: str | None = None) -> bool:
        room = room_id if room_id is not None else event.get("room_id")
        if isinstance(room, str) and not self.room_allowed(room):
            return False
        if self.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, dict) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return super().matches(event)

    def filter(self, events: Iterable[Mapping[str, Any]], room_id: str | None = None) -> list[Any]:
        return [e for e in events if self.matches(e, room_id)]

    def store_arguments(self) -> dict[str, Any]:
        """The parts a store can apply in SQL (so a filtered page still has `limit` events)."""
        return {
            "types": sorted(self.types) if self.types is not None else None,
            "not_types": sorted(self.not_types) if self.not_types else None,
            "senders": sorted(self.senders) if self.senders is not None else None,
            "not_senders": sorted(self.not_senders) if self.not_senders else None,
            "contains_url": self.contains_url,
        }


class Filter:
    """A whole filter (`Filter` in the spec's `sync_filter` schema)."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        if not isinstance(definition, dict):
            raise FilterError("The filter must be a JSON object.")
        self.definition = definition
        fields = _str_list(definition, "event_fields", "")
        self.event_fields: list[tuple[str, ...]] | None = (
            None if fields is None else [split_path(f) for f in definition["event_fields"]]
        )
        event_format = definition.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise FilterError("'event_format' must be 'client' or 'federation'.")
        self.event_format: str = event_format
        self.presence = EventFilter(_object(definition, "presence", ""), "presence.")
        self.account_data = EventFilter(_object(definition, "account_data", ""), "account_data.")
        room = _object(definition, "room", "")
        self.rooms = _str_list(room, "rooms", "room.", "!")
        self.not_rooms = _str_list(room, "not_rooms", "room.", "!")
        self.include_leave = bool(_bool(room, "include_leave", "room."))
        self.ephemeral = RoomEventFilter(_object(room, "ephemeral", "room."), "room.ephemeral.")
        self.state = RoomEventFilter(_object(room, "state", "room."), "room.state.")
        self.timeline = RoomEventFilter(_object(room, "timeline", "room."), "room.timeline.")
        self.room_account_data = RoomEventFilter(_object(room, "account_data", "room."), "room.account_data.")

    def room_allowed(self, room_id: str) -> bool:
        """The top-level `room.rooms`/`room.not_rooms`, applied before the per-section filters."""
        if self.not_rooms and room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def lazy_load_members(self) -> bool:
        return self.state.lazy_load_members

    @property
    def include_redundant_members(self) -> bool:
        return self.state.include_redundant_members

    def apply_event_fields(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` cut down to `event_fields` (unchanged if the filter has none)."""
        if self.event_fields is None:
            return event
        out: dict[str, Any] = {}
        for path in self.event_fields:
            value: Any = event
            for key in path:
                if not isinstance(value, dict) or key not in value:
                    value = MISSING
                    break
                value = value[key]
            if value is MISSING:
                continue
            target = out
            for key in path[:-1]:
                existing = target.get(key)
                if not isinstance(existing, dict):
                    existing = target[key] = {}
                target = existing
            target[path[-1]] = value
        return out


DEFAULT_FILTER = Filter({})
