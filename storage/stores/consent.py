"""Privacy policy consent, and the resumable job that tells every user about a new policy version.

Consent is a record a data-protection officer may be asked for: one row per (user, version) with
the time it was given, never updated. The announcement job walks users in user ID order and
stores how far it got, so a restart resumes where it stopped instead of starting over.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class AnnouncementJob:
    version: str
    started_ts: int
    last_user_id: str
    finished_ts: int | None

    @property
    def finished(self) -> bool:
        return self.finished_ts is not None


class ConsentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- consent -------------------------------------------------------------

    async def record_consent(self, user_id: str, version: str, now_ms: int) -> int:
        """Record that `user_id` accepted `version`; returns when they first did (a repeat changes nothing)."""

        def _record_consent_txn(txn: Transaction) -> int:
            txn.execute(
                "INSERT INTO privacy_policy_consents (user_id, version, accepted_ts) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, version) DO NOTHING",
                (user_id, version, now_ms),
            )
            txn.execute(
                "SELECT accepted_ts FROM privacy_policy_consents WHERE user_id = ? AND version = ?",
                (user_id, version),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("record_consent", _record_consent_txn)

    async def get_consent_ts(self, user_id: str, version: str) -> int | None:
        """When `user_id` accepted `version`, or None if they haven't."""
        rows = await self._db.execute(
            "get_consent_ts",
            "SELECT accepted_ts FROM privacy_policy_consents WHERE user_id = ? AND version = ?",
            user_id, version,
        )
        return int(rows[0][0]) if rows else None

    async def get_consents(self, user_id: str) -> list[tuple[str, int]]:
        """Every (version, accepted_ts) of one user, oldest first."""
        rows = await self._db.execute(
            "get_consents",
            "SELECT version, accepted_ts FROM privacy_policy_consents WHERE user_id = ? ORDER BY accepted_ts, version",
            user_id,
        )
        return [(r[0], int(r[1])) for r in rows]

    # -- announcing a version ------------------------------------------------

    async def get_or_start_announcement(self, version: str, now_ms: int) -> AnnouncementJob:
        """The job announcing `version`, started now if there was none."""

        def _get_or_start_txn(txn: Transaction) -> AnnouncementJob:
            txn.execute(
                "INSERT INTO privacy_policy_announcements (version, started_ts) VALUES (?, ?)"
                " ON CONFLICT (version) DO NOTHING",
                (version, now_ms),
            )
            txn.execute(
                "SELECT version, started_ts, last_user_id, finished_ts FROM privacy_policy_announcements"
                " WHERE version = ?",
                (version,),
            )
            v, started, last, finished = txn.fetchone()  # type: ignore[misc]
            return AnnouncementJob(v, int(started), last, int(finished) if finished is not None else None)

        return await self._db.run_interaction("get_or_start_announcement", _get_or_start_txn)

    async def users_to_announce(self, version: str, *, after_user_id: str, created_before_ts: int,
                                exclude_user_id: str, limit: int, created_after_ts: int = 0) -> list[str]:
        """The next users, in user ID order, who should hear about `version`.

        Local accounts that are not deactivated, not guests, made between `created_after_ts` and
        `created_before_ts` (the announcement job takes those that existed when it started; a
        catch-up those made since, by admins, without seeing the policy), haven't accepted this
        version already and haven't been told about it yet.
        """
        rows = await self._db.execute(
            "users_to_announce",
            "SELECT u.user_id FROM users u"
            " WHERE u.user_id > ? AND u.user_id <> ? AND NOT u.deactivated AND NOT u.is_guest"
            " AND u.creation_ts >= ? AND u.creation_ts <= ?"
            " AND NOT EXISTS (SELECT 1 FROM privacy_policy_consents c WHERE c.user_id = u.user_id AND c.version = ?)"
            " AND NOT EXISTS (SELECT 1 FROM privacy_policy_notices n WHERE n.user_id = u.user_id AND n.version = ?)"
            " ORDER BY u.user_id LIMIT ?",
            after_user_id, exclude_user_id, created_after_ts, created_before_ts, version, version, limit,
        )
        return [r[0] for r in rows]

    async def record_notice(self, user_id: str, version: str, event_id: str, now_ms: int) -> None:
        await self._db.execute(
            "record_policy_notice",
            "INSERT INTO privacy_policy_notices (user_id, version, event_id, sent_ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, version) DO NOTHING",
            user_id, version, event_id, now_ms,
        )

    async def was_notified(self, user_id: str, version: str) -> bool:
        rows = await self._db.execute(
            "was_notified",
            "SELECT 1 FROM privacy_policy_notices WHERE user_id = ? AND version = ?",
            user_id, version,
        )
        return bool(rows)

    async def advance_announcement(self, version: str, last_user_id: str) -> None:
        """Record how far the job got (it only moves forward)."""
        await self._db.execute(
            "advance_announcement",
            "UPDATE privacy_policy_announcements SET last_user_id = ? WHERE version = ? AND last_user_id < ?",
            last_user_id, version, last_user_id,
        )

    async def finish_announcement(self, version: str, now_ms: int) -> None:
        await self._db.execute(
            "finish_announcement",
            "UPDATE privacy_policy_announcements SET finished_ts = ? WHERE version = ? AND finished_ts IS NULL",
            now_ms, version,
        )
