"""To-device messages: a sealed inbox per device, numbered on the "to_device" stream.

A message stays in its device's inbox until the device acknowledges it by syncing with a token
past its position, or the device is deleted (`DeviceStore.delete_devices`), or it grows too old.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from storage.database import Database, Transaction
from storage.sealing import Sealer
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
                (sender, sender_device_id, txn_id, now_ms),
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

    @staticmethod
    def delete_for_devices_txn(txn: Transaction, keys: list[tuple[str, str]]) -> None:
        """Empty the inboxes of deleted devices and forget their transaction IDs, in the
        caller's transaction."""
        txn.execute_many("DELETE FROM device_inbox WHERE user_id = ? AND device_id = ?", keys)
        txn.execute_many("DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ?", keys)
