"""Room aliases of this server (#name:server -> room ID)."""

from __future__ import annotations

from storage.database import Database, Transaction


class AliasStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        """False (and no change) if the alias is taken, even by a concurrent request."""

        def _create_alias_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)"
                " ON CONFLICT (alias) DO NOTHING",
                (alias, room_id, creator),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("create_alias", _create_alias_txn)

    async def delete_alias(self, alias: str) -> str | None:
        """Remove the alias; the room it pointed to, or None if there was no such alias."""

        def _delete_alias_txn(txn: Transaction) -> str | None:
            txn.execute("DELETE FROM room_aliases WHERE alias = ? RETURNING room_id", (alias,))
            row = txn.fetchone()
            return None if row is None else row[0]

        return await self._db.run_interaction("delete_alias", _delete_alias_txn)

    async def get_alias(self, alias: str) -> str | None:
        rows = await self._db.execute(
            "get_alias", "SELECT room_id FROM room_aliases WHERE alias = ?", alias
        )
        return rows[0][0] if rows else None

    async def get_alias_creator(self, alias: str) -> str | None:
        """Who made the alias (they may delete it without power in the room)."""
        rows = await self._db.execute(
            "get_alias_creator", "SELECT creator FROM room_aliases WHERE alias = ?", alias
        )
        return rows[0][0] if rows else None

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        rows = await self._db.execute(
            "get_aliases_for_room",
            "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias",
            room_id,
        )
        return [row[0] for row in rows]
