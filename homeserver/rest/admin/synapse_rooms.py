"""Synapse's room admin API (v1, read-only part), so synapse-admin and scripts can list and inspect rooms.

    GET /_synapse/admin/v1/rooms?from=&limit=&order_by=&dir=&search_term=
    GET /_synapse/admin/v1/rooms/{roomId}
    GET /_synapse/admin/v1/rooms/{roomId}/members

Names, aliases, join rules... are state events, sealed at rest, so they are read through the state
store and sorted or searched here, not in SQL. Sorting on a count (joined_members, state_events...)
without a search term reads state only for the page; sorting on a state field or searching reads the
current state of every room (cached, in chunks), which is fine for an organisation's server but not
for millions of rooms. Reads are not audit-logged.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable

from homeserver.http.errors import invalid_param, not_found
from homeserver.http.parse import query_str
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest.admin import page_of, require_admin
from storage.stores.event_fetch import chunks
from storage.stores.rooms import RoomCounts

if TYPE_CHECKING:
    from homeserver.server import HomeServer


_STATE_FIELDS = {  # summary key -> (event type, content key)
    "name": ("m.room.name", "name"),
    "topic": ("m.room.topic", "topic"),
    "avatar": ("m.room.avatar", "url"),
    "canonical_alias": ("m.room.canonical_alias", "alias"),
    "join_rules": ("m.room.join_rules", "join_rule"),
    "guest_access": ("m.room.guest_access", "guest_access"),
    "history_visibility": ("m.room.history_visibility", "history_visibility"),
    "encryption": ("m.room.encryption", "algorithm"),
}
_STATE_KEYS = [(event_type, "") for event_type, _ in _STATE_FIELDS.values()] + [("m.room.create", "")]

# order_by -> the summary key it sorts on; the first group needs no state to sort.
_COUNT_ORDERS = {"size": "joined_members", "joined_members": "joined_members",
                 "joined_local_members": "joined_local_members", "version": "version", "creator": "creator",
                 "public": "public", "state_events": "state_events"}
_STATE_ORDERS = {"name": "name", "alphabetical": "name", "canonical_alias": "canonical_alias",
                 "encryption": "encryption", "federatable": "federatable", "join_rules": "join_rules",
                 "guest_access": "guest_access", "history_visibility": "history_visibility"}


def _count_fields(counts: RoomCounts) -> dict[str, Any]:
    return {"room_id": counts.room_id, "version": counts.room_version, "creator": counts.creator,
            "public": counts.is_public, "joined_members": counts.joined_members,
            "joined_local_members": counts.joined_local_members, "state_events": counts.state_events}


class RoomSummaries:
    """Builds Synapse's room summaries from the room counts and the current state."""

    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs

    async def counts(self, room_ids: list[str] | None = None) -> list[RoomCounts]:
        return await self._hs.store.rooms.get_room_counts(self._hs.hostname, room_ids)

    async def summaries(self, counts: list[RoomCounts]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in chunks(counts, 500):
            states = await self._hs.store.state.get_current_state_events_for_rooms(
                [c.room_id for c in chunk], _STATE_KEYS)
            for c in chunk:
                state = states.get(c.room_id, {})
                summary = _count_fields(c)
                for key, (event_type, field) in _STATE_FIELDS.items():
                    stored = state.get((event_type, ""))
                    value = stored.event.content.get(field) if stored is not None else None
                    summary[key] = value if isinstance(value, str) else None
                create = state.get(("m.room.create", ""))
                create_content = create.event.content if create is not None else {}
                summary["federatable"] = create_content.get("m.federate", True) is not False
                room_type = create_content.get("type")
                summary["room_type"] = room_type if isinstance(room_type, str) else None
                out.append(summary)
        return out


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple]:
    # Missing values sort last going forwards; the room ID breaks ties so pages are stable.
    return lambda s: (s[key] is None, s[key] if s[key] is not None else 0, s["room_id"])


def _matches(summary: dict[str, Any], term: str) -> bool:
    return any(term in (summary[key] or "").casefold() for key in ("name", "canonical_alias", "room_id"))


class RoomListServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/rooms"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        offset, limit = page_of(request)
        order_by = query_str(request, "order_by", "name")
        if order_by not in _COUNT_ORDERS and order_by not in _STATE_ORDERS:
            raise invalid_param(f"'order_by' must be one of {', '.join([*_COUNT_ORDERS, *_STATE_ORDERS])}.")
        direction = query_str(request, "dir", "f")
        if direction not in ("f", "b"):
            raise invalid_param("'dir' must be 'f' or 'b'.")
        term = (query_str(request, "search_term", None) or "").casefold()
        # Synapse lists the biggest rooms first for `size`/`joined_members` going "forwards".
        descending = (direction == "b") != (order_by in ("size", "joined_members", "joined_local_members",
                                                         "state_events"))

        builder = RoomSummaries(self.hs)
        counts = await builder.counts()
        if order_by in _COUNT_ORDERS and not term:
            key = _COUNT_ORDERS[order_by]
            counts.sort(key=lambda c: _sort_key(key)(_count_fields(c)), reverse=descending)
            total = len(counts)
            page = await builder.summaries(counts[offset:offset + limit])
        else:
            summaries = [s for s in await builder.summaries(counts) if not term or _matches(s, term)]
            summaries.sort(key=_sort_key(_COUNT_ORDERS.get(order_by) or _STATE_ORDERS[order_by]),
                           reverse=descending)
            total = len(summaries)
            page = summaries[offset:offset + limit]
        body: dict[str, Any] = {"rooms": page, "offset": offset, "total_rooms": total}
        if offset + len(page) < total:
            body["next_batch"] = offset + len(page)
        if offset > 0:
            body["prev_batch"] = max(0, offset - limit)
        return HTTPStatus.OK, body


class RoomDetailsServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/rooms/(?P<room_id>[^/]+)"]

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        builder = RoomSummaries(self.hs)
        counts = await builder.counts([room_id])
        if not counts:
            raise not_found(f"There is no room {room_id} on this server.")
        (summary,) = await builder.summaries(counts)
        return HTTPStatus.OK, summary


class RoomMembersServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/rooms/(?P<room_id>[^/]+)/members"]

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        if await self.hs.store.rooms.get_room(room_id) is None:
            raise not_found(f"There is no room {room_id} on this server.")
        members = sorted(await self.hs.store.events.get_members_by_membership(room_id, ("join",)))
        return HTTPStatus.OK, {"members": members, "total": len(members)}


def servlets(hs: "HomeServer") -> list[Any]:
    return [RoomListServlet(hs), RoomDetailsServlet(hs), RoomMembersServlet(hs)]
