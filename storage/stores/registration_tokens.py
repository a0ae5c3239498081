"""Registration tokens: admin-issued codes that let someone register when registration is closed.

A use is first *pending* (UIA stage passed, account not yet created) and then
*completed*; both count against `uses_allowed`, checked and bumped in a
single UPDATE so concurrent registrations cannot over-use a token. Those
UPDATEs run at READ COMMITTED: a busy token is a hot row, and there the
database re-checks the condition after waiting instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class RegistrationTokenInfo:
    token: str
    uses_allowed: int | None  # None: unlimited
    pending: int
    completed: int
    expiry_time: int | None  # ms since the epoch; None: never

    def is_valid(self, now_ms: int) -> bool:
        if self.expiry_time is not None and self.expiry_time <= now_ms:
            return False
        return self.uses_allowed is None or self.pending + self.completed < self.uses_allowed


# The same rule as RegistrationTokenInfo.is_valid, for use inside an UPDATE.
_VALID_SQL = (
    "(uses_allowed IS NULL OR pending + completed < uses_allowed)"
    " AND (expiry_time IS NULL OR expiry_time > ?)"
)


class RegistrationTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_registration_token(
        self, token: str, uses_allowed: int | None, expiry_time: int | None
    ) -> bool:
        """False if a token with this text already exists."""

        def _create_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, expiry_time)"
                " VALUES (?, ?, ?) ON CONFLICT (token) DO NOTHING",
                (token, uses_allowed, expiry_time),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("create_registration_token", _create_txn)

    async def get_registration_token(self, token: str) -> RegistrationTokenInfo | None:
        rows = await self._db.execute(
            "get_registration_token",
            "SELECT token, uses_allowed, pending, completed, expiry_time"
            " FROM registration_tokens WHERE token = ?",
            token,
        )
        if not rows:
            return None
        token, uses_allowed, pending, completed, expiry_time = rows[0]
        return RegistrationTokenInfo(
            token=token,
            uses_allowed=None if uses_allowed is None else int(uses_allowed),
            pending=int(pending),
            completed=int(completed),
            expiry_time=None if expiry_time is None else int(expiry_time),
        )

    async def token_is_valid(self, token: str, now_ms: int) -> bool:
        info = await self.get_registration_token(token)
        return info is not None and info.is_valid(now_ms)

    async def set_token_pending(self, token: str, now_ms: int) -> bool:
        """Reserve one use if the token is still valid; False if not (or unknown)."""

        def _set_pending_txn(txn: Transaction) -> bool:
            txn.set_read_committed()
            txn.execute(
                "UPDATE registration_tokens SET pending = pending + 1"
                f" WHERE token = ? AND {_VALID_SQL}",
                (token, now_ms),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("set_token_pending", _set_pending_txn)

    async def complete_token_use(self, token: str) -> bool:
        """Turn a reserved use into a completed one; False if none was pending."""

        def _complete_txn(txn: Transaction) -> bool:
            txn.set_read_committed()
            txn.execute(
                "UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1"
                " WHERE token = ? AND pending > 0",
                (token,),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("complete_token_use", _complete_txn)

    async def release_pending(self, token: str) -> bool:
        """Give back a reserved use whose registration was abandoned."""

        def _release_txn(txn: Transaction) -> bool:
            txn.set_read_committed()
            txn.execute(
                "UPDATE registration_tokens SET pending = pending - 1"
                " WHERE token = ? AND pending > 0",
                (token,),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("release_pending_token", _release_txn)

    async def delete_registration_token(self, token: str) -> bool:
        def _delete_txn(txn: Transaction) -> bool:
            txn.execute("DELETE FROM registration_tokens WHERE token = ?", (token,))
            return txn.rowcount == 1

        return await self._db.run_interaction("delete_registration_token", _delete_txn)
