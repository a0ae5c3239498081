"""Who may see which events: the spec's `m.room.history_visibility` rules.

For each event the user's membership and the room's history visibility are read from the state at
that event. Events share state groups (state only changes on state events), so a page of events
costs one look-up per distinct group, not one per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from homeserver.handlers.erasure import prune_for_newcomers
from homeserver.http.errors import forbidden

if TYPE_CHECKING:
    from homeserver.server import HomeServer

HISTORY_KEY = ("m.room.history_visibility", "")


class Visibility:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store

    async def filter_events(self, user_id: str, events: Sequence[Any], *, current_membership: str | None) -> list[Any]:
        """The `StoredEvent`s of one room that `user_id` may see, in the given order."""
        if not events:
            return []
        room_id = events[0].event.room_id
        return (await self.filter_rooms(user_id, {room_id: events}, current_membership=current_membership))[room_id]

    async def filter_rooms(self, user_id: str, events_by_room: Mapping[str, Sequence[Any]], *,
                           current_membership: str | None) -> dict[str, list[Any]]:
        """`filter_events` for several rooms at once, in a bounded number of queries whatever the
        number of rooms (an initial /sync filters every joined room's timeline on a cold cache)."""
        # Expired events are hidden from everyone at once (retention).
        kept = await self._hs.retention.filter_expired([s for evs in events_by_room.values() for s in evs])
        kept_ids = {s.event.event_id for s in kept}
        ids = list(kept_ids)
        groups = await self._store.state.get_state_groups_for_events(ids) if ids else {}
        member_key = ("m.room.member", user_id)
        states = await self._store.state.get_state_for_groups(
            {g for g in groups.values() if g is not None}, [HISTORY_KEY, member_key])
        lookup = await self._store.events.get_events([eid for state in states.values() for eid in state.values()])
        per_group: dict[int, tuple[str, str | None]] = {}
        for group, state in states.items():
            hv_event = lookup.get(state.get(HISTORY_KEY, ""))
            member_event = lookup.get(state.get(member_key, ""))
            visibility = hv_event.event.content.get("history_visibility", "shared") if hv_event else "shared"
            membership = member_event.event.membership if member_event else None
            per_group[group] = (visibility, membership)

        def membership_at(event_id: str) -> str | None:
            return per_group.get(groups.get(event_id) or -1, ("", None))[1]

        result: dict[str, list[Any]] = {}
        for room_id, events in events_by_room.items():
            visible = []
            for stored in events:
                event = stored.event
                if event.event_id not in kept_ids:
                    continue
                if event.type == "m.room.member" and event.state_key == user_id:
                    visible.append(stored)
                    continue
                visibility, membership = per_group.get(groups.get(event.event_id) or -1, ("shared", None))
                if _may_see(visibility, membership, current_membership):
                    visible.append(stored)
            # Erased users' events reach those who join after the erasure pruned (account erasure).
            result[room_id] = await prune_for_newcomers(self._hs, user_id, visible, membership_at) if visible else []
        return result

    async def require_can_read_room(self, room_id: str, user_id: str) -> str | None:
        """The user's current membership; 403 unless they are or were in the room, or it is world-readable."""
        state = await self._store.state.get_current_state_events(room_id, [("m.room.member", user_id), HISTORY_KEY])
        member = state.get(("m.room.member", user_id))
        membership = member.event.membership if member is not None else None
        if membership == "join":
            return membership
        # Having forgotten a room, a former member can no longer read its history (spec: /forget).
        if membership in ("leave", "ban") and not await self._store.events.is_room_forgotten(user_id, room_id):
            return membership
        hv = state.get(HISTORY_KEY)
        if hv is not None and hv.event.content.get("history_visibility") == "world_readable":
            return membership
        raise forbidden(f"You are not a member of {room_id}.")


def _may_see(visibility: str, membership_at_event: str | None, current_membership: str | None) -> bool:
    if membership_at_event == "join" or visibility == "world_readable":
        return True
    if visibility == "shared":
        return current_membership == "join"
    if visibility == "invited":
        return membership_at_event == "invite"
    return False
