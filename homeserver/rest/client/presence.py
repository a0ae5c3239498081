"""`GET/PUT /presence/{userId}/status`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import forbidden, not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class PresenceStatusServlet(Servlet):
    PATTERNS = client_patterns("/presence/(?P<user_id>[^/]+)/status")

    async def on_GET(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        status = await self.hs.presence_handler.get_status(user_id)
        if status is None:
            raise not_found("There is no presence state for this user.")
        return HTTPStatus.OK, status

    async def on_PUT(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        if requester.user_id != user_id:
            raise forbidden("You cannot set the presence of another user.")
        body = read_json_object(request)
        state = body.str("presence")
        status_msg = body.str("status_msg", None, nullable=True)
        await self.hs.presence_handler.set_state(user_id, state, status_msg)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [PresenceStatusServlet(hs)]
