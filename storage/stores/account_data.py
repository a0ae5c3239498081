"""Account data: per-user (and per-user-per-room) JSON documents, sealed, on the "account_data" stream.

Push rules live in their own table (`push_rules.py`) but share this stream, because clients get
them as account data too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.streams import StreamIdGenerator

# Room IDs are never empty, so '' marks global account data.
GLOBAL = ""

Mutator = Callable[[dict[str, Any] | None], dict[str, Any]]


@dataclass(frozen=True)
class AccountDataChanges:
    """What changed in (from, to]: global data by type, and per-room data by room then type."""

    global_data: dict[str, dict[str, Any]]
    room_data: dict[str, dict[str, dict[str, Any]]]


class AccountDataStore:
    def __init__(self, db: Database, sealer: Sealer, stream: StreamIdGenerator) -> None:
        self._db = db
        self._sealer = sealer
        self.stream = stream

    async def put(self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]) -> int:
        """Set one document (room_id None: global); returns its stream position."""
        sealed = self._sealer.seal_json(content)

        def _put_account_data_txn(txn: Transaction) -> int:
            position = self.stream.get_next_txn(txn)
            self._upsert_txn(txn, user_id, room_id or GLOBAL, data_type, position, sealed)
            return position

        return await self._db.run_interaction("put_account_data", _put_account_data_txn)

    async def update(self, user_id: str, room_id: str | None, data_type: str, mutate: Mutator) -> tuple[int, dict[str, Any]]:
        """Read-modify-write one document atomically: `mutate(old or None) -> new`.

        `mutate` runs in the transaction and may run more than once (on a retry): it must be pure.
        Returns (stream position, new content).
        """
        key = room_id or GLOBAL

        def _update_account_data_txn(txn: Transaction) -> tuple[int, dict[str, Any]]:
            txn.execute(
                "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND data_type = ?",
                (user_id, key, data_type),
            )
            row = txn.fetchone()
            new = mutate(None if row is None else self._sealer.open_json(row[0]))
            position = self.stream.get_next_txn(txn)
            self._upsert_txn(txn, user_id, key, data_type, position, self._sealer.seal_json(new))
            return position, new

        return await self._db.run_interaction("update_account_data", _update_account_data_txn)

    @staticmethod
    def _upsert_txn(txn: Transaction, user_id: str, room_id: str, data_type: str, position: int,
                    sealed: bytes) -> None:
        txn.execute(
            "INSERT INTO account_data (user_id, room_id, data_type, stream_id, content) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, room_id, data_type)"
            " DO UPDATE SET stream_id = excluded.stream_id, content = excluded.content",
            (user_id, room_id, data_type, position, sealed),
        )

    async def get(self, user_id: str, room_id: str | None, data_type: str) -> dict[str, Any] | None:
        rows = await self._db.execute(
            "get_account_data",
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND data_type = ?",
            user_id, room_id or GLOBAL, data_type,
        )
        return self._sealer.open_json(rows[0][0]) if rows else None

    async def get_changes(self, user_id: str, from_pos: int, to_pos: int) -> AccountDataChanges:
        """Account data of `user_id` written in (from_pos, to_pos]; from_pos 0 gives everything."""
        rows = await self._db.execute(
            "get_account_data_changes",
            "SELECT room_id, data_type, content FROM account_data"
            " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id",
            user_id, from_pos, to_pos,
        )
        global_data: dict[str, dict[str, Any]] = {}
        room_data: dict[str, dict[str, dict[str, Any]]] = {}
        for room_id, data_type, blob in rows:
            content = self._sealer.open_json(blob)
            if room_id == GLOBAL:
                global_data[data_type] = content
            else:
                room_data.setdefault(room_id, {})[data_type] = content
        return AccountDataChanges(global_data, room_data)

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: every document of the user, global and per room. Returns the rows deleted."""

        def _erase_account_data_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM account_data WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_account_data", _erase_account_data_txn)
