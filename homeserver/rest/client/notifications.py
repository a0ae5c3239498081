"""`GET /notifications`: the events the user's push rules notified them about, newest first."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import query_int, query_str
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class NotificationsServlet(Servlet):
    PATTERNS = client_patterns("/notifications")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        result = await self.hs.push_actions_handler.get_notifications(
            requester.user_id, from_token=query_str(request, "from", None), limit=query_int(request, "limit", None),
            only=query_str(request, "only", None))
        return HTTPStatus.OK, result


def servlets(hs: "HomeServer") -> list[Any]:
    return [NotificationsServlet(hs)]
