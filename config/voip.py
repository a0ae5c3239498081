"""`turn_*`: the TURN servers clients relay calls through, with Synapse's key names.

Credentials are either minted per request from `turn_shared_secret` (the TURN REST API convention
coturn's `use-auth-secret` implements) or the static `turn_username`/`turn_password`; the secret
wins when both are set, as in Synapse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.schema import Bool, Context, Duration, Invalid, KeyPath, ListOf, Str, describe


class TurnUri(Str):
    """A `turn:` or `turns:` URI, the only kind the spec lets `/voip/turnServer` return."""

    kind = "a turn: or turns: URI"

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        text = super().convert(value, path, ctx)
        if not text.startswith(("turn:", "turns:")):
            raise Invalid(path, f"expected {self.kind} (e.g. turn:turn.example.com:3478?transport=udp), "
                                f"got {describe(value, path)}")
        return text


TURN_KEYS = {
    "turn_uris": ListOf(
        TurnUri(),
        default=[],
        example=["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"],
        doc="The TURN servers clients use to relay calls. Empty: /voip/turnServer answers {}.",
    ),
    "turn_shared_secret": Str(
        secret=True,
        example="<coturn's static-auth-secret>",
        doc="""
        The secret shared with the TURN server (coturn: use-auth-secret and static-auth-secret).
        Each client gets a username "<expiry in UNIX seconds>:<user ID>" and the password
        base64(HMAC-SHA1(secret, username)), valid for turn_user_lifetime.
        """,
    ),
    "turn_username": Str(
        example="calls",
        doc="A fixed TURN username for everyone, with turn_password; turn_shared_secret wins if both are set.",
    ),
    "turn_password": Str(secret=True, example="<the TURN user's password>", doc="The password of turn_username."),
    "turn_user_lifetime": Duration(
        default="1h",
        positive=True,
        doc="How long the TURN credentials handed to a client stay valid.",
    ),
    "turn_allow_guests": Bool(default=True, doc="Whether guest accounts may get TURN credentials."),
}


def check_turn(values: Mapping[str, Any], path: KeyPath) -> None:
    """A fixed TURN username needs its password, and the other way round."""
    username, password = values.get("turn_username"), values.get("turn_password")
    if (username is None) != (password is None):
        given, missing = ("turn_username", "turn_password") if password is None else ("turn_password", "turn_username")
        raise Invalid((*path, missing), f"is required with {given}")
