"""The token bucket, driven by a fake clock (time is the one thing tests may fake)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock as FakeReactor

from homeserver.clock import Clock
from homeserver.http.errors import MatrixError
from homeserver.ratelimit import Ratelimiter


def make(per_second: float, burst: int) -> tuple[FakeReactor, Ratelimiter]:
    reactor = FakeReactor()
    return reactor, Ratelimiter(Clock(reactor), per_second, burst)


def test_burst_then_refuse_then_refill() -> None:
    reactor, limiter = make(per_second=0.5, burst=2)
    limiter.ratelimit("k")
    limiter.ratelimit("k")
    with pytest.raises(MatrixError) as err:
        limiter.ratelimit("k")
    assert err.value.errcode == "M_LIMIT_EXCEEDED"
    assert err.value.extra["retry_after_ms"] == 2000
    assert err.value.headers["Retry-After"] == "2"
    reactor.advance(2)
    limiter.ratelimit("k")


def test_keys_are_independent() -> None:
    _, limiter = make(per_second=0.1, burst=1)
    limiter.ratelimit("a")
    limiter.ratelimit("b")
    assert limiter.check("a") > 0


def test_check_without_record_does_not_consume() -> None:
    _, limiter = make(per_second=1, burst=1)
    assert limiter.check("k", record=False) == 0
    assert limiter.check("k", record=False) == 0
    limiter.record("k")
    assert limiter.check("k", record=False) > 0


def test_zero_rate_never_refills() -> None:
    reactor, limiter = make(per_second=0, burst=1)
    limiter.ratelimit("k")
    reactor.advance(10_000)
    assert limiter.check("k") > 0
