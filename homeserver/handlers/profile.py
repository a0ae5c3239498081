"""Profiles: display name, avatar, time zone and custom fields, visible inside the organisation.

A change of display name or avatar is announced to the callbacks in `on_profile_changed`
(the room code registers one that updates the user's member events) and as a presence update.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from homeserver.http.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from homeserver.identifiers import UserIdentifierError, split_user_id

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

DISPLAYNAME = "displayname"
AVATAR_URL = "avatar_url"
MEMBER_FIELDS = (DISPLAYNAME, AVATAR_URL)
KEY_RE = re.compile(r"^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$")
MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 64 * 1024
MAX_DISPLAYNAME_CHARS = 256
MAX_AVATAR_URL_CHARS = 1000

ProfileCallback = Callable[[str, dict[str, Any]], Awaitable[None]]


def _size(profile: dict[str, Any]) -> int:
    return len(json.dumps(profile, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_KEY_TOO_LARGE", f"Profile keys are limited to {MAX_KEY_BYTES} bytes.")
    if not KEY_RE.match(key):
        raise invalid_param(f"'{key}' is not a valid profile key: use displayname, avatar_url, m.tz or a namespaced key.")


def check_value(key: str, value: Any) -> Any:
    """The value to store, or None to remove the field ('' or null clear a name or avatar)."""
    if key in MEMBER_FIELDS:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise bad_json(f"'{key}' must be a string.")
        if key == DISPLAYNAME and len(value) > MAX_DISPLAYNAME_CHARS:
            raise bad_json(f"Display names are limited to {MAX_DISPLAYNAME_CHARS} characters.")
        if key == AVATAR_URL:
            if not value.startswith("mxc://"):
                raise bad_json("'avatar_url' must be an mxc:// URI.")
            if len(value) > MAX_AVATAR_URL_CHARS:
                raise bad_json(f"Avatar URLs are limited to {MAX_AVATAR_URL_CHARS} characters.")
        return value
    if key == "m.tz" and not isinstance(value, str):
        raise bad_json("'m.tz' must be a string.")
    return value


class ProfileHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.profiles
        self.on_profile_changed: list[ProfileCallback] = []

    async def _require_local_user(self, user_id: str) -> None:
        try:
            _, server = split_user_id(user_id)
        except UserIdentifierError as e:
            raise invalid_param(str(e)) from None
        user = await self._hs.store.users.get_user(user_id) if server == self._hs.hostname else None
        if user is None or user.deactivated:
            raise not_found("Profile not found.")

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """Everything in `user_id`'s profile; 404 for unknown (or remote) users."""
        await self._require_local_user(user_id)
        return await self._store.get_profile(user_id)

    async def get_member_event_profile(self, user_id: str) -> dict[str, Any]:
        """The `displayname`/`avatar_url` to put in `user_id`'s member events."""
        profiles = await self._store.get_profiles([user_id], MEMBER_FIELDS)
        return profiles.get(user_id, {})

    async def get_profiles(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Display names and avatars of many users at once (absent if they set none)."""
        return await self._store.get_profiles(user_ids, MEMBER_FIELDS)

    async def set_field(self, requester: str, user_id: str, key: str, value: Any) -> None:
        await self._change(requester, user_id, key, check_value(key, value), remove=False)

    async def delete_field(self, requester: str, user_id: str, key: str) -> None:
        await self._change(requester, user_id, key, None, remove=True)

    async def _change(self, requester: str, user_id: str, key: str, value: Any, *, remove: bool) -> None:
        check_key(key)
        if requester != user_id:
            raise forbidden("You can only change your own profile.")
        if remove or (key in MEMBER_FIELDS and value is None):
            def mutate(profile: dict[str, Any]) -> dict[str, Any]:
                profile.pop(key, None)
                return profile
        else:
            def mutate(profile: dict[str, Any]) -> dict[str, Any]:
                profile[key] = value
                if _size(profile) > MAX_PROFILE_BYTES:
                    raise MatrixError(HTTPStatus.BAD_REQUEST, "M_PROFILE_TOO_LARGE",
                                      f"Profiles are limited to {MAX_PROFILE_BYTES} bytes.")
                return profile

        old, new = await self._store.update_profile(user_id, mutate)
        if any(old.get(f) != new.get(f) for f in MEMBER_FIELDS):
            await self._announce(user_id, {f: new[f] for f in MEMBER_FIELDS if f in new})

    async def _announce(self, user_id: str, member_profile: dict[str, Any]) -> None:
        for callback in list(self.on_profile_changed):
            try:
                await callback(user_id, member_profile)
            except Exception:
                logger.exception("A profile-change callback failed for one user")
        await self._hs.presence_handler.profile_changed(user_id)
