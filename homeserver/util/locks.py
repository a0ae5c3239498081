"""Per-key async locks: one writer per room at a time, so a room's events form a line, not a fork."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from twisted.internet import defer


class KeyedLock:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[defer.DeferredLock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = defer.DeferredLock()
        self._locks[key] = (lock, users + 1)
        await lock.acquire()
        try:
            yield
        finally:
            lock.release()
            lock_now, users_now = self._locks[key]
            if users_now == 1:
                del self._locks[key]  # no one else is waiting: don't keep a lock per room forever
            else:
                self._locks[key] = (lock_now, users_now - 1)
