"""`/messages`, `/context` and `/members?at=`: walking a room's history in topological order.

A pagination token `t{depth}_{stream}` names a point between events: the event at (depth, stream)
lies just before the point (d, s) and just after (d, s - 1). Paging backwards from a point returns
events at or before it, forwards strictly after it. Sync tokens (`s…`) are accepted as points too.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.aggregations import bundle_aggregations
from homeserver.handlers.client_format import client_event
from homeserver.handlers.prev_content import add_prev_content
from homeserver.handlers.sync_token import SyncToken
from homeserver.http.errors import MatrixError, not_found

if TYPE_CHECKING:
    from homeserver.filtering import RoomEventFilter
    from homeserver.server import HomeServer

Point = tuple[int, int]


def point_token(point: Point) -> str:
    return f"t{point[0]}_{point[1]}"


def before(stored: Any) -> Point:
    return (stored.event.depth, stored.stream_ordering - 1)


def after(stored: Any) -> Point:
    return (stored.event.depth, stored.stream_ordering)


class PaginationHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store

    async def parse_point(self, room_id: str, token: str) -> Point:
        if token.startswith("t"):
            try:
                depth, stream = (int(p) for p in token[1:].split("_"))
                return depth, stream
            except ValueError:
                pass
        elif token.startswith("s"):
            position = SyncToken.parse(token).events
            last = await self._store.events.get_room_events_window(room_id, from_stream=position, to_stream=None,
                                                                   limit=1, direction="b")
            return after(last[0]) if last else (0, 0)
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM", f"Malformed pagination token '{token}'.")

    async def _page(self, user_id: str, room_id: str, membership: str | None, start: Point | None,
                    end: Point | None, direction: str, limit: int,
                    event_filter: "RoomEventFilter | None") -> tuple[list[Any], Point | None]:
        """Visible events of one page, and the point where the next page starts (None at the edge)."""
        kwargs: dict[str, Any] = {}
        if event_filter is not None:
            kwargs = event_filter.store_arguments()
        fetched = await self._store.events.paginate_room_events(
            room_id, from_point=start, to_point=end, direction=direction, limit=limit, **kwargs)
        if not fetched:
            return [], None
        visible = await self._hs.visibility.filter_events(user_id, fetched, current_membership=membership)
        ignored = await self._hs.account_data_handler.get_ignored_users(user_id)
        if ignored:
            visible = [s for s in visible if s.event.sender not in ignored or s.event.is_state()]
        last = fetched[-1]
        next_point = before(last) if direction == "b" else after(last)
        return visible, (next_point if len(fetched) == limit else None)

    async def paginate(self, user_id: str, room_id: str, *, from_token: str | None, to_token: str | None,
                       direction: str, limit: int, event_filter: "RoomEventFilter | None") -> dict[str, Any]:
        membership = await self._hs.visibility.require_can_read_room(room_id, user_id)
        start = await self.parse_point(room_id, from_token) if from_token else None
        if start is None and membership in ("leave", "ban"):
            start = await self._membership_point(room_id, user_id)  # former members see up to their leaving
        end = await self.parse_point(room_id, to_token) if to_token else None
        events, next_point = await self._page(user_id, room_id, membership, start, end, direction, limit, event_filter)
        now = self._hs.clock.time_msec()
        bundled = await bundle_aggregations(self._hs, user_id, events)
        result: dict[str, Any] = {
            "chunk": [client_event(s, now, relations=bundled.get(s.event.event_id)) for s in events],
            "start": from_token or point_token(start or ((2**62, 2**62) if direction == "b" else (0, 0))),
        }
        await add_prev_content(self._hs, list(zip(events, result["chunk"])))
        if next_point is not None:
            result["end"] = point_token(next_point)
        if event_filter is not None and event_filter.lazy_load_members and events:
            senders = [("m.room.member", s) for s in sorted({e.event.sender for e in events})]
            state = await self._store.state.get_current_state_events(room_id, senders)
            result["state"] = [client_event(s, now) for s in state.values()]
        return result

    async def _membership_point(self, room_id: str, user_id: str) -> Point:
        member = await self._store.state.get_current_state_events(room_id, [("m.room.member", user_id)])
        stored = member[("m.room.member", user_id)]
        return after(stored)

    async def context(self, user_id: str, room_id: str, event_id: str, *, limit: int,
                      event_filter: "RoomEventFilter | None") -> dict[str, Any]:
        membership = await self._hs.visibility.require_can_read_room(room_id, user_id)
        stored = await self._store.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise not_found("Event not found.")
        visible = await self._hs.visibility.filter_events(user_id, [stored], current_membership=membership)
        if not visible:
            raise not_found("Event not found.")
        stored = visible[0]  # as this user may have it (pruned if an erased user sent it)
        half = limit // 2
        before_events, before_next = await self._page(user_id, room_id, membership, before(stored), None, "b",
                                                      half, event_filter) if half else ([], before(stored))
        after_events, after_next = await self._page(user_id, room_id, membership, after(stored), None, "f",
                                                    limit - half, event_filter) if limit - half else ([], after(stored))
        state = await self._state_at_event(stored)
        now = self._hs.clock.time_msec()
        bundled = await bundle_aggregations(self._hs, user_id, [stored, *before_events, *after_events])
        return {
            "event": client_event(stored, now, relations=bundled.get(event_id)),
            "events_before": [client_event(s, now, relations=bundled.get(s.event.event_id)) for s in before_events],
            "events_after": [client_event(s, now, relations=bundled.get(s.event.event_id)) for s in after_events],
            "start": point_token(before_next or (before(before_events[-1]) if before_events else before(stored))),
            "end": point_token(after_next or (after(after_events[-1]) if after_events else after(stored))),
            "state": [client_event(s, now) for s in state.values()],
        }

    async def _state_at_event(self, stored: Any) -> dict[Any, Any]:
        """The state at the event; expired state events (retention) pruned, as the purge leaves them."""
        group = (await self._store.state.get_state_groups_for_events([stored.event.event_id])).get(stored.event.event_id)
        if group is None:
            return {}
        state = await self._store.state.get_state_for_group(group)
        events = await self._store.events.get_events(list(state.values()))
        shown = {s.event.event_id: s for s in await self._hs.retention.prune_expired(list(events.values()))}
        return {k: shown[eid] for k, eid in state.items() if eid in shown}

    async def state_at_token(self, user_id: str, room_id: str, token: str) -> dict[Any, Any]:
        await self._hs.visibility.require_can_read_room(room_id, user_id)
        point = await self.parse_point(room_id, token)
        last = await self._store.events.paginate_room_events(room_id, from_point=point, to_point=None,
                                                             direction="b", limit=1)
        if not last:
            return {}
        return await self._state_at_event(last[0])
