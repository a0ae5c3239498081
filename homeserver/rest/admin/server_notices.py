"""Synapse's server notice admin API: an admin posts a notice into a user's server-notices room.

    POST /_synapse/admin/v1/send_server_notice           {user_id, content} -> {event_id}
    PUT  /_synapse/admin/v1/send_server_notice/{txnId}   the same, idempotent per admin and txnId

Only `m.room.message` notices (Synapse also takes a `type` and `state_key`; other types are
refused here). A `content` without `msgtype` is sent as `m.server_notice`.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from config import ConfigError
from homeserver.http.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.identifiers import UserIdentifierError, split_user_id
from homeserver.rest.admin import require_admin

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class SendServerNoticeServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/send_server_notice(?:/(?P<txn_id>[^/]+))?"]

    async def on_POST(self, request: PimanRequest, txn_id: str | None = None) -> tuple[int, Any]:
        return await self._send(request, txn_id or secrets.token_urlsafe(12))

    async def on_PUT(self, request: PimanRequest, txn_id: str | None = None) -> tuple[int, Any]:
        if txn_id is None:
            raise invalid_param("PUT needs a transaction ID: /_synapse/admin/v1/send_server_notice/{txnId}.")
        return await self._send(request, txn_id)

    async def _send(self, request: PimanRequest, txn_id: str) -> tuple[int, Any]:
        requester = await require_admin(self.hs, request)
        body = read_json_object(request)
        user_id = body.str("user_id")
        content = body.obj("content").data
        if body.str("type", "m.room.message") != "m.room.message" or body.has("state_key"):
            raise invalid_param("Only m.room.message server notices are supported here.")
        if not isinstance(content.get("body"), str):
            raise bad_json("content.body must be a string: the notice's text.")
        try:
            _, server = split_user_id(user_id)
        except UserIdentifierError as e:
            raise invalid_param(str(e)) from None
        user = await self.hs.store.users.get_user(user_id) if server == self.hs.hostname else None
        if user is None or user.deactivated:
            raise not_found(f"No active local user {user_id}: server notices go to local users only.")
        content = {"msgtype": "m.server_notice", **content}
        try:
            sent = await self.hs.server_notices.send_notice(user_id, content, txn_id=f"admin/{requester.user_id}/{txn_id}")
        except ConfigError as e:
            raise MatrixError(HTTPStatus.INTERNAL_SERVER_ERROR, "M_UNKNOWN", str(e)) from None
        await self.hs.audit_log.record(requester.user_id, "server_notice.send", user_id, {"event_id": sent.event.event_id})
        return HTTPStatus.OK, {"event_id": sent.event.event_id}


def servlets(hs: "HomeServer") -> list[Any]:
    return [SendServerNoticeServlet(hs)]
