"""Reports of events, rooms and users for the organisation's moderators; the reason is sealed."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction
from storage.sealing import Sealer


@dataclass(frozen=True)
class Report:
    id: int
    received_ts: int
    reporter: str
    room_id: str | None
    event_id: str | None
    reported_user_id: str | None
    reason: str | None


class ReportStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def add_report(self, *, reporter: str, received_ts: int, reason: str | None, room_id: str | None = None,
                         event_id: str | None = None, reported_user_id: str | None = None) -> int:
        sealed = self._sealer.seal_str(reason)

        def _add_report_txn(txn: Transaction) -> int:
            txn.execute(
                "INSERT INTO reports (received_ts, reporter, room_id, event_id, reported_user_id, reason)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (received_ts, reporter, room_id, event_id, reported_user_id, sealed),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("add_report", _add_report_txn)

    async def get_reports(self, *, limit: int = 100, before_id: int | None = None) -> list[Report]:
        """Newest first, for moderation tools."""
        rows = await self._db.execute(
            "get_reports",
            "SELECT id, received_ts, reporter, room_id, event_id, reported_user_id, reason FROM reports"
            " WHERE id < ? ORDER BY id DESC LIMIT ?",
            before_id if before_id is not None else 2**62, limit,
        )
        return [Report(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], self._sealer.open_str(r[6])) for r in rows]

    async def erase_reports_by(self, user_id: str) -> int:
        """Account erasure: the reports the user made (their words). Reports about the user stay
        with the moderators: they are other people's records. Returns the rows deleted."""

        def _erase_reports_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM reports WHERE reporter = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_reports_by_user", _erase_reports_txn)
