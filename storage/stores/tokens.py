"""Access and refresh tokens, stored as SHA-256 hashes only.

The caller hashes the token it hands to the client; a database dump can't be
replayed as a login. Ids come from the database (identity / autoincrement).

Refresh tokens rotate: using token A issues B and links A -> B
(`replace_refresh_token`). A stays usable until B is used — in case the
client never received B — and once B is used, A and the access tokens minted
with it are deleted (`delete_superseded_refresh_tokens`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class AccessTokenInfo:
    token_id: int
    user_id: str
    device_id: str | None
    created_ts: int
    valid_until_ms: int | None
    refresh_token_id: int | None
    last_used_ts: int | None
    # From the user's row, so authenticating a request is a single query.
    admin: bool
    is_guest: bool
    deactivated: bool
    locked: bool
    user_type: str | None


@dataclass(frozen=True)
class RefreshTokenInfo:
    token_id: int
    user_id: str
    device_id: str
    next_token_id: int | None
    created_ts: int
    expiry_ts: int | None
    ultimate_session_expiry_ts: int | None


class AccessTokenCache:
    """Recently used access tokens, so authenticating a request costs no query.

    Every write that can end a session or change what a token grants (token and device deletion,
    deactivation, locking, admin changes) calls `invalidate` after its commit. A look-up that
    was already under way then can't put its (possibly stale) answer back: entries carry the
    generation they were read in. With several worker processes this will need cross-process
    invalidation (PostgreSQL LISTEN/NOTIFY); today one process owns the database.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[bytes, AccessTokenInfo] = OrderedDict()
        self._max_entries = max_entries
        self.generation = 0

    def get(self, token_hash: bytes) -> AccessTokenInfo | None:
        info = self._entries.get(token_hash)
        if info is not None:
            self._entries.move_to_end(token_hash)
        return info

    def put(self, token_hash: bytes, info: AccessTokenInfo, generation: int) -> None:
        if generation != self.generation:
            return
        self._entries[token_hash] = info
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()


class TokenStore:
    def __init__(self, db: Database, cache: AccessTokenCache | None = None) -> None:
        self._db = db
        self._cache = cache if cache is not None else AccessTokenCache()

    # -- access tokens ---------------------------------------------------

    async def add_access_token(
        self,
        user_id: str,
        device_id: str | None,
        token_hash: bytes,
        now_ms: int,
        valid_until_ms: int | None = None,
        refresh_token_id: int | None = None,
    ) -> int:
        """Store a token's hash; returns its id. The device must already exist."""

        def _add_access_token_txn(txn: Transaction) -> int:
            txn.execute(
                "INSERT INTO access_tokens"
                " (token_hash, user_id, device_id, created_ts, valid_until_ms, refresh_token_id)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (token_hash, user_id, device_id, now_ms, valid_until_ms, refresh_token_id),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("add_access_token", _add_access_token_txn)

    async def get_access_token(self, token_hash: bytes) -> AccessTokenInfo | None:
        cached = self._cache.get(token_hash)
        if cached is not None:
            return cached
        generation = self._cache.generation
        info = await self._read_access_token(token_hash)
        if info is not None:
            self._cache.put(token_hash, info, generation)
        return info

    async def _read_access_token(self, token_hash: bytes) -> AccessTokenInfo | None:
        rows = await self._db.execute(
            "get_access_token",
            "SELECT t.id, t.user_id, t.device_id, t.created_ts, t.valid_until_ms,"
            " t.refresh_token_id, t.last_used_ts,"
            " u.admin, u.is_guest, u.deactivated, u.locked, u.user_type"
            " FROM access_tokens t JOIN users u ON u.user_id = t.user_id"
            " WHERE t.token_hash = ?",
            token_hash,
        )
        if not rows:
            return None
        (
            token_id,
            user_id,
            device_id,
            created_ts,
            valid_until_ms,
            refresh_token_id,
            last_used_ts,
            admin,
            is_guest,
            deactivated,
            locked,
            user_type,
        ) = rows[0]
        return AccessTokenInfo(
            token_id=int(token_id),
            user_id=user_id,
            device_id=device_id,
            created_ts=int(created_ts),
            valid_until_ms=_opt_int(valid_until_ms),
            refresh_token_id=_opt_int(refresh_token_id),
            last_used_ts=_opt_int(last_used_ts),
            admin=bool(admin),
            is_guest=bool(is_guest),
            deactivated=bool(deactivated),
            locked=bool(locked),
            user_type=user_type,
        )

    async def delete_access_token(self, token_id: int) -> bool:
        """False if it was already gone."""

        def _delete_access_token_txn(txn: Transaction) -> bool:
            txn.execute("DELETE FROM access_tokens WHERE id = ?", (token_id,))
            return txn.rowcount == 1

        result = await self._db.run_interaction("delete_access_token", _delete_access_token_txn)
        self._cache.invalidate()
        return result

    async def delete_access_tokens_for_user(
        self, user_id: str, *, except_token_id: int | None = None, device_id: str | None = None
    ) -> list[tuple[int, str | None]]:
        """Log the user out everywhere (or on one device), except one token if given.

        Also deletes the refresh tokens that could mint new access tokens for
        those sessions (keeping the one behind `except_token_id`). Returns the
        (token_id, device_id) of each access token deleted.
        """

        def _delete_for_user_txn(txn: Transaction) -> list[tuple[int, str | None]]:
            keep_refresh_id = None
            if except_token_id is not None:
                txn.execute(
                    "SELECT refresh_token_id FROM access_tokens WHERE id = ?", (except_token_id,)
                )
                row = txn.fetchone()
                keep_refresh_id = row[0] if row else None
            where, args = "user_id = ?", [user_id]
            if device_id is not None:
                where += " AND device_id = ?"
                args.append(device_id)
            access_where, access_args = where, list(args)
            if except_token_id is not None:
                access_where += " AND id <> ?"
                access_args.append(except_token_id)
            txn.execute(
                f"DELETE FROM access_tokens WHERE {access_where} RETURNING id, device_id",
                access_args,
            )
            deleted = [(int(token_id), dev) for token_id, dev in txn.fetchall()]
            if keep_refresh_id is not None:
                where += " AND id <> ?"
                args.append(keep_refresh_id)
            txn.execute(f"DELETE FROM refresh_tokens WHERE {where}", args)
            return sorted(deleted)

        result = await self._db.run_interaction("delete_access_tokens_for_user", _delete_for_user_txn)
        self._cache.invalidate()
        return result

    async def delete_tokens_for_device(self, user_id: str, device_id: str) -> None:
        """Delete the device's access and refresh tokens (the device itself stays)."""

        def _delete_for_device_txn(txn: Transaction) -> None:
            txn.execute(
                "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            txn.execute(
                "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )

        await self._db.run_interaction("delete_tokens_for_device", _delete_for_device_txn)
        self._cache.invalidate()

    # -- refresh tokens --------------------------------------------------

    async def add_refresh_token(
        self,
        user_id: str,
        device_id: str,
        token_hash: bytes,
        now_ms: int,
        expiry_ts: int | None = None,
        ultimate_session_expiry_ts: int | None = None,
    ) -> int:
        def _add_refresh_token_txn(txn: Transaction) -> int:
            txn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts, expiry_ts,"
                " ultimate_session_expiry_ts) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (token_hash, user_id, device_id, now_ms, expiry_ts, ultimate_session_expiry_ts),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("add_refresh_token", _add_refresh_token_txn)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenInfo | None:
        rows = await self._db.execute(
            "get_refresh_token",
            "SELECT id, user_id, device_id, next_token_id, created_ts, expiry_ts,"
            " ultimate_session_expiry_ts FROM refresh_tokens WHERE token_hash = ?",
            token_hash,
        )
        if not rows:
            return None
        token_id, user_id, device_id, next_id, created_ts, expiry_ts, ultimate = rows[0]
        return RefreshTokenInfo(
            token_id=int(token_id),
            user_id=user_id,
            device_id=device_id,
            next_token_id=_opt_int(next_id),
            created_ts=int(created_ts),
            expiry_ts=_opt_int(expiry_ts),
            ultimate_session_expiry_ts=_opt_int(ultimate),
        )

    async def replace_refresh_token(self, old_id: int, new_id: int) -> None:
        """Record that `old_id` was used and `new_id` issued in its place.

        Using `old_id` proves its own predecessor is no longer needed: that one
        goes, with its access tokens. If `old_id` had already been replaced by a
        token that was never used (the client lost the response), that orphan
        goes too.
        """

        def _replace_txn(txn: Transaction) -> None:
            _delete_superseded_txn(txn, old_id)
            txn.execute("SELECT next_token_id FROM refresh_tokens WHERE id = ?", (old_id,))
            row = txn.fetchone()
            if row and row[0] is not None and row[0] != new_id:
                _delete_refresh_tokens_txn(txn, [int(row[0])])
            txn.execute(
                "UPDATE refresh_tokens SET next_token_id = ? WHERE id = ?", (new_id, old_id)
            )

        await self._db.run_interaction("replace_refresh_token", _replace_txn)
        self._cache.invalidate()

    async def delete_superseded_refresh_tokens(self, refresh_token_id: int) -> int:
        """`refresh_token_id` (or an access token minted with it) was used: drop its predecessors.

        Returns how many refresh tokens were deleted.
        """
        result = await self._db.run_interaction(
            "delete_superseded_refresh_tokens", _delete_superseded_txn, refresh_token_id
        )
        self._cache.invalidate()
        return result

    async def delete_refresh_token(self, token_id: int) -> bool:
        """Delete one refresh token and the access tokens minted with it."""

        def _delete_refresh_token_txn(txn: Transaction) -> bool:
            return _delete_refresh_tokens_txn(txn, [token_id]) == 1

        result = await self._db.run_interaction("delete_refresh_token", _delete_refresh_token_txn)
        self._cache.invalidate()
        return result


def _delete_superseded_txn(txn: Transaction, refresh_token_id: int) -> int:
    txn.execute("SELECT id FROM refresh_tokens WHERE next_token_id = ?", (refresh_token_id,))
    return _delete_refresh_tokens_txn(txn, [int(row[0]) for row in txn.fetchall()])


def _delete_refresh_tokens_txn(txn: Transaction, token_ids: list[int]) -> int:
    if not token_ids:
        return 0
    rows = [(token_id,) for token_id in token_ids]
    txn.execute_many("DELETE FROM access_tokens WHERE refresh_token_id = ?", rows)
    deleted = 0
    for token_id in token_ids:
        txn.execute("DELETE FROM refresh_tokens WHERE id = ?", (token_id,))
        deleted += txn.rowcount
    return deleted


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[arg-type]
