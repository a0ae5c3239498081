"""Password login, with the `rc_login` limits: per address, per account, and per failed attempt.

An unknown user and a wrong password get the same answer, so logins can't be used to find out
which accounts exist.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from homeserver.http.errors import MatrixError
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def invalid_login() -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN", "Invalid username or password.")


class LoginHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self._passwords = hs.password_handler
        self._limits = hs.ratelimiters

    async def canonical_user_id(self, claimed: str) -> str | None:
        """The stored user ID a login names: exact match first, else a unique case-insensitive one."""
        if await self._store.users.get_user(claimed) is not None:
            return claimed
        candidates = await self._store.users.find_user_ids_case_insensitive(claimed)
        return candidates[0] if len(candidates) == 1 else None

    async def check_password_login(self, claimed_user_id: str, password: str, request: PimanRequest) -> str:
        """The user ID if `password` is right for it; raises 403 (or 429) otherwise."""
        if not self._passwords.enabled:
            raise MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN", "Password login is disabled on this server.")
        self._limits.login_address.ratelimit(request.get_client_ip())
        key = claimed_user_id.lower()
        self._limits.login_account.ratelimit(key)
        wait_ms = self._limits.login_failed.check(key, record=False)
        if wait_ms:
            self._limits.login_failed.ratelimit(key)  # raises with the right retry_after_ms
        user_id = await self.canonical_user_id(claimed_user_id)
        user = await self._store.users.get_user(user_id) if user_id else None
        if user is None or not await self._passwords.check(password, user.password_hash):
            self._limits.login_failed.record(key)
            raise invalid_login()
        if user.deactivated:
            raise MatrixError(HTTPStatus.FORBIDDEN, "M_USER_DEACTIVATED", "This account has been deactivated.")
        if user.locked:
            raise MatrixError(HTTPStatus.UNAUTHORIZED, "M_USER_LOCKED", "This account has been locked by an administrator.")
        return user.user_id
