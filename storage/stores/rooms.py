"""Rooms this server knows: version, creator, and whether the public directory lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from storage.database import Database, Transaction
from storage.stores.event_fetch import chunks, placeholders


@dataclass(frozen=True)
class RoomInfo:
    room_id: str
    room_version: str
    creator: str
    is_public: bool
    created_ts: int


class RoomStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def store_room(
        self, room_id: str, room_version: str, creator: str, is_public: bool, created_ts: int
    ) -> bool:
        """Record the room; False (and no change) if it is already known."""

        def _store_room_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id) DO NOTHING",
                (room_id, room_version, creator, is_public, created_ts),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("store_room", _store_room_txn)

    async def get_room(self, room_id: str) -> RoomInfo | None:
        rows = await self._db.execute(
            "get_room",
            "SELECT room_id, room_version, creator, is_public, created_ts FROM rooms WHERE room_id = ?",
            room_id,
        )
        if not rows:
            return None
        room_id, version, creator, is_public, created_ts = rows[0]
        return RoomInfo(room_id, version, creator, bool(is_public), int(created_ts))

    async def set_room_is_public(self, room_id: str, is_public: bool) -> bool:
        """False if the room is unknown."""

        def _set_public_txn(txn: Transaction) -> bool:
            txn.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (is_public, room_id))
            return txn.rowcount == 1

        return await self._db.run_interaction("set_room_is_public", _set_public_txn)

    async def get_public_room_ids(self, limit: int, since_index: int = 0) -> tuple[list[str], int]:
        """A page of the public directory, most joined members first, and the total listed.

        `since_index` is the offset of the page (the directory's pagination tokens).
        """

        def _public_rooms_txn(txn: Transaction) -> tuple[list[str], int]:
            txn.execute(
                "SELECT r.room_id FROM rooms AS r LEFT JOIN ("
                " SELECT room_id, COUNT(*) AS joined FROM current_memberships"
                " WHERE membership = 'join' GROUP BY room_id"
                ") AS m ON m.room_id = r.room_id WHERE r.is_public"
                " ORDER BY COALESCE(m.joined, 0) DESC, r.room_id LIMIT ? OFFSET ?",
                (limit, since_index),
            )
            room_ids = [row[0] for row in txn.fetchall()]
            txn.execute("SELECT COUNT(*) FROM rooms WHERE is_public")
            return room_ids, int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("get_public_room_ids", _public_rooms_txn)

    async def get_room_versions(self, room_ids: Iterable[str]) -> dict[str, str]:
        """room_id -> room version, for the rooms we know."""

        def _versions_txn(txn: Transaction, ids: list[str]) -> dict[str, str]:
            result: dict[str, str] = {}
            for chunk in chunks(ids):
                txn.execute(
                    f"SELECT room_id, room_version FROM rooms WHERE room_id IN ({placeholders(len(chunk))})",
                    chunk,
                )
                result.update(txn.fetchall())
            return result

        return await self._db.run_interaction(
            "get_room_versions", _versions_txn, list(dict.fromkeys(room_ids))
        )
