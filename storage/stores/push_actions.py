"""What the push rules said about each event for each local member (`event_push_actions`).

These rows are the source of /sync's unread notification counts and of /notifications. They
hold ids and two flags only; whether a row is *unread* is decided when reading, against the
user's read-receipt positions, so a receipt costs nothing here. Rows behind the receipts are
pruned in the background, and a user's own event marks the user's earlier rows of that room and
thread as read (the spec counts sending an event as reading up to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Sequence

from storage.database import Database, Transaction
from storage.stores.event_fetch import MAX_BIND, chunks, placeholders
from storage.stores.receipts import UNTHREADED
from storage.stores.statement_batch import StatementBatch

MAIN_THREAD = "main"
_COLUMNS = "room_id, event_id, user_id, stream_ordering, notify, highlight, thread_id"
# Rooms per counting query: each room binds 2 values, each thread receipt 3, under MAX_BIND.
_ROOMS_PER_QUERY = 100


@dataclass(frozen=True)
class PushActionRow:
    room_id: str
    event_id: str
    user_id: str
    stream_ordering: int
    notify: bool
    highlight: bool
    thread_id: str  # MAIN_THREAD or the thread root's event ID


@dataclass(frozen=True)
class OwnEvent:
    """A user's own event: their rows of that room and thread up to it are read."""

    user_id: str
    room_id: str
    thread_id: str
    stream_ordering: int


# (notification count, highlight count, {thread_id: (notifications, highlights)}), threads
# including MAIN_THREAD; the totals are the sums over the threads.
UnreadCounts = tuple[int, int, dict[str, tuple[int, int]]]


class PushActionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_push_actions(self, rows: Sequence[PushActionRow], own_events: Sequence[OwnEvent] = ()) -> None:
        """Store the rows of a batch of events in one transaction (one multi-row insert)."""
        if not rows and not own_events:
            return

        def _add_push_actions_txn(txn: Transaction) -> None:
            batch = StatementBatch()
            for chunk in chunks(rows, MAX_BIND // 7):
                batch.add_rows(
                    f"INSERT INTO event_push_actions ({_COLUMNS})",
                    [(r.room_id, r.event_id, r.user_id, r.stream_ordering, r.notify, r.highlight, r.thread_id)
                     for r in chunk],
                    " ON CONFLICT (user_id, room_id, stream_ordering) DO NOTHING",
                )
            for own in own_events:
                batch.add(
                    "DELETE FROM event_push_actions WHERE user_id = ? AND room_id = ? AND thread_id = ?"
                    " AND stream_ordering < ?",
                    (own.user_id, own.room_id, own.thread_id, own.stream_ordering),
                )
            batch.run(txn)

        await self._db.run_interaction("add_push_actions", _add_push_actions_txn)

    async def get_unread_counts(
        self,
        user_id: str,
        room_ids: Collection[str],
        receipts: Mapping[str, int],
        thread_receipts: Mapping[tuple[str, str], int] | None = None,
    ) -> dict[str, UnreadCounts]:
        """Counts of the user's rows after their read position, for every room asked (one query).

        `receipts` is the stream ordering each room is read up to (absent: nothing read);
        `thread_receipts` the same per (room, thread) from threaded receipts. A row counts if it
        is after both its room's and its thread's position.
        """
        rooms = list(dict.fromkeys(room_ids))
        threads = thread_receipts or {}
        result: dict[str, UnreadCounts] = {room_id: (0, 0, {}) for room_id in rooms}
        if not rooms:
            return result

        def _unread_counts_txn(txn: Transaction) -> None:
            for chunk in chunks(rooms, _ROOMS_PER_QUERY):
                in_chunk = set(chunk)
                chunk_threads = [(r, t, p) for (r, t), p in threads.items() if r in in_chunk]
                args: list[object] = []
                for room_id in chunk:
                    args.extend((room_id, receipts.get(room_id, 0)))
                sql = f"WITH read_upto (room_id, pos) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))})"
                thread_join, thread_condition = "", ""
                if chunk_threads:
                    sql += (f", thread_read_upto (room_id, thread_id, pos) AS"
                            f" (VALUES {', '.join(['(?, ?, ?)'] * len(chunk_threads))})")
                    for row in chunk_threads:
                        args.extend(row)
                    thread_join = (" LEFT JOIN thread_read_upto AS t"
                                   " ON t.room_id = a.room_id AND t.thread_id = a.thread_id")
                    thread_condition = " AND (t.pos IS NULL OR a.stream_ordering > t.pos)"
                args.append(user_id)
                txn.execute(
                    sql + " SELECT a.room_id, a.thread_id,"
                    " SUM(CASE WHEN a.notify THEN 1 ELSE 0 END), SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END)"
                    " FROM event_push_actions AS a JOIN read_upto AS r ON r.room_id = a.room_id" + thread_join +
                    " WHERE a.user_id = ? AND a.stream_ordering > r.pos" + thread_condition +
                    " GROUP BY a.room_id, a.thread_id",
                    args,
                )
                for room_id, thread_id, notify, highlight in txn.fetchall():
                    total_notify, total_highlight, per_thread = result[room_id]
                    per_thread[thread_id] = (int(notify), int(highlight))
                    result[room_id] = (total_notify + int(notify), total_highlight + int(highlight), per_thread)

        await self._db.run_interaction("get_unread_counts", _unread_counts_txn)
        return result

    async def get_notifications(self, user_id: str, *, before: int | None, limit: int,
                                only_highlight: bool) -> list[PushActionRow]:
        """The user's notifying rows, newest first, with stream ordering < `before` if given."""
        conditions = ["user_id = ?", "notify"]
        args: list[object] = [user_id]
        if only_highlight:
            conditions.append("highlight")
        if before is not None:
            conditions.append("stream_ordering < ?")
            args.append(before)
        rows = await self._db.execute(
            "get_notifications",
            f"SELECT {_COLUMNS} FROM event_push_actions WHERE {' AND '.join(conditions)}"
            " ORDER BY stream_ordering DESC LIMIT ?",
            *args, limit,
        )
        return [PushActionRow(room_id, event_id, uid, int(so), bool(notify), bool(highlight), thread_id)
                for room_id, event_id, uid, so, notify, highlight, thread_id in rows]

    async def prune_read(self, up_to_stream: int, receipt_types: Collection[str]) -> int:
        """Delete rows at or before `up_to_stream` that are read, or whose user left the room.

        Read means at or before the user's latest receipt of one of `receipt_types` in the room,
        unthreaded or for the row's thread. Returns the number of rows deleted.
        """
        types = list(receipt_types)

        def _prune_txn(txn: Transaction) -> int:
            txn.execute(
                "DELETE FROM event_push_actions WHERE stream_ordering <= ? AND ("
                " stream_ordering <= (SELECT MAX(e.stream_ordering) FROM receipts AS rc"
                "  JOIN events AS e ON e.event_id = rc.event_id"
                "  WHERE rc.user_id = event_push_actions.user_id AND rc.room_id = event_push_actions.room_id"
                f"  AND rc.receipt_type IN ({placeholders(len(types))})"
                "  AND rc.thread_id IN (?, event_push_actions.thread_id))"
                " OR NOT EXISTS (SELECT 1 FROM current_memberships AS m"
                "  WHERE m.room_id = event_push_actions.room_id AND m.user_id = event_push_actions.user_id"
                "  AND m.membership = 'join'))",
                (up_to_stream, *types, UNTHREADED),
            )
            return txn.rowcount

        return await self._db.run_interaction("prune_read_push_actions", _prune_txn)

    async def get_relations(self, event_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """event_id -> (rel_type, target) of those events that relate to another (to find threads)."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return {}
        rows = await self._db.execute(
            "get_relations_of_events",
            f"SELECT event_id, rel_type, relates_to_id FROM event_relations WHERE event_id IN ({placeholders(len(ids))})",
            *ids,
        )
        return {event_id: (rel_type, target) for event_id, rel_type, target in rows}
