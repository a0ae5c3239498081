"""Reporting content: `/rooms/{roomId}/report/{eventId}`, `/rooms/{roomId}/report`, `/users/{userId}/report`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ReportEventServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/report/(?P<event_id>[^/]+)")

    async def on_POST(self, request: PimanRequest, room_id: str, event_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request, allow_empty=True)
        reason = body.str("reason", None, nullable=True)
        await self.hs.reports_handler.report_event(requester.user_id, room_id, event_id, reason)
        return HTTPStatus.OK, {}


class ReportRoomServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/report")

    async def on_POST(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        reason = read_json_object(request).str("reason")
        await self.hs.reports_handler.report_room(requester.user_id, room_id, reason)
        return HTTPStatus.OK, {}


class ReportUserServlet(Servlet):
    PATTERNS = client_patterns("/users/(?P<user_id>[^/]+)/report")

    async def on_POST(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        reason = read_json_object(request).str("reason")
        await self.hs.reports_handler.report_user(requester.user_id, user_id, reason)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [ReportEventServlet(hs), ReportRoomServlet(hs), ReportUserServlet(hs)]
