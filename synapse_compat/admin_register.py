"""Synapse's shared-secret registration (`/_synapse/admin/v1/register`), re-implemented from its
documented behaviour, so `register_new_matrix_user` and existing admin scripts work unchanged.

Protocol: GET returns a nonce; POST sends it back with `mac` = hex HMAC-SHA1, keyed with
`registration_shared_secret`, over `nonce NUL username NUL password NUL admin|notadmin
[NUL user_type]`. A nonce is good for one use within a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, bad_json, forbidden
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

NONCE_LIFETIME_S = 60


def registration_mac(secret: str, nonce: str, username: str, password: str, admin: bool,
                     user_type: str | None = None) -> str:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(username.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode("utf-8"))
    return mac.hexdigest()


class SharedSecretRegisterServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v1/register"]

    def __init__(self, hs: "HomeServer") -> None:
        super().__init__(hs)
        self._nonces: dict[str, float] = {}

    def _secret(self) -> str:
        secret = self.hs.config.registration_shared_secret
        if not secret:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN",
                              "Shared secret registration is not enabled (registration_shared_secret is not set).")
        return secret

    def _prune(self) -> None:
        now = self.hs.clock.time()
        for nonce, created in list(self._nonces.items()):
            if now - created > NONCE_LIFETIME_S:
                del self._nonces[nonce]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        self._secret()
        self._prune()
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = self.hs.clock.time()
        return HTTPStatus.OK, {"nonce": nonce}

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        secret = self._secret()
        self.hs.ratelimiters.registration.ratelimit(request.get_client_ip())
        self._prune()
        body = read_json_object(request)
        nonce = body.str("nonce")
        if nonce not in self._nonces:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN", "Unrecognised or expired nonce: GET a new one.")
        del self._nonces[nonce]  # one use only, whatever happens next
        username = body.str("username")
        password = body.str("password")
        admin = body.bool("admin", False)
        user_type = body.str("user_type", None, nullable=True)
        if "\x00" in username or "\x00" in password:
            raise bad_json("username and password must not contain NUL characters.")
        expected = registration_mac(secret, nonce, username, password, admin, user_type)
        if not hmac.compare_digest(expected, body.str("mac")):
            raise forbidden("HMAC incorrect.")
        hs = self.hs
        user_id = await hs.registration_handler.register(username.lower(), password, admin=admin, user_type=user_type)
        # The secret's holder has no user ID: the audit log names the way in, the address goes in sealed details.
        await hs.audit_log.record("shared_secret", "user.register", user_id,
                                  {"admin": admin, "user_type": user_type, "client_ip": request.get_client_ip()})
        await hs.consent_handler.tell_new_account(user_id)  # its user accepted no terms: a notice tells them
        session = await hs.session_handler.create_session(user_id, None, None)
        return HTTPStatus.OK, {**session.to_json(), "home_server": hs.hostname}


def servlets(hs: "HomeServer") -> list[Any]:
    return [SharedSecretRegisterServlet(hs)]
