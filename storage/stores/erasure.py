"""Account erasure's own records: the tombstone of each erased user, and the inventory of what
is still stored about a user.

The inventory lists, table by table, the rows keyed by the user that erasure removes; it is
what `piman admin user delete` shows before asking, and what erasure checks is empty before
it marks the tombstone complete. Rows it deliberately keeps are not listed: the `users` row
(the tombstone), room history (events, memberships, state: others' copies of the room),
`device_lists_stream` (stream metadata telling others the devices went), and reports *about*
the user (the moderators' records).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from storage.database import Database, Transaction
from storage.stores.event_fetch import chunks, placeholders

# (what, SQL counting the rows of user ?); each `?` is the user ID.
INVENTORY: tuple[tuple[str, str], ...] = (
    ("devices", "SELECT COUNT(*) FROM devices WHERE user_id = ?"),
    ("access_tokens", "SELECT COUNT(*) FROM access_tokens WHERE user_id = ?"),
    ("refresh_tokens", "SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ?"),
    ("device_keys", "SELECT COUNT(*) FROM e2e_device_keys WHERE user_id = ?"),
    ("one_time_keys", "SELECT COUNT(*) FROM e2e_one_time_keys WHERE user_id = ?"),
    ("fallback_keys", "SELECT COUNT(*) FROM e2e_fallback_keys WHERE user_id = ?"),
    ("cross_signing_keys", "SELECT COUNT(*) FROM e2e_cross_signing_keys WHERE user_id = ?"),
    ("cross_signing_signatures",
     "SELECT COUNT(*) FROM e2e_cross_signing_signatures WHERE target_user_id = ? OR signer_user_id = ?"),
    ("key_backup_versions", "SELECT COUNT(*) FROM room_key_backup_versions WHERE user_id = ?"),
    ("key_backup_sessions", "SELECT COUNT(*) FROM room_key_backup_keys WHERE user_id = ?"),
    ("to_device_inbox", "SELECT COUNT(*) FROM device_inbox WHERE user_id = ?"),
    ("to_device_txn_ids", "SELECT COUNT(*) FROM to_device_txns WHERE user_id = ?"),
    ("account_data", "SELECT COUNT(*) FROM account_data WHERE user_id = ?"),
    ("push_rules", "SELECT COUNT(*) FROM push_rules WHERE user_id = ?"),
    ("pushers", "SELECT COUNT(*) FROM pushers WHERE user_id = ?"),
    ("push_actions", "SELECT COUNT(*) FROM event_push_actions WHERE user_id = ?"),
    ("filters", "SELECT COUNT(*) FROM user_filters WHERE user_id = ?"),
    ("profile_fields", "SELECT COUNT(*) FROM profiles WHERE user_id = ?"),
    ("presence", "SELECT COUNT(*) FROM presence WHERE user_id = ?"),
    ("receipts", "SELECT COUNT(*) FROM receipts WHERE user_id = ?"),
    ("reports_made", "SELECT COUNT(*) FROM reports WHERE reporter = ?"),
    ("media", "SELECT COUNT(*) FROM local_media WHERE user_id = ?"),
    ("media_thumbnails", "SELECT COUNT(*) FROM local_media_thumbnails AS t"
                         " JOIN local_media AS m ON m.media_id = t.media_id WHERE m.user_id = ?"),
    ("forgotten_rooms", "SELECT COUNT(*) FROM forgotten_rooms WHERE user_id = ?"),
    ("event_txn_ids", "SELECT COUNT(*) FROM event_txn_ids WHERE user_id = ?"),
    ("openid_tokens", "SELECT COUNT(*) FROM openid_tokens WHERE user_id = ?"),
)


@dataclass(frozen=True)
class ErasureRecord:
    user_id: str
    erased_ts: int
    stream_ordering: int
    requested_by: str
    completed_ts: int | None


class ErasureStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # user -> events stream position of their erasure; read on every visibility check, so
        # kept in memory (erasures are rare and few). One process writes the database today.
        self._erased: dict[str, int] | None = None

    async def start(self, user_id: str, *, now_ms: int, stream_ordering: int, requested_by: str) -> ErasureRecord:
        """Write the tombstone (kept as it is if the erasure was started before) and return it."""

        def _start_erasure_txn(txn: Transaction) -> ErasureRecord:
            txn.execute(
                "INSERT INTO erased_users (user_id, erased_ts, stream_ordering, requested_by) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, now_ms, stream_ordering, requested_by),
            )
            record = self._get_txn(txn, user_id)
            assert record is not None
            txn.call_after(self._remember, record.user_id, record.stream_ordering)
            return record

        return await self._db.run_interaction("start_erasure", _start_erasure_txn)

    async def mark_completed(self, user_id: str, now_ms: int) -> None:
        await self._db.execute(
            "complete_erasure", "UPDATE erased_users SET completed_ts = ? WHERE user_id = ? AND completed_ts IS NULL",
            now_ms, user_id)

    async def get(self, user_id: str) -> ErasureRecord | None:
        return await self._db.run_interaction("get_erasure", self._get_txn, user_id)

    async def pending(self) -> list[str]:
        """Erasures started but not finished, oldest first."""
        rows = await self._db.execute(
            "pending_erasures", "SELECT user_id FROM erased_users WHERE completed_ts IS NULL ORDER BY erased_ts")
        return [row[0] for row in rows]

    async def erased_users(self) -> dict[str, int]:
        """Every erased user -> the events stream position of the erasure (from memory)."""
        if self._erased is None:
            rows = await self._db.execute("erased_users", "SELECT user_id, stream_ordering FROM erased_users")
            if self._erased is None:
                self._erased = {user_id: int(pos) for user_id, pos in rows}
        return self._erased

    def _remember(self, user_id: str, stream_ordering: int) -> None:
        if self._erased is not None:
            self._erased[user_id] = stream_ordering

    async def memberships_at(self, room_id: str, user_id: str, positions: Collection[int]) -> dict[int, str | None]:
        """The user's membership of the room just after each events-stream position."""
        rows = await self._db.execute(
            "memberships_at", "SELECT stream_ordering, membership FROM room_memberships"
            " WHERE room_id = ? AND user_id = ? ORDER BY stream_ordering", room_id, user_id)
        result: dict[int, str | None] = {}
        for position in positions:
            result[position] = None
            for stream_ordering, membership in rows:
                if int(stream_ordering) > position:
                    break
                result[position] = membership
        return result

    async def inventory(self, user_id: str) -> dict[str, int]:
        """What is stored about the user, per kind of row (see INVENTORY); zero counts included."""

        def _inventory_txn(txn: Transaction) -> dict[str, int]:
            counts = {}
            for what, sql in INVENTORY:
                txn.execute(sql, (user_id,) * sql.count("?"))
                counts[what] = int(txn.fetchone()[0])  # type: ignore[index]
            return counts

        return await self._db.run_interaction("erasure_inventory", _inventory_txn)

    async def erase_room_bookkeeping(self, user_id: str) -> int:
        """The user's forgotten-room marks, message transaction IDs and OpenID tokens: ids only, but theirs."""

        def _erase_bookkeeping_txn(txn: Transaction) -> int:
            removed = 0
            for table in ("forgotten_rooms", "event_txn_ids", "openid_tokens"):
                txn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
                removed += max(txn.rowcount, 0)
            return removed

        return await self._db.run_interaction("erase_user_room_bookkeeping", _erase_bookkeeping_txn)

    async def events_with_urls(self, sender: str, room_ids: Collection[str]) -> list[str]:
        """IDs of the sender's events that carry a URL in the given rooms (media a hold keeps)."""
        rooms = list(room_ids)

        def _events_with_urls_txn(txn: Transaction) -> list[str]:
            found: list[str] = []
            for chunk in chunks(rooms):
                txn.execute(
                    "SELECT event_id FROM events WHERE sender = ? AND contains_url"
                    f" AND room_id IN ({placeholders(len(chunk))})", (sender, *chunk))
                found.extend(row[0] for row in txn.fetchall())
            return found

        return await self._db.run_interaction("erased_events_with_urls", _events_with_urls_txn) if rooms else []

    @staticmethod
    def _get_txn(txn: Transaction, user_id: str) -> ErasureRecord | None:
        txn.execute(
            "SELECT user_id, erased_ts, stream_ordering, requested_by, completed_ts FROM erased_users"
            " WHERE user_id = ?", (user_id,))
        row = txn.fetchone()
        if row is None:
            return None
        return ErasureRecord(row[0], int(row[1]), int(row[2]), row[3], None if row[4] is None else int(row[4]))
