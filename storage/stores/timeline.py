"""Reading a room's timeline: by stream ordering (/sync) and by topological order (/messages).

Positions are the gaps *between* events, as in sync tokens: stream position P is "just
after the event with stream ordering P", so reading backwards from P returns orderings
<= P and reading forwards returns orderings > P. A topological position (depth, stream)
works the same way on (depth, stream_ordering) pairs; the position to continue from after
a page is the last event's (depth, stream_ordering) forwards, and (depth, stream_ordering
- 1) backwards. Only accepted, non-outlier events are part of a timeline.
"""

from __future__ import annotations

from typing import Callable, Iterable, Literal, Sequence

from storage.database import Database, Transaction
from storage.stores.event_fetch import EventFetcher, StoredEvent, chunks, placeholders

Direction = Literal["b", "f"]
TopologicalPoint = tuple[int, int]  # (depth, stream_ordering)

_IN_TIMELINE = "NOT outlier AND rejected_reason IS NULL"


def _type_condition(engine_name: str, pattern: str) -> tuple[str, str]:
    """A condition matching `type` against a filter pattern, case-sensitively on both engines."""
    if "*" not in pattern:
        return "type = ?", pattern
    if engine_name == "sqlite3":
        escaped = pattern.replace("[", "[[]").replace("?", "[?]")
        return "type GLOB ?", escaped
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "type LIKE ? ESCAPE '\\'", escaped.replace("*", "%")


def stream_window(direction: Direction, from_stream: int | None, to_stream: int | None,
                  conditions: list[str], args: list[object]) -> str:
    """Add the bounds of a stream-ordering window to a query; returns its ORDER BY direction.

    "b": orderings <= `from_stream` and > `to_stream`; "f": > `from_stream` and <= `to_stream`
    (None: unbounded), so a window's end position is where the next one starts.
    """
    upper, lower = (from_stream, to_stream) if direction == "b" else (to_stream, from_stream)
    if upper is not None:
        conditions.append("stream_ordering <= ?")
        args.append(upper)
    if lower is not None:
        conditions.append("stream_ordering > ?")
        args.append(lower)
    return "DESC" if direction == "b" else "ASC"


def filter_conditions(
    engine_name: str,
    types: Sequence[str] | None,
    not_types: Sequence[str] | None,
    senders: Sequence[str] | None,
    not_senders: Sequence[str] | None,
    contains_url: bool | None,
) -> tuple[list[str], list[object]]:
    """SQL conditions for the event filters of /messages (spec: RoomEventFilter)."""
    conditions: list[str] = []
    args: list[object] = []
    if types is not None:
        if not types:
            return ["FALSE"], []
        parts = [_type_condition(engine_name, pattern) for pattern in types]
        conditions.append("(" + " OR ".join(sql for sql, _ in parts) + ")")
        args.extend(arg for _, arg in parts)
    for pattern in not_types or ():
        sql, arg = _type_condition(engine_name, pattern)
        conditions.append(f"NOT ({sql})")
        args.append(arg)
    if senders is not None:
        if not senders:
            return ["FALSE"], []
        conditions.append(f"sender IN ({placeholders(len(senders))})")
        args.extend(senders)
    if not_senders:
        conditions.append(f"sender NOT IN ({placeholders(len(not_senders))})")
        args.extend(not_senders)
    if contains_url is not None:
        conditions.append("contains_url = ?")
        args.append(contains_url)
    return conditions, args


class TimelineQueries:
    """Mixed into `EventStore`."""

    _db: Database
    _fetcher: EventFetcher
    # EventStore's memory of recent timeline events (see there).
    recent_event_ids: Callable[[str, int, int | None], list[str] | None]

    async def _events_in_order(self, event_ids: list[str]) -> list[StoredEvent]:
        events = await self._fetcher.get_events(event_ids)
        return [events[i] for i in event_ids if i in events]

    async def get_room_events_window(
        self,
        room_id: str,
        *,
        from_stream: int | None,
        to_stream: int | None,
        limit: int,
        direction: Direction = "b",
    ) -> list[StoredEvent]:
        """Up to `limit` events between two stream positions, in reading order (newest first for "b").

        "b": orderings <= `from_stream` (None: the end) and > `to_stream` (None: the start);
        "f": orderings > `from_stream` (None: the start) and <= `to_stream` (None: the end).
        """
        conditions = ["room_id = ?", _IN_TIMELINE]
        args: list[object] = [room_id]
        order = stream_window(direction, from_stream, to_stream, conditions, args)
        rows = await self._db.execute(
            "get_room_events_window",
            f"SELECT event_id FROM events WHERE {' AND '.join(conditions)}"
            f" ORDER BY stream_ordering {order} LIMIT ?",
            *args,
            limit,
        )
        return await self._events_in_order([row[0] for row in rows])

    async def get_latest_events_for_rooms(
        self,
        room_ids: Iterable[str],
        *,
        limit: int,
        before_stream: int | None = None,
        after_stream: int | None = None,
    ) -> dict[str, tuple[list[StoredEvent], bool]]:
        """room_id -> (its last `limit` events in chronological order, whether there were more).

        Only events with `after_stream` < ordering < `before_stream` count: a sync up to
        position P passes ``before_stream=P + 1``, an incremental one ``after_stream`` = its
        since position. One query for all the rooms, one for the events not cached yet.
        """
        room_ids = list(dict.fromkeys(room_ids))
        ids_by_room: dict[str, list[str]] = {}
        to_query = room_ids
        if after_stream is not None:
            # An incremental sync: the recent past is in memory for rooms written by this process.
            to_query = []
            for room_id in room_ids:
                recent = self.recent_event_ids(room_id, after_stream, before_stream)
                if recent is None:
                    to_query.append(room_id)
                elif recent:
                    ids_by_room[room_id] = list(reversed(recent[-(limit + 1):]))  # newest first
        if to_query:
            ids_by_room.update(await self._db.run_interaction(
                "get_latest_events_for_rooms",
                self._latest_ids_txn,
                to_query,
                limit,
                before_stream,
                after_stream,
            ))
        events = await self._fetcher.get_events(i for ids in ids_by_room.values() for i in ids)
        result: dict[str, tuple[list[StoredEvent], bool]] = {}
        for room_id in room_ids:
            newest_first = ids_by_room.get(room_id, [])
            limited = len(newest_first) > limit
            kept = newest_first[:limit]
            result[room_id] = ([events[i] for i in reversed(kept) if i in events], limited)
        return result

    @staticmethod
    def _latest_ids_txn(
        txn: Transaction,
        room_ids: list[str],
        limit: int,
        before_stream: int | None,
        after_stream: int | None,
    ) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        bounds = ""
        bound_args: list[object] = []
        if before_stream is not None:
            bounds += " AND stream_ordering < ?"
            bound_args.append(before_stream)
        if after_stream is not None:
            bounds += " AND stream_ordering > ?"
            bound_args.append(after_stream)
        for chunk in chunks(room_ids):
            # One row more than asked tells whether the timeline is limited.
            txn.execute(
                "SELECT room_id, event_id FROM ("
                " SELECT room_id, event_id, stream_ordering, ROW_NUMBER() OVER"
                "  (PARTITION BY room_id ORDER BY stream_ordering DESC) AS row_number"
                " FROM events"
                f" WHERE room_id IN ({placeholders(len(chunk))}) AND {_IN_TIMELINE}{bounds}"
                ") AS recent WHERE row_number <= ? ORDER BY room_id, stream_ordering DESC",
                [*chunk, *bound_args, limit + 1],
            )
            for room_id, event_id in txn.fetchall():
                result.setdefault(room_id, []).append(event_id)
        return result

    async def paginate_room_events(
        self,
        room_id: str,
        *,
        from_point: TopologicalPoint | None,
        to_point: TopologicalPoint | None = None,
        direction: Direction = "b",
        limit: int,
        types: Sequence[str] | None = None,
        not_types: Sequence[str] | None = None,
        senders: Sequence[str] | None = None,
        not_senders: Sequence[str] | None = None,
        contains_url: bool | None = None,
    ) -> list[StoredEvent]:
        """/messages: up to `limit` events in topological order from a position, in reading order.

        "b": events at or before `from_point` (None: the end) and after `to_point`;
        "f": events after `from_point` (None: the start) and at or before `to_point`.
        `types`/`not_types` may hold '*' wildcards; an empty `types` or `senders` matches nothing.
        """
        upper, lower = (from_point, to_point) if direction == "b" else (to_point, from_point)
        conditions = ["room_id = ?", _IN_TIMELINE]
        args: list[object] = [room_id]
        if upper is not None:
            conditions.append("(depth < ? OR (depth = ? AND stream_ordering <= ?))")
            args.extend((upper[0], upper[0], upper[1]))
        if lower is not None:
            conditions.append("(depth > ? OR (depth = ? AND stream_ordering > ?))")
            args.extend((lower[0], lower[0], lower[1]))
        filter_sql, filter_args = filter_conditions(
            self._db.engine.name, types, not_types, senders, not_senders, contains_url
        )
        conditions += filter_sql
        args += filter_args
        order = "DESC" if direction == "b" else "ASC"
        rows = await self._db.execute(
            "paginate_room_events",
            f"SELECT event_id FROM events WHERE {' AND '.join(conditions)}"
            f" ORDER BY depth {order}, stream_ordering {order} LIMIT ?",
            *args,
            limit,
        )
        return await self._events_in_order([row[0] for row in rows])

    async def get_event_ids_before_ts(self, room_id: str, ts: int, direction: Direction) -> str | None:
        """/timestamp_to_event: the last event at or before `ts` ("b"), or the first at or after it ("f")."""
        if direction == "b":
            sql = "origin_server_ts <= ? ORDER BY origin_server_ts DESC, stream_ordering DESC"
        else:
            sql = "origin_server_ts >= ? ORDER BY origin_server_ts ASC, stream_ordering ASC"
        rows = await self._db.execute(
            "get_event_ids_before_ts",
            f"SELECT event_id FROM events WHERE room_id = ? AND {_IN_TIMELINE} AND {sql} LIMIT 1",
            room_id,
            ts,
        )
        return rows[0][0] if rows else None
