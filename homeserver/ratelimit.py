"""Token-bucket rate limiting, as Synapse's `rc_*` settings describe it.

`per_second` actions refill the bucket, `burst_count` is its size. Buckets live in memory: a limit
is a protection of this process, not a promise that needs to survive restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.clock import Clock
from homeserver.http.errors import limit_exceeded


@dataclass
class _Bucket:
    level: float
    updated: float


class Ratelimiter:
    def __init__(self, clock: Clock, per_second: float, burst_count: int) -> None:
        self._clock = clock
        self.per_second = per_second
        self.burst_count = burst_count
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(0.0, now)
        else:
            bucket.level = max(0.0, bucket.level - (now - bucket.updated) * self.per_second)
            bucket.updated = now
        if len(self._buckets) > 10_000:
            self._prune(now)
        return bucket

    def _prune(self, now: float) -> None:
        # Drop buckets that have drained: they are indistinguishable from new ones.
        for key, b in list(self._buckets.items()):
            if b.level - (now - b.updated) * self.per_second <= 0:
                del self._buckets[key]

    def check(self, key: str, *, cost: float = 1.0, record: bool = True) -> int:
        """0 if the action is allowed (and counted when `record`), else milliseconds to wait."""
        now = self._clock.time()
        bucket = self._bucket(key, now)
        if bucket.level + cost > self.burst_count:
            if self.per_second <= 0:
                return 60_000
            return max(1, int((bucket.level + cost - self.burst_count) / self.per_second * 1000))
        if record:
            bucket.level += cost
        return 0

    def ratelimit(self, key: str, *, cost: float = 1.0) -> None:
        """Count the action, or raise 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`."""
        wait_ms = self.check(key, cost=cost)
        if wait_ms:
            raise limit_exceeded(wait_ms)

    def record(self, key: str, *, cost: float = 1.0) -> None:
        """Count an action that already happened (e.g. a failed login) without refusing it."""
        now = self._clock.time()
        self._bucket(key, now).level += cost
