"""MSC1763's `GET /_matrix/client/unstable/org.matrix.msc1763/retention/configuration`.

Clients read the server's default retention policy and the limits a room's policy must respect,
so they can show how long messages are kept and offer only values the server accepts.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class RetentionConfigurationServlet(Servlet):
    PATTERNS = ["/_matrix/client/unstable/org.matrix.msc1763/retention/configuration"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        return HTTPStatus.OK, self.hs.retention.rules.configuration()


def servlets(hs: "HomeServer") -> list[Any]:
    return [RetentionConfigurationServlet(hs)]
