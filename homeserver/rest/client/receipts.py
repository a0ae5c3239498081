"""`POST /rooms/{roomId}/receipt/{receiptType}/{eventId}` and `POST /rooms/{roomId}/read_markers`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.receipts import FULLY_READ, READ, READ_PRIVATE
from homeserver.http.errors import bad_json, invalid_param
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ReceiptServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/receipt/(?P<receipt_type>[^/]+)/(?P<event_id>[^/]+)")

    async def on_POST(self, request: PimanRequest, room_id: str, receipt_type: str, event_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request, allow_empty=True)
        thread_id = body.data.get("thread_id")
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
            raise invalid_param("thread_id field must be a non-empty string")
        await self.hs.receipts_handler.send_receipt(requester.user_id, room_id, receipt_type, event_id, thread_id)
        return HTTPStatus.OK, {}


class ReadMarkersServlet(Servlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]+)/read_markers")

    async def on_POST(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request)
        markers = {}
        for key in (FULLY_READ, READ, READ_PRIVATE):
            value = body.data.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.startswith("$"):
                raise bad_json(f"'{key}' must be an event ID.")
            markers[key] = value
        await self.hs.receipts_handler.set_read_markers(requester.user_id, room_id, markers)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [ReceiptServlet(hs), ReadMarkersServlet(hs)]
