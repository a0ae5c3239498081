"""`/voip/turnServer`: credentials for the TURN servers that relay a call when peers can't connect.

With `turn_shared_secret`, credentials follow the TURN REST API convention (coturn's
`use-auth-secret`): the username is "<expiry in UNIX seconds>:<user ID>" and the password is
base64(HMAC-SHA1(secret, username)), so the TURN server checks them with the secret alone and
refuses them after the expiry. Static `turn_username`/`turn_password` are handed out as they are.
Nothing configured: `{}`, as Synapse answers and clients expect (the spec's schema has no "no
TURN" shape; matrix-js-sdk and Element read a missing `uris` as "no TURN server").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def turn_rest_credentials(secret: str, user_id: str, expiry_s: int) -> tuple[str, str]:
    """The (username, password) a TURN server sharing `secret` accepts until `expiry_s`."""
    username = f"{expiry_s}:{user_id}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


class TurnServerServlet(Servlet):
    PATTERNS = client_patterns("/voip/turnServer")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        config = self.hs.config
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=config.turn_allow_guests)
        if not config.turn_uris:
            return HTTPStatus.OK, {}
        lifetime_ms = config.turn_user_lifetime
        if config.turn_shared_secret is not None:
            expiry_s = (self.hs.clock.time_msec() + lifetime_ms) // 1000
            username, password = turn_rest_credentials(config.turn_shared_secret, requester.user_id, expiry_s)
        elif config.turn_username is not None:
            username, password = config.turn_username, config.turn_password
        else:
            return HTTPStatus.OK, {}  # TURN servers without credentials: clients can't use them
        return HTTPStatus.OK, {"username": username, "password": password, "uris": list(config.turn_uris),
                               "ttl": lifetime_ms // 1000}


def servlets(hs: "HomeServer") -> list[Any]:
    return [TurnServerServlet(hs)]
