"""`/profile/{userId}` and `/profile/{userId}/{keyName}` (display name, avatar, m.tz, custom fields).

Look-ups need an access token: profiles are visible inside the organisation, not to the world.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.profile import check_key
from homeserver.http.errors import missing_param, not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ProfileServlet(Servlet):
    PATTERNS = client_patterns("/profile/(?P<user_id>[^/]+)")

    async def on_GET(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        return HTTPStatus.OK, await self.hs.profile_handler.get_profile(user_id)


class ProfileFieldServlet(Servlet):
    PATTERNS = client_patterns("/profile/(?P<user_id>[^/]+)/(?P<key>[^/]+)")

    async def on_GET(self, request: PimanRequest, user_id: str, key: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        check_key(key)
        profile = await self.hs.profile_handler.get_profile(user_id)
        if key not in profile:
            raise not_found(f"This user has no '{key}' in their profile.")
        return HTTPStatus.OK, {key: profile[key]}

    async def on_PUT(self, request: PimanRequest, user_id: str, key: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        check_key(key)
        body = read_json_object(request)
        if key not in body.data:
            raise missing_param(f"The body must hold the field '{key}'.")
        await self.hs.profile_handler.set_field(requester.user_id, user_id, key, body.data[key])
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, user_id: str, key: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        await self.hs.profile_handler.delete_field(requester.user_id, user_id, key)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [ProfileServlet(hs), ProfileFieldServlet(hs)]
