"""The router's bucketing: a request tries only the routes whose literal start can match its path."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from homeserver.http.metrics import RequestMetrics
from homeserver.http.router import InflightRequests, JsonRouter, _bucket_of_path, _bucket_of_pattern


def test_buckets_of_patterns() -> None:
    assert _bucket_of_pattern("/_matrix/client/v3/sync") == "/_matrix/client/v3/sync"
    assert _bucket_of_pattern("/_matrix/client/v3/rooms/(?P<room_id>[^/]+)/send") == "/_matrix/client/v3/rooms"
    # A regex before the fourth segment is complete: tried for every path.
    assert _bucket_of_pattern("/_matrix/client/versions") is None
    assert _bucket_of_pattern("/_matrix/client/(?:r0|v3)/sync") is None
    assert _bucket_of_pattern("/_matrix/client/v3/roo(?:m)s") is None
    assert _bucket_of_pattern("/_matrix/client/unstable/org\\.matrix\\.msc1763/x") is None
    assert _bucket_of_path("/_matrix/client/v3/rooms/!a:b/send/m.room.message/1") == "/_matrix/client/v3/rooms"
    assert _bucket_of_path("/_matrix/client/versions") == "/_matrix/client/versions"


class _Servlet:
    def __init__(self, *patterns: str, methods: tuple[str, ...] = ("GET",)) -> None:
        self.PATTERNS = list(patterns)
        for method in methods:
            setattr(self, f"on_{method}", lambda *a, **k: None)


def _router(*servlets: Any) -> JsonRouter:
    router = JsonRouter(metrics=RequestMetrics(CollectorRegistry()), inflight=InflightRequests(),
                        max_json_body_size=1000)
    router.register_all(servlets)
    return router


def test_matches_keep_registration_order_across_buckets() -> None:
    generic = _Servlet("/_matrix/client/(?:r0|v3)/rooms/(?P<room_id>[^/]+)/state")
    specific = _Servlet("/_matrix/client/v3/rooms/(?P<room_id>[^/]+)/state", methods=("PUT",))
    other = _Servlet("/_matrix/client/v3/sync")
    router = _router(specific, other, generic)
    matches, allowed = router._match("/_matrix/client/v3/rooms/%21a%3Ab/state")
    assert [route.servlet for route, _ in matches] == [specific, generic]
    assert matches[0][1] == {"room_id": "!a:b"}
    assert allowed == {"GET", "PUT"}
    assert router._match("/_matrix/client/v3/syncs")[0] == []
    assert [r.servlet for r, _ in router._match("/_matrix/client/v3/sync")[0]] == [other]
