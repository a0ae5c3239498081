"""Devices: one per login session, with a sealed name and sealed "last seen" details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from storage.database import Database, Transaction
from storage.stores.to_device import ToDeviceStore
from storage.stores.tokens import AccessTokenCache
from storage.sealing import Sealer

# "Last seen" is shown to people with minute precision at best; writing it on
# every request would turn each authenticated GET into a database write.
LAST_SEEN_WRITE_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class DeviceInfo:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    last_seen_user_agent: str | None
    hidden: bool


_DEVICE_COLUMNS = (
    "user_id, device_id, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent, hidden"
)


class DeviceStore:
    def __init__(self, db: Database, sealer: Sealer, token_cache: AccessTokenCache | None = None) -> None:
        self._db = db
        self._sealer = sealer
        self._token_cache = token_cache
        # (user_id, device_id) -> (ts, ip, user agent) last written by this process.
        self._last_seen_written: dict[tuple[str, str], tuple[int, str | None, str | None]] = {}
        # Run first in a device deletion's transaction by stores whose rows hang off devices
        # (e2e keys record the device-list change there): (txn, user_id, device_ids).
        self.deletion_hooks: list[Callable[[Transaction, str, list[str]], None]] = []

    async def store_device(
        self, user_id: str, device_id: str, display_name: str | None, now_ms: int
    ) -> bool:
        """Create the device if missing (True); an existing device keeps its name (False)."""
        sealed_name = self._sealer.seal_str(display_name)

        def _store_device_txn(txn: Transaction) -> bool:
            txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO NOTHING",
                (user_id, device_id, sealed_name, now_ms),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("store_device", _store_device_txn)

    async def get_device(self, user_id: str, device_id: str) -> DeviceInfo | None:
        rows = await self._db.execute(
            "get_device",
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?",
            user_id,
            device_id,
        )
        return self._device_from_row(rows[0]) if rows else None

    async def get_devices(self, user_id: str, *, include_hidden: bool = False) -> list[DeviceInfo]:
        """The user's devices ordered by ID; hidden ones only if asked for."""
        sql = f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ?"
        if not include_hidden:
            sql += " AND NOT hidden"
        rows = await self._db.execute("get_devices", sql + " ORDER BY device_id", user_id)
        return [self._device_from_row(row) for row in rows]

    async def update_device_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> bool:
        """False if there is no such device."""
        sealed_name = self._sealer.seal_str(display_name)

        def _update_name_txn(txn: Transaction) -> bool:
            txn.execute(
                "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
                (sealed_name, user_id, device_id),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("update_device_display_name", _update_name_txn)

    async def delete_devices(self, user_id: str, device_ids: Iterable[str]) -> None:
        """Delete the devices with their access and refresh tokens and to-device inboxes, all or nothing."""
        keys = [(user_id, device_id) for device_id in dict.fromkeys(device_ids)]
        if not keys:
            return

        def _delete_devices_txn(txn: Transaction) -> None:
            for hook in self.deletion_hooks:
                hook(txn, user_id, [device_id for _, device_id in keys])
            # Access tokens first: they reference refresh tokens, both reference devices.
            txn.execute_many("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", keys)
            txn.execute_many("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", keys)
            txn.execute_many("DELETE FROM devices WHERE user_id = ? AND device_id = ?", keys)
            ToDeviceStore.delete_for_devices_txn(txn, keys)

        await self._db.run_interaction("delete_devices", _delete_devices_txn)
        if self._token_cache is not None:
            self._token_cache.invalidate()
        for key in keys:
            self._last_seen_written.pop(key, None)

    async def record_last_seen(
        self, user_id: str, device_id: str, now_ms: int, ip: str | None, user_agent: str | None
    ) -> bool:
        """Note a request from the device; writes at most once a minute unless ip/agent change.

        Returns whether a write happened. Cheap enough to call on every request.
        """
        key = (user_id, device_id)
        previous = self._last_seen_written.get(key)
        if (
            previous is not None
            and now_ms - previous[0] < LAST_SEEN_WRITE_INTERVAL_MS
            and previous[1:] == (ip, user_agent)
        ):
            return False
        # Claimed before the write so concurrent requests don't all write too.
        self._last_seen_written[key] = (now_ms, ip, user_agent)
        sealed_ip = self._sealer.seal_str(ip)
        sealed_agent = self._sealer.seal_str(user_agent)

        def _record_last_seen_txn(txn: Transaction) -> None:
            txn.execute(
                "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = ?"
                " WHERE user_id = ? AND device_id = ?",
                (now_ms, sealed_ip, sealed_agent, user_id, device_id),
            )

        try:
            await self._db.run_interaction("record_last_seen", _record_last_seen_txn)
        except BaseException:
            self._last_seen_written.pop(key, None)
            raise
        return True

    def _device_from_row(self, row: tuple) -> DeviceInfo:
        user_id, device_id, name, last_seen_ts, ip, agent, hidden = row
        return DeviceInfo(
            user_id=user_id,
            device_id=device_id,
            display_name=self._sealer.open_str(name),
            last_seen_ts=None if last_seen_ts is None else int(last_seen_ts),
            last_seen_ip=self._sealer.open_str(ip),
            last_seen_user_agent=self._sealer.open_str(agent),
            hidden=bool(hidden),
        )
