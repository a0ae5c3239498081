"""Applying retention where events are read and where policies are sent.

An expired event (sent more than the room's effective max_lifetime ago) is hidden from every
read path at once, without waiting for the purge job: the read paths share
`Visibility.filter_events`, which asks `filter_expired` first. The room's current state is never
hidden, however old: a room keeps its name and its members. Where a read path shows *state at a
point* (`/context`'s state, `/members?at=`, `unsigned.prev_content`), an expired state event
that is no longer current is shown pruned, as the purge will leave it (a stub the graph needs).

Cheap on the hot paths: an event younger than the shortest lifetime any room can have
(`RetentionRules.shortest_lifetime`) cannot have expired, so a woken /sync, whose events are
fresh, looks up no policy at all; otherwise the rooms' policies are read for all rooms at once
(`cutoffs`), from the current-state cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.clock import Clock
from homeserver.http.errors import MatrixError
from homeserver.retention.policy import STATE_KEY, RetentionRules, policy_from_content

if TYPE_CHECKING:
    from homeserver.server import HomeServer
    from storage.stores.event_fetch import StoredEvent
    from storage.stores.timeline import Direction


class RetentionHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self.rules = RetentionRules(hs.config.retention)
        # What "now" is for expiry, here and in the purge job; tests move it forward.
        self.clock: Clock = hs.clock

    def may_have_expired(self, ts: int, now_ms: int) -> bool:
        """False if an event sent at `ts` is surely still kept at `now_ms`, whatever its room's policy."""
        return self.rules.enabled and ts < now_ms - self.rules.shortest_lifetime

    async def cutoffs(self, room_ids: Collection[str], now_ms: int | None = None) -> dict[str, int]:
        """room_id -> the origin_server_ts before which its events have expired, for those of
        `room_ids` whose events expire at all; two queries at most, none on a warm cache."""
        if not self.rules.enabled or not room_ids:
            return {}
        now = self.clock.time_msec() if now_ms is None else now_ms
        # Kept in the current-state cache, which writers keep up to date: a policy change shows at once.
        policies = await self._store.state.get_current_state_events_for_rooms(room_ids, [STATE_KEY],
                                                                             cache_misses=True)
        out: dict[str, int] = {}
        for room_id in room_ids:
            stored = policies.get(room_id, {}).get(STATE_KEY)
            lifetime = self.rules.effective_max_lifetime(
                policy_from_content(stored.event.content) if stored is not None else None)
            if lifetime is not None:
                out[room_id] = now - lifetime
        return out

    async def expired_ids(self, events: Sequence["StoredEvent"]) -> set[str]:
        """The IDs of those events (of any rooms) that have expired and are not current state."""
        if not self.rules.enabled or not events:
            return set()
        now = self.clock.time_msec()
        candidates = [s for s in events if self.may_have_expired(s.event.origin_server_ts, now)]
        if not candidates:
            return set()
        cutoffs = await self.cutoffs({s.event.room_id for s in candidates}, now)
        expired = [s for s in candidates if (cutoff := cutoffs.get(s.event.room_id)) is not None
                   and s.event.origin_server_ts < cutoff]
        hidden = {s.event.event_id for s in expired}
        state_rooms = {s.event.room_id for s in expired if s.event.is_state()}
        if state_rooms:
            current = await self._store.state.get_current_state_for_rooms(state_rooms, cache_misses=True)
            for state in current.values():
                hidden -= set(state.values())
        return hidden

    async def filter_expired(self, events: Sequence["StoredEvent"]) -> list["StoredEvent"]:
        """The events that have not expired, in the given order; current state always stays."""
        hidden = await self.expired_ids(events)
        return [s for s in events if s.event.event_id not in hidden] if hidden else list(events)

    async def prune_expired(self, events: Sequence["StoredEvent"]) -> list["StoredEvent"]:
        """The events in the given order, those that expired pruned (redaction algorithm): for
        state at a point in the past, which names expired state events the purge keeps as stubs."""
        hidden = await self.expired_ids(events)
        if not hidden:
            return list(events)
        return [dataclasses.replace(s, event=s.event.redacted()) if s.event.event_id in hidden and not s.redacted_by
                else s for s in events]

    async def nearest_event(self, room_id: str, ts: int, direction: Direction) -> str | None:
        """`/timestamp_to_event`: the ID of the visible event nearest `ts` in `direction` ("b": the
        last at or before it, "f": the first at or after it), skipping expired ones."""
        cutoff = (await self.cutoffs([room_id])).get(room_id)
        if cutoff is None:
            return await self._store.events.get_event_ids_before_ts(room_id, ts, direction)
        return await self._store.retention.nearest_unexpired_event(room_id, ts, direction, cutoff)

    def check_content(self, content: dict[str, Any]) -> None:
        """400 M_BAD_JSON, saying why, unless a local user may send this m.room.retention content."""
        problem = self.rules.content_problem(content)
        if problem is not None:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Invalid m.room.retention: {problem}.")
