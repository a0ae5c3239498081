"""`GET /sync`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.sync_token import SyncToken
from homeserver.http.parse import query_bool, query_int, query_str
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_TIMEOUT_MS = 5 * 60 * 1000


class SyncServlet(Servlet):
    PATTERNS = client_patterns("/sync")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        since_text = query_str(request, "since", None)
        since = SyncToken.parse(since_text) if since_text else None
        timeout_ms = max(0, min(query_int(request, "timeout", 0), MAX_TIMEOUT_MS))
        full_state = query_bool(request, "full_state", False)
        use_state_after = query_bool(request, "use_state_after", False)
        set_presence = query_str(request, "set_presence", "online")
        sync_filter = await self.hs.filter_handler.resolve(requester.user_id, query_str(request, "filter", None))
        async with self.hs.presence_handler.syncing(requester.user_id, set_presence):
            body = await self.hs.sync_handler.sync(requester, since=since, timeout_ms=timeout_ms,
                                                   sync_filter=sync_filter, full_state=full_state,
                                                   use_state_after=use_state_after)
        return HTTPStatus.OK, body


def servlets(hs: "HomeServer") -> list[Any]:
    return [SyncServlet(hs)]
