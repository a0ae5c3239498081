"""Receipts: the latest one per (room, type, user, thread), on the "receipts" stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from storage.database import Database, Transaction
from storage.streams import StreamIdGenerator

# thread_id of an unthreaded receipt (thread IDs are "main" or event IDs, never empty).
UNTHREADED = ""


@dataclass(frozen=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None  # None: unthreaded
    event_id: str
    ts: int
    stream_id: int


_COLUMNS = "room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id"


def _from_row(row: tuple) -> Receipt:
    room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id = row
    return Receipt(room_id, receipt_type, user_id, thread_id or None, event_id, int(ts), int(stream_id))


class ReceiptStore:
    def __init__(self, db: Database, stream: StreamIdGenerator) -> None:
        self._db = db
        self.stream = stream

    async def put_receipt(self, room_id: str, receipt_type: str, user_id: str, thread_id: str | None,
                          event_id: str, ts: int) -> int:
        """Replace the user's receipt of this type (and thread) in the room; returns the position."""

        def _put_receipt_txn(txn: Transaction) -> int:
            position = self.stream.get_next_txn(txn)
            txn.execute(
                "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, receipt_type, user_id, thread_id)"
                " DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id",
                (room_id, receipt_type, user_id, thread_id or UNTHREADED, event_id, ts, position),
            )
            return position

        return await self._db.run_interaction("put_receipt", _put_receipt_txn)

    async def get_changes(self, room_ids: Collection[str], from_pos: int, to_pos: int) -> list[Receipt]:
        """Receipts in these rooms written in (from_pos, to_pos], oldest first; from_pos 0: all."""
        rooms = list(room_ids)
        if not rooms:
            return []
        marks = ", ".join("?" for _ in rooms)
        rows = await self._db.execute(
            "get_receipt_changes",
            f"SELECT {_COLUMNS} FROM receipts WHERE room_id IN ({marks}) AND stream_id > ? AND stream_id <= ?"
            " ORDER BY stream_id",
            *rooms, from_pos, to_pos,
        )
        return [_from_row(row) for row in rows]

    async def get_user_receipts(self, user_id: str, room_ids: Collection[str],
                                receipt_types: Collection[str]) -> list[Receipt]:
        """A user's own receipts of some types in some rooms (for notification counts)."""
        rooms, types = list(room_ids), list(receipt_types)
        if not rooms or not types:
            return []
        room_marks = ", ".join("?" for _ in rooms)
        type_marks = ", ".join("?" for _ in types)
        rows = await self._db.execute(
            "get_user_receipts",
            f"SELECT {_COLUMNS} FROM receipts WHERE user_id = ? AND room_id IN ({room_marks})"
            f" AND receipt_type IN ({type_marks})",
            user_id, *rooms, *types,
        )
        return [_from_row(row) for row in rows]

    async def erase_user(self, user_id: str, *, keep_rooms: Collection[str] = ()) -> int:
        """Account erasure: the user's receipts, except in `keep_rooms` (rooms under a legal hold,
        whose record includes who read what). Returns the rows deleted."""
        kept = list(keep_rooms)

        def _erase_receipts_txn(txn: Transaction) -> int:
            where = f" AND room_id NOT IN ({', '.join('?' for _ in kept)})" if kept else ""
            txn.execute(f"DELETE FROM receipts WHERE user_id = ?{where}", (user_id, *kept))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_receipts", _erase_receipts_txn)
