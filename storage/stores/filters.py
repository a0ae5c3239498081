"""Filters uploaded by clients, sealed (they name rooms and people), with per-user de-duplication.

Clients upload the same filter at every start; storing it once per user keeps the table small.
"""

from __future__ import annotations

from typing import Any

from storage.database import Database, Transaction
from storage.sealing import Sealer


class FilterStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def add_filter(self, user_id: str, definition: dict[str, Any]) -> int:
        """The ID of `definition` for this user, storing it if the user has no identical filter."""
        sealed = self._sealer.seal_json(definition)

        def _add_filter_txn(txn: Transaction) -> int:
            txn.execute("SELECT filter_id, filter_json FROM user_filters WHERE user_id = ?", (user_id,))
            for filter_id, blob in txn.fetchall():
                if self._sealer.open_json(blob) == definition:
                    return int(filter_id)
            txn.execute(
                "INSERT INTO user_filters (user_id, filter_json) VALUES (?, ?) RETURNING filter_id",
                (user_id, sealed),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("add_filter", _add_filter_txn)

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        rows = await self._db.execute(
            "get_filter",
            "SELECT filter_json FROM user_filters WHERE user_id = ? AND filter_id = ?",
            user_id, filter_id,
        )
        return self._sealer.open_json(rows[0][0]) if rows else None

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: the user's filters. Returns the rows deleted."""

        def _erase_filters_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM user_filters WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_filters", _erase_filters_txn)
