"""Server notices: the system account that sends them and each user's server-notices room."""

from __future__ import annotations

from storage.database import Database, Transaction


class ServerNoticeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_system_user(self, user_id: str) -> bool:
        """Whether the server itself created `user_id` as its server-notices sender."""
        rows = await self._db.execute(
            "is_server_notices_system_user",
            "SELECT 1 FROM server_notices_system_users WHERE user_id = ?", user_id,
        )
        return bool(rows)

    async def create_system_user(self, user_id: str, now_ms: int) -> bool:
        """Create the account (no password: no one can log in as it) and mark it as the server's.

        False if `user_id` already exists; whether it is the server's is `is_system_user`'s answer.
        """

        def _create_system_user_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO users (user_id, password_hash, creation_ts, user_type) VALUES (?, NULL, ?, 'support')"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, now_ms),
            )
            if txn.rowcount != 1:
                return False
            txn.execute("INSERT INTO server_notices_system_users (user_id, created_ts) VALUES (?, ?)", (user_id, now_ms))
            return True

        return await self._db.run_interaction("create_server_notices_system_user", _create_system_user_txn)

    async def get_room_for_user(self, user_id: str) -> str | None:
        rows = await self._db.execute(
            "get_server_notice_room", "SELECT room_id FROM server_notice_rooms WHERE user_id = ?", user_id
        )
        return rows[0][0] if rows else None

    async def add_room_for_user(self, user_id: str, room_id: str, now_ms: int) -> None:
        await self._db.execute(
            "add_server_notice_room",
            "INSERT INTO server_notice_rooms (user_id, room_id, created_ts) VALUES (?, ?, ?)",
            user_id, room_id, now_ms,
        )

    async def is_notice_room(self, room_id: str) -> bool:
        rows = await self._db.execute(
            "is_server_notice_room", "SELECT 1 FROM server_notice_rooms WHERE room_id = ?", room_id
        )
        return bool(rows)
