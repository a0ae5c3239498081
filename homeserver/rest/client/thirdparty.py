"""Third-party network lookups (`/thirdparty/*`), which application-service bridges answer.

This server runs no bridges, so it knows no protocol: the list is empty and every lookup is
the spec's 404 M_NOT_FOUND (after the usual checks of the request, so a client still learns
about a missing parameter).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import not_found
from homeserver.http.parse import query_str
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ProtocolsServlet(Servlet):
    PATTERNS = client_patterns("/thirdparty/protocols")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        return HTTPStatus.OK, {}


class ProtocolLookupServlet(Servlet):
    """A protocol's metadata, or its locations or users: the protocol is unknown."""

    PATTERNS = client_patterns("/thirdparty/(?P<kind>protocol|location|user)/(?P<protocol>[^/]+)")

    async def on_GET(self, request: PimanRequest, kind: str, protocol: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        raise not_found(f"Unknown third-party protocol '{protocol}': this server has no bridges.")


class ReverseLookupServlet(Servlet):
    """The third-party location of a room alias, or the third-party users of a Matrix user."""

    PATTERNS = client_patterns("/thirdparty/(?P<kind>location|user)")

    async def on_GET(self, request: PimanRequest, kind: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        query_str(request, "alias" if kind == "location" else "userid")
        what = "room alias" if kind == "location" else "Matrix user"
        raise not_found(f"No third-party {kind} is bridged to this {what}: this server has no bridges.")


def servlets(hs: "HomeServer") -> list[Any]:
    return [ProtocolsServlet(hs), ProtocolLookupServlet(hs), ReverseLookupServlet(hs)]
