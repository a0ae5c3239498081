"""Server-side room key backups: versions with sealed `auth_data`, and sealed session keys.

Only a user's newest live version takes new keys. When a session is uploaded again, the copy
kept is the better one (`_BETTER`): verified over unverified, then the lower first message
index, then the lower forwarded count; on a tie the stored one stays. Each change to the keys
of a version bumps its `etag`, so a client can tell that another one changed the backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from storage.database import Database, Transaction
from storage.sealing import Sealer

# Rows per INSERT statement: 8 parameters each stays under SQLite's oldest limit of 999.
_CHUNK = 100

# The ON CONFLICT condition under which an upload replaces the stored copy of a session.
_BETTER = (
    "(excluded.is_verified AND NOT k.is_verified)"
    " OR (excluded.is_verified = k.is_verified"
    "     AND (excluded.first_message_index < k.first_message_index"
    "          OR (excluded.first_message_index = k.first_message_index"
    "              AND excluded.forwarded_count < k.forwarded_count)))"
)


class NoSuchBackup(Exception):
    """The version does not exist (or was deleted), or the user has no backup at all."""


class WrongBackupVersion(Exception):
    """Keys may only be written to the current version, which is `current`."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


@dataclass(frozen=True)
class BackupVersion:
    version: str
    algorithm: str
    auth_data: dict[str, Any]
    etag: str
    count: int


@dataclass(frozen=True)
class BackupKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]


def _parse_version(version: str) -> int | None:
    """Version strings are the decimal row IDs we hand out; anything else names no version."""
    if not version.isascii() or not version.isdigit() or str(int(version)) != version:
        return None
    return int(version)


class KeyBackupStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def create_version(self, user_id: str, algorithm: str, auth_data: dict[str, Any]) -> str:
        sealed = self._sealer.seal_json(auth_data)

        def _create_backup_version_txn(txn: Transaction) -> str:
            txn.execute(
                "INSERT INTO room_key_backup_versions (user_id, algorithm, auth_data, etag, deleted)"
                " VALUES (?, ?, ?, 0, ?) RETURNING version",
                (user_id, algorithm, sealed, False),
            )
            return str(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("create_backup_version", _create_backup_version_txn)

    async def get_version(self, user_id: str, version: str | None) -> BackupVersion | None:
        """A live version with its key count; `version` None means the current one."""

        def _get_backup_version_txn(txn: Transaction) -> BackupVersion | None:
            row = self._live_version_txn(txn, user_id, version)
            if row is None:
                return None
            number, algorithm, sealed, etag = row
            return BackupVersion(str(number), algorithm, self._sealer.open_json(sealed), str(etag),
                                 self._count_txn(txn, user_id, number))

        return await self._db.run_interaction("get_backup_version", _get_backup_version_txn)

    async def update_auth_data(self, user_id: str, version: str, auth_data: dict[str, Any]) -> bool:
        """False if the version is not live."""
        number = _parse_version(version)
        if number is None:
            return False
        rows = await self._db.execute(
            "update_backup_auth_data",
            "UPDATE room_key_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ? AND NOT deleted"
            " RETURNING version",
            self._sealer.seal_json(auth_data), user_id, number,
        )
        return bool(rows)

    async def delete_version(self, user_id: str, version: str) -> bool:
        """Mark the version deleted and drop its keys; False if it never existed."""
        number = _parse_version(version)
        if number is None:
            return False

        def _delete_backup_version_txn(txn: Transaction) -> bool:
            txn.execute(
                "UPDATE room_key_backup_versions SET deleted = ? WHERE user_id = ? AND version = ?",
                (True, user_id, number),
            )
            if txn.rowcount == 0:
                return False
            txn.execute("DELETE FROM room_key_backup_keys WHERE user_id = ? AND version = ?", (user_id, number))
            return True

        return await self._db.run_interaction("delete_backup_version", _delete_backup_version_txn)

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: every backed-up session and every version row, deleted ones too (their
        sealed auth_data is the user's). Version numbers are never reused (identity/autoincrement).
        Returns the rows deleted."""

        def _erase_key_backup_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM room_key_backup_keys WHERE user_id = ?", (user_id,))
            keys = max(txn.rowcount, 0)
            txn.execute("DELETE FROM room_key_backup_versions WHERE user_id = ?", (user_id,))
            return keys + max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_key_backup", _erase_key_backup_txn)

    async def put_keys(self, user_id: str, version: str, keys: Iterable[BackupKey]) -> tuple[str, int]:
        """Store keys in the current version, keeping the better copy of each session.

        Returns (etag, count). Raises NoSuchBackup if the user has no live version,
        WrongBackupVersion if `version` is not the current one.
        """
        rows = [
            (k.room_id, k.session_id, k.first_message_index, k.forwarded_count, k.is_verified,
             self._sealer.seal_json(k.session_data))
            for k in keys
        ]

        def _put_backup_keys_txn(txn: Transaction) -> tuple[str, int]:
            current = self._live_version_txn(txn, user_id, None)
            if current is None:
                raise NoSuchBackup()
            number = current[0]
            if str(number) != version:
                raise WrongBackupVersion(str(number))
            changed = 0
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
                txn.execute(
                    "INSERT INTO room_key_backup_keys AS k (user_id, version, room_id, session_id,"
                    " first_message_index, forwarded_count, is_verified, session_data)"
                    f" VALUES {values}"
                    " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
                    " first_message_index = excluded.first_message_index,"
                    " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
                    f" session_data = excluded.session_data WHERE {_BETTER}",
                    [value for row in chunk for value in (user_id, number, *row)],
                )
                changed += txn.rowcount
            return self._etag_and_count_txn(txn, user_id, number, changed > 0)

        return await self._db.run_interaction("put_backup_keys", _put_backup_keys_txn)

    async def get_keys(self, user_id: str, version: str, room_id: str | None = None,
                       session_id: str | None = None) -> list[BackupKey]:
        """The version's keys, or one room's, or one session's. Raises NoSuchBackup."""

        def _get_backup_keys_txn(txn: Transaction) -> list[BackupKey]:
            current = self._live_version_txn(txn, user_id, version)
            if current is None:
                raise NoSuchBackup()
            where, args = self._key_filter(user_id, current[0], room_id, session_id)
            txn.execute(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
                f" FROM room_key_backup_keys WHERE {where} ORDER BY room_id, session_id",
                args,
            )
            return [
                BackupKey(room, session, int(index), int(forwarded), bool(verified), self._sealer.open_json(data))
                for room, session, index, forwarded, verified, data in txn.fetchall()
            ]

        return await self._db.run_interaction("get_backup_keys", _get_backup_keys_txn)

    async def delete_keys(self, user_id: str, version: str, room_id: str | None = None,
                          session_id: str | None = None) -> tuple[str, int]:
        """Delete the version's keys, or one room's, or one session's; returns (etag, count).
        Raises NoSuchBackup."""

        def _delete_backup_keys_txn(txn: Transaction) -> tuple[str, int]:
            current = self._live_version_txn(txn, user_id, version)
            if current is None:
                raise NoSuchBackup()
            where, args = self._key_filter(user_id, current[0], room_id, session_id)
            txn.execute(f"DELETE FROM room_key_backup_keys WHERE {where}", args)
            return self._etag_and_count_txn(txn, user_id, current[0], txn.rowcount > 0)

        return await self._db.run_interaction("delete_backup_keys", _delete_backup_keys_txn)

    @staticmethod
    def _live_version_txn(txn: Transaction, user_id: str, version: str | None) -> tuple[Any, ...] | None:
        """(version, algorithm, sealed auth_data, etag) of a live version; None: the newest."""
        if version is None:
            txn.execute(
                "SELECT version, algorithm, auth_data, etag FROM room_key_backup_versions"
                " WHERE user_id = ? AND NOT deleted ORDER BY version DESC LIMIT 1",
                (user_id,),
            )
            return txn.fetchone()
        number = _parse_version(version)
        if number is None:
            return None
        txn.execute(
            "SELECT version, algorithm, auth_data, etag FROM room_key_backup_versions"
            " WHERE user_id = ? AND version = ? AND NOT deleted",
            (user_id, number),
        )
        return txn.fetchone()

    @staticmethod
    def _key_filter(user_id: str, number: int, room_id: str | None,
                    session_id: str | None) -> tuple[str, tuple[Any, ...]]:
        where, args = "user_id = ? AND version = ?", (user_id, number)
        if room_id is not None:
            where, args = where + " AND room_id = ?", args + (room_id,)
            if session_id is not None:
                where, args = where + " AND session_id = ?", args + (session_id,)
        return where, args

    @staticmethod
    def _count_txn(txn: Transaction, user_id: str, number: int) -> int:
        txn.execute("SELECT COUNT(*) FROM room_key_backup_keys WHERE user_id = ? AND version = ?",
                    (user_id, number))
        return int(txn.fetchone()[0])  # type: ignore[index]

    def _etag_and_count_txn(self, txn: Transaction, user_id: str, number: int, changed: bool) -> tuple[str, int]:
        if changed:
            txn.execute(
                "UPDATE room_key_backup_versions SET etag = etag + 1 WHERE version = ? RETURNING etag", (number,)
            )
        else:
            txn.execute("SELECT etag FROM room_key_backup_versions WHERE version = ?", (number,))
        etag = txn.fetchone()[0]  # type: ignore[index]
        return str(etag), self._count_txn(txn, user_id, number)
