"""`/user/{userId}/account_data/{type}`, its per-room form, and room tags (`/user/{userId}/rooms/{roomId}/tags`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest
from homeserver.rest.client.owner import require_owner

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class AccountDataServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/account_data/(?P<data_type>[^/]+)")

    async def on_GET(self, request: PimanRequest, user_id: str, data_type: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "read account data")
        content = await self.hs.account_data_handler.get_account_data(user_id, None, data_type)
        if content is None:
            raise not_found("Account data not found.")
        return HTTPStatus.OK, content

    async def on_PUT(self, request: PimanRequest, user_id: str, data_type: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "add account data")
        body = read_json_object(request)
        await self.hs.account_data_handler.set_account_data(user_id, None, data_type, body.data)
        return HTTPStatus.OK, {}


class RoomAccountDataServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/account_data/(?P<data_type>[^/]+)")

    async def on_GET(self, request: PimanRequest, user_id: str, room_id: str, data_type: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "read account data")
        content = await self.hs.account_data_handler.get_account_data(user_id, room_id, data_type)
        if content is None:
            raise not_found("Room account data not found.")
        return HTTPStatus.OK, content

    async def on_PUT(self, request: PimanRequest, user_id: str, room_id: str, data_type: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "add account data")
        body = read_json_object(request)
        await self.hs.account_data_handler.set_account_data(user_id, room_id, data_type, body.data)
        return HTTPStatus.OK, {}


class TagsServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/tags")

    async def on_GET(self, request: PimanRequest, user_id: str, room_id: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "read tags")
        return HTTPStatus.OK, {"tags": await self.hs.account_data_handler.get_tags(user_id, room_id)}


class TagServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/tags/(?P<tag>[^/]+)")

    async def on_PUT(self, request: PimanRequest, user_id: str, room_id: str, tag: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "add tags")
        body = read_json_object(request)
        await self.hs.account_data_handler.add_tag(user_id, room_id, tag, body.data)
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, user_id: str, room_id: str, tag: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "remove tags")
        await self.hs.account_data_handler.remove_tag(user_id, room_id, tag)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [AccountDataServlet(hs), RoomAccountDataServlet(hs), TagsServlet(hs), TagServlet(hs)]
