"""`privacy_policy`, `require_consent` and `server_notices`: telling users about the policy, and
recording that they accepted it.

The version is what users accept and what a change is detected by: changing it announces the new
version to every user in a server notice on the next start-up.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from config.schema import Bool, Context, Invalid, KeyPath, Section, Str, describe

# The spec's grammar of user ID localparts (historical characters aside).
_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")


class HttpUrl(Str):
    """An absolute http(s) URL, kept exactly as written (a policy page's address is not a base URL)."""

    kind = "an http:// or https:// URL"

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        text = super().convert(value, path, ctx)
        try:
            parts = urllib.parse.urlsplit(text)
        except ValueError:
            raise self.expected(value, path) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.expected(value, path)
        return text


class Localpart(Str):
    kind = "a user ID localpart (lower-case letters, digits and ._=-/+)"

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        text = super().convert(value, path, ctx)
        if not _LOCALPART.match(text):
            raise Invalid(path, f"expected {self.kind}, got {describe(value, path)}")
        return text


PRIVACY_POLICY = Section(
    "PrivacyPolicyConfig",
    {
        "version": Str(
            required=True,
            example="2026-11",
            doc="""
            The policy's version, e.g. "2026-11". Users accept a version; when it changes, every
            user gets a server notice naming the new version on the next start-up.
            """,
        ),
        "url": HttpUrl(required=True, example="https://acme.example/privacy", doc="Where users read the policy."),
        "name": Str(default="Privacy Policy", doc="The policy's title, as clients show it at registration."),
        "lang": Str(default="en", doc="The language of the policy at `url` (a language tag such as en or fr)."),
    },
    optional=True,
    doc="""
    The organisation's privacy policy. When set, registration asks users to accept it
    (m.login.terms), their acceptance is recorded, and a new version is announced to every
    user in a server notice. Unset: no policy is shown or recorded.
    """,
)

REQUIRE_CONSENT = Bool(
    default=False,
    doc="""
    Whether users must have accepted the current privacy_policy version before they send
    messages or state, join, invite or create rooms. Refused requests get 403
    M_CONSENT_NOT_GIVEN with the policy's URL. Leaving rooms and reading stay possible.
    """,
)

SERVER_NOTICES = Section(
    "ServerNoticesConfig",
    {
        "system_mxid_localpart": Localpart(
            default="notices",
            doc="""
            The localpart of the account that sends server notices (@notices:<server_name>). The
            server creates it, without a password: no one can log in as it. It must not be a
            person's existing account.
            """,
        ),
        "system_mxid_display_name": Str(default="Server Notices", doc="That account's display name."),
        "room_name": Str(default="Server Notices", doc="The name of each user's server-notices room."),
    },
    doc="""
    Server notices: messages from the organisation's administrators, such as privacy policy
    changes, in a room per user that the user can read and leave but not post in. These rooms
    are not end-to-end encrypted (the server writes the notices) and say so.
    """,
)


def check_consent_needs_policy(values: Mapping[str, Any], path: KeyPath) -> None:
    if values.get("require_consent") and values.get("privacy_policy") is None:
        raise Invalid((*path, "require_consent"), "needs a privacy_policy (version and url) for users to accept")
