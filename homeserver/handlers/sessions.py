"""Devices with their access (and refresh) tokens: what login and registration hand out.

A refresh token, when the client asks for one, makes the access token short-lived
(`refreshable_access_token_lifetime`); using the refresh token rotates both, and the old refresh
token stops working once the new one has been used.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.auth import ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, new_token, token_hash
from homeserver.http.errors import MatrixError, unknown_token

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_DEVICE_ID_LENGTH = 255
MAX_DISPLAY_NAME_LENGTH = 100


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": self.user_id, "access_token": self.access_token, "device_id": self.device_id}
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
            body["expires_in_ms"] = self.expires_in_ms
        return body


def check_device_fields(device_id: str | None, display_name: str | None) -> None:
    if device_id is not None and not (0 < len(device_id) <= MAX_DEVICE_ID_LENGTH):
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM",
                          f"device_id must be 1 to {MAX_DEVICE_ID_LENGTH} characters long.")
    if display_name is not None and len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM",
                          f"Device display name must be at most {MAX_DISPLAY_NAME_LENGTH} characters long.")


class SessionHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self._clock = hs.clock
        self._access_lifetime_ms = hs.config.refreshable_access_token_lifetime
        self._refresh_lifetime_ms = hs.config.refresh_token_lifetime
        self._session_lifetime_ms = hs.config.session_lifetime

    async def create_session(self, user_id: str, device_id: str | None, display_name: str | None,
                             *, want_refresh: bool = False) -> Session:
        """Register (or reuse) a device and issue its tokens."""
        check_device_fields(device_id, display_name)
        now = self._clock.time_msec()
        if device_id is None:
            device_id = new_device_id()
        await self._store.devices.store_device(user_id, device_id, display_name, now)
        ultimate = now + self._session_lifetime_ms if self._session_lifetime_ms else None
        session, _ = await self._issue(user_id, device_id, now, want_refresh, ultimate)
        return session

    async def _issue(self, user_id: str, device_id: str, now: int, want_refresh: bool,
                     ultimate_expiry: int | None) -> tuple[Session, int | None]:
        access_token = new_token(ACCESS_TOKEN_PREFIX)
        refresh_token = None
        refresh_id = None
        valid_until = None
        expires_in = None
        if want_refresh:
            refresh_token = new_token(REFRESH_TOKEN_PREFIX)
            refresh_expiry = now + self._refresh_lifetime_ms if self._refresh_lifetime_ms else None
            if ultimate_expiry is not None:
                refresh_expiry = min(refresh_expiry or ultimate_expiry, ultimate_expiry)
            refresh_id = await self._store.tokens.add_refresh_token(
                user_id, device_id, token_hash(refresh_token), now,
                expiry_ts=refresh_expiry, ultimate_session_expiry_ts=ultimate_expiry,
            )
            valid_until = now + self._access_lifetime_ms
            if ultimate_expiry is not None:
                valid_until = min(valid_until, ultimate_expiry)
            expires_in = valid_until - now
        elif ultimate_expiry is not None:
            valid_until = ultimate_expiry
        await self._store.tokens.add_access_token(
            user_id, device_id, token_hash(access_token), now, valid_until_ms=valid_until, refresh_token_id=refresh_id
        )
        return Session(user_id, device_id, access_token, refresh_token, expires_in), refresh_id

    async def refresh(self, refresh_token: str) -> Session:
        """Rotate a refresh token: new access + refresh tokens.

        The presented token stays usable until its successor is used (so a client that lost the
        response can retry); using the successor deletes it and the access tokens it produced.
        """
        now = self._clock.time_msec()
        info = await self._store.tokens.get_refresh_token(token_hash(refresh_token))
        if info is None:
            raise unknown_token("Unknown refresh token.")
        if info.expiry_ts is not None and info.expiry_ts < now:
            raise unknown_token("Refresh token has expired.", soft_logout=True)
        session, new_id = await self._issue(info.user_id, info.device_id, now, True, info.ultimate_session_expiry_ts)
        assert new_id is not None
        await self._store.tokens.replace_refresh_token(info.token_id, new_id)
        return session

    async def logout(self, user_id: str, device_id: str | None, token_id: int) -> None:
        """End one session: the device and everything hanging off it, or just the token if deviceless."""
        if device_id is not None:
            await self._store.devices.delete_devices(user_id, [device_id])
        else:
            await self._store.tokens.delete_access_token(token_id)

    async def logout_all(self, user_id: str) -> None:
        devices = await self._store.devices.get_devices(user_id)
        await self._store.devices.delete_devices(user_id, [d.device_id for d in devices])
        await self._store.tokens.delete_access_tokens_for_user(user_id)
