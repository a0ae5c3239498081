"""Wakes long-polling `/sync` requests when something they care about is persisted.

A waiter registers under its user and its rooms; `notify` wakes only the waiters of the users and
rooms it names. Nothing polls: a waiting request returns as soon as the writer's commit hook runs.

To avoid missing a wake-up between "I found nothing new" and "I started waiting", callers register
first and then compare the stream positions they computed against `positions` (both happen on the
reactor thread, so nothing can slip in between).
"""

from __future__ import annotations

from typing import Collection

from twisted.internet import defer

from homeserver.clock import Clock


class _Waiter:
    __slots__ = ("deferred", "keys")

    def __init__(self, keys: list[str]) -> None:
        self.deferred: defer.Deferred[bool] = defer.Deferred()
        self.keys = keys

    def wake(self) -> None:
        if not self.deferred.called:
            self.deferred.callback(True)


class Notifier:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiters: dict[str, set[_Waiter]] = {}
        # The latest position notified per stream: a cheap "did anything happen since?" check.
        self.positions: dict[str, int] = {}

    def notify(self, stream: str, position: int, *, users: Collection[str] = (), rooms: Collection[str] = ()) -> None:
        """Record that `stream` reached `position`, waking waiters of the given users and rooms."""
        if position > self.positions.get(stream, 0):
            self.positions[stream] = position
        woken: set[_Waiter] = set()
        for key in [f"u:{u}" for u in users] + [f"r:{r}" for r in rooms]:
            woken.update(self._waiters.get(key, ()))
        for waiter in woken:
            waiter.wake()

    def snapshot(self) -> dict[str, int]:
        return dict(self.positions)

    async def wait(self, user_id: str, room_ids: Collection[str], timeout_ms: int,
                   since_positions: dict[str, int]) -> bool:
        """Sleep until this user or one of these rooms is notified, or `timeout_ms` passes.

        Returns at once (True) if any stream moved past `since_positions` already, so a
        notification sent between the caller's last read and this call is never lost.
        """
        if any(self.positions.get(s, 0) > p for s, p in since_positions.items()):
            return True
        keys = [f"u:{user_id}"] + [f"r:{r}" for r in room_ids]
        waiter = _Waiter(keys)
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        timer = self._clock.call_later(timeout_ms / 1000, lambda: waiter.deferred.called or waiter.deferred.callback(False))
        try:
            return await waiter.deferred
        finally:
            if timer.active():
                timer.cancel()
            for key in keys:
                bucket = self._waiters.get(key)
                if bucket is not None:
                    bucket.discard(waiter)
                    if not bucket:
                        del self._waiters[key]

    def wake_all(self) -> None:
        """Release every waiter (used at shutdown so long-polls answer instead of being cut)."""
        for bucket in list(self._waiters.values()):
            for waiter in list(bucket):
                waiter.wake()
