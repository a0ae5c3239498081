"""Presence: online / unavailable / offline, "last seen" and a status message, on the "presence" stream.

Everyone in the organisation sees everyone's presence. States move on their own too: a user with
no activity for `IDLE_TIMEOUT_MS` becomes unavailable, and one with no /sync running for
`SYNC_TIMEOUT_MS` goes offline; `check_timeouts` does both and runs periodically.
Activity is written at most once per `ACTIVE_GRANULARITY_MS` per user, so syncing and sending
don't turn into a database write each.
"""

from __future__ import annotations

import collections
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

from homeserver.http.errors import bad_json
from storage.stores.presence import PresenceState, PresenceUpdate

if TYPE_CHECKING:
    from homeserver.server import HomeServer

STREAM = "presence"
STATES = ("online", "unavailable", "offline")
IDLE_TIMEOUT_MS = 5 * 60_000
SYNC_TIMEOUT_MS = 30_000
ACTIVE_GRANULARITY_MS = 60_000
TIMEOUT_CHECK_INTERVAL_S = 5.0
MAX_STATUS_MSG_CHARS = 1024


class PresenceHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.presence
        self._clock = hs.clock
        self._notifier = hs.notifier
        # Open /sync requests per user, and when each user's last one ended (or began).
        self._syncing: collections.Counter[str] = collections.Counter()
        self._last_sync_ms: dict[str, int] = {}
        self._started_ms = self._clock.time_msec()
        self._known: dict[str, Any] = {}  # user -> PresenceState | None, as last read or written

    def current_position(self) -> int:
        return self._store.stream.get_current_token()

    # -- changes -------------------------------------------------------------

    async def _current(self, user_id: str) -> Any:
        """The user's presence; from memory once read or written here (this handler is the only writer)."""
        if user_id in self._known:
            return self._known[user_id]
        state = (await self._store.get_presence([user_id])).get(user_id)
        self._known[user_id] = state
        return state

    async def _write(self, updates: list[PresenceUpdate]) -> None:
        for update in updates:
            self._known.pop(update.user_id, None)  # re-read after a write we didn't see complete
        written = await self._store.set_presence(updates)
        for state in written:
            self._known[state.user_id] = state
        if written:
            # Presence is visible to the whole organisation: wake every open /sync, and the owners.
            users = set(self._syncing) | {s.user_id for s in written}
            self._notifier.notify(STREAM, max(s.stream_id for s in written), users=users)

    async def set_state(self, user_id: str, state: str, status_msg: str | None) -> None:
        """`PUT /presence/{userId}/status`: the state and status message (absent clears it)."""
        if state not in STATES:
            raise bad_json(f"'presence' must be one of {', '.join(STATES)}.")
        if status_msg is not None and len(status_msg) > MAX_STATUS_MSG_CHARS:
            raise bad_json(f"'status_msg' is limited to {MAX_STATUS_MSG_CHARS} characters.")
        now = self._clock.time_msec()
        self._last_sync_ms[user_id] = now
        current = await self._current(user_id)
        last_active = now if state == "online" or current is None else current.last_active_ts
        await self._write([PresenceUpdate(user_id, state, status_msg, last_active)])

    async def bump_last_active(self, user_id: str) -> None:
        """A pro-active action (sending a message...): online, and active now."""
        await self._seen_active(user_id, "online")

    async def _seen_active(self, user_id: str, wanted: str) -> None:
        now = self._clock.time_msec()
        current = await self._current(user_id)
        if current is None or current.state == "offline":
            await self._write([PresenceUpdate(user_id, wanted, current.status_msg if current else None, now)])
            return
        if wanted == "online" and (current.state != "online" or now - current.last_active_ts >= ACTIVE_GRANULARITY_MS):
            await self._write([PresenceUpdate(user_id, "online", current.status_msg, now)])

    @asynccontextmanager
    async def syncing(self, user_id: str, set_presence: str = "online") -> AsyncIterator[None]:
        """Wrap a `/sync` request: it keeps the user from timing out to offline, and with
        `set_presence` online (the default) or unavailable it brings them out of offline."""
        if set_presence not in STATES:
            raise bad_json(f"'set_presence' must be one of {', '.join(STATES)}.")
        self._syncing[user_id] += 1
        self._last_sync_ms[user_id] = self._clock.time_msec()
        try:
            if set_presence != "offline":
                await self._seen_active(user_id, set_presence)
            yield
        finally:
            self._syncing[user_id] -= 1
            if self._syncing[user_id] <= 0:
                del self._syncing[user_id]
            self._last_sync_ms[user_id] = self._clock.time_msec()

    async def profile_changed(self, user_id: str) -> None:
        """Re-announce the user's presence, which carries their name and avatar."""
        current = await self._current(user_id)
        if current is not None:
            await self._write([PresenceUpdate(user_id, current.state, current.status_msg, current.last_active_ts)])

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: announce the user offline without a status (open syncs hear it), then
        delete their row and forget them here. Returns the rows deleted."""
        current = await self._current(user_id)
        if current is not None and (current.state != "offline" or current.status_msg):
            await self._write([PresenceUpdate(user_id, "offline", None, current.last_active_ts)])
        deleted = await self._store.erase_user(user_id)
        self._known.pop(user_id, None)
        self._last_sync_ms.pop(user_id, None)
        return deleted

    async def check_timeouts(self) -> None:
        """Idle users become unavailable; users with no /sync for a while go offline."""
        now = self._clock.time_msec()
        updates = []
        for state in await self._store.get_not_offline():
            last_sync = self._last_sync_ms.get(state.user_id, self._started_ms)
            if state.user_id not in self._syncing and now - last_sync > SYNC_TIMEOUT_MS:
                updates.append(PresenceUpdate(state.user_id, "offline", state.status_msg, state.last_active_ts))
            elif state.state == "online" and now - state.last_active_ts > IDLE_TIMEOUT_MS:
                updates.append(PresenceUpdate(state.user_id, "unavailable", state.status_msg, state.last_active_ts))
        await self._write(updates)

    # -- reading ---------------------------------------------------------------

    def _content(self, state: PresenceState, now: int, profile: dict[str, Any]) -> dict[str, Any]:
        content: dict[str, Any] = {"presence": state.state, "last_active_ago": max(0, now - state.last_active_ts)}
        if state.state == "online":
            content["currently_active"] = now - state.last_active_ts < ACTIVE_GRANULARITY_MS
        if state.status_msg:
            content["status_msg"] = state.status_msg
        content.update(profile)
        return content

    async def get_status(self, user_id: str) -> dict[str, Any] | None:
        """`GET /presence/{userId}/status`: None if the user doesn't exist here."""
        if user_id.partition(":")[2] != self._hs.hostname:
            return None
        user = await self._hs.store.users.get_user(user_id)
        if user is None or user.deactivated:
            return None
        state = (await self._store.get_presence([user_id])).get(user_id)
        if state is None:
            return {"presence": "offline"}
        return self._content(state, self._clock.time_msec(), {})

    async def get_sync_presence(self, user_id: str, from_pos: int, to_pos: int, *,
                                initial: bool) -> list[dict[str, Any]]:
        """`m.presence` events for a sync over (from_pos, to_pos]. An initial sync (0) gets the
        users who are not offline; an incremental one every change, going offline included."""
        changes = await self._store.get_changes(from_pos, to_pos)
        if initial:
            changes = [s for s in changes if s.state != "offline"]
        if not changes:
            return []
        profiles = await self._hs.profile_handler.get_profiles([s.user_id for s in changes])
        now = self._clock.time_msec()
        return [
            {"type": "m.presence", "sender": s.user_id, "content": self._content(s, now, profiles.get(s.user_id, {}))}
            for s in changes
        ]
