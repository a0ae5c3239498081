"""`/login`, `/logout`, `/logout/all` and `/refresh`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, bad_json
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest
from homeserver.identifiers import UserIdentifierError, resolve_login_identifier

if TYPE_CHECKING:
    from homeserver.server import HomeServer

PASSWORD_LOGIN = "m.login.password"


class LoginServlet(Servlet):
    PATTERNS = client_patterns("/login")


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        flows = [{"type": PASSWORD_LOGIN}] if self.hs.password_handler.enabled else []
        return HTTPStatus.OK, {"flows": flows}

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        body = read_json_object(request)
        login_type = body.str("type")
        if login_type != PASSWORD_LOGIN or not self.hs.password_handler.enabled:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN", f"Login type '{login_type}' is not supported here.")
        password = body.str("password")
        device_id = body.str("device_id", None, nullable=True)
        display_name = body.str("initial_device_display_name", None, nullable=True)
        want_refresh = body.bool("refresh_token", False)
        try:
            claimed = resolve_login_identifier(body, self.hs.hostname)
        except UserIdentifierError as e:
            raise bad_json(str(e)) from None
        user_id = await self.hs.login_handler.check_password_login(claimed, password, request)
        session = await self.hs.session_handler.create_session(user_id, device_id, display_name,
                                                                want_refresh=want_refresh)
        await self.hs.auth.record_device_seen(user_id, session.device_id, request)
        return HTTPStatus.OK, {
            **session.to_json(),
            "home_server": self.hs.hostname,
            "well_known": self.hs.client_well_known(),
        }


class LogoutServlet(Servlet):
    PATTERNS = client_patterns("/logout")


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True, allow_expired=True)
        await self.hs.session_handler.logout(requester.user_id, requester.device_id, requester.token_id)
        return HTTPStatus.OK, {}


class LogoutAllServlet(Servlet):
    PATTERNS = client_patterns("/logout/all")


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True, allow_expired=True)
        await self.hs.session_handler.logout_all(requester.user_id)
        return HTTPStatus.OK, {}


class RefreshServlet(Servlet):
    PATTERNS = client_patterns("/refresh", releases=("v3",), v1=True)


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        body = read_json_object(request)
        session = await self.hs.session_handler.refresh(body.str("refresh_token"))
        return HTTPStatus.OK, {
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
            "expires_in_ms": session.expires_in_ms,
        }


def servlets(hs: "HomeServer") -> list[Any]:
    return [LoginServlet(hs), LogoutServlet(hs), LogoutAllServlet(hs), RefreshServlet(hs)]
