"""`GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` and `GET /rooms/{roomId}/threads`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.relations import RelationsHandler
from homeserver.http.errors import invalid_param
from homeserver.http.parse import query_bool, query_int, query_str
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

ROOM = "(?P<room_id>[^/]+)"
DEFAULT_RELATIONS_LIMIT = 50
DEFAULT_THREADS_LIMIT = 20
MAX_LIMIT = 100


class RelationsServlet(Servlet):
    PATTERNS = client_patterns(
        f"/rooms/{ROOM}/relations/(?P<event_id>[^/]+)(?:/(?P<rel_type>[^/]+)(?:/(?P<event_type>[^/]+))?)?",
        releases=(), v1=True)

    def __init__(self, hs: "HomeServer", handler: RelationsHandler) -> None:
        super().__init__(hs)
        self._handler = handler

    async def on_GET(self, request: PimanRequest, room_id: str, event_id: str, rel_type: str | None = None,
                     event_type: str | None = None) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        limit = query_int(request, "limit", DEFAULT_RELATIONS_LIMIT)
        if limit < 0:
            raise invalid_param("limit must not be negative.")
        direction = query_str(request, "dir", "b")
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'.")
        recurse = query_bool(request, "recurse", False) if query_str(request, "recurse", None) is not None else None
        result = await self._handler.get_relations(
            requester.user_id, room_id, event_id, rel_type=rel_type, event_type=event_type,
            from_token=query_str(request, "from", None), to_token=query_str(request, "to", None),
            limit=min(limit, MAX_LIMIT), direction=direction, recurse=recurse)
        return HTTPStatus.OK, result


class ThreadsServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/threads", releases=(), v1=True)

    def __init__(self, hs: "HomeServer", handler: RelationsHandler) -> None:
        super().__init__(hs)
        self._handler = handler

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        include = query_str(request, "include", "all")
        if include not in ("all", "participated"):
            raise invalid_param("include must be 'all' or 'participated'.")
        limit = query_int(request, "limit", DEFAULT_THREADS_LIMIT)
        if limit < 1:
            raise invalid_param("limit must be greater than zero.")
        result = await self._handler.get_threads(requester.user_id, room_id, include=include,
                                                 from_token=query_str(request, "from", None),
                                                 limit=min(limit, MAX_LIMIT))
        return HTTPStatus.OK, result


def servlets(hs: "HomeServer") -> list[Any]:
    handler = RelationsHandler(hs)
    return [RelationsServlet(hs, handler), ThreadsServlet(hs, handler)]
