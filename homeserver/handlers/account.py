"""Changing a password and deactivating an account."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class AccountHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self._passwords = hs.password_handler
        self._sessions = hs.session_handler

    async def change_password(self, user_id: str, new_password: str, *, logout_devices: bool,
                              keep_device_id: str | None) -> None:
        """Set a new password; by default every other session of the user is signed out."""
        self._passwords.validate_new(new_password)
        await self._store.users.set_password_hash(user_id, await self._passwords.hash(new_password))
        if logout_devices:
            devices = await self._store.devices.get_devices(user_id)
            others = [d.device_id for d in devices if d.device_id != keep_device_id]
            await self._store.devices.delete_devices(user_id, others)

    async def deactivate(self, user_id: str) -> None:
        """Close the account: no password, no sessions. The user ID stays reserved forever.

        Deleting the user's data too (`erase: true`) is `ErasureHandler.erase`.
        """
        await self._store.users.set_deactivated(user_id, True)
        await self._store.users.set_password_hash(user_id, None)
        await self._sessions.logout_all(user_id)
