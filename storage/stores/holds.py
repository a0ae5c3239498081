"""Legal holds: rooms and users whose data an admin has frozen for a legal request.

Retention purges and account erasure ask `held_rooms`/`is_user_held` before deleting anything,
and skip what is held until an admin releases the hold. The reason is sealed: it may name
people or cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from storage.database import Database, Transaction
from storage.sealing import Sealer

HoldTarget = Literal["room", "user"]


@dataclass(frozen=True)
class Hold:
    id: int
    target_type: HoldTarget
    target_id: str
    reason: str | None
    created_by: str
    created_ts: int
    released_by: str | None
    released_ts: int | None

    @property
    def active(self) -> bool:
        return self.released_ts is None


class HoldStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def place_hold(self, target_type: HoldTarget, target_id: str, *, reason: str | None, created_by: str,
                         now_ms: int) -> Hold:
        """Hold a room or a user; an existing active hold on the same target is returned as it is."""
        sealed = self._sealer.seal_str(reason)

        def _place_hold_txn(txn: Transaction) -> int:
            # A concurrent placement on PostgreSQL makes this a serialisation failure, and the
            # retry then finds that hold.
            txn.execute(
                "INSERT INTO legal_holds (target_type, target_id, reason, created_by, created_ts)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (target_type, target_id) WHERE released_ts IS NULL DO NOTHING RETURNING id",
                (target_type, target_id, sealed, created_by, now_ms),
            )
            row = txn.fetchone()
            if row is not None:
                return int(row[0])
            existing = self._active_id_txn(txn, target_type, target_id)
            assert existing is not None
            return existing

        hold_id = await self._db.run_interaction("place_hold", _place_hold_txn)
        hold = await self.get_hold(hold_id)
        assert hold is not None
        return hold

    async def release_hold(self, target_type: HoldTarget, target_id: str, *, released_by: str,
                           now_ms: int) -> Hold | None:
        """Release the active hold on the target and return it; None if there was none."""

        def _release_hold_txn(txn: Transaction) -> int | None:
            hold_id = self._active_id_txn(txn, target_type, target_id)
            if hold_id is not None:
                txn.execute("UPDATE legal_holds SET released_by = ?, released_ts = ? WHERE id = ?",
                            (released_by, now_ms, hold_id))
            return hold_id

        hold_id = await self._db.run_interaction("release_hold", _release_hold_txn)
        return None if hold_id is None else await self.get_hold(hold_id)

    async def get_hold(self, hold_id: int) -> Hold | None:
        rows = await self._db.execute("get_hold", f"SELECT {_COLUMNS} FROM legal_holds WHERE id = ?", hold_id)
        return self._hold(rows[0]) if rows else None

    async def list_holds(self, *, include_released: bool = False) -> list[Hold]:
        where = "" if include_released else " WHERE released_ts IS NULL"
        rows = await self._db.execute("list_holds", f"SELECT {_COLUMNS} FROM legal_holds{where} ORDER BY id")
        return [self._hold(row) for row in rows]

    async def held_rooms(self) -> set[str]:
        """Rooms under an active hold: a purge skips them."""
        rows = await self._db.execute(
            "held_rooms", "SELECT target_id FROM legal_holds WHERE target_type = 'room' AND released_ts IS NULL")
        return {row[0] for row in rows}

    async def held_users(self) -> set[str]:
        """Users under an active hold: a purge keeps their events, erasure waits."""
        rows = await self._db.execute(
            "held_users", "SELECT target_id FROM legal_holds WHERE target_type = 'user' AND released_ts IS NULL")
        return {row[0] for row in rows}

    async def is_room_held(self, room_id: str) -> bool:
        return room_id in await self.held_rooms()

    async def is_user_held(self, user_id: str) -> bool:
        rows = await self._db.execute(
            "is_user_held",
            "SELECT 1 FROM legal_holds WHERE target_type = 'user' AND target_id = ? AND released_ts IS NULL",
            user_id,
        )
        return bool(rows)

    @staticmethod
    def _active_id_txn(txn: Transaction, target_type: str, target_id: str) -> int | None:
        txn.execute(
            "SELECT id FROM legal_holds WHERE target_type = ? AND target_id = ? AND released_ts IS NULL",
            (target_type, target_id),
        )
        row = txn.fetchone()
        return None if row is None else int(row[0])

    def _hold(self, row: tuple) -> Hold:
        return Hold(int(row[0]), row[1], row[2], self._sealer.open_str(row[3]), row[4], int(row[5]), row[6],
                    None if row[7] is None else int(row[7]))


_COLUMNS = "id, target_type, target_id, reason, created_by, created_ts, released_by, released_ts"
