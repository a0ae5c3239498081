"""`push`: which push gateways the server may contact, and how much a notification may say.

A push gateway is a third party (the app vendor's relay to Apple/Google), so by default the
server contacts none: the admin lists the gateway URL prefixes users' pushers may name. What a
notification carries is the spec's `event_id_only` shape unless the admin opts into content.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from config.schema import Bool, Context, Invalid, KeyPath, ListOf, Section, Str, describe


class GatewayPrefix(Str):
    """An http(s) URL prefix with a host: a bare "https://" would allow every gateway."""

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        prefix = super().convert(value, path, ctx)
        parsed = urllib.parse.urlsplit(prefix)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise Invalid(path, f"expected an http(s) URL prefix with a host, got {describe(value, path)}")
        return prefix


PUSH = Section(
    "PushConfig",
    {
        "gateways": ListOf(
            GatewayPrefix(),
            default=[],
            example=["https://matrix.org/_matrix/push/v1/notify"],
            doc="""
            URL prefixes of the push gateways the server may send notifications to (a pusher's
            data.url must start with one). Empty (the default): no push notifications leave
            the server, and clients setting a pusher are told why.
            """,
        ),
        "include_content": Bool(
            default=False,
            doc="""
            Whether notifications may carry the event's type, sender, sender display name, room
            name and content (never for encrypted events). Off: only event ID, room ID, unread
            count and priority reach the gateway, whatever format the client asked for.
            """,
        ),
    },
    doc="Mobile push notifications through push gateways.",
)
