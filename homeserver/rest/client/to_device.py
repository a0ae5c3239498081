"""`PUT /sendToDevice/{eventType}/{txnId}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class SendToDeviceServlet(Servlet):
    PATTERNS = client_patterns("/sendToDevice/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, event_type: str, txn_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request)
        messages = body.obj("messages")
        await self.hs.to_device_handler.send(requester, event_type, txn_id, messages.data)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [SendToDeviceServlet(hs)]
