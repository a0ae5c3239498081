"""Synapse's user admin API (v2), so synapse-admin and admin scripts can list, create and change accounts.

    GET /_synapse/admin/v2/users?from=&limit=&guests=&deactivated=&name=&user_id=&order_by=&dir=
    GET /_synapse/admin/v2/users/{userId}
    PUT /_synapse/admin/v2/users/{userId}   create (201) or modify (200)

Differences from Synapse, on purpose: `name`/`user_id` filter on the user ID only and `order_by`
can't be `displayname`/`avatar_url` (profiles are sealed at rest, the database can't search them);
there are no 3PIDs or external IDs, so those lists are always empty. An erased account is a
tombstone: it can't be reactivated or changed. Changes are audit-logged (field names, never values).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.profile import AVATAR_URL, DISPLAYNAME, check_value
from homeserver.http.errors import MatrixError, forbidden, invalid_param, missing_param, not_found
from homeserver.http.parse import query_bool, query_str, read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.identifiers import UserIdentifierError, split_user_id
from homeserver.rest.admin import page_of, require_admin
from storage.stores.users import USER_ORDER_COLUMNS, UserInfo

if TYPE_CHECKING:
    from homeserver.server import HomeServer



def erased_tombstone(user_id: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_FORBIDDEN",
                       f"{user_id} was erased: the account is a tombstone and can't be reactivated or changed. "
                       "Register a new user ID instead.")


def user_json(user: UserInfo, profile: dict[str, Any], erased: bool) -> dict[str, Any]:
    """A user as Synapse's admin API shows one."""
    return {
        "name": user.user_id,
        "is_guest": user.is_guest,
        "admin": user.admin,
        "user_type": user.user_type,
        "deactivated": user.deactivated,
        "erased": erased,
        "shadow_banned": False,
        "locked": user.locked,
        "approved": True,
        "displayname": profile.get(DISPLAYNAME),
        "avatar_url": profile.get(AVATAR_URL),
        "creation_ts": user.creation_ts,
    }


class UserListServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v2/users"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        offset, limit = page_of(request)
        order_by = query_str(request, "order_by", "name")
        if order_by not in USER_ORDER_COLUMNS:
            raise invalid_param(f"'order_by' must be one of {', '.join(USER_ORDER_COLUMNS)} "
                                "(profiles are sealed, so they can't be sorted on).")
        direction = query_str(request, "dir", "f")
        if direction not in ("f", "b"):
            raise invalid_param("'dir' must be 'f' or 'b'.")
        users, total = await self.hs.store.users.list_users(
            offset=offset, limit=limit,
            guests=query_bool(request, "guests", True),
            deactivated=query_bool(request, "deactivated", False),
            id_contains=query_str(request, "user_id", None) or query_str(request, "name", None),
            order_by=order_by, descending=direction == "b",
        )
        profiles = await self.hs.profile_handler.get_profiles([u.user_id for u in users])
        erased = await self.hs.store.erasure.erased_users()
        body: dict[str, Any] = {
            "users": [user_json(u, profiles.get(u.user_id, {}), u.user_id in erased) for u in users],
            "total": total,
        }
        if offset + len(users) < total:
            body["next_token"] = str(offset + len(users))
        return HTTPStatus.OK, body


class UserServlet(Servlet):
    PATTERNS = ["/_synapse/admin/v2/users/(?P<user_id>[^/]+)"]

    async def _details(self, user_id: str) -> dict[str, Any] | None:
        user = await self.hs.store.users.get_user(user_id)
        if user is None:
            return None
        profile = (await self.hs.profile_handler.get_profiles([user_id])).get(user_id, {})
        erased = await self.hs.store.erasure.get(user_id) is not None
        return {**user_json(user, profile, erased), "threepids": [], "external_ids": []}

    async def on_GET(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        await require_admin(self.hs, request)
        details = await self._details(user_id)
        if details is None:
            raise not_found(f"There is no user {user_id}.")
        return HTTPStatus.OK, details

    async def on_PUT(self, request: PimanRequest, user_id: str) -> tuple[int, Any]:
        requester = await require_admin(self.hs, request)
        body = read_json_object(request, allow_empty=True)
        try:
            localpart, server = split_user_id(user_id)
        except UserIdentifierError as e:
            raise invalid_param(str(e)) from None
        if server != self.hs.hostname:
            raise invalid_param("Only local users can be created or changed.")
        # Read and check everything first, so a bad field changes nothing.
        password = body.str("password", None, nullable=True)
        logout_devices = body.bool("logout_devices", True)
        admin = body.bool("admin", None, nullable=True)
        deactivated = body.bool("deactivated", None, nullable=True)
        profile = {key: check_value(key, body.str(key, None, nullable=True))
                   for key in (DISPLAYNAME, AVATAR_URL) if body.has(key)}
        if password is not None:
            self.hs.password_handler.validate_new(password)

        if await self.hs.store.erasure.get(user_id) is not None:
            await self.hs.audit_log.record(requester.user_id, "user.modify", user_id, {"error": "erased"},
                                           outcome="M_FORBIDDEN")
            raise erased_tombstone(user_id)
        existing = await self.hs.store.users.get_user(user_id)
        if existing is None:
            return await self._create(requester.user_id, user_id, localpart, password, admin, deactivated, profile)

        if user_id == requester.user_id and (admin is False or deactivated):
            raise forbidden("You can't remove your own admin rights or deactivate yourself here.")
        reactivate = deactivated is False and existing.deactivated
        if reactivate and password is None and self.hs.password_handler.enabled:
            raise missing_param("Reactivating an account needs a new 'password': deactivation removed the old one.")
        changed: list[str] = []
        if admin is not None and admin != existing.admin:
            await self.hs.store.users.set_admin(user_id, admin)
            changed.append("admin")
        if reactivate:
            await self.hs.store.users.set_deactivated(user_id, False)
            changed.append("reactivated")
        if deactivated and not existing.deactivated:
            await self.hs.account_handler.deactivate(user_id)
            changed.append("deactivated")
        elif password is not None:
            await self.hs.account_handler.change_password(user_id, password, logout_devices=logout_devices,
                                                          keep_device_id=None)
            changed.append("password")
        changed.extend(await self._set_profile(user_id, profile))
        await self.hs.audit_log.record(requester.user_id, "user.modify", user_id,
                                       {"changed": changed, "logout_devices": logout_devices})
        details = await self._details(user_id)
        return HTTPStatus.OK, details

    async def _create(self, actor: str, user_id: str, localpart: str, password: str | None, admin: bool | None,
                      deactivated: bool | None, profile: dict[str, Any]) -> tuple[int, Any]:
        if deactivated:
            raise invalid_param("A new account can't be created deactivated.")
        # The registration rules apply: a valid localpart, and an ID that was never used (by case too).
        await self.hs.registration_handler.register(localpart, password, admin=bool(admin))
        changed = ["created", *(["admin"] if admin else []), *await self._set_profile(user_id, profile)]
        await self.hs.audit_log.record(actor, "user.create", user_id, {"changed": changed})
        return HTTPStatus.CREATED, await self._details(user_id)

    async def _set_profile(self, user_id: str, profile: dict[str, Any]) -> list[str]:
        """Set the display name / avatar as the user would, so their rooms see the change."""
        changed = []
        for key, value in profile.items():
            if value is None:
                await self.hs.profile_handler.delete_field(user_id, user_id, key)
            else:
                await self.hs.profile_handler.set_field(user_id, user_id, key, value)
            changed.append(key)
        return changed


def servlets(hs: "HomeServer") -> list[Any]:
    return [UserListServlet(hs), UserServlet(hs)]
