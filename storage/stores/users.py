"""User accounts: the row that says a user ID exists and how it may log in."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction
from storage.stores.tokens import AccessTokenCache


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    password_hash: str | None
    creation_ts: int
    admin: bool
    is_guest: bool
    deactivated: bool
    user_type: str | None
    locked: bool


_USER_COLUMNS = (
    "user_id, password_hash, creation_ts, admin, is_guest, deactivated, user_type, locked"
)

# Sort keys the admin user list accepts (Synapse's names) -> column.
USER_ORDER_COLUMNS = {
    "name": "user_id",
    "creation_ts": "creation_ts",
    "admin": "admin",
    "is_guest": "is_guest",
    "deactivated": "deactivated",
    "user_type": "user_type",
    "locked": "locked",
}


class UserStore:
    def __init__(self, db: Database, token_cache: AccessTokenCache | None = None) -> None:
        self._db = db
        self._token_cache = token_cache

    async def register_user(
        self,
        user_id: str,
        password_hash: str | None,
        now_ms: int,
        *,
        admin: bool = False,
        is_guest: bool = False,
        user_type: str | None = None,
    ) -> bool:
        """Create the user; False (never an error) if the ID is already taken, even by a racer."""
        return await self._db.run_interaction(
            "register_user",
            self._register_user_txn,
            user_id,
            password_hash,
            now_ms,
            admin,
            is_guest,
            user_type,
        )

    @staticmethod
    def _register_user_txn(
        txn: Transaction,
        user_id: str,
        password_hash: str | None,
        now_ms: int,
        admin: bool,
        is_guest: bool,
        user_type: str | None,
    ) -> bool:
        # ON CONFLICT waits for a concurrent insert of the same ID to finish
        # instead of failing; at REPEATABLE READ PostgreSQL may report that as
        # a serialisation failure, and the retry then sees the row.
        txn.execute(
            "INSERT INTO users (user_id, password_hash, creation_ts, admin, is_guest, user_type)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
            (user_id, password_hash, now_ms, admin, is_guest, user_type),
        )
        return txn.rowcount == 1

    async def get_user(self, user_id: str) -> UserInfo | None:
        rows = await self._db.execute(
            "get_user", f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", user_id
        )
        return _user_from_row(rows[0]) if rows else None

    async def find_user_ids_case_insensitive(self, user_id: str) -> list[str]:
        rows = await self._db.execute(
            "find_user_ids_case_insensitive",
            "SELECT user_id FROM users WHERE lower(user_id) = lower(?) ORDER BY user_id",
            user_id,
        )
        return [row[0] for row in rows]

    async def is_user_id_taken(self, user_id: str) -> bool:
        """Whether this ID, compared case-insensitively, belongs to an account.

        Case-insensitive because registration must refuse IDs that differ from
        an existing one by case only; deactivated accounts keep their ID.
        """
        rows = await self._db.execute(
            "is_user_id_taken",
            "SELECT 1 FROM users WHERE lower(user_id) = lower(?) LIMIT 1",
            user_id,
        )
        return bool(rows)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> bool:
        return await self._update_column(
            "set_password_hash", "password_hash", user_id, password_hash
        )

    async def set_admin(self, user_id: str, admin: bool) -> bool:
        return await self._update_column("set_admin", "admin", user_id, bool(admin))

    async def set_deactivated(self, user_id: str, deactivated: bool) -> bool:
        return await self._update_column(
            "set_deactivated", "deactivated", user_id, bool(deactivated)
        )

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        return await self._update_column("set_locked", "locked", user_id, bool(locked))

    async def count_users(self) -> int:
        """All accounts, guests and deactivated ones included."""
        rows = await self._db.execute("count_users", "SELECT COUNT(*) FROM users")
        return int(rows[0][0])

    async def list_users(
        self,
        *,
        offset: int,
        limit: int,
        guests: bool,
        deactivated: bool,
        id_contains: str | None,
        order_by: str,
        descending: bool,
    ) -> tuple[list[UserInfo], int]:
        """A page of accounts for the admin API, and how many match in all.

        `order_by` is one of USER_ORDER_COLUMNS; ties break on user_id so pages never overlap.
        `id_contains` matches user IDs case-insensitively (profiles are sealed, so not names).
        """
        column = USER_ORDER_COLUMNS[order_by]
        where, args = ["TRUE"], []  # type: list[str], list[object]
        if not guests:
            where.append("NOT is_guest")
        if not deactivated:
            where.append("NOT deactivated")
        if id_contains:
            escaped = id_contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("lower(user_id) LIKE ? ESCAPE '\\'")
            args.append(f"%{escaped}%")
        direction = "DESC" if descending else "ASC"
        condition = " AND ".join(where)

        def _list_users_txn(txn: Transaction) -> tuple[list[UserInfo], int]:
            txn.execute(f"SELECT COUNT(*) FROM users WHERE {condition}", args)
            total = int(txn.fetchone()[0])  # type: ignore[index]
            txn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE {condition}"
                f" ORDER BY {column} {direction}, user_id {direction} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
            return [_user_from_row(row) for row in txn.fetchall()], total

        return await self._db.run_interaction("list_users", _list_users_txn)

    async def _update_column(self, desc: str, column: str, user_id: str, value: object) -> bool:
        """Set one column; False if there is no such user."""

        def _update_txn(txn: Transaction) -> bool:
            txn.execute(f"UPDATE users SET {column} = ? WHERE user_id = ?", (value, user_id))
            return txn.rowcount == 1

        changed = await self._db.run_interaction(desc, _update_txn)
        if self._token_cache is not None and column != "password_hash":
            self._token_cache.invalidate()  # authentication reads admin/deactivated/locked from here
        return changed


def _user_from_row(row: tuple) -> UserInfo:
    user_id, password_hash, creation_ts, admin, is_guest, deactivated, user_type, locked = row
    return UserInfo(
        user_id=user_id,
        password_hash=password_hash,
        creation_ts=int(creation_ts),
        admin=bool(admin),
        is_guest=bool(is_guest),
        deactivated=bool(deactivated),
        user_type=user_type,
        locked=bool(locked),
    )
