"""Creating accounts: open registration with UIA, registration tokens, guests, and admin creation.

The username is checked before the client is sent through the auth stages, so a taken name is
reported at once rather than after the user has completed a flow.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import TYPE_CHECKING

from homeserver.handlers.consent import TERMS_STAGE
from homeserver.http.errors import MatrixError
from homeserver.identifiers import UserIdentifierError, make_user_id, validate_new_localpart

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def user_in_use() -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_USER_IN_USE", "That user ID is already taken.")


class RegistrationHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._clock = hs.clock
        self._passwords = hs.password_handler

    def registration_flows(self) -> list[list[str]]:
        flow = ["m.login.registration_token"] if self._hs.config.registration_requires_token else ["m.login.dummy"]
        if self._hs.config.privacy_policy is not None:
            flow.append(TERMS_STAGE)  # the privacy policy is accepted at registration, and recorded
        return [flow]

    async def check_username(self, localpart: str) -> str:
        """The user ID for `localpart` if it could be registered now; 400 with the reason if not."""
        try:
            validate_new_localpart(localpart, self._hs.hostname)
        except UserIdentifierError as e:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_USERNAME", str(e)) from None
        user_id = make_user_id(localpart, self._hs.hostname)
        # Deactivated accounts keep their row: a user ID is never handed to someone else.
        if await self._store.users.is_user_id_taken(user_id):
            raise user_in_use()
        return user_id

    async def register(self, localpart: str | None, password: str | None, *, admin: bool = False,
                       guest: bool = False, user_type: str | None = None) -> str:
        """Create the account; returns its user ID. `localpart=None` picks a free numeric one."""
        if password is not None:
            self._passwords.validate_new(password)
        password_hash = await self._passwords.hash(password) if password is not None else None
        now = self._clock.time_msec()
        if localpart is None:
            for _ in range(10):
                user_id = make_user_id(str(secrets.randbelow(10**9) + 10**9), self._hs.hostname)
                if await self._store.users.register_user(user_id, password_hash, now, admin=admin,
                                                         is_guest=guest, user_type=user_type):
                    return user_id
            raise MatrixError(HTTPStatus.INTERNAL_SERVER_ERROR, "M_UNKNOWN", "Could not find a free user ID.")
        user_id = await self.check_username(localpart)
        if not await self._store.users.register_user(user_id, password_hash, now, admin=admin, is_guest=guest,
                                                     user_type=user_type):
            raise user_in_use()
        return user_id
