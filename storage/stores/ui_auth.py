"""User-interactive auth sessions: what a multi-step request asked for and which stages passed.

The request body (`clientdict`, which may hold a new password) and stage
results are sealed: they are user secrets in flight, not metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction
from storage.sealing import Sealer


@dataclass(frozen=True)
class UIAuthSession:
    session_id: str
    creation_time: int
    uri: str
    method: str
    description: str
    clientdict: dict[str, Any]


class UIAuthStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def create_session(
        self,
        session_id: str,
        now_ms: int,
        uri: str,
        method: str,
        description: str,
        clientdict: dict[str, Any],
    ) -> None:
        """Raises the driver's IntegrityError if the (random) session ID already exists."""
        sealed = self._sealer.seal_json(clientdict)

        def _create_session_txn(txn: Transaction) -> None:
            txn.execute(
                "INSERT INTO ui_auth_sessions"
                " (session_id, creation_time, uri, method, description, clientdict)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, now_ms, uri, method, description, sealed),
            )

        await self._db.run_interaction("create_ui_auth_session", _create_session_txn)

    async def get_session(self, session_id: str) -> UIAuthSession | None:
        rows = await self._db.execute(
            "get_ui_auth_session",
            "SELECT session_id, creation_time, uri, method, description, clientdict"
            " FROM ui_auth_sessions WHERE session_id = ?",
            session_id,
        )
        if not rows:
            return None
        session_id, creation_time, uri, method, description, clientdict = rows[0]
        return UIAuthSession(
            session_id=session_id,
            creation_time=int(creation_time),
            uri=uri,
            method=method,
            description=description,
            clientdict=self._sealer.open_json(clientdict),
        )

    async def mark_stage_complete(self, session_id: str, stage_type: str, result: Any) -> bool:
        """Record a passed stage (replacing an earlier result); False if the session is gone."""
        sealed = self._sealer.seal_json(result)

        def _mark_stage_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO ui_auth_sessions_credentials (session_id, stage_type, result)"
                " SELECT session_id, ?, ? FROM ui_auth_sessions WHERE session_id = ?"
                " ON CONFLICT (session_id, stage_type) DO UPDATE SET result = excluded.result",
                (stage_type, sealed, session_id),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("mark_ui_auth_stage_complete", _mark_stage_txn)

    async def get_completed_stages(self, session_id: str) -> dict[str, Any]:
        rows = await self._db.execute(
            "get_completed_ui_auth_stages",
            "SELECT stage_type, result FROM ui_auth_sessions_credentials WHERE session_id = ?",
            session_id,
        )
        return {stage_type: self._sealer.open_json(result) for stage_type, result in rows}

    async def delete_session(self, session_id: str) -> bool:
        def _delete_session_txn(txn: Transaction) -> bool:
            txn.execute("DELETE FROM ui_auth_sessions WHERE session_id = ?", (session_id,))
            return txn.rowcount == 1

        return await self._db.run_interaction("delete_ui_auth_session", _delete_session_txn)

    async def delete_sessions_older_than(self, ts: int) -> int:
        """Delete sessions created before `ts` (ms); returns how many went."""

        def _delete_old_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM ui_auth_sessions WHERE creation_time < ?", (ts,))
            return txn.rowcount

        return await self._db.run_interaction("delete_old_ui_auth_sessions", _delete_old_txn)

    async def erase_user_sessions(self, user_id: str, localpart: str) -> int:
        """Account erasure: sessions that passed a password stage as the user, or that registered
        `localpart`. Both are only inside sealed blobs, so every session is opened: sessions live
        half an hour, the table stays small. Returns the sessions deleted."""

        def _erase_ui_auth_txn(txn: Transaction) -> int:
            txn.execute("SELECT session_id, clientdict FROM ui_auth_sessions")
            doomed = {sid for sid, blob in txn.fetchall()
                      if self._sealer.open_json(blob).get("username") in (localpart, user_id)}
            txn.execute("SELECT session_id, result FROM ui_auth_sessions_credentials")
            doomed.update(sid for sid, blob in txn.fetchall() if self._sealer.open_json(blob) == user_id)
            txn.execute_many("DELETE FROM ui_auth_sessions_credentials WHERE session_id = ?", [(s,) for s in doomed])
            txn.execute_many("DELETE FROM ui_auth_sessions WHERE session_id = ?", [(s,) for s in doomed])
            return len(doomed)

        return await self._db.run_interaction("erase_user_ui_auth_sessions", _erase_ui_auth_txn)
