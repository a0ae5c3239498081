"""`GET /_piman/admin/v1/residency`: the pinned country and where each storage target is declared."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest.admin import require_admin

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ResidencyServlet(Servlet):
    PATTERNS = ["/_piman/admin/v1/residency"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        return HTTPStatus.OK, self.hs.residency.report()


def servlets(hs: "HomeServer") -> list[Any]:
    return [ResidencyServlet(hs)]
