"""OpenID tokens, by hash: what `/openid/userinfo` resolves to a user ID until it expires."""

from __future__ import annotations

from storage.database import Database, Transaction

# Expired tokens deleted per issue: a bound on the work one request does (the next issue does more).
EXPIRED_DELETED_PER_ISSUE = 100


class OpenIdTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_openid_token(self, token_hash: bytes, user_id: str, valid_until_ms: int, now_ms: int) -> None:
        """Store a new token, and delete some expired ones so the table stays as small as its live tokens."""

        def _add_txn(txn: Transaction) -> None:
            txn.execute(
                "DELETE FROM openid_tokens WHERE token_hash IN"
                " (SELECT token_hash FROM openid_tokens WHERE valid_until_ms <= ? LIMIT ?)",
                (now_ms, EXPIRED_DELETED_PER_ISSUE),
            )
            txn.execute(
                "INSERT INTO openid_tokens (token_hash, user_id, valid_until_ms) VALUES (?, ?, ?)",
                (token_hash, user_id, valid_until_ms),
            )

        await self._db.run_interaction("add_openid_token", _add_txn)

    async def get_user_for_openid_token(self, token_hash: bytes, now_ms: int) -> str | None:
        """The user a live token belongs to; None for an unknown or expired one."""
        rows = await self._db.execute(
            "get_user_for_openid_token",
            "SELECT user_id FROM openid_tokens WHERE token_hash = ? AND valid_until_ms > ?",
            token_hash,
            now_ms,
        )
        return str(rows[0][0]) if rows else None
