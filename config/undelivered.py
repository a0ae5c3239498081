"""`undelivered_ttl`: how long a message nobody picked up is kept, capped by the privacy policy.

The policy promises that a message which cannot be delivered is deleted after 30 days at
most, so the config refuses a longer time rather than quietly breaking that promise.
"""

from __future__ import annotations

from typing import Any

from config.parsing import parse_duration
from config.schema import Context, Duration, Invalid, KeyPath, describe

MAX_UNDELIVERED_TTL = "30d"


class UndeliveredTtl(Duration):
    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        milliseconds = super().convert(value, path, ctx)
        if milliseconds > parse_duration(MAX_UNDELIVERED_TTL):
            raise Invalid(
                path,
                f"must be at most {MAX_UNDELIVERED_TTL}, got {describe(value, path)}: the privacy policy promises "
                "that undelivered messages are deleted after 30 days at most",
            )
        return milliseconds


UNDELIVERED_TTL = UndeliveredTtl(
    default=MAX_UNDELIVERED_TTL,
    positive=True,
    doc="""
    How long a message that no device has picked up is kept before it is deleted: to-device
    messages waiting in a device's inbox (and, once federation exists, messages for a server
    that stayed unreachable). At most 30d, as the privacy policy promises.
    """,
)
