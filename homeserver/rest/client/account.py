"""`/account/whoami`, `/account/password`, `/account/deactivate`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

PASSWORD_FLOWS = [["m.login.password"]]


class WhoamiServlet(Servlet):
    PATTERNS = client_patterns("/account/whoami")


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body: dict[str, Any] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
        if requester.device_id is not None:
            body["device_id"] = requester.device_id
        return HTTPStatus.OK, body


class PasswordServlet(Servlet):
    PATTERNS = client_patterns("/account/password")


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        new_password = body.str("new_password")
        logout_devices = body.bool("logout_devices", True)
        self.hs.password_handler.validate_new(new_password)
        result = await self.hs.ui_auth.check(request, body, flows=PASSWORD_FLOWS,
                                              description="change your password", requester=requester)
        await self.hs.account_handler.change_password(
            requester.user_id, new_password, logout_devices=logout_devices, keep_device_id=requester.device_id
        )
        await self.hs.ui_auth.finish(result.session_id)
        return HTTPStatus.OK, {}


class DeactivateServlet(Servlet):
    PATTERNS = client_patterns("/account/deactivate")


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request, allow_empty=True)
        erase = body.bool("erase", False)
        body.str("id_server", None, nullable=True)
        result = await self.hs.ui_auth.check(request, body, flows=PASSWORD_FLOWS,
                                              description="deactivate your account", requester=requester)
        if erase:  # refused (409, nothing changed) while a legal hold is on the account
            await self.hs.erasure_handler.erase(requester.user_id, requested_by=requester.user_id)
        else:
            await self.hs.account_handler.deactivate(requester.user_id)
        await self.hs.ui_auth.finish(result.session_id)
        # No identity server is ever contacted: there is nothing to unbind there.
        return HTTPStatus.OK, {"id_server_unbind_result": "no-support"}


def servlets(hs: "HomeServer") -> list[Any]:
    return [WhoamiServlet(hs), PasswordServlet(hs), DeactivateServlet(hs)]


