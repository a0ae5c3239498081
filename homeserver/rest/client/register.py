"""`/register`, `/register/available` and the registration-token validity check."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, forbidden, invalid_param
from homeserver.http.parse import JsonFields, query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def guest_forbidden() -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled on this server.")


class RegisterServlet(Servlet):
    PATTERNS = client_patterns("/register")

    def __init__(self, hs: "HomeServer") -> None:
        super().__init__(hs)
        self._handler = hs.registration_handler

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        kind = query_str(request, "kind", "user")
        if kind not in ("user", "guest"):
            raise invalid_param("Query parameter 'kind' must be 'user' or 'guest'.")
        body = read_json_object(request, allow_empty=True)
        if kind == "guest":
            return await self._register_guest(request, body)
        config = self.hs.config
        if not config.enable_registration:
            raise forbidden("Registration is disabled on this server: ask an administrator for an account.")
        limiter = self.hs.ratelimiters.registration
        client_ip = request.get_client_ip()
        wait_ms = limiter.check(client_ip, record=False)
        if wait_ms:
            limiter.ratelimit(client_ip)

        username = body.str("username", None, nullable=True)
        password = body.str("password", None, nullable=True)
        # Fail fast, before the client goes through the auth stages.
        if username is not None:
            await self._handler.check_username(username.lower())
        if password is not None:
            self.hs.password_handler.validate_new(password)

        result = await self.hs.ui_auth.check(
            request, body, flows=self._handler.registration_flows(), description="register a new account"
        )
        fields = JsonFields(result.clientdict)
        username = fields.str("username", None, nullable=True)
        password = fields.str("password", None, nullable=True)
        token = result.completed.get("m.login.registration_token")
        try:
            limiter.ratelimit(client_ip)
            user_id = await self._handler.register(username.lower() if username is not None else None, password)
        except MatrixError:
            if token is not None:
                await self.hs.store.registration_tokens.release_pending(token)
            raise
        if token is not None:
            await self.hs.store.registration_tokens.complete_token_use(token)
        accepted_policy = result.completed.get("m.login.terms")
        if accepted_policy is not None:
            await self.hs.consent_handler.record(user_id, accepted_policy)
        await self.hs.ui_auth.finish(result.session_id)
        return HTTPStatus.OK, await self._login_response(request, user_id, fields)

    async def _register_guest(self, request: PimanRequest, body: JsonFields) -> tuple[int, Any]:
        if not self.hs.config.allow_guest_access:
            raise guest_forbidden()
        self.hs.ratelimiters.registration.ratelimit(request.get_client_ip())
        user_id = await self._handler.register(None, None, guest=True)
        return HTTPStatus.OK, await self._login_response(request, user_id, body)

    async def _login_response(self, request: PimanRequest, user_id: str, fields: JsonFields) -> dict[str, Any]:
        if fields.bool("inhibit_login", False):
            return {"user_id": user_id, "home_server": self.hs.hostname}
        session = await self.hs.session_handler.create_session(
            user_id,
            fields.str("device_id", None, nullable=True),
            fields.str("initial_device_display_name", None, nullable=True),
            want_refresh=fields.bool("refresh_token", False),
        )
        await self.hs.auth.record_device_seen(user_id, session.device_id, request)
        return {**session.to_json(), "home_server": self.hs.hostname}


class RegisterAvailableServlet(Servlet):
    PATTERNS = client_patterns("/register/available")


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        if not self.hs.config.enable_registration:
            raise forbidden("Registration is disabled on this server.")
        self.hs.ratelimiters.registration.ratelimit(request.get_client_ip(), cost=0.2)
        await self.hs.registration_handler.check_username(query_str(request, "username").lower())
        return HTTPStatus.OK, {"available": True}


class RegistrationTokenValidityServlet(Servlet):
    PATTERNS = ["/_matrix/client/v1/register/m.login.registration_token/validity"]


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        if not self.hs.config.enable_registration or not self.hs.config.registration_requires_token:
            raise forbidden("Registration tokens are not used on this server.")
        self.hs.ratelimiters.registration.ratelimit(request.get_client_ip(), cost=0.2)
        token = query_str(request, "token")
        valid = await self.hs.store.registration_tokens.token_is_valid(token, self.hs.clock.time_msec())
        return HTTPStatus.OK, {"valid": valid}


def servlets(hs: "HomeServer") -> list[Any]:
    return [RegisterServlet(hs), RegisterAvailableServlet(hs), RegistrationTokenValidityServlet(hs)]
