"""Legal holds over the admin API (piman's own; Synapse has no such route).

    POST   /_piman/admin/v1/holds                    {target_type, target_id, reason?} -> the hold
    DELETE /_piman/admin/v1/holds/{type}/{id}        release -> the released hold
    GET    /_piman/admin/v1/holds[?include_released=true] -> {"holds": [...]}
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.legal_holds import hold_json
from homeserver.http.parse import query_bool, read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest.admin import require_admin

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class HoldsServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/holds"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        holds = await self.hs.legal_holds.list(include_released=query_bool(request, "include_released", False))
        return HTTPStatus.OK, {"holds": [hold_json(hold) for hold in holds]}

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await require_admin(self.hs, request)
        body = read_json_object(request)
        hold = await self.hs.legal_holds.place(requester.user_id, body.str("target_type"), body.str("target_id"),
                                               body.str("reason", None, nullable=True))
        return HTTPStatus.OK, hold_json(hold)


class HoldServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/holds/(?P<target_type>[^/]+)/(?P<target_id>[^/]+)"]

    async def on_DELETE(self, request: PimanRequest, target_type: str, target_id: str) -> tuple[int, Any]:
        requester = await require_admin(self.hs, request)
        hold = await self.hs.legal_holds.release(requester.user_id, target_type, target_id)
        return HTTPStatus.OK, hold_json(hold)


def servlets(hs: "HomeServer") -> list[Any]:
    return [HoldsServlet(hs), HoldServlet(hs)]
