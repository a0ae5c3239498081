"""`POST /user/{userId}/filter` and `GET /user/{userId}/filter/{filterId}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest
from homeserver.rest.client.owner import require_owner

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class CreateFilterServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/filter")

    async def on_POST(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "create filters")
        body = read_json_object(request, allow_empty=True)
        filter_id = await self.hs.filter_handler.add_filter(user_id, body.data)
        return HTTPStatus.OK, {"filter_id": filter_id}


class GetFilterServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/filter/(?P<filter_id>[^/]+)")

    async def on_GET(self, request: PimanRequest, user_id: str, filter_id: str) -> tuple[int, Any]:
        await require_owner(self.hs, request, user_id, "get filters")
        stored = await self.hs.filter_handler.get_filter(user_id, filter_id)
        return HTTPStatus.OK, stored.definition


def servlets(hs: "HomeServer") -> list[Any]:
    return [CreateFilterServlet(hs), GetFilterServlet(hs)]
