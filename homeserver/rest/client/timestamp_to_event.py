"""`GET /v1/rooms/{roomId}/timestamp_to_event`: the event nearest a point in time, for "jump to date".

Expired events (retention) are skipped: the answer is the nearest event still shown, or 404.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.directory import require_in_room_or_world_readable
from homeserver.http.errors import invalid_param, not_found
from homeserver.http.parse import query_int, query_str
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class TimestampToEventServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/timestamp_to_event", releases=(), v1=True)

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        ts = query_int(request, "ts")
        direction = query_str(request, "dir")
        if direction not in ("f", "b"):
            raise invalid_param("dir must be 'f' or 'b'.")
        await require_in_room_or_world_readable(self.hs.store, room_id, requester.user_id)
        event_id = await self.hs.retention.nearest_event(room_id, ts, direction)
        stored = await self.hs.store.events.get_event(event_id) if event_id is not None else None
        if stored is None:
            way = "forward" if direction == "f" else "backward"
            raise not_found(f"No event found from {ts} in the {way} direction.")
        return HTTPStatus.OK, {"event_id": stored.event.event_id, "origin_server_ts": stored.event.origin_server_ts}


def servlets(hs: "HomeServer") -> list[Any]:
    return [TimestampToEventServlet(hs)]
