"""Pushers: where a user's push notifications go. The pushkey is a device token and the rest is
what the client wrote, so all of it is sealed; the pushkey's SHA-256 stands in for it where rows
must be found by it (uniqueness per user and app, a gateway rejecting it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection

from storage.database import Database, Transaction
from storage.sealing import Sealer, lookup_digest
from storage.stores.event_fetch import chunks, placeholders

_COLUMNS = "id, user_id, device_id, app_id, kind, created_ts, sealed"


@dataclass(frozen=True)
class Pusher:
    id: int
    user_id: str
    device_id: str | None
    app_id: str
    kind: str
    pushkey: str
    created_ts: int  # the spec's pushkey_ts: when the pushkey was last set
    data: dict[str, Any]
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str


@dataclass(frozen=True)
class PusherSettings:
    """What a client sets (POST /pushers/set with a kind)."""

    kind: str
    app_id: str
    pushkey: str
    data: dict[str, Any]
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str


class PusherStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    def _from_row(self, row: Any) -> Pusher:
        fields = self._sealer.open_json(row[6])
        return Pusher(int(row[0]), row[1], row[2], row[3], row[4], fields["pushkey"], int(row[5]), fields["data"],
                      fields["app_display_name"], fields["device_display_name"], fields.get("profile_tag"),
                      fields["lang"])

    async def set_pusher(self, user_id: str, device_id: str | None, settings: PusherSettings, *, append: bool,
                         now_ms: int) -> None:
        """Create or replace the user's pusher of (app_id, pushkey), owned by `device_id`. Unless
        `append`, other users' pushers of the same app and pushkey go (the spec: a device token
        now belongs to this user)."""
        digest = lookup_digest(settings.pushkey)
        sealed = self._sealer.seal_json({
            "pushkey": settings.pushkey, "data": settings.data, "app_display_name": settings.app_display_name,
            "device_display_name": settings.device_display_name, "profile_tag": settings.profile_tag,
            "lang": settings.lang,
        })

        def _set_pusher_txn(txn: Transaction) -> None:
            if not append:
                txn.execute("DELETE FROM pushers WHERE app_id = ? AND pushkey_digest = ? AND user_id <> ?",
                            (settings.app_id, digest, user_id))
            txn.execute(
                "INSERT INTO pushers (user_id, device_id, app_id, pushkey_digest, kind, created_ts, sealed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, app_id, pushkey_digest) DO UPDATE SET"
                " device_id = excluded.device_id, kind = excluded.kind, created_ts = excluded.created_ts,"
                " sealed = excluded.sealed",
                (user_id, device_id, settings.app_id, digest, settings.kind, now_ms, sealed),
            )

        await self._db.run_interaction("set_pusher", _set_pusher_txn)

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> bool:
        def _delete_pusher_txn(txn: Transaction) -> bool:
            txn.execute("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey_digest = ?",
                        (user_id, app_id, lookup_digest(pushkey)))
            return txn.rowcount > 0

        return await self._db.run_interaction("delete_pusher", _delete_pusher_txn)

    async def delete_pusher_by_id(self, pusher_id: int) -> None:
        def _delete_pusher_by_id_txn(txn: Transaction) -> None:
            txn.execute("DELETE FROM pushers WHERE id = ?", (pusher_id,))

        await self._db.run_interaction("delete_pusher_by_id", _delete_pusher_by_id_txn)

    async def get_pushers(self, user_id: str) -> list[Pusher]:
        rows = await self._db.execute("get_pushers", f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY id",
                                      user_id)
        return [self._from_row(r) for r in rows]

    async def get_pushers_for_users(self, user_ids: Collection[str], kind: str) -> dict[str, list[Pusher]]:
        """user -> their pushers of `kind`, for the users that have any."""
        wanted = list(dict.fromkeys(user_ids))

        def _pushers_for_users_txn(txn: Transaction) -> list[Any]:
            rows: list[Any] = []
            for chunk in chunks(wanted, 500):
                txn.execute(f"SELECT {_COLUMNS} FROM pushers WHERE kind = ? AND user_id IN ({placeholders(len(chunk))})"
                            " ORDER BY id", (kind, *chunk))
                rows.extend(txn.fetchall())
            return rows

        if not wanted:
            return {}
        out: dict[str, list[Pusher]] = {}
        for row in await self._db.run_interaction("get_pushers_for_users", _pushers_for_users_txn):
            pusher = self._from_row(row)
            out.setdefault(pusher.user_id, []).append(pusher)
        return out

    def devices_deleted_txn(self, txn: Transaction, user_id: str, device_ids: list[str]) -> None:
        """DeviceStore deletion hook: a device's pushers go with it."""
        txn.execute_many("DELETE FROM pushers WHERE user_id = ? AND device_id = ?",
                         [(user_id, device_id) for device_id in device_ids])

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: every pusher of the user (device-less ones too). Returns the rows deleted."""

        def _erase_pushers_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM pushers WHERE user_id = ?", (user_id,))
            return max(txn.rowcount, 0)

        return await self._db.run_interaction("erase_pushers", _erase_pushers_txn)
