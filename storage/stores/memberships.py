"""Who is in which room: reads over `current_memberships` and its change log `room_memberships`.

The event writer keeps both (see `EventStore.persist_event`); these queries never scan
room state, and each answers for many rooms or users at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from storage.database import Database, Transaction
from storage.stores.event_fetch import EventFetcher, chunks, placeholders

HERO_MEMBERSHIPS = ("join", "invite")


class MembershipChange(NamedTuple):
    room_id: str
    event_id: str
    membership: str
    stream_ordering: int


class RoomMembership(NamedTuple):
    room_id: str
    membership: str
    event_id: str
    stream_ordering: int


@dataclass(frozen=True)
class MemberProfile:
    display_name: str | None
    avatar_url: str | None


class RoomsForUserCache:
    """Each user's rooms, from memory: every /sync asks, memberships rarely change.

    Any committed membership change (a member event, a state reset, forgetting) calls
    `invalidate`, which drops everything; a read that began before it can't store its answer.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: dict[tuple[str, tuple[str, ...] | None], list[RoomMembership]] = {}
        self._max_entries = max_entries
        self.generation = 0

    def get(self, key: tuple[str, tuple[str, ...] | None]) -> list[RoomMembership] | None:
        return self._entries.get(key)

    def put(self, key: tuple[str, tuple[str, ...] | None], rooms: list[RoomMembership], generation: int) -> None:
        if generation == self.generation:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = rooms

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()


class MembershipQueries:
    """Mixed into `EventStore`."""

    _db: Database
    _fetcher: EventFetcher
    _rooms_for_user: RoomsForUserCache

    async def get_membership(self, room_id: str, user_id: str) -> RoomMembership | None:
        rows = await self._db.execute(
            "get_membership",
            "SELECT room_id, membership, event_id, stream_ordering FROM current_memberships"
            " WHERE room_id = ? AND user_id = ?",
            room_id,
            user_id,
        )
        return _membership(rows[0]) if rows else None

    async def get_rooms_for_user(
        self, user_id: str, memberships: Sequence[str] | None = ("join",)
    ) -> list[RoomMembership]:
        """The user's rooms with one of `memberships` (None: any), ordered by room ID.

        Rooms the user has forgotten are left out: they are gone from the user's lists.
        """
        key = (user_id, tuple(memberships) if memberships is not None else None)
        cached = self._rooms_for_user.get(key)
        if cached is not None:
            return list(cached)
        generation = self._rooms_for_user.generation
        rooms = await self._read_rooms_for_user(user_id, memberships)
        self._rooms_for_user.put(key, rooms, generation)
        return list(rooms)

    async def _read_rooms_for_user(self, user_id: str, memberships: Sequence[str] | None) -> list[RoomMembership]:
        sql = (
            "SELECT room_id, membership, event_id, stream_ordering FROM current_memberships AS m"
            f" WHERE user_id = ? AND NOT {_FORGOTTEN}"
        )
        args: list[object] = [user_id]
        if memberships is not None:
            if not memberships:
                return []
            sql += f" AND membership IN ({placeholders(len(memberships))})"
            args.extend(memberships)
        rows = await self._db.execute("get_rooms_for_user", sql + " ORDER BY room_id", *args)
        return [_membership(row) for row in rows]

    async def get_rooms_for_users(self, user_ids: Iterable[str]) -> dict[str, set[str]]:
        """user_id -> the rooms they are joined to (every asked user present)."""
        return await self._db.run_interaction(
            "get_rooms_for_users", self._rooms_for_users_txn, list(dict.fromkeys(user_ids))
        )

    @staticmethod
    def _rooms_for_users_txn(txn: Transaction, user_ids: list[str]) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {user_id: set() for user_id in user_ids}
        for chunk in chunks(user_ids):
            txn.execute(
                "SELECT user_id, room_id FROM current_memberships"
                f" WHERE user_id IN ({placeholders(len(chunk))}) AND membership = 'join'",
                chunk,
            )
            for user_id, room_id in txn.fetchall():
                result[user_id].add(room_id)
        return result

    async def get_users_in_room(self, room_id: str) -> list[str]:
        """The joined members, ordered by user ID."""
        rows = await self._db.execute(
            "get_users_in_room",
            "SELECT user_id FROM current_memberships WHERE room_id = ? AND membership = 'join'"
            " ORDER BY user_id",
            room_id,
        )
        return [row[0] for row in rows]

    async def get_local_users_in_room(self, room_id: str, server_name: str) -> list[str]:
        suffix = ":" + server_name
        return [u for u in await self.get_users_in_room(room_id) if u.endswith(suffix)]

    async def get_members_by_membership(
        self, room_id: str, memberships: Sequence[str] | None = None
    ) -> dict[str, RoomMembership]:
        """user_id -> their current membership, for /members (None: every membership)."""
        sql = (
            "SELECT user_id, room_id, membership, event_id, stream_ordering"
            " FROM current_memberships WHERE room_id = ?"
        )
        args: list[object] = [room_id]
        if memberships is not None:
            if not memberships:
                return {}
            sql += f" AND membership IN ({placeholders(len(memberships))})"
            args.extend(memberships)
        rows = await self._db.execute("get_members_by_membership", sql, *args)
        return {row[0]: _membership(row[1:]) for row in rows}

    async def get_joined_members_with_profiles(self, room_id: str) -> dict[str, MemberProfile]:
        """user_id -> display name and avatar from their join event (two queries at most)."""
        members = await self.get_members_by_membership(room_id, ("join",))
        events = await self._fetcher.get_events(m.event_id for m in members.values())
        result: dict[str, MemberProfile] = {}
        for user_id, member in members.items():
            stored = events.get(member.event_id)
            content = stored.event.content if stored is not None else {}
            name, avatar = content.get("displayname"), content.get("avatar_url")
            result[user_id] = MemberProfile(
                name if isinstance(name, str) else None, avatar if isinstance(avatar, str) else None
            )
        return result

    async def get_member_counts(self, room_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """room_id -> membership -> number of users (rooms with no members map to {})."""
        return await self._db.run_interaction(
            "get_member_counts", self._member_counts_txn, list(dict.fromkeys(room_ids))
        )

    @staticmethod
    def _member_counts_txn(txn: Transaction, room_ids: list[str]) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {room_id: {} for room_id in room_ids}
        for chunk in chunks(room_ids):
            txn.execute(
                "SELECT room_id, membership, COUNT(*) FROM current_memberships"
                f" WHERE room_id IN ({placeholders(len(chunk))}) GROUP BY room_id, membership",
                chunk,
            )
            for room_id, membership, count in txn.fetchall():
                result[room_id][membership] = int(count)
        return result

    async def get_heroes(
        self, room_ids: Iterable[str], exclude_user_id: str, limit: int = 5
    ) -> dict[str, list[str]]:
        """room_id -> up to `limit` members for a room summary's `m.heroes`, in one query.

        Joined and invited members first, in the order they arrived; then those who left
        or were banned, for rooms nobody else is in any more.
        """
        return await self._db.run_interaction(
            "get_heroes", self._heroes_txn, list(dict.fromkeys(room_ids)), exclude_user_id, limit
        )

    @staticmethod
    def _heroes_txn(
        txn: Transaction, room_ids: list[str], exclude_user_id: str, limit: int
    ) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {room_id: [] for room_id in room_ids}
        for chunk in chunks(room_ids):
            txn.execute(
                "SELECT room_id, user_id FROM ("
                " SELECT room_id, user_id, stream_ordering, ROW_NUMBER() OVER (PARTITION BY room_id"
                "  ORDER BY CASE WHEN membership IN (?, ?) THEN 0 ELSE 1 END, stream_ordering)"
                "  AS row_number, MIN(CASE WHEN membership IN (?, ?) THEN 0 ELSE 1 END)"
                "  OVER (PARTITION BY room_id) AS best,"
                "  CASE WHEN membership IN (?, ?) THEN 0 ELSE 1 END AS rank"
                " FROM current_memberships"
                f" WHERE room_id IN ({placeholders(len(chunk))}) AND user_id != ?"
                "  AND membership != 'knock'"
                ") AS ranked WHERE row_number <= ? AND rank = best"
                " ORDER BY room_id, row_number",
                [*HERO_MEMBERSHIPS * 3, *chunk, exclude_user_id, limit],
            )
            for room_id, user_id in txn.fetchall():
                result[room_id].append(user_id)
        return result

    async def get_membership_changes(
        self, user_id: str, from_stream: int, to_stream: int
    ) -> list[MembershipChange]:
        """Changes of the user's memberships with `from_stream` < ordering <= `to_stream`, in order."""
        rows = await self._db.execute(
            "get_membership_changes",
            "SELECT room_id, event_id, membership, stream_ordering FROM room_memberships"
            " WHERE user_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering",
            user_id,
            from_stream,
            to_stream,
        )
        return [MembershipChange(r, e, m, int(s)) for r, e, m, s in rows]


    async def forget_room(self, user_id: str, room_id: str) -> bool:
        """Forget the user's current membership of the room if they left or were banned.

        False if there is no such membership to forget (never a member, or in the room).
        """
        result = await self._db.run_interaction("forget_room", self._forget_room_txn, user_id, room_id)
        self._rooms_for_user.invalidate()
        return result

    @staticmethod
    def _forget_room_txn(txn: Transaction, user_id: str, room_id: str) -> bool:
        txn.execute(
            "SELECT stream_ordering FROM current_memberships"
            " WHERE user_id = ? AND room_id = ? AND membership IN ('leave', 'ban')",
            (user_id, room_id),
        )
        row = txn.fetchone()
        if row is None:
            return False
        txn.execute(
            "INSERT INTO forgotten_rooms (user_id, room_id, stream_ordering) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, room_id) DO UPDATE SET stream_ordering = excluded.stream_ordering",
            (user_id, room_id, int(row[0])),
        )
        return True

    async def is_room_forgotten(self, user_id: str, room_id: str) -> bool:
        """Whether the user forgot the room and has had no membership in it since."""
        rows = await self._db.execute(
            "is_room_forgotten",
            f"SELECT 1 FROM current_memberships AS m WHERE user_id = ? AND room_id = ? AND {_FORGOTTEN}",
            user_id,
            room_id,
        )
        return bool(rows)


# A row `m` of current_memberships that its user forgot (no newer membership since).
_FORGOTTEN = (
    "EXISTS (SELECT 1 FROM forgotten_rooms AS f WHERE f.user_id = m.user_id"
    " AND f.room_id = m.room_id AND f.stream_ordering >= m.stream_ordering)"
)


def _membership(row: tuple) -> RoomMembership:
    room_id, membership, event_id, stream_ordering = row
    return RoomMembership(room_id, membership, event_id, int(stream_ordering))
