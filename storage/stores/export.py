"""Read queries for `piman admin export`: rows exactly as stored, sealed columns still sealed.

Rows come back as column -> value dicts (sealed columns as the stored bytes), so an export is a
faithful copy of what the database holds, not a re-interpretation of it. Events are read in
batches bounded by a stream position fixed at the start, so a room of any size is exported
with flat memory and the counts stay consistent while the server keeps running.
"""

from __future__ import annotations

from typing import Any, Iterable

from storage.database import Database, Transaction

Row = dict[str, Any]

EVENT_COLUMNS = ("stream_ordering", "event_id", "room_id", "room_version", "type", "state_key", "sender",
                 "origin_server_ts", "depth", "membership", "contains_url", "outlier", "rejected_reason",
                 "redacted_by", "pdu")
MEDIA_COLUMNS = ("media_id", "user_id", "created_ts", "expires_ts", "upload_ts", "content_type", "size",
                 "upload_name")
THUMBNAIL_COLUMNS = ("media_id", "width", "height", "method", "animated", "content_type", "size", "created_ts")
_IN_BATCH = 100


# SQLite hands booleans back as 0/1: a bundle reads the same whichever engine wrote it.
_BOOLEAN_COLUMNS = frozenset({"contains_url", "outlier", "is_public", "admin", "is_guest", "deactivated", "locked",
                              "hidden", "animated"})


def _value(name: str, value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if name in _BOOLEAN_COLUMNS and value is not None:
        return bool(value)
    return value


def _rows(columns: Iterable[str], raw: Iterable[tuple]) -> list[Row]:  # type: ignore[type-arg]
    names = tuple(columns)
    return [{name: _value(name, value) for name, value in zip(names, row)} for row in raw]


class ExportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # Events: of a room, or sent by a user

    async def event_bounds(self, *, room_id: str | None = None, sender: str | None = None) -> tuple[int, int]:
        """(count, highest stream ordering) of a room's or a sender's events now: the export's scope."""
        column, value = _event_scope(room_id, sender)
        rows = await self._db.execute(
            "export_event_bounds", f"SELECT COUNT(*), MAX(stream_ordering) FROM events WHERE {column} = ?", value)
        count, upto = rows[0]
        return int(count), int(upto or 0)

    async def events_batch(self, *, after: int, upto: int, limit: int, room_id: str | None = None,
                           sender: str | None = None) -> list[Row]:
        """The next `limit` events with after < stream ordering <= upto, in stream order."""
        column, value = _event_scope(room_id, sender)
        rows = await self._db.execute(
            "export_events_batch",
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {column} = ?"
            " AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering LIMIT ?",
            value, after, upto, limit,
        )
        return _rows(EVENT_COLUMNS, rows)

    # A room

    async def room(self, room_id: str) -> Row | None:
        columns = ("room_id", "room_version", "creator", "is_public", "created_ts")
        rows = await self._db.execute(
            "export_room", f"SELECT {', '.join(columns)} FROM rooms WHERE room_id = ?", room_id)
        return _rows(columns, rows)[0] if rows else None

    async def room_state_and_members(self, room_id: str) -> tuple[list[Row], list[Row]]:
        """The room's current state (event IDs) and everyone's current membership."""

        def _state_and_members_txn(txn: Transaction) -> tuple[list[Row], list[Row]]:
            state_columns = ("type", "state_key", "event_id")
            txn.execute(f"SELECT {', '.join(state_columns)} FROM current_state_events WHERE room_id = ?"
                        " ORDER BY type, state_key", (room_id,))
            state = _rows(state_columns, txn.fetchall())
            member_columns = ("user_id", "membership", "event_id", "stream_ordering")
            txn.execute(f"SELECT {', '.join(member_columns)} FROM current_memberships WHERE room_id = ?"
                        " ORDER BY user_id", (room_id,))
            return state, _rows(member_columns, txn.fetchall())

        return await self._db.run_interaction("export_room_state", _state_and_members_txn)

    # A user

    async def user(self, user_id: str) -> Row | None:
        """The account row, without the password hash."""
        columns = ("user_id", "creation_ts", "admin", "is_guest", "deactivated", "user_type", "locked")
        rows = await self._db.execute(
            "export_user", f"SELECT {', '.join(columns)} FROM users WHERE user_id = ?", user_id)
        return _rows(columns, rows)[0] if rows else None

    async def user_data(self, user_id: str) -> dict[str, list[Row]]:
        """A user's account data, profile, devices and room memberships, in one snapshot."""
        queries = {
            "account_data": (("room_id", "data_type", "stream_id", "content"),
                             "account_data WHERE user_id = ? ORDER BY room_id, data_type"),
            "profile": (("field", "value"), "profiles WHERE user_id = ? ORDER BY field"),
            "devices": (("device_id", "display_name", "last_seen_ts", "last_seen_ip", "last_seen_user_agent",
                         "hidden"), "devices WHERE user_id = ? ORDER BY device_id"),
            "memberships": (("room_id", "membership", "event_id", "stream_ordering"),
                            "current_memberships WHERE user_id = ? ORDER BY room_id"),
        }

        def _user_data_txn(txn: Transaction) -> dict[str, list[Row]]:
            out: dict[str, list[Row]] = {}
            for name, (columns, source) in queries.items():
                txn.execute(f"SELECT {', '.join(columns)} FROM {source}", (user_id,))
                out[name] = _rows(columns, txn.fetchall())
            return out

        return await self._db.run_interaction("export_user_data", _user_data_txn)

    # Media metadata

    async def user_media_batch(self, user_id: str, *, after: str, limit: int) -> list[Row]:
        """The next `limit` of a user's media rows, by media ID."""
        rows = await self._db.execute(
            "export_user_media",
            f"SELECT {', '.join(MEDIA_COLUMNS)} FROM local_media WHERE user_id = ? AND media_id > ?"
            " ORDER BY media_id LIMIT ?",
            user_id, after, limit,
        )
        return _rows(MEDIA_COLUMNS, rows)

    async def media(self, media_ids: Iterable[str]) -> list[Row]:
        return await self._by_media_ids("export_media", "local_media", MEDIA_COLUMNS, media_ids)

    async def thumbnails(self, media_ids: Iterable[str]) -> list[Row]:
        return await self._by_media_ids("export_thumbnails", "local_media_thumbnails", THUMBNAIL_COLUMNS, media_ids)

    async def _by_media_ids(self, desc: str, table: str, columns: tuple[str, ...],
                            media_ids: Iterable[str]) -> list[Row]:
        ids = sorted(set(media_ids))
        out: list[Row] = []
        for start in range(0, len(ids), _IN_BATCH):
            chunk = ids[start:start + _IN_BATCH]
            rows = await self._db.execute(
                desc, f"SELECT {', '.join(columns)} FROM {table} WHERE media_id IN ({', '.join('?' * len(chunk))})"
                " ORDER BY media_id", *chunk)
            out.extend(_rows(columns, rows))
        return out


def _event_scope(room_id: str | None, sender: str | None) -> tuple[str, str]:
    if (room_id is None) == (sender is None):
        raise ValueError("give exactly one of room_id and sender")
    return ("room_id", room_id) if room_id is not None else ("sender", sender)  # type: ignore[return-value]
