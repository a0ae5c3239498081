"""Presence: each user's latest state on the "presence" stream; the status message is sealed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.streams import StreamIdGenerator


@dataclass(frozen=True)
class PresenceState:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    stream_id: int


@dataclass(frozen=True)
class PresenceUpdate:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int


_COLUMNS = "user_id, state, status_msg, last_active_ts, stream_id"


class PresenceStore:
    def __init__(self, db: Database, sealer: Sealer, stream: StreamIdGenerator) -> None:
        self._db = db
        self._sealer = sealer
        self.stream = stream

    async def set_presence(self, updates: Iterable[PresenceUpdate]) -> list[PresenceState]:
        """Write new states in one transaction, each at a new stream position."""
        sealed = [(u, self._sealer.seal_str(u.status_msg)) for u in updates]
        if not sealed:
            return []

        def _set_presence_txn(txn: Transaction) -> list[PresenceState]:
            out = []
            for update, status in sealed:
                position = self.stream.get_next_txn(txn)
                txn.execute(
                    "INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
                    " status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,"
                    " stream_id = excluded.stream_id",
                    (update.user_id, update.state, status, update.last_active_ts, position),
                )
                out.append(PresenceState(update.user_id, update.state, update.status_msg,
                                         update.last_active_ts, position))
            return out

        return await self._db.run_interaction("set_presence", _set_presence_txn)

    async def get_presence(self, user_ids: Iterable[str]) -> dict[str, PresenceState]:
        users = list(dict.fromkeys(user_ids))
        if not users:
            return {}
        marks = ", ".join("?" for _ in users)
        rows = await self._db.execute(
            "get_presence", f"SELECT {_COLUMNS} FROM presence WHERE user_id IN ({marks})", *users
        )
        return {row[0]: self._from_row(row) for row in rows}

    async def get_changes(self, from_pos: int, to_pos: int) -> list[PresenceState]:
        """Every user whose presence changed in (from_pos, to_pos], oldest change first."""
        rows = await self._db.execute(
            "get_presence_changes",
            f"SELECT {_COLUMNS} FROM presence WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id",
            from_pos, to_pos,
        )
        return [self._from_row(row) for row in rows]

    async def get_not_offline(self) -> list[PresenceState]:
        """Users not offline: the ones the idle and sync time-outs may have to move."""
        rows = await self._db.execute(
            "get_presence_not_offline", f"SELECT {_COLUMNS} FROM presence WHERE state != 'offline'"
        )
        return [self._from_row(row) for row in rows]

    def _from_row(self, row: tuple) -> PresenceState:
        user_id, state, status, last_active_ts, stream_id = row
        return PresenceState(user_id, state, self._sealer.open_str(status), int(last_active_ts), int(stream_id))

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: the user's presence row. Returns the rows deleted."""

        def _erase_presence_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM presence WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_presence", _erase_presence_txn)
