"""OpenID: a user proves who they are to a third party (an integration manager, a widget).

The client asks `/user/{userId}/openid/request_token` for a short-lived token and hands it over;
the third party sends it to `/_matrix/federation/v1/openid/userinfo` and learns the user ID.
Such a token is good for nothing else: it lives in its own table, never among access tokens.
Only its hash is stored, like access tokens.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.auth import token_hash
from homeserver.http.errors import forbidden, unknown_token
from homeserver.http.parse import query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

# How long a third party may take to exchange the token (Synapse's fixed hour).
OPENID_TOKEN_LIFETIME_S = 3600


class RequestOpenIdTokenServlet(Servlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]+)/openid/request_token")

    async def on_POST(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        if user_id != requester.user_id:
            raise forbidden("You can only request OpenID tokens for yourself.")
        read_json_object(request, allow_empty=True)  # an empty object, reserved for future use
        token = secrets.token_urlsafe(32)
        now_ms = self.hs.clock.time_msec()
        await self.hs.store.openid_tokens.add_openid_token(
            token_hash(token), requester.user_id, now_ms + OPENID_TOKEN_LIFETIME_S * 1000, now_ms)
        return HTTPStatus.OK, {"access_token": token, "token_type": "Bearer",
                               "matrix_server_name": self.hs.hostname, "expires_in": OPENID_TOKEN_LIFETIME_S}


class UserInfoServlet(Servlet):
    """Served by listeners with the `openid` or `federation` resource, without authentication."""

    PATTERNS = ["/_matrix/federation/v1/openid/userinfo"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        token = query_str(request, "access_token")
        user_id = await self.hs.store.openid_tokens.get_user_for_openid_token(
            token_hash(token), self.hs.clock.time_msec())
        if user_id is None:
            raise unknown_token("OpenID token unknown or expired.")
        user = await self.hs.store.users.get_user(user_id)
        if user is None or user.deactivated:
            raise unknown_token("OpenID token unknown or expired.")
        return HTTPStatus.OK, {"sub": user_id}


def servlets(hs: "HomeServer") -> list[Any]:
    return [RequestOpenIdTokenServlet(hs)]


def userinfo_servlets(hs: "HomeServer") -> list[Any]:
    return [UserInfoServlet(hs)]
