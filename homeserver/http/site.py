"""The twisted.web site: request objects with a body-size cap, and an access log without secrets.

Twisted's own access log writes the full URI, which may hold `?access_token=` (deprecated but still
sent by old clients). Ours redacts it, and never logs bodies.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

access_logger = logging.getLogger("piman.access")

# `h` is the consent page's link signature (see homeserver/rest/consent_page.py): a credential too.
_SECRET_QUERY = re.compile(rb"(?i)((?:access_token|token|password|client_secret|sid|(?<=[?&])h)=)[^&]*")


def redact_uri(uri: bytes) -> str:
    """The request URI with secret-looking query values replaced, for logs."""
    return _SECRET_QUERY.sub(rb"\1<redacted>", uri).decode("ascii", "replace")


class PimanRequest(Request):
    """A request that stops buffering once its body passes the site's cap.

    The cap is the largest body any endpoint accepts (media uploads); servlets with a lower limit
    (JSON endpoints) check `body_length` themselves. A body over the cap is dropped, not stored,
    and the request answers 413.
    """

    def __init__(self, channel: HTTPChannel, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, **kwargs)
        self.body_length = 0
        self.body_too_large = False
        self.start_time = time.monotonic()
        self.request_id = "-"
        self.authenticated_entity: str | None = None
        self.servlet_name = "unknown"

    @property
    def max_body_size(self) -> int:
        return self.channel.site.max_body_size  # type: ignore[no-any-return]

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body_size:
            self.body_too_large = True
        super().gotLength(None if self.body_too_large else length)

    def handleContentChunk(self, data: bytes) -> None:
        self.body_length += len(data)
        if self.body_length > self.max_body_size:
            if not self.body_too_large:
                self.body_too_large = True
                assert self.content is not None
                self.content.seek(0)
                self.content.truncate()
            return
        if not self.body_too_large:
            super().handleContentChunk(data)

    def get_client_ip(self) -> str:
        """The peer address; `X-Forwarded-For` only when the listener trusts a reverse proxy."""
        if self.site.x_forwarded:
            forwarded = self.getHeader("x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        peer = self.getClientAddress()
        return getattr(peer, "host", "-")


class PimanSite(Site):
    """One listener's site; logs each finished request once, without secrets."""

    requestFactory = PimanRequest

    def __init__(self, resource: Resource, *, max_body_size: int, x_forwarded: bool, name: str) -> None:
        super().__init__(resource)
        self.max_body_size = max_body_size
        self.x_forwarded = x_forwarded
        self.site_name = name
        self._ids = itertools.count(1)

    def next_request_id(self) -> str:
        return f"{self.site_name}-{next(self._ids)}"

    def log(self, request: PimanRequest) -> None:  # type: ignore[override]
        duration_ms = (time.monotonic() - request.start_time) * 1000
        access_logger.info(
            "%s %s %s %s %d %dB %.1fms %s",
            request.request_id,
            request.get_client_ip(),
            request.method.decode("ascii", "replace"),
            redact_uri(request.uri),
            request.code,
            request.sentLength,
            duration_ms,
            request.authenticated_entity or "-",
        )
