"""Applying retention where events are read and where policies are sent.

An expired event (sent more than the room's effective max_lifetime ago) is hidden from every
read path at once, without waiting for the purge job: the read paths share
`Visibility.filter_events`, which asks `filter_expired` first. The room's current state is never
hidden, however old: a room keeps its name and its members.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.clock import Clock
from homeserver.http.errors import MatrixError
from homeserver.retention.policy import STATE_KEY, RetentionRules, policy_from_content

if TYPE_CHECKING:
    from homeserver.server import HomeServer
    from storage.stores.event_fetch import StoredEvent


class RetentionHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self.rules = RetentionRules(hs.config.retention)
        # What "now" is for expiry, here and in the purge job; tests move it forward.
        self.clock: Clock = hs.clock

    async def max_lifetime(self, room_id: str) -> int | None:
        """The room's effective max_lifetime in ms (None: its events are kept for ever)."""
        if not self.rules.enabled:
            return None
        state = await self._store.state.get_current_state_events(room_id, [STATE_KEY])
        stored = state.get(STATE_KEY)
        return self.rules.effective_max_lifetime(policy_from_content(stored.event.content) if stored else None)

    async def filter_expired(self, events: Sequence["StoredEvent"]) -> list["StoredEvent"]:
        """The events that have not expired, in the given order; current state always stays."""
        if not self.rules.enabled or not events:
            return list(events)
        now = self.clock.time_msec()
        cutoffs: dict[str, int | None] = {}
        for room_id in {s.event.room_id for s in events}:
            lifetime = await self.max_lifetime(room_id)
            cutoffs[room_id] = None if lifetime is None else now - lifetime
        expired = [s for s in events if (cutoff := cutoffs[s.event.room_id]) is not None
                   and s.event.origin_server_ts < cutoff]
        if not expired:
            return list(events)
        hidden = {s.event.event_id for s in expired}
        for room_id in {s.event.room_id for s in expired if s.event.is_state()}:
            current = await self._store.state.get_current_state(room_id)
            hidden -= set(current.values())
        return [s for s in events if s.event.event_id not in hidden]

    def check_content(self, content: dict[str, Any]) -> None:
        """400 M_BAD_JSON, saying why, unless a local user may send this m.room.retention content."""
        problem = self.rules.content_problem(content)
        if problem is not None:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Invalid m.room.retention: {problem}.")
