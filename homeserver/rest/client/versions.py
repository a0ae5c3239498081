"""`/versions`, `/capabilities` and the `.well-known` documents: what clients read before anything else."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import not_found
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

# Spec versions whose client-server API this server aims to serve. Endpoints a version added that
# are not built yet are listed in ../shared/matrix-spec/ENDPOINTS.md and answer M_UNRECOGNIZED.
# v1.11: authenticated media (/_matrix/client/v1/media; clients switch to it as soon as they see
# it) and cross-signing key upload without UIA the first time. v1.12: Content-Disposition on every
# download and thumbnail, `via` on joins (ignored until federation). Later versions are not
# claimed until someone checks their changes against this server.
SUPPORTED_VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
                      "v1.11", "v1.12"]


class VersionsServlet(Servlet):
    PATTERNS = ["/_matrix/client/versions"]


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        # Only features that really work are flagged here.
        return HTTPStatus.OK, {"versions": SUPPORTED_VERSIONS, "unstable_features": {}}


class CapabilitiesServlet(Servlet):
    PATTERNS = client_patterns("/capabilities")


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        return HTTPStatus.OK, {
            "capabilities": {
                "m.change_password": {"enabled": self.hs.password_handler.enabled},
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                "m.profile_fields": {"enabled": True},
                # Third-party identifiers arrive with a later issue: say so rather than fail later.
                "m.3pid_changes": {"enabled": False},
                "m.get_login_token": {"enabled": False},
            }
        }


class ClientWellKnownServlet(Servlet):
    PATTERNS = ["/.well-known/matrix/client"]


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        return HTTPStatus.OK, self.hs.client_well_known()


class ServerWellKnownServlet(Servlet):
    PATTERNS = ["/.well-known/matrix/server"]


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        delegated = self.hs.server_well_known()
        if delegated is None:
            raise not_found("This server does not serve /.well-known/matrix/server.")
        return HTTPStatus.OK, delegated


def servlets(hs: "HomeServer") -> list[Any]:
    return [VersionsServlet(hs), CapabilitiesServlet(hs), ClientWellKnownServlet(hs), ServerWellKnownServlet(hs)]
