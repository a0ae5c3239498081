"""What the push rules said about each event for each local member (`event_push_actions`).

These rows are the source of /sync's unread notification counts and of /notifications. They
hold ids and two flags only; whether a row is *unread* is decided when reading, against the
user's read-receipt positions, so a receipt costs nothing here. They are written in the event's
own transaction (`push_action_statements`, run by `EventStore.persist_event`), so a reader that
sees the event sees its rows. Rows behind the receipts are pruned in the background, and a
user's own event marks the user's earlier rows of that room and thread as read (the spec counts
sending an event as reading up to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Sequence

from storage.database import Database, Transaction
from storage.stores.event_fetch import MAX_BIND, chunks, placeholders
from storage.stores.receipts import UNTHREADED
from storage.stores.statement_batch import Statement

MAIN_THREAD = "main"
_COLUMNS = "room_id, event_id, user_id, stream_ordering, notify, highlight, thread_id"
# Rooms per counting query: each room binds 2 values, under MAX_BIND with the few others.
_ROOMS_PER_QUERY = 200


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
class EventPushActions:
    """What the rules said about one event not stored yet (its stream ordering comes with its
    transaction): the members it notifies, and whether sending it reads the sender's earlier
    rows of its room and thread."""

    thread_id: str  # MAIN_THREAD or the thread root's event ID
    notified: Sequence[tuple[str, bool, bool]]  # (user_id, notify, highlight)
    sender_reads: bool


# (notification count, highlight count, {thread_id: (notifications, highlights)}), threads
# including MAIN_THREAD; the totals are the sums over the threads.
UnreadCounts = tuple[int, int, dict[str, tuple[int, int]]]


def push_action_statements(room_id: str, event_id: str, sender: str, stream_ordering: int,
                           actions: EventPushActions) -> list[Statement]:
    """The writes storing a new event's push actions: multi-row inserts, and the sender's read."""
    statements: list[Statement] = []
    rows = [(room_id, event_id, user_id, stream_ordering, notify, highlight, actions.thread_id)
            for user_id, notify, highlight in actions.notified]
    for chunk in chunks(rows, MAX_BIND // 7):
        statements.append((
            f"INSERT INTO event_push_actions ({_COLUMNS}) VALUES {', '.join(['(?, ?, ?, ?, ?, ?, ?)'] * len(chunk))}",
            [value for row in chunk for value in row],
        ))
    if actions.sender_reads:
        statements.append((
            "DELETE FROM event_push_actions WHERE user_id = ? AND room_id = ? AND thread_id = ?"
            " AND stream_ordering < ?",
            (sender, room_id, actions.thread_id, stream_ordering),
        ))
    return statements


class PushActionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_unread_counts(self, user_id: str, room_ids: Collection[str], receipt_types: Collection[str],
                                *, up_to: int | None = None) -> dict[str, UnreadCounts]:
        """Counts of the user's rows after their read position, for every room asked (one query
        per _ROOMS_PER_QUERY rooms), optionally only those at or before stream ordering `up_to`.

        The read positions come from the user's latest receipts of `receipt_types` in the same
        query: a row counts if it is after both its room's unthreaded receipt and its thread's.
        """
        return (await self.get_unread_counts_since(user_id, room_ids, receipt_types, up_to=up_to))[0]

    async def get_unread_counts_since(
        self, user_id: str, room_ids: Collection[str], receipt_types: Collection[str], *, up_to: int | None = None,
        not_before: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, UnreadCounts], dict[str, int]]:
        """`get_unread_counts` leaving out, in the rooms of `not_before`, the rows of events sent
        before the room's timestamp there (expired: retention), unless the event is current
        state. With `not_before` (even empty) it also returns room_id -> the oldest
        origin_server_ts among the rows counted, current state left out: the counts hold until
        that event expires."""
        rooms = list(dict.fromkeys(room_ids))
        types = list(receipt_types)
        result: dict[str, UnreadCounts] = {room_id: (0, 0, {}) for room_id in rooms}
        oldest: dict[str, int] = {}
        if not rooms:
            return result, oldest

        def _unread_counts_txn(txn: Transaction) -> None:
            # A room's cutoff binds two values more.
            for chunk in chunks(rooms, _ROOMS_PER_QUERY if not_before is None else _ROOMS_PER_QUERY // 2):
                conditions, limit_args = ("", []) if up_to is None else (" AND a.stream_ordering <= ?", [up_to])
                rooms_in = placeholders(len(chunk))
                expiry, oldest_column, expiry_args = "", ", NULL", []
                if not_before is not None:
                    cutoffs = [(room_id, not_before[room_id]) for room_id in chunk if room_id in not_before]
                    expiry = " JOIN events AS e ON e.event_id = a.event_id"
                    current = ("EXISTS (SELECT 1 FROM current_state_events AS s WHERE s.room_id = a.room_id"
                               " AND s.type = e.type AND s.state_key = e.state_key AND s.event_id = a.event_id)")
                    if cutoffs:
                        # A VALUES list as a table: columns column1, column2 on SQLite and PostgreSQL.
                        values = ", ".join(["(?, ?)"] * len(cutoffs))
                        expiry += f" LEFT JOIN (VALUES {values}) AS x ON x.column1 = a.room_id"
                        expiry_args = [value for pair in cutoffs for value in pair]
                        conditions += (" AND (x.column2 IS NULL OR e.origin_server_ts >= x.column2"
                                  f" OR (e.state_key IS NOT NULL AND {current}))")
                    oldest_column = (", MIN(CASE WHEN e.state_key IS NULL OR NOT " + current
                                     + " THEN e.origin_server_ts END)")
                txn.execute(
                    "WITH read_upto (room_id, thread_id, pos) AS ("
                    "  SELECT rc.room_id, rc.thread_id, MAX(e.stream_ordering) FROM receipts AS rc"
                    "  JOIN events AS e ON e.event_id = rc.event_id"
                    f"  WHERE rc.user_id = ? AND rc.room_id IN ({rooms_in})"
                    f"  AND rc.receipt_type IN ({placeholders(len(types))})"
                    "  GROUP BY rc.room_id, rc.thread_id)"
                    " SELECT a.room_id, a.thread_id,"
                    " SUM(CASE WHEN a.notify THEN 1 ELSE 0 END), SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END)"
                    + oldest_column +
                    " FROM event_push_actions AS a" + expiry +
                    " LEFT JOIN read_upto AS r ON r.room_id = a.room_id AND r.thread_id = ?"
                    " LEFT JOIN read_upto AS t ON t.room_id = a.room_id AND t.thread_id = a.thread_id"
                    f" WHERE a.user_id = ? AND a.room_id IN ({rooms_in}) AND a.stream_ordering > COALESCE(r.pos, 0)"
                    " AND a.stream_ordering > COALESCE(t.pos, 0)" + conditions +
                    " GROUP BY a.room_id, a.thread_id",
                    [user_id, *chunk, *types, *expiry_args, UNTHREADED, user_id, *chunk, *limit_args],
                )
                for room_id, thread_id, notify, highlight, first_ts in txn.fetchall():
                    total_notify, total_highlight, per_thread = result[room_id]
                    per_thread[thread_id] = (int(notify), int(highlight))
                    result[room_id] = (total_notify + int(notify), total_highlight + int(highlight), per_thread)
                    if first_ts is not None:
                        oldest[room_id] = min(oldest.get(room_id, int(first_ts)), int(first_ts))

        await self._db.run_interaction("get_unread_counts", _unread_counts_txn)
        return result, oldest

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

    async def erase_user(self, user_id: str, batch: int) -> int:
        """Account erasure: delete up to `batch` of the user's rows in one short transaction;
        the caller repeats until fewer than `batch` go. Returns the rows deleted."""

        def _erase_push_actions_txn(txn: Transaction) -> int:
            txn.execute(
                "DELETE FROM event_push_actions WHERE user_id = ? AND (room_id, stream_ordering) IN"
                " (SELECT room_id, stream_ordering FROM event_push_actions WHERE user_id = ? LIMIT ?)",
                (user_id, user_id, batch),
            )
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_push_actions", _erase_push_actions_txn)
