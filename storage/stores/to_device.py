"""To-device messages: a sealed inbox per device, numbered on the "to_device" stream.

A message stays in its device's inbox until the device acknowledges it by syncing with a token
past its position, or the device is deleted (`DeviceStore.delete_devices`), or it grows older than
`undelivered_ttl` (`delete_undelivered_before`, run by the undelivered sweeper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from storage.database import Database, Transaction
from storage.sealing import Sealer, lookup_digest
from storage.streams import StreamIdGenerator

# In a recipient's map, this device ID means "every device of the user".
ALL_DEVICES = "*"
# Recipients per device lookup: within SQLite's oldest limit of 999 parameters.
_USERS_PER_QUERY = 500


@dataclass(frozen=True)
class ToDeviceMessage:
    stream_id: int
    sender: str
    message_type: str
    content: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    """`position` is None when the transaction ID was used before (nothing was written)."""

    position: int | None
    recipients: list[str]


@dataclass(frozen=True)
class UndeliveredDeleted:
    """What one batch of the undelivered sweep deleted."""

    messages: int
    txn_ids: int


class ToDeviceStore:
    def __init__(self, db: Database, sealer: Sealer, stream: StreamIdGenerator) -> None:
        self._db = db
        self._sealer = sealer
        self.stream = stream

    async def add_messages(
        self,
        sender: str,
        sender_device_id: str,
        txn_id: str,
        message_type: str,
        messages: Mapping[str, Mapping[str, dict[str, Any]]],
        now_ms: int,
    ) -> SendResult:
        """Deliver `messages` ({user_id: {device_id or ALL_DEVICES: content}}) to local inboxes.

        Idempotent per (sender, sender_device_id, txn_id). Unknown devices are skipped; a device
        named explicitly gets its own message rather than the user's ALL_DEVICES one.
        """
        # Sealed once per message and shared by the devices it goes to.
        sealed = {
            user_id: {
                device_id: self._sealer.seal_json({"sender": sender, "type": message_type, "content": content})
                for device_id, content in by_device.items()
            }
            for user_id, by_device in messages.items()
        }

        def _add_to_device_txn(txn: Transaction) -> SendResult:
            txn.execute(
                "INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, device_id, txn_id) DO NOTHING",
                (sender, sender_device_id, lookup_digest(txn_id), now_ms),  # client-chosen: digest only
            )
            if txn.rowcount == 0:
                return SendResult(None, [])
            devices = self._devices_txn(txn, list(sealed))
            rows: list[tuple[str, str, bytes]] = []
            for user_id, by_device in sealed.items():
                known = devices.get(user_id, {})
                for device_id, hidden in known.items():
                    blob = by_device.get(device_id)
                    if blob is None and not hidden:
                        blob = by_device.get(ALL_DEVICES)
                    if blob is not None:
                        rows.append((user_id, device_id, blob))
            if not rows:
                return SendResult(None, [])
            position = self.stream.get_next_txn(txn)
            txn.execute_many(
                "INSERT INTO device_inbox (user_id, device_id, stream_id, created_ts, message)"
                " VALUES (?, ?, ?, ?, ?)",
                [(user_id, device_id, position, now_ms, blob) for user_id, device_id, blob in rows],
            )
            return SendResult(position, sorted({user_id for user_id, _, _ in rows}))

        return await self._db.run_interaction("add_to_device_messages", _add_to_device_txn)

    @staticmethod
    def _devices_txn(txn: Transaction, user_ids: list[str]) -> dict[str, dict[str, bool]]:
        """{user_id: {device_id: hidden}}: hidden devices get only messages sent to them by name."""
        found: dict[str, dict[str, bool]] = {}
        for start in range(0, len(user_ids), _USERS_PER_QUERY):
            chunk = user_ids[start:start + _USERS_PER_QUERY]
            txn.execute(
                f"SELECT user_id, device_id, hidden FROM devices WHERE user_id IN ({', '.join('?' for _ in chunk)})"
                " ORDER BY user_id, device_id",
                chunk,
            )
            for user_id, device_id, hidden in txn.fetchall():
                found.setdefault(user_id, {})[device_id] = bool(hidden)
        return found

    async def get_for_sync(
        self, user_id: str, device_id: str, *, since: int, up_to: int, limit: int, drop_acknowledged: bool
    ) -> list[ToDeviceMessage]:
        """Up to `limit` of the device's messages in (since, up_to], oldest first; first, if
        `drop_acknowledged`, delete those at or below `since`, which the device has now seen."""

        def _to_device_for_sync_txn(txn: Transaction) -> list[ToDeviceMessage]:
            if drop_acknowledged:
                # Look before deleting: most syncs have nothing to drop, and a DELETE would
                # take SQLite's write lock even when it matches no row.
                txn.execute(
                    "SELECT 1 FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ? LIMIT 1",
                    (user_id, device_id, since),
                )
                if txn.fetchone() is not None:
                    txn.execute(
                        "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                        (user_id, device_id, since),
                    )
            if up_to <= since:
                return []
            txn.execute(
                "SELECT stream_id, message FROM device_inbox WHERE user_id = ? AND device_id = ?"
                " AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?",
                (user_id, device_id, since, up_to, limit),
            )
            return [self._message(stream_id, blob) for stream_id, blob in txn.fetchall()]

        return await self._db.run_interaction("get_to_device_for_sync", _to_device_for_sync_txn)

    def _message(self, stream_id: int, blob: bytes) -> ToDeviceMessage:
        message = self._sealer.open_json(blob)
        return ToDeviceMessage(int(stream_id), message["sender"], message["type"], message["content"])

    async def delete_undelivered_before(self, before_ts: int, batch: int) -> UndeliveredDeleted:
        """Delete up to `batch` inbox messages created before `before_ts` that no device picked
        up, and up to `batch` transaction IDs as old, in one short transaction, oldest first.

        The caller repeats until a call deletes less than `batch` of each. The age is the only
        state, so an interrupted sweep resumes where it stopped by simply running again.
        """

        def _delete_undelivered_txn(txn: Transaction) -> UndeliveredDeleted:
            txn.execute(
                "SELECT user_id, device_id, stream_id FROM device_inbox WHERE created_ts < ?"
                " ORDER BY created_ts LIMIT ?",
                (before_ts, batch),
            )
            messages = txn.fetchall()
            txn.execute_many("DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id = ?",
                             messages)
            txn.execute(
                "SELECT user_id, device_id, txn_id FROM to_device_txns WHERE created_ts < ?"
                " ORDER BY created_ts LIMIT ?",
                (before_ts, batch),
            )
            txn_ids = txn.fetchall()
            txn.execute_many("DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?",
                             txn_ids)
            return UndeliveredDeleted(messages=len(messages), txn_ids=len(txn_ids))

        return await self._db.run_interaction("delete_undelivered_to_device", _delete_undelivered_txn)

    @staticmethod
    def delete_for_devices_txn(txn: Transaction, keys: list[tuple[str, str]]) -> None:
        """Empty the inboxes of deleted devices and forget their transaction IDs, in the
        caller's transaction."""
        txn.execute_many("DELETE FROM device_inbox WHERE user_id = ? AND device_id = ?", keys)
        txn.execute_many("DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ?", keys)

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: the user's inbox (every device, even one already gone) and the
        transaction IDs of their sends. Returns the rows deleted."""

        def _erase_to_device_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM device_inbox WHERE user_id = ?", (user_id,))
            inbox = max(txn.rowcount, 0)
            txn.execute("DELETE FROM to_device_txns WHERE user_id = ?", (user_id,))
            return inbox + max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_user_to_device", _erase_to_device_txn)

    async def delete_sent_by(self, sender: str, after: tuple[str, str, int] | None,
                             batch: int) -> tuple[int, tuple[str, str, int] | None]:
        """Delete the undelivered messages `sender` sent, scanning up to `batch` inbox rows after
        the key `after`; returns (deleted, key to continue from, or None when the scan is done).

        The sender is only inside the sealed message, so each row is opened: a full pass costs one
        read of the inbox, which `undelivered_ttl` keeps small. Erasure is rare; a sender column
        would make it an index look-up.
        """

        def _delete_sent_by_txn(txn: Transaction) -> tuple[int, tuple[str, str, int] | None]:
            if after is None:
                txn.execute("SELECT user_id, device_id, stream_id, message FROM device_inbox"
                            " ORDER BY user_id, device_id, stream_id LIMIT ?", (batch,))
            else:
                txn.execute(
                    "SELECT user_id, device_id, stream_id, message FROM device_inbox"
                    " WHERE user_id > ? OR (user_id = ? AND (device_id > ? OR (device_id = ? AND stream_id > ?)))"
                    " ORDER BY user_id, device_id, stream_id LIMIT ?",
                    (after[0], after[0], after[1], after[1], after[2], batch),
                )
            rows = txn.fetchall()
            theirs = [(u, d, int(s)) for u, d, s, blob in rows if self._sealer.open_json(blob).get("sender") == sender]
            txn.execute_many("DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id = ?", theirs)
            last = rows[-1] if len(rows) == batch else None
            return len(theirs), (None if last is None else (last[0], last[1], int(last[2])))

        return await self._db.run_interaction("delete_to_device_sent_by", _delete_sent_by_txn)
