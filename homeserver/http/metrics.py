"""Per-servlet request metrics, in the HomeServer's own Prometheus registry (no global registry:
one process may serve several organisations)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._count = Counter(
            "piman_http_requests",
            "HTTP requests handled, by servlet, method and status code.",
            ["servlet", "method", "code"],
            registry=registry,
        )
        self._latency = Histogram(
            "piman_http_request_seconds",
            "Time to handle an HTTP request, by servlet and method.",
            ["servlet", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def observe(self, servlet: str, method: str, code: int, seconds: float) -> None:
        self._count.labels(servlet, method, str(int(code))).inc()
        self._latency.labels(servlet, method).observe(seconds)
