"""Third-party identifiers (email addresses, phone numbers) on accounts: `/account/3pid*`.

This server links no 3PID to an account and trusts no identity server (`/capabilities` says
`m.3pid_changes: false`), so: the list is always empty, adding or binding one is refused with
the spec's M_THREEPID_DENIED, asking to validate one gets M_THREEPID_MEDIUM_NOT_SUPPORTED, and
removing one (which can't be there) succeeds with `id_server_unbind_result: no-support`, the
spec's answer when the homeserver knows no identity server to unbind from.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, invalid_param
from homeserver.http.parse import JsonFields, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MEDIA = ("email", "msisdn")


def threepid_denied() -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_THREEPID_DENIED",
                       "This server does not link email addresses or phone numbers to accounts.")


def _read_threepid(body: JsonFields) -> None:
    """The `medium`/`address` pair of /delete and /unbind, checked (the value itself is not kept)."""
    if body.str("medium") not in MEDIA:
        raise invalid_param("'medium' must be 'email' or 'msisdn'.")
    body.str("address")
    body.str("id_server", None)


class ThreepidsServlet(Servlet):
    PATTERNS = client_patterns("/account/3pid")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, {"threepids": []}

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        """Deprecated add-through-an-identity-server: refused like /bind."""
        await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        body.obj("three_pid_creds")
        raise threepid_denied()


class AddThreepidServlet(Servlet):
    PATTERNS = client_patterns("/account/3pid/add")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        # No UIA first: the answer is no whoever the caller proves to be.
        await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        body.str("client_secret")
        body.str("sid")
        raise threepid_denied()


class BindThreepidServlet(Servlet):
    PATTERNS = client_patterns("/account/3pid/bind")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        for key in ("client_secret", "id_server", "id_access_token", "sid"):
            body.str(key)
        raise threepid_denied()


class RemoveThreepidServlet(Servlet):
    """`/delete` and `/unbind`: nothing is linked or bound, so nothing is left to remove."""

    PATTERNS = client_patterns("/account/3pid/(?P<action>delete|unbind)")

    async def on_POST(self, request: PimanRequest, action: str) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        _read_threepid(read_json_object(request))
        return HTTPStatus.OK, {"id_server_unbind_result": "no-support"}


class RequestTokenServlet(Servlet):
    """Validation tokens for a 3PID: to add one to an account, to register with one, or to reset a
    password through one. None is supported yet, so each asks gets the spec's "not supported"."""

    PATTERNS = (client_patterns("/account/3pid/(?P<medium>email|msisdn)/requestToken")
                + client_patterns("/(?P<purpose>register)/(?P<medium>email|msisdn)/requestToken")
                + client_patterns("/account/(?P<purpose>password)/(?P<medium>email|msisdn)/requestToken"))

    async def on_POST(self, request: PimanRequest, medium: str, purpose: str = "add") -> tuple[int, Any]:
        read_json_object(request)
        what = "email addresses" if medium == "email" else "phone numbers"
        doing = {"add": "adding {} to accounts", "register": "registering with {}",
                 "password": "resetting passwords through {}"}[purpose].format(what)
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_THREEPID_MEDIUM_NOT_SUPPORTED",
                          f"This server does not support {doing}.")


def servlets(hs: "HomeServer") -> list[Any]:
    return [ThreepidsServlet(hs), AddThreepidServlet(hs), BindThreepidServlet(hs), RemoveThreepidServlet(hs),
            RequestTokenServlet(hs)]
