"""The admin audit log over the admin API, newest entries first.

    GET /_piman/admin/v1/audit_log?from=&limit=&target= -> {"entries": [...], "next_token"?: "..."}

`from` is the `next_token` of the previous page; `target` keeps one room's, user's or media's entries.
Each entry carries its chain `hash`.

    GET /_piman/admin/v1/audit_log/verify?anchor=HASH (repeatable)
        -> {"valid": bool, "entries": N, "head": {"id", "ts", "hash"}, "problems": ["one line", ...],
            "more_problems": N}

walks the whole hash chain (200 whether or not it verifies: `valid` says); an `anchor` is a hash written
down earlier (`piman admin audit head`) that must still be in the chain.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit_log import entry_json, parse_anchor, report_json
from homeserver.http.errors import invalid_param
from homeserver.http.parse import query_int, query_str
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest.admin import require_admin

if TYPE_CHECKING:
    from homeserver.server import HomeServer

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class AuditLogServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/audit_log"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        limit = query_int(request, "limit", DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_param(f"Query parameter 'limit' must be between 1 and {MAX_LIMIT}.")
        before = query_int(request, "from", None)
        if before is not None and before < 1:
            raise invalid_param("Query parameter 'from' must be a 'next_token' from a previous page.")
        entries = await self.hs.audit_log.entries(limit=limit, before_id=before, target=query_str(request, "target", None))
        body: dict[str, Any] = {"entries": [entry_json(entry) for entry in entries]}
        if len(entries) == limit and entries[-1].id > 1:
            body["next_token"] = str(entries[-1].id)
        return HTTPStatus.OK, body


class AuditLogVerifyServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/audit_log/verify"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        assert request.args is not None
        anchors = []
        for raw in request.args.get(b"anchor", []):
            try:
                anchors.append(parse_anchor(raw.decode("utf-8", errors="replace")))
            except ValueError as e:
                raise invalid_param(f"Query parameter 'anchor': {e}") from None
        return HTTPStatus.OK, report_json(await self.hs.audit_log.verify(anchors))


def servlets(hs: "HomeServer") -> list[Any]:
    return [AuditLogServlet(hs), AuditLogVerifyServlet(hs)]
