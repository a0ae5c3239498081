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


@dataclass(frozen=True)
class RoomCounts:
    """A room's row and its current-state counts, for the admin room list."""

    room_id: str
    room_version: str
    creator: str
    is_public: bool
    joined_members: int
    joined_local_members: int
    state_events: int


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

    async def get_room_counts(self, server_name: str, room_ids: Iterable[str] | None = None) -> list[RoomCounts]:
        """Every known room (or those of `room_ids`) with member and state counts, by room ID.

        Three grouped queries whatever the number of rooms; names and the like are state
        events (sealed), so the admin API reads those through the state store.
        """
        suffix = ":" + server_name

        def _room_counts_txn(txn: Transaction, ids: list[str] | None) -> list[RoomCounts]:
            def scoped(sql: str, chunk: list[str] | None, column: str = "room_id") -> tuple[str, list[object]]:
                if chunk is None:
                    return sql, []
                return f"{sql} AND {column} IN ({placeholders(len(chunk))})", list(chunk)

            rows: list[tuple] = []
            joined: dict[str, tuple[int, int]] = {}
            state: dict[str, int] = {}
            for chunk in ([None] if ids is None else list(chunks(ids))):
                sql, args = scoped("SELECT room_id, room_version, creator, is_public FROM rooms WHERE TRUE", chunk)
                txn.execute(sql, args)
                rows.extend(txn.fetchall())
                sql, args = scoped(
                    "SELECT room_id, COUNT(*),"
                    " SUM(CASE WHEN substr(user_id, length(user_id) - ? + 1) = ? THEN 1 ELSE 0 END)"
                    " FROM current_memberships WHERE membership = 'join'", chunk)
                txn.execute(sql + " GROUP BY room_id", [len(suffix), suffix, *args])
                joined.update((r, (int(n), int(local or 0))) for r, n, local in txn.fetchall())
                sql, args = scoped("SELECT room_id, COUNT(*) FROM current_state_events WHERE TRUE", chunk)
                txn.execute(sql + " GROUP BY room_id", args)
                state.update((r, int(n)) for r, n in txn.fetchall())
            return sorted(
                (RoomCounts(room_id, version, creator, bool(public), *joined.get(room_id, (0, 0)),
                            state.get(room_id, 0))
                 for room_id, version, creator, public in rows),
                key=lambda c: c.room_id,
            )

        ids = None if room_ids is None else list(dict.fromkeys(room_ids))
        return await self._db.run_interaction("get_room_counts", _room_counts_txn, ids)
