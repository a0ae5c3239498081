"""Matrix user IDs: parsing, the localpart grammar, and the login `identifier` object."""

from __future__ import annotations

import re

from homeserver.http.parse import JsonFields

# The historical grammar allowed more, but new registrations must use this set (spec: user identifiers).
LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_LENGTH = 255


class UserIdentifierError(ValueError):
    pass


def make_user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def split_user_id(user_id: str) -> tuple[str, str]:
    """(localpart, server_name) of `@localpart:server`."""
    if not user_id.startswith("@") or ":" not in user_id:
        raise UserIdentifierError(f"'{user_id}' is not a user ID (expected @localpart:server).")
    localpart, _, server = user_id[1:].partition(":")
    if not localpart or not server:
        raise UserIdentifierError(f"'{user_id}' is not a user ID (expected @localpart:server).")
    return localpart, server


def validate_new_localpart(localpart: str, server_name: str) -> None:
    """Raise `UserIdentifierError` with a human reason if `localpart` can't be registered."""
    if not localpart:
        raise UserIdentifierError("User name can't be empty.")
    if not LOCALPART_RE.fullmatch(localpart):
        raise UserIdentifierError("User name can only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'.")
    if localpart.startswith("_"):
        raise UserIdentifierError("User names starting with '_' are reserved for bridges and bots of the server.")
    if len(make_user_id(localpart, server_name)) > MAX_USER_ID_LENGTH:
        raise UserIdentifierError(f"User ID would be longer than {MAX_USER_ID_LENGTH} characters.")


def resolve_login_identifier(fields: JsonFields, server_name: str) -> str:
    """The user ID a login (or UIA password stage) claims, from `identifier` or the legacy `user` field."""
    identifier = fields.obj("identifier", None)
    if identifier is not None:
        kind = identifier.str("type")
        if kind != "m.id.user":
            raise UserIdentifierError(f"Identifier type '{kind}' is not supported: use 'm.id.user'.")
        user = identifier.str("user")
    else:
        user = fields.str("user", None)
        if user is None:
            raise UserIdentifierError("Missing 'identifier' (or the legacy 'user' field).")
    if user.startswith("@"):
        return user
    return make_user_id(user, server_name)
