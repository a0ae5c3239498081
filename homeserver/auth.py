"""Who is making this request: access-token authentication for client-server servlets.

Access tokens are 256 random bits; only their SHA-256 is stored, so a database dump can't be
replayed. Looking a token up by its hash also makes the comparison independent of the token's
bytes (no timing side channel on the secret).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from homeserver.http.errors import MatrixError, missing_token, unknown_token
from homeserver.http.site import PimanRequest
from storage.stores.cache import LruCache

if TYPE_CHECKING:
    from homeserver.server import HomeServer

ACCESS_TOKEN_PREFIX = "pmat_"
REFRESH_TOKEN_PREFIX = "pmrt_"


def new_token(prefix: str) -> str:
    """A fresh bearer secret: 256 random bits, URL-safe, with a prefix secret scanners can spot."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    is_guest: bool
    admin: bool
    token_id: int


def get_access_token(request: PimanRequest) -> str | None:
    """The bearer token from `Authorization`, or from the deprecated `?access_token=` query parameter."""
    header = request.getHeader("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise MatrixError(HTTPStatus.UNAUTHORIZED, "M_MISSING_TOKEN", "Malformed Authorization header: expected 'Bearer <token>'.")
        return value.strip()
    assert request.args is not None
    values = request.args.get(b"access_token")
    if values:
        # Deprecated in v1.19 (MSC4127) but still sent by older clients and test suites.
        return values[0].decode("utf-8", "replace")
    return None


# Refresh tokens whose access tokens were seen in use by this process (their predecessors are gone).
CONFIRMED_REFRESH_TOKENS_CACHE = 100_000


class Auth:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self._clock = hs.clock
        self._confirmed_refresh: LruCache[int, bool] = LruCache(CONFIRMED_REFRESH_TOKENS_CACHE)

    async def get_user_by_req(self, request: PimanRequest, *, allow_guest: bool = False,
                              allow_expired: bool = False) -> Requester:
        token = get_access_token(request)
        if token is None:
            raise missing_token()
        info = await self._store.tokens.get_access_token(token_hash(token))
        if info is None or info.deactivated:
            raise unknown_token()
        now = self._clock.time_msec()
        if not allow_expired and info.valid_until_ms is not None and info.valid_until_ms < now:
            raise unknown_token("Access token has expired.", soft_logout=True)
        if info.locked:
            raise MatrixError(HTTPStatus.UNAUTHORIZED, "M_USER_LOCKED", "This account has been locked by an administrator.",
                              soft_logout=True)
        if info.is_guest and not allow_guest:
            raise MatrixError(HTTPStatus.FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN", "Guest accounts can't use this endpoint.")
        request.authenticated_entity = info.user_id
        if info.refresh_token_id is not None and info.refresh_token_id not in self._confirmed_refresh:
            # Spec: the old refresh token stays valid until the new access token (or refresh token) is used.
            await self._store.tokens.delete_superseded_refresh_tokens(info.refresh_token_id)
            self._confirmed_refresh.set(info.refresh_token_id, True)
        if info.device_id is not None:
            await self.record_device_seen(info.user_id, info.device_id, request)
        return Requester(info.user_id, info.device_id, info.is_guest, info.admin, info.token_id)

    async def record_device_seen(self, user_id: str, device_id: str, request: PimanRequest) -> None:
        """Note where and when a device was last used (the store writes at most once a minute)."""
        await self._store.devices.record_last_seen(user_id, device_id, self._clock.time_msec(),
                                                   request.get_client_ip(), request.getHeader("user-agent"))
