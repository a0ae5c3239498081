"""In-memory caches for the stores, and the fence that keeps them coherent with writes.

Both are used on the reactor thread only: a store reads or fills its caches in the
``async`` method, never in the ``_txn`` function that runs in a pool thread.
"""

from __future__ import annotations

import collections
import itertools
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Least-recently-used eviction once the summed weight of the values passes `max_weight`.

    The weight defaults to 1 per entry; state maps weigh their number of entries, so one
    huge room can't keep the cache's memory unbounded.
    """

    def __init__(self, max_weight: int, weigh: Callable[[V], int] | None = None) -> None:
        self._max_weight = max_weight
        self._weigh = weigh or (lambda _value: 1)
        self._entries: collections.OrderedDict[K, tuple[V, int]] = collections.OrderedDict()
        self._weight = 0

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def set(self, key: K, value: V) -> None:
        self.pop(key)
        weight = self._weigh(value)
        if weight > self._max_weight:
            return
        self._entries[key] = (value, weight)
        self._weight += weight
        while self._weight > self._max_weight:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._weight -= evicted

    def pop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= entry[1]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class WriteFence:
    """Tells a cache filler whether a write to the same key may have overlapped its read.

    A read whose result would be cached takes a token first and fills the cache only if
    `read_still_valid` says no write to that key started meanwhile (nor was running when
    it started). A writer brackets its transaction with `start_write`/`finish_write`,
    which says whether it was the only writer of that key all along — only then may it
    put its own view of the outcome in the cache; otherwise it must drop the entry.
    """

    def __init__(self) -> None:
        self._clock = itertools.count(1)
        self._now = 0
        # key -> stamp of the last write that started; kept for keys ever written, one int each.
        self._last_write: dict[Hashable, int] = {}
        self._in_flight: collections.Counter[Hashable] = collections.Counter()

    def _tick(self) -> int:
        self._now = next(self._clock)
        return self._now

    def start_read(self, key: Hashable) -> int | None:
        """A token for `read_still_valid`, or None if a write is running (don't fill)."""
        if self._in_flight[key]:
            return None
        return self._tick()

    def read_still_valid(self, key: Hashable, token: int | None) -> bool:
        return (
            token is not None
            and not self._in_flight[key]
            and self._last_write.get(key, 0) < token
        )

    def start_write(self, key: Hashable) -> tuple[int, bool]:
        alone = not self._in_flight[key]
        self._in_flight[key] += 1
        stamp = self._last_write[key] = self._tick()
        return stamp, alone

    def mark_written(self, key: Hashable) -> None:
        """A write of `key` just committed: reads that started before it must not fill."""
        self.finish_write(key, self.start_write(key))

    def finish_write(self, key: Hashable, token: tuple[int, bool]) -> bool:
        """End a write; True if no other write of `key` overlapped it."""
        self._in_flight[key] -= 1
        if not self._in_flight[key]:
            del self._in_flight[key]
        stamp, alone = token
        return alone and self._last_write[key] == stamp and not self._in_flight[key]
