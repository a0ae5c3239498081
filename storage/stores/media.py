"""Metadata of the media repository: who uploaded what, its type, size and (sealed) file name."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction
from storage.sealing import Sealer


@dataclass(frozen=True)
class LocalMedia:
    media_id: str
    user_id: str
    created_ts: int
    expires_ts: int | None
    upload_ts: int | None  # None: reserved by /create, content not yet uploaded
    content_type: str | None
    size: int | None
    upload_name: str | None


@dataclass(frozen=True)
class Thumbnail:
    media_id: str
    width: int
    height: int
    method: str
    animated: bool
    content_type: str
    size: int


_COLUMNS = "media_id, user_id, created_ts, expires_ts, upload_ts, content_type, size, upload_name"


class MediaStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    def _row(self, r: tuple) -> LocalMedia:  # type: ignore[type-arg]
        return LocalMedia(r[0], r[1], int(r[2]), None if r[3] is None else int(r[3]),
                          None if r[4] is None else int(r[4]), r[5], None if r[6] is None else int(r[6]),
                          self._sealer.open_str(None if r[7] is None else bytes(r[7])))

    async def reserve_media(self, media_id: str, user_id: str, created_ts: int, expires_ts: int) -> None:
        await self._db.execute(
            "reserve_media",
            "INSERT INTO local_media (media_id, user_id, created_ts, expires_ts) VALUES (?, ?, ?, ?)",
            media_id, user_id, created_ts, expires_ts,
        )

    async def insert_media(self, media: LocalMedia) -> None:
        await self._db.execute(
            "insert_media",
            f"INSERT INTO local_media ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            media.media_id, media.user_id, media.created_ts, media.expires_ts, media.upload_ts,
            media.content_type, media.size, self._sealer.seal_str(media.upload_name),
        )

    async def complete_upload(self, media_id: str, *, upload_ts: int, content_type: str, size: int,
                              upload_name: str | None) -> bool:
        """Record the content of a reserved ID; False if it was already uploaded meanwhile."""

        def _complete_upload_txn(txn: Transaction) -> bool:
            txn.execute(
                "UPDATE local_media SET upload_ts = ?, content_type = ?, size = ?, upload_name = ?, expires_ts = NULL"
                " WHERE media_id = ? AND upload_ts IS NULL",
                (upload_ts, content_type, size, self._sealer.seal_str(upload_name), media_id),
            )
            return txn.rowcount == 1

        return await self._db.run_interaction("complete_upload", _complete_upload_txn)

    async def get_media(self, media_id: str) -> LocalMedia | None:
        rows = await self._db.execute("get_media", f"SELECT {_COLUMNS} FROM local_media WHERE media_id = ?", media_id)
        return self._row(rows[0]) if rows else None

    async def list_user_media(self, user_id: str) -> list[LocalMedia]:
        rows = await self._db.execute(
            "list_user_media",
            f"SELECT {_COLUMNS} FROM local_media WHERE user_id = ? ORDER BY created_ts, media_id", user_id,
        )
        return [self._row(r) for r in rows]

    async def user_usage(self, user_id: str) -> int:
        """Bytes of media the user keeps on the server, for the quota."""
        rows = await self._db.execute(
            "user_media_usage", "SELECT COALESCE(SUM(size), 0) FROM local_media WHERE user_id = ?", user_id
        )
        return int(rows[0][0])

    async def count_pending(self, user_id: str, now: int) -> int:
        rows = await self._db.execute(
            "count_pending_media",
            "SELECT COUNT(*) FROM local_media WHERE user_id = ? AND upload_ts IS NULL AND expires_ts > ?",
            user_id, now,
        )
        return int(rows[0][0])

    async def delete_expired_reservations(self, now: int, limit: int) -> int:
        """Delete up to `limit` media IDs reserved by /create whose upload never came before they
        expired at `now`; returns how many went. One short transaction per call."""

        def _delete_expired_reservations_txn(txn: Transaction) -> int:
            txn.execute(
                "SELECT media_id FROM local_media WHERE upload_ts IS NULL AND expires_ts <= ?"
                " ORDER BY expires_ts LIMIT ?",
                (now, limit),
            )
            ids = [r[0] for r in txn.fetchall()]
            for media_id in ids:
                # The condition again: an upload completed since the SELECT keeps its row.
                txn.execute("DELETE FROM local_media WHERE media_id = ? AND upload_ts IS NULL", (media_id,))
            return len(ids)

        return await self._db.run_interaction("delete_expired_media_reservations", _delete_expired_reservations_txn)

    async def delete_media(self, media_id: str) -> None:
        def _delete_media_txn(txn: Transaction) -> None:
            txn.execute("DELETE FROM local_media_thumbnails WHERE media_id = ?", (media_id,))
            txn.execute("DELETE FROM local_media WHERE media_id = ?", (media_id,))

        await self._db.run_interaction("delete_media", _delete_media_txn)

    async def add_thumbnail(self, thumb: Thumbnail, created_ts: int) -> None:
        def _add_thumbnail_txn(txn: Transaction) -> None:
            txn.execute(
                "DELETE FROM local_media_thumbnails WHERE media_id = ? AND width = ? AND height = ?"
                " AND method = ? AND animated = ?",
                (thumb.media_id, thumb.width, thumb.height, thumb.method, thumb.animated),
            )
            txn.execute(
                "INSERT INTO local_media_thumbnails (media_id, width, height, method, animated, content_type,"
                " size, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (thumb.media_id, thumb.width, thumb.height, thumb.method, thumb.animated, thumb.content_type,
                 thumb.size, created_ts),
            )

        await self._db.run_interaction("add_thumbnail", _add_thumbnail_txn)

    async def get_thumbnails(self, media_id: str) -> list[Thumbnail]:
        rows = await self._db.execute(
            "get_thumbnails",
            "SELECT media_id, width, height, method, animated, content_type, size FROM local_media_thumbnails"
            " WHERE media_id = ?", media_id,
        )
        return [Thumbnail(r[0], int(r[1]), int(r[2]), r[3], bool(r[4]), r[5], int(r[6])) for r in rows]
