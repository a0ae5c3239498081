"""The clock every component uses instead of `time.time()`, so tests can drive time."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Clock:
    def __init__(self, reactor: IReactorTime) -> None:
        self._reactor = reactor

    def time(self) -> float:
        """Seconds since the epoch."""
        return self._reactor.seconds()

    def time_msec(self) -> int:
        return int(self._reactor.seconds() * 1000)

    def call_later(self, delay_s: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        return self._reactor.callLater(delay_s, fn, *args)

    def sleep(self, seconds: float) -> "defer.Deferred[None]":
        return task.deferLater(self._reactor, seconds, lambda: None)

    def looping_call(self, interval_s: float, fn: Callable[[], Any]) -> task.LoopingCall:
        call = task.LoopingCall(fn)
        call.clock = self._reactor
        call.start(interval_s, now=False)
        return call
