"""Profiles: one sealed JSON value per (user, field) — display name, avatar, time zone, custom keys."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from storage.database import Database, Transaction
from storage.sealing import Sealer

Profile = dict[str, Any]


class ProfileStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def get_profile(self, user_id: str) -> Profile:
        rows = await self._db.execute(
            "get_profile", "SELECT field, value FROM profiles WHERE user_id = ?", user_id
        )
        return {field: self._sealer.open_json(blob) for field, blob in rows}

    async def get_profiles(self, user_ids: Iterable[str], fields: Iterable[str]) -> dict[str, Profile]:
        """Some fields of many users in one query; users without any of them are absent."""
        users, wanted = list(dict.fromkeys(user_ids)), list(fields)
        if not users or not wanted:
            return {}
        user_marks = ", ".join("?" for _ in users)
        field_marks = ", ".join("?" for _ in wanted)
        rows = await self._db.execute(
            "get_profiles",
            f"SELECT user_id, field, value FROM profiles WHERE user_id IN ({user_marks}) AND field IN ({field_marks})",
            *users, *wanted,
        )
        out: dict[str, Profile] = {}
        for user_id, field, blob in rows:
            out.setdefault(user_id, {})[field] = self._sealer.open_json(blob)
        return out

    async def update_profile(self, user_id: str, mutate: Callable[[Profile], Profile]) -> tuple[Profile, Profile]:
        """Read-modify-write the whole profile atomically; returns (old, new).

        `mutate` gets a copy of the current profile and returns the new one; it runs inside the
        transaction, may run again on a retry, and may raise to abort.
        """

        def _update_profile_txn(txn: Transaction) -> tuple[Profile, Profile]:
            txn.execute("SELECT field, value FROM profiles WHERE user_id = ?", (user_id,))
            old = {field: self._sealer.open_json(blob) for field, blob in txn.fetchall()}
            new = mutate(dict(old))
            removed = [(user_id, field) for field in old if field not in new]
            changed = [(user_id, field, self._sealer.seal_json(value)) for field, value in new.items()
                       if field not in old or old[field] != value]
            if removed:
                txn.execute_many("DELETE FROM profiles WHERE user_id = ? AND field = ?", removed)
            if changed:
                txn.execute_many(
                    "INSERT INTO profiles (user_id, field, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
                    changed,
                )
            return old, new

        return await self._db.run_interaction("update_profile", _update_profile_txn)

    async def get_directory(self, fields: Iterable[str]) -> list[tuple[str, Profile]]:
        """Every active, non-guest local user with the given profile fields, ordered by user ID.

        Values are sealed, so matching a search term happens in the handler, not in SQL.
        """
        wanted = list(fields)
        field_marks = ", ".join("?" for _ in wanted)
        rows = await self._db.execute(
            "get_user_directory",
            "SELECT u.user_id, p.field, p.value FROM users u"
            f" LEFT JOIN profiles p ON p.user_id = u.user_id AND p.field IN ({field_marks})"
            " WHERE NOT u.deactivated AND NOT u.is_guest ORDER BY u.user_id",
            *wanted,
        )
        out: dict[str, Profile] = {}
        for user_id, field, blob in rows:
            profile = out.setdefault(user_id, {})
            if field is not None:
                profile[field] = self._sealer.open_json(blob)
        return list(out.items())

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: every profile field (display name, avatar, custom keys). Returns the rows deleted."""

        def _erase_profile_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_profile", _erase_profile_txn)
