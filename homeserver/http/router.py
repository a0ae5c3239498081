"""Routing requests to servlets and turning their results and errors into Matrix JSON responses.

A servlet is any object with `PATTERNS` (regular expressions over the raw, still percent-encoded
path; named groups become keyword arguments, percent-decoded) and `on_GET`/`on_POST`/... coroutine
methods returning `(status, json_body)`. One `JsonRouter` serves a listener's resources.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Iterable

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from homeserver.context import request_id
from homeserver.http.errors import MatrixError, too_large, unrecognized
from homeserver.http.metrics import RequestMetrics
from homeserver.http.site import PimanRequest

logger = logging.getLogger(__name__)

METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"X-Requested-With, Content-Type, Authorization, Date",
    b"Access-Control-Expose-Headers": b"Synapse-Trace-Id, Server, Retry-After",
}

Handler = Callable[..., Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    servlet: Any
    name: str
    order: int  # registration order: the first route with a handler for the method wins


_REGEX_SYNTAX = frozenset("()[]{}.*+?\\^$|")
_BUCKET_PARTS = 5  # "", "_matrix", "client", "v3", "rooms": the first four segments of a path


def _bucket_of_path(path: str) -> str:
    return "/".join(path.split("/", _BUCKET_PARTS)[:_BUCKET_PARTS])


def _bucket_of_pattern(pattern: str) -> str | None:
    """The bucket of every path the pattern can match, if its literal start fixes one."""
    end = next((i for i, c in enumerate(pattern) if c in _REGEX_SYNTAX), len(pattern))
    literal = pattern[:end]
    parts = literal.split("/")
    complete = len(parts) > _BUCKET_PARTS or (end == len(pattern) and len(parts) == _BUCKET_PARTS)
    return _bucket_of_path(literal) if complete else None


class InflightRequests:
    """Counts requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle_waiters: list[defer.Deferred[None]] = []

    def started(self) -> None:
        self.count += 1

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                if not d.called:  # a waiter may have been cancelled by a shutdown timeout
                    d.callback(None)

    def wait_idle(self) -> "defer.Deferred[None]":
        if self.count == 0:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(d)
        return d


def respond_json(request: PimanRequest, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """Write a JSON response unless the client has gone away."""
    if request.finished or request._disconnected:
        return
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode("ascii"), value.encode("ascii"))
    request.setHeader(b"Content-Length", str(len(payload)).encode("ascii"))
    request.write(payload)
    request.finish()


class JsonRouter(Resource):
    """The root resource of a listener: every path is resolved here against registered servlets."""

    isLeaf = True

    def __init__(
        self,
        *,
        metrics: RequestMetrics,
        inflight: InflightRequests,
        max_json_body_size: int,
    ) -> None:
        super().__init__()
        # Routes by the first four segments of the paths they match, so a request tries a
        # handful of regexes instead of all of them; `_unbucketed` routes are always tried.
        self._buckets: dict[str, list[Route]] = {}
        self._unbucketed: list[Route] = []
        self._route_count = 0
        self._metrics = metrics
        self._inflight = inflight
        self._max_json_body_size = max_json_body_size

    def register(self, servlet: Any) -> None:
        name = type(servlet).__name__
        for pattern in servlet.PATTERNS:
            route = Route(re.compile(pattern), servlet, name, self._route_count)
            self._route_count += 1
            bucket = _bucket_of_pattern(pattern)
            (self._unbucketed if bucket is None else self._buckets.setdefault(bucket, [])).append(route)

    def register_all(self, servlets: Iterable[Any]) -> None:
        for servlet in servlets:
            self.register(servlet)

    def render(self, request: PimanRequest) -> Any:  # type: ignore[override]
        request.request_id = request.site.next_request_id()
        token = request_id.set(request.request_id)
        try:
            defer.ensureDeferred(self._handle(request))
        finally:
            request_id.reset(token)
        return NOT_DONE_YET

    def _match(self, path: str) -> tuple[list[tuple[Route, dict[str, str]]], set[str]]:
        matches = []
        allowed: set[str] = set()
        candidates = self._buckets.get(_bucket_of_path(path), [])
        if self._unbucketed:
            candidates = sorted(candidates + self._unbucketed, key=lambda r: r.order)
        for route in candidates:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            args = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
            matches.append((route, args))
            allowed.update(meth for meth in METHODS if hasattr(route.servlet, f"on_{meth}"))
        return matches, allowed

    async def _handle(self, request: PimanRequest) -> None:
        self._inflight.started()
        start = time.monotonic()
        method = request.method.decode("ascii", "replace")
        for name, value in CORS_HEADERS.items():
            request.setHeader(name, value)
        try:
            code, body, headers = await self._dispatch(request, method)
        except MatrixError as e:
            code, body, headers = e.code, e.to_json(), e.headers
        except Exception:
            logger.error("Unhandled error while handling %s %s", method, request.servlet_name, exc_info=True)
            code, body, headers = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"errcode": "M_UNKNOWN", "error": "Internal server error."},
                {},
            )
        try:
            respond_json(request, code, body, headers)
            self._metrics.observe(request.servlet_name, method, code, time.monotonic() - start)
        finally:
            # Only once the response is handed to the transport may shutdown proceed.
            self._inflight.finished()

    async def _dispatch(self, request: PimanRequest, method: str) -> tuple[int, Any, dict[str, str]]:
        raw_path = request.path.decode("ascii", "replace")
        matches, allowed = self._match(raw_path)
        if not matches:
            raise unrecognized(HTTPStatus.NOT_FOUND, "Unrecognized request: no such endpoint.")
        if method == "OPTIONS":
            # CORS preflight: the headers are already set; the body doesn't matter.
            request.servlet_name = "cors_preflight"
            return HTTPStatus.OK, {}, {}
        for route, args in matches:
            handler = getattr(route.servlet, f"on_{method}", None)
            if handler is not None:
                break
        else:
            raise MatrixError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "M_UNRECOGNIZED",
                f"Method {method} is not allowed here; allowed: {', '.join(sorted(allowed))}.",
            )
        request.servlet_name = route.name
        limit = getattr(route.servlet, "MAX_BODY_SIZE", None) or self._max_json_body_size
        if request.body_too_large or request.body_length > limit:
            raise too_large(limit)
        result = await handler(request, **args)
        code, body = result[0], result[1]
        headers = result[2] if len(result) > 2 else {}
        return code, body, headers


def client_patterns(path_regex: str, *, releases: tuple[str, ...] = ("r0", "v3"), v1: bool = False,
                    unstable: bool = False) -> list[str]:
    """Full-path regexes for a client-server endpoint under its versioned prefixes."""
    versions = list(releases) + (["v1"] if v1 else []) + (["unstable"] if unstable else [])
    return [f"/_matrix/client/{v}{path_regex}" for v in versions]



class Servlet:
    """Base of servlets: `PATTERNS` to match and `on_<METHOD>` coroutines; `hs` is the organisation."""

    PATTERNS: list[str] = []

    def __init__(self, hs: Any) -> None:
        self.hs = hs
