"""Deactivating and erasing accounts over the admin API.

    POST /_synapse/admin/v1/deactivate/{userId}   {"erase": bool}  (Synapse's route and answer)
    GET  /_piman/admin/v1/erasures/{userId}       the erasure's tombstone and what is left

With `erase: true` the account's data is deleted (`ErasureHandler`); a legal hold on the user
refuses that with 409 M_FORBIDDEN and changes nothing. Both are audit-logged.
"""

from __future__ import annotations

import dataclasses
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, invalid_param, not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest.admin import require_admin

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class DeactivateServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/deactivate/(?P<user_id>[^/]+)"]

    async def on_POST(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        requester = await require_admin(self.hs, request)
        erase = read_json_object(request, allow_empty=True).bool("erase", False)
        if user_id.partition(":")[2] != self.hs.hostname:
            raise invalid_param("Only local users can be deactivated.")
        if await self.hs.store.users.get_user(user_id) is None:
            raise not_found(f"There is no user {user_id}.")
        audit = self.hs.audit_log
        if not erase:
            await self.hs.account_handler.deactivate(user_id)
            await audit.record(requester.user_id, "user.deactivate", user_id)
            return HTTPStatus.OK, {"id_server_unbind_result": "success"}
        try:
            result = await self.hs.erasure_handler.erase(user_id, requested_by=requester.user_id)
        except MatrixError as e:
            await audit.record(requester.user_id, "user.erase", user_id, {"error": e.msg}, outcome=e.errcode)
            raise
        details = dataclasses.asdict(result)
        await audit.record(requester.user_id, "user.erase", user_id, details)
        # Synapse's answer (no identity server is ever involved), plus what was erased.
        return HTTPStatus.OK, {"id_server_unbind_result": "success", "erasure": details}


class ErasureStatusServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/erasures/(?P<user_id>[^/]+)"]

    async def on_GET(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        record = await self.hs.store.erasure.get(user_id)
        if record is None:
            raise not_found(f"{user_id} has not been erased.")
        remaining = {what: n for what, n in (await self.hs.store.erasure.inventory(user_id)).items() if n}
        return HTTPStatus.OK, {"user_id": record.user_id, "erased_ts": record.erased_ts,
                               "requested_by": record.requested_by, "completed_ts": record.completed_ts,
                               "held": await self.hs.store.holds.is_user_held(user_id), "remaining": remaining}


def servlets(hs: "HomeServer") -> list[Any]:
    return [DeactivateServlet(hs), ErasureStatusServlet(hs)]
