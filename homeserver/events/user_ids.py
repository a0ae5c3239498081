"""User IDs as the auth rules see them: the historical grammar every server must still accept.

The event model can't use `homeserver.identifiers` (it imports HTTP code), and the auth rules need the
lenient grammar anyway: "valid user ID" in the power-levels and `additional_creators` rules is the
validation applied to `sender`, and old rooms hold senders outside today's localpart character set.
"""

from __future__ import annotations

import re

MAX_USER_ID_BYTES = 255

# server_name = hostname [ ":" port ]; hostname = IPv4 / "[" IPv6 "]" / dns-name (spec appendices).
_SERVER_NAME_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.\-]{1,255})(?::[0-9]{1,5})?")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def is_valid_server_name(server_name: str) -> bool:
    return _SERVER_NAME_RE.fullmatch(server_name) is not None


def is_valid_user_id(value: object) -> bool:
    """`@localpart:server_name` under the historical grammar.

    The localpart may be any non-surrogate code points except `:` and NUL (even empty); the server name must
    follow the server-name grammar; the whole ID is at most 255 bytes of UTF-8.
    """
    if not isinstance(value, str) or not value.startswith("@") or ":" not in value:
        return False
    localpart, _, server_name = value[1:].partition(":")
    if "\x00" in localpart or _SURROGATE_RE.search(value):
        return False
    if len(value.encode("utf-8")) > MAX_USER_ID_BYTES:
        return False
    return is_valid_server_name(server_name)


def server_of(identifier: str) -> str:
    """The server name of a user ID (or v1–2 event ID, or pre-v12 room ID): all after the first ':'.

    Returns "" when there is none, which never equals a real server name, so domain comparisons fail closed.
    """
    _, sep, server_name = identifier.partition(":")
    return server_name if sep else ""
