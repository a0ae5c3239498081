"""`POST /rooms/{roomId}/upgrade`: replace a room by one in another room version."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class RoomUpgradeServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/upgrade")

    async def on_POST(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        new_room_id = await self.hs.room_upgrade_handler.upgrade(
            requester, room_id, body.str("new_version"), body.str_list("additional_creators", []))
        return HTTPStatus.OK, {"replacement_room": new_room_id}


def servlets(hs: "HomeServer") -> list[Any]:
    return [RoomUpgradeServlet(hs)]
