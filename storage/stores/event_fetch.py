"""Loading stored events by ID: unseal, parse, and keep the parsed events in an LRU cache.

Every store that hands out events (timelines, state, relations) goes through one
`EventFetcher`, so an event is unsealed and parsed once however it is reached, and a
redaction has one cache to invalidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Iterator, Sequence, TypeVar

from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.stores.cache import LruCache, WriteFence

# SQLite allows 32766 bound parameters, older builds 999: stay well below.
MAX_BIND = 500
EVENT_CACHE_SIZE = 20_000
_REDACTIONS = "redactions"  # the one WriteFence key: redactions are rare, so one key for all

T = TypeVar("T")


@dataclass(frozen=True)
class StoredEvent:
    """An event as we hold it. A redacted event's `event` is already the pruned form."""

    event: Event
    stream_ordering: int
    redacted_by: str | None
    rejected_reason: str | None
    outlier: bool


def chunks(items: Sequence[T], size: int = MAX_BIND) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


_EVENT_COLUMNS = "event_id, room_version, stream_ordering, redacted_by, rejected_reason, outlier, pdu"


class EventFetcher:
    def __init__(self, db: Database, sealer: Sealer, *, cache_size: int = EVENT_CACHE_SIZE) -> None:
        self._db = db
        self._sealer = sealer
        self._cache: LruCache[str, StoredEvent] = LruCache(cache_size)
        self.redaction_fence = WriteFence()

    async def get_events(
        self, event_ids: Iterable[str], *, allow_rejected: bool = True, allow_outlier: bool = True
    ) -> dict[str, StoredEvent]:
        """The events we have among `event_ids` (missing ones are absent): one query for the misses."""
        found: dict[str, StoredEvent] = {}
        missing: list[str] = []
        for event_id in dict.fromkeys(event_ids):
            cached = self._cache.get(event_id)
            if cached is None:
                missing.append(event_id)
            else:
                found[event_id] = cached
        if missing:
            token = self.redaction_fence.start_read(_REDACTIONS)
            loaded = await self._db.run_interaction("get_events", self._load_txn, missing)
            fill = self.redaction_fence.read_still_valid(_REDACTIONS, token)
            for stored in loaded:
                found[stored.event.event_id] = stored
                if fill:
                    self._cache.set(stored.event.event_id, stored)
        return {
            event_id: stored
            for event_id, stored in found.items()
            if (allow_rejected or stored.rejected_reason is None)
            and (allow_outlier or not stored.outlier)
        }

    def _load_txn(self, txn: Transaction, event_ids: Collection[str]) -> list[StoredEvent]:
        rows: list[tuple] = []
        for chunk in chunks(list(event_ids)):
            txn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id IN ({placeholders(len(chunk))})",
                chunk,
            )
            rows.extend(txn.fetchall())
        return [self._parse(row) for row in rows]

    def _parse(self, row: tuple) -> StoredEvent:
        event_id, room_version, stream_ordering, redacted_by, rejected_reason, outlier, blob = row
        pdu = self._sealer.open_json(blob)
        event = Event.from_pdu(pdu, KNOWN_ROOM_VERSIONS[room_version], event_id=event_id)
        return StoredEvent(event, int(stream_ordering), redacted_by, rejected_reason, bool(outlier))

    # -- for the writer (reactor thread) ---------------------------------

    def prefill(self, stored: StoredEvent) -> None:
        """Cache an event just persisted, so the first readers need no query."""
        self._cache.set(stored.event.event_id, stored)

    def start_redaction(self) -> tuple[int, bool]:
        """Bracket a transaction that may prune a stored event (see `WriteFence`)."""
        return self.redaction_fence.start_write(_REDACTIONS)

    def finish_redaction(self, token: tuple[int, bool], redacted_event_id: str | None) -> None:
        self.redaction_fence.finish_write(_REDACTIONS, token)
        if redacted_event_id is not None:
            self._cache.pop(redacted_event_id)

    def forget(self, event_ids: Iterable[str]) -> None:
        """Drop events that were pruned or deleted (retention) from the cache."""
        for event_id in event_ids:
            self._cache.pop(event_id)
