"""Each user's push-rule document (their own rules and changes to the defaults), sealed.

Its position is on the "account_data" stream: clients receive push rules as `m.push_rules`
account data, so a change must wake and feed the same part of /sync.
"""

from __future__ import annotations

from typing import Any, Callable

from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.streams import StreamIdGenerator

Document = dict[str, Any]


class PushRuleStore:
    def __init__(self, db: Database, sealer: Sealer, account_data_stream: StreamIdGenerator) -> None:
        self._db = db
        self._sealer = sealer
        self.stream = account_data_stream

    async def get_rules(self, user_id: str) -> tuple[Document, int] | None:
        """(document, stream position of its last change), or None if the user never changed any rule."""
        rows = await self._db.execute(
            "get_push_rules", "SELECT rules, stream_id FROM push_rules WHERE user_id = ?", user_id
        )
        return (self._sealer.open_json(rows[0][0]), int(rows[0][1])) if rows else None

    async def update_rules(self, user_id: str, mutate: Callable[[Document | None], Document]) -> tuple[int, Document]:
        """Read-modify-write the document atomically; `mutate` may raise to abort and must be pure."""

        def _update_push_rules_txn(txn: Transaction) -> tuple[int, Document]:
            txn.execute("SELECT rules FROM push_rules WHERE user_id = ?", (user_id,))
            row = txn.fetchone()
            new = mutate(None if row is None else self._sealer.open_json(row[0]))
            position = self.stream.get_next_txn(txn)
            txn.execute(
                "INSERT INTO push_rules (user_id, stream_id, rules) VALUES (?, ?, ?) ON CONFLICT (user_id)"
                " DO UPDATE SET stream_id = excluded.stream_id, rules = excluded.rules",
                (user_id, position, self._sealer.seal_json(new)),
            )
            return position, new

        return await self._db.run_interaction("update_push_rules", _update_push_rules_txn)

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: the user's push-rule document. Returns the rows deleted."""

        def _erase_push_rules_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM push_rules WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_push_rules", _erase_push_rules_txn)
