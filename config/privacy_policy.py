"""`privacy_policy`, `require_consent`, `form_secret` and `server_notices`: telling users about the
policy, and recording that they accepted it.

The version is what users accept and what a change is detected by: changing it announces the new
version to every user in a server notice on the next start-up (or on SIGHUP, see `piman run`).
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
            user gets a server notice naming the new version on the next start-up, or at once
            when the running server gets SIGHUP (kill -HUP <pid>: it re-reads privacy_policy).
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
    M_CONSENT_NOT_GIVEN with the user's link to the consent page (signed with form_secret),
    where they read and accept the policy. Leaving rooms and reading stay possible.
    """,
)

# Shorter than this, a form_secret could be guessed, and with it anyone's consent links.
FORM_SECRET_MIN_LENGTH = 16


class LongSecret(Str):
    kind = f"a random string of at least {FORM_SECRET_MIN_LENGTH} characters"

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        text = super().convert(value, path, ctx)
        if len(text) < FORM_SECRET_MIN_LENGTH:
            raise Invalid(path, f"too short to stay secret: use {self.kind} (e.g. the output of "
                                "`openssl rand -hex 32`)")
        return text


FORM_SECRET = LongSecret(
    secret=True,
    example="<a long random string>",
    doc="""
    The key that signs each user's link to the consent page (/_matrix/consent with u= and h= parameters),
    as Synapse's form_secret does: the link lets its holder accept the privacy policy for
    that user, without logging in. Required with require_consent; piman init writes one.
    Changing it invalidates the links already sent.
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
    """`require_consent` needs a policy to accept, and a form_secret for the consent page's links."""
    if not values.get("require_consent"):
        return
    if values.get("privacy_policy") is None:
        raise Invalid((*path, "require_consent"), "needs a privacy_policy (version and url) for users to accept")
    if values.get("form_secret") is None:
        raise Invalid((*path, "form_secret"), "is required with require_consent: it signs the links to the "
                                              "consent page that refused users are sent to; set it to a long "
                                              "random string (e.g. the output of `openssl rand -hex 32`)")
