"""Room aliases (`/directory/room/{alias}`, `/rooms/{roomId}/aliases`) and the published room directory
(`/publicRooms`, `/directory/list/room/{roomId}`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import bad_json
from homeserver.http.parse import query_int, query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class RoomAliasServlet(Servlet):
    PATTERNS = client_patterns("/directory/room/(?P<alias>[^/]+)")

    async def on_GET(self, request: PimanRequest, alias: str) -> tuple[int, Any]:
        return HTTPStatus.OK, await self.hs.directory_handler.resolve_alias(alias)

    async def on_PUT(self, request: PimanRequest, alias: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        await self.hs.directory_handler.create_alias(requester, alias, body.str("room_id"))
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, alias: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        await self.hs.directory_handler.delete_alias(requester, alias)
        return HTTPStatus.OK, {}


class RoomAliasesServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/aliases")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        aliases = await self.hs.directory_handler.local_aliases(requester.user_id, room_id)
        return HTTPStatus.OK, {"aliases": aliases}


class DirectoryVisibilityServlet(Servlet):
    PATTERNS = client_patterns("/directory/list/room/(?P<room_id>[^/]+)")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        return HTTPStatus.OK, {"visibility": await self.hs.directory_handler.get_visibility(room_id)}

    async def on_PUT(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request, allow_empty=True)
        await self.hs.directory_handler.set_visibility(requester, room_id, body.str("visibility", "public"))
        return HTTPStatus.OK, {}


class PublicRoomsServlet(Servlet):
    """The published room list. Reading it needs an account (as Synapse does by default): an
    organisation's room names and topics are not for the whole internet."""

    PATTERNS = client_patterns("/publicRooms")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        handler = self.hs.directory_handler
        handler.check_server(query_str(request, "server", None))
        result = await handler.public_rooms(limit=query_int(request, "limit", None),
                                            since=query_str(request, "since", None))
        return HTTPStatus.OK, result

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        handler = self.hs.directory_handler
        handler.check_server(query_str(request, "server", None))
        body = read_json_object(request, allow_empty=True)
        search_term = None
        room_types = None
        room_filter = body.obj("filter", None, nullable=True)
        if room_filter is not None:
            search_term = room_filter.str("generic_search_term", None, nullable=True)
            room_types = room_filter.list("room_types", None, nullable=True)
            if room_types is not None and not all(t is None or isinstance(t, str) for t in room_types):
                raise bad_json("Field 'filter.room_types' must be an array of strings and nulls.")
        result = await handler.public_rooms(
            limit=body.int("limit", None, nullable=True), since=body.str("since", None, nullable=True),
            search_term=search_term, room_types=room_types)
        return HTTPStatus.OK, result


def servlets(hs: "HomeServer") -> list[Any]:
    return [RoomAliasServlet(hs), RoomAliasesServlet(hs), DirectoryVisibilityServlet(hs), PublicRoomsServlet(hs)]
