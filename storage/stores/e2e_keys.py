"""End-to-end keys: device keys, one-time and fallback keys, cross-signing keys and signatures.

Key objects are opaque JSON text here (public key material, stored unsealed); the handler owns
their shape. Every change of a user's keys is a row on the "device_lists" stream, written in the
same transaction; `change_listeners` hear about it once the transaction has committed.

A one-time key is handed out once: claiming deletes its row in the claiming transaction — on
PostgreSQL `FOR UPDATE SKIP LOCKED` at READ COMMITTED, so concurrent claims take different rows
instead of failing; on SQLite writers run one at a time anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping, Sequence

from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.streams import StreamIdGenerator
from storage.stores.cache import LruCache, WriteFence
from storage.stores.event_fetch import chunks, placeholders

# Devices whose one-time key counts stay in memory: every /sync of a device reads them.
KEY_COUNTS_CACHE_DEVICES = 50_000

KeyCounts = tuple[dict[str, int], list[str]]

# The device_lists stream keeps its last this many positions (a client offline for longer
# re-downloads the keys of everyone it shares a room with); pruned this many positions a batch.
DEVICE_LIST_CHANGES_KEPT = 100_000
PRUNE_BATCH_POSITIONS = 10_000

# (user whose keys changed, stream position, the only user who may hear of it or None for all)
ChangeListener = Callable[[str, int, "str | None"], None]


@dataclass(frozen=True)
class KeyUpload:
    """One `/keys/upload`: each part optional. Keys are (algorithm, key_id, key_json)."""

    device_keys_json: str | None
    one_time_keys: Sequence[tuple[str, str, str]]
    fallback_keys: Sequence[tuple[str, str, str]]


@dataclass(frozen=True)
class UploadResult:
    one_time_key_counts: dict[str, int]
    position: int | None  # device_lists position, if the device keys changed


class OneTimeKeyConflictError(Exception):
    """A one-time key ID the device already uploaded with a different key."""

    def __init__(self, algorithm: str, key_id: str) -> None:
        super().__init__(f"{algorithm}:{key_id}")
        self.algorithm = algorithm
        self.key_id = key_id


@dataclass(frozen=True)
class ClaimedKey:
    user_id: str
    device_id: str
    algorithm: str
    key_id: str
    key_json: str
    fallback: bool


@dataclass(frozen=True)
class StoredDeviceKeys:
    device_id: str
    key_json: str
    display_name: str | None


@dataclass(frozen=True)
class Signature:
    target_user_id: str
    target_key_id: str  # a device ID or a master key's public key
    signer_user_id: str
    signer_key_id: str  # ed25519:<device ID or public key>
    signature: str


@dataclass(frozen=True)
class MembershipTransition:
    """A user who was or was not joined to a room at the start of a window, and the other at its end."""

    room_id: str
    user_id: str
    joined_now: bool


# Users sharing a joined room with ? (bound twice: the user and the other member column).
_SHARES_ROOM = (
    "EXISTS (SELECT 1 FROM current_memberships AS a JOIN current_memberships AS b ON a.room_id = b.room_id"
    " WHERE a.user_id = ? AND a.membership = 'join' AND b.user_id = {other} AND b.membership = 'join')"
)


class E2EKeyStore:
    def __init__(self, db: Database, sealer: Sealer, stream: StreamIdGenerator) -> None:
        self._db = db
        self._sealer = sealer
        self.stream = stream
        self.change_listeners: list[ChangeListener] = []
        # (user, device) -> its key counts; dropped after every committed write that may change them.
        self._key_counts: LruCache[tuple[str, str], KeyCounts] = LruCache(KEY_COUNTS_CACHE_DEVICES)
        self._key_counts_fence = WriteFence()
        self._pruned_cache: int | None = None  # device_lists positions up to this are pruned

    # -- writes ------------------------------------------------------------

    async def upload_keys(self, user_id: str, device_id: str, upload: KeyUpload, now_ms: int) -> UploadResult:
        """Store a device's keys in one transaction; raises `OneTimeKeyConflictError` on a reused key ID."""

        def _upload_keys_txn(txn: Transaction) -> UploadResult:
            position = None
            if upload.device_keys_json is not None:
                txn.execute(
                    "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
                    (user_id, device_id),
                )
                row = txn.fetchone()
                if row is None or row[0] != upload.device_keys_json:
                    txn.execute(
                        "INSERT INTO e2e_device_keys (user_id, device_id, key_json, ts) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json,"
                        " ts = excluded.ts",
                        (user_id, device_id, upload.device_keys_json, now_ms),
                    )
                    position = self._record_changes_txn(txn, [(user_id, device_id, None)])
            if upload.one_time_keys:
                self._add_one_time_keys_txn(txn, user_id, device_id, upload.one_time_keys, now_ms)
            for algorithm, key_id, key_json in upload.fallback_keys:
                txn.execute(
                    "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
                    " VALUES (?, ?, ?, ?, ?, FALSE) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE"
                    " SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE",
                    (user_id, device_id, algorithm, key_id, key_json),
                )
            txn.call_after(self._key_counts_changed, [(user_id, device_id)])
            return UploadResult(self._count_txn(txn, user_id, device_id), position)

        return await self._db.run_interaction("upload_e2e_keys", _upload_keys_txn)

    @staticmethod
    def _add_one_time_keys_txn(txn: Transaction, user_id: str, device_id: str,
                               keys: Sequence[tuple[str, str, str]], now_ms: int) -> None:
        existing: dict[tuple[str, str], str] = {}
        wanted = [f"{algorithm}:{key_id}" for algorithm, key_id, _ in keys]
        for chunk in chunks(wanted):
            # Concatenation spelled portably: || works on both engines.
            txn.execute(
                "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
                f" AND algorithm || ':' || key_id IN ({placeholders(len(chunk))})",
                (user_id, device_id, *chunk),
            )
            for algorithm, key_id, key_json in txn.fetchall():
                existing[(algorithm, key_id)] = key_json
        new_rows = []
        for algorithm, key_id, key_json in keys:
            old = existing.get((algorithm, key_id))
            if old is None:
                new_rows.append((user_id, device_id, algorithm, key_id, key_json, now_ms))
            elif old != key_json:
                raise OneTimeKeyConflictError(algorithm, key_id)
        txn.execute_many(
            "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, ts)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
            new_rows,
        )

    async def claim_keys(self, wanted: Iterable[tuple[str, str, str]]) -> list[ClaimedKey]:
        """For each (user, device, algorithm): a one-time key, removed, or else the fallback key, marked used."""
        requests = list(dict.fromkeys(wanted))
        if not requests:
            return []

        def _claim_keys_txn(txn: Transaction) -> list[ClaimedKey]:
            postgres = txn.engine.supports_sequences
            if postgres:
                txn.set_read_committed()  # see the rows other claims deleted, skip those they hold
            lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
            claimed: list[ClaimedKey] = []
            for user_id, device_id, algorithm in requests:
                txn.execute(
                    "DELETE FROM e2e_one_time_keys WHERE id IN (SELECT id FROM e2e_one_time_keys"
                    " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY id LIMIT 1"
                    f"{lock}) RETURNING key_id, key_json",
                    (user_id, device_id, algorithm),
                )
                row = txn.fetchone()
                fallback = False
                if row is None:
                    txn.execute(
                        "UPDATE e2e_fallback_keys SET used = TRUE"
                        " WHERE user_id = ? AND device_id = ? AND algorithm = ? RETURNING key_id, key_json",
                        (user_id, device_id, algorithm),
                    )
                    row = txn.fetchone()
                    fallback = True
                if row is not None:
                    claimed.append(ClaimedKey(user_id, device_id, algorithm, row[0], row[1], fallback))
            txn.call_after(self._key_counts_changed, [(c.user_id, c.device_id) for c in claimed])
            return claimed

        return await self._db.run_interaction("claim_e2e_keys", _claim_keys_txn)

    async def set_cross_signing_keys(self, user_id: str, keys: Mapping[str, tuple[str, str]], now_ms: int) -> int:
        """Replace some of the user's cross-signing keys: key_type -> (public key, key_json)."""

        def _set_cross_signing_keys_txn(txn: Transaction) -> int:
            # Signatures made by or on a replaced key mean nothing any more.
            for key_type in keys:
                txn.execute(
                    "SELECT key_id FROM e2e_cross_signing_keys WHERE user_id = ? AND key_type = ?", (user_id, key_type)
                )
                row = txn.fetchone()
                if row is not None and row[0] != keys[key_type][0]:
                    txn.execute(
                        "DELETE FROM e2e_cross_signing_signatures WHERE (signer_user_id = ? AND signer_key_id = ?)"
                        " OR (target_user_id = ? AND target_key_id = ?)",
                        (user_id, f"ed25519:{row[0]}", user_id, row[0]),
                    )
            txn.execute_many(
                "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_id, key_json, ts) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, key_type) DO UPDATE SET key_id = excluded.key_id,"
                " key_json = excluded.key_json, ts = excluded.ts",
                [(user_id, key_type, key_id, key_json, now_ms) for key_type, (key_id, key_json) in keys.items()],
            )
            return self._record_changes_txn(txn, [(user_id, None, None)])

        return await self._db.run_interaction("set_cross_signing_keys", _set_cross_signing_keys_txn)

    async def add_signatures(self, signatures: Sequence[Signature],
                             changes: Collection[tuple[str, str | None]]) -> int | None:
        """Store signatures and record (changed user, visible_to) changes; the position, if any."""
        if not signatures:
            return None

        def _add_signatures_txn(txn: Transaction) -> int:
            txn.execute_many(
                "INSERT INTO e2e_cross_signing_signatures"
                " (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)"
                " DO UPDATE SET signature = excluded.signature",
                [(s.target_user_id, s.target_key_id, s.signer_user_id, s.signer_key_id, s.signature)
                 for s in signatures],
            )
            return self._record_changes_txn(txn, [(user, None, visible_to) for user, visible_to in changes])

        return await self._db.run_interaction("add_cross_signing_signatures", _add_signatures_txn)

    def devices_deleted_txn(self, txn: Transaction, user_id: str, device_ids: Sequence[str]) -> None:
        """Run in the device deletion's transaction: signatures of and by the devices go too,
        and the user's device list changed if any of them had keys (the keys go by cascade)."""
        if not device_ids:
            return
        txn.call_after(self._key_counts_changed, [(user_id, d) for d in device_ids])
        txn.execute_many(
            "DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND target_key_id = ?",
            [(user_id, d) for d in device_ids],
        )
        txn.execute_many(
            "DELETE FROM e2e_cross_signing_signatures WHERE signer_user_id = ? AND signer_key_id = ?",
            [(user_id, f"ed25519:{d}") for d in device_ids],
        )
        with_keys: list[str] = []
        for chunk in chunks(list(device_ids)):
            txn.execute(
                f"SELECT device_id FROM e2e_device_keys WHERE user_id = ? AND device_id IN ({placeholders(len(chunk))})",
                (user_id, *chunk),
            )
            with_keys.extend(row[0] for row in txn.fetchall())
        if with_keys:
            self._record_changes_txn(txn, [(user_id, d, None) for d in sorted(with_keys)])

    async def erase_user(self, user_id: str) -> int:
        """Account erasure: every key and signature of or by the user, including any left by a
        device already gone. Others hear of it as a device-list change. Returns the rows deleted."""

        def _erase_e2e_keys_txn(txn: Transaction) -> int:
            txn.execute(
                "SELECT device_id FROM e2e_one_time_keys WHERE user_id = ?"
                " UNION SELECT device_id FROM e2e_fallback_keys WHERE user_id = ?",
                (user_id, user_id),
            )
            txn.call_after(self._key_counts_changed, [(user_id, row[0]) for row in txn.fetchall()])
            deleted = 0
            for sql, args in (
                ("DELETE FROM e2e_one_time_keys WHERE user_id = ?", (user_id,)),
                ("DELETE FROM e2e_fallback_keys WHERE user_id = ?", (user_id,)),
                ("DELETE FROM e2e_device_keys WHERE user_id = ?", (user_id,)),
                ("DELETE FROM e2e_cross_signing_keys WHERE user_id = ?", (user_id,)),
                ("DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? OR signer_user_id = ?",
                 (user_id, user_id)),
            ):
                txn.execute(sql, args)
                deleted += max(txn.rowcount, 0)
            if deleted:
                self._record_changes_txn(txn, [(user_id, None, None)])
            return deleted

        return await self._db.run_interaction("erase_user_e2e_keys", _erase_e2e_keys_txn)

    def _record_changes_txn(self, txn: Transaction, changes: Sequence[tuple[str, str | None, str | None]]) -> int:
        position = self.stream.get_next_txn(txn)
        txn.execute_many(
            "INSERT INTO device_lists_stream (stream_id, user_id, device_id, visible_to) VALUES (?, ?, ?, ?)",
            [(position, user, device, visible_to) for user, device, visible_to in changes],
        )
        for user, visible_to in dict.fromkeys((user, visible_to) for user, _, visible_to in changes):
            txn.call_after(self._tell_listeners, user, position, visible_to)
        return position

    def _tell_listeners(self, user_id: str, position: int, visible_to: str | None) -> None:
        for listener in self.change_listeners:
            listener(user_id, position, visible_to)

    # -- pruning the stream --------------------------------------------------

    async def _pruned_up_to(self) -> int:
        if self._pruned_cache is None:
            rows = await self._db.execute("device_lists_pruned_up_to", "SELECT pruned_up_to FROM device_lists_pruned")
            self._pruned_cache = int(rows[0][0]) if rows else 0
        return self._pruned_cache

    async def prune_device_list_changes(self, keep: int = DEVICE_LIST_CHANGES_KEPT,
                                        batch: int = PRUNE_BATCH_POSITIONS) -> int:
        """Delete the stream's rows older than its last `keep` positions, a range of positions per
        transaction; returns how many rows went."""
        up_to = self.stream.get_current_token() - keep
        start = await self._pruned_up_to()
        deleted = 0
        while start < up_to:
            end = min(start + batch, up_to)

            def _prune_txn(txn: Transaction, end: int = end) -> int:
                # The horizon first: a reader seeing rows gone also sees that it must not trust them.
                txn.execute(
                    "INSERT INTO device_lists_pruned (lock, pruned_up_to) VALUES ('X', ?)"
                    " ON CONFLICT (lock) DO UPDATE SET pruned_up_to = excluded.pruned_up_to",
                    (end,),
                )
                txn.execute("DELETE FROM device_lists_stream WHERE stream_id <= ?", (end,))
                return txn.rowcount

            deleted += await self._db.run_interaction("prune_device_lists_stream", _prune_txn)
            self._pruned_cache = start = end
        return deleted

    # -- reads -------------------------------------------------------------

    async def count_one_time_keys(self, user_id: str, device_id: str) -> KeyCounts:
        """Unclaimed one-time keys per algorithm, and the algorithms with an unused fallback key.

        From memory when nothing changed them since the last read: a woken /sync then needs no
        database round trip for them.
        """
        key = (user_id, device_id)
        cached = self._key_counts.get(key)
        if cached is None:
            token = self._key_counts_fence.start_read(key)
            cached = await self._db.run_interaction("count_e2e_one_time_keys", self._count_all_txn, user_id, device_id)
            if self._key_counts_fence.read_still_valid(key, token):
                self._key_counts.set(key, cached)
        return dict(cached[0]), list(cached[1])

    def _key_counts_changed(self, devices: list[tuple[str, str]]) -> None:
        for key in devices:
            self._key_counts_fence.mark_written(key)
            self._key_counts.pop(key)

    @classmethod
    def _count_all_txn(cls, txn: Transaction, user_id: str, device_id: str) -> KeyCounts:
        counts = cls._count_txn(txn, user_id, device_id)
        txn.execute(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND NOT used"
            " ORDER BY algorithm",
            (user_id, device_id),
        )
        return counts, [row[0] for row in txn.fetchall()]

    @staticmethod
    def _count_txn(txn: Transaction, user_id: str, device_id: str) -> dict[str, int]:
        txn.execute(
            "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
            (user_id, device_id),
        )
        return {algorithm: int(count) for algorithm, count in txn.fetchall()}

    async def get_device_keys(self, query: Mapping[str, Collection[str]]) -> dict[str, dict[str, StoredDeviceKeys]]:
        """user -> device -> keys, for the devices asked (an empty collection: all) that have keys.

        Hidden devices are left out.
        """

        def _get_device_keys_txn(txn: Transaction) -> dict[str, dict[str, StoredDeviceKeys]]:
            result: dict[str, dict[str, StoredDeviceKeys]] = {}
            for user_id, device_ids in query.items():
                sql = (
                    "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys AS k"
                    " JOIN devices AS d ON d.user_id = k.user_id AND d.device_id = k.device_id"
                    " WHERE k.user_id = ? AND NOT d.hidden"
                )
                args: list[str] = [user_id]
                if device_ids:
                    wanted = list(dict.fromkeys(device_ids))
                    sql += f" AND k.device_id IN ({placeholders(len(wanted))})"
                    args.extend(wanted)
                txn.execute(sql, args)
                for device_id, key_json, name in txn.fetchall():
                    result.setdefault(user_id, {})[device_id] = StoredDeviceKeys(
                        device_id, key_json, self._sealer.open_str(name))
            return result

        return await self._db.run_interaction("get_e2e_device_keys", _get_device_keys_txn)

    async def get_cross_signing_keys(self, user_ids: Collection[str]) -> dict[str, dict[str, tuple[str, str]]]:
        """user -> key_type -> (public key, key_json)."""
        users = list(dict.fromkeys(user_ids))
        result: dict[str, dict[str, tuple[str, str]]] = {}

        def _get_cross_signing_keys_txn(txn: Transaction) -> None:
            for chunk in chunks(users):
                txn.execute(
                    "SELECT user_id, key_type, key_id, key_json FROM e2e_cross_signing_keys"
                    f" WHERE user_id IN ({placeholders(len(chunk))})",
                    chunk,
                )
                for user_id, key_type, key_id, key_json in txn.fetchall():
                    result.setdefault(user_id, {})[key_type] = (key_id, key_json)

        if users:
            await self._db.run_interaction("get_cross_signing_keys", _get_cross_signing_keys_txn)
        return result

    async def get_signatures(self, targets: Collection[tuple[str, str]], viewer: str) -> list[Signature]:
        """Stored signatures of (user, key ID) targets that `viewer` may see: those made by the
        target's own user, and those made by the viewer."""
        wanted = list(dict.fromkeys(targets))
        if not wanted:
            return []

        def _get_signatures_txn(txn: Transaction) -> list[Signature]:
            found: list[Signature] = []
            by_user: dict[str, list[str]] = {}
            for user_id, key_id in wanted:
                by_user.setdefault(user_id, []).append(key_id)
            for user_id, key_ids in by_user.items():
                for chunk in chunks(key_ids):
                    txn.execute(
                        "SELECT target_key_id, signer_user_id, signer_key_id, signature FROM e2e_cross_signing_signatures"
                        f" WHERE target_user_id = ? AND target_key_id IN ({placeholders(len(chunk))})"
                        " AND (signer_user_id = target_user_id OR signer_user_id = ?)",
                        (user_id, *chunk, viewer),
                    )
                    found.extend(Signature(user_id, *row) for row in txn.fetchall())
            return found

        return await self._db.run_interaction("get_cross_signing_signatures", _get_signatures_txn)

    async def get_changed_users(self, user_id: str, from_pos: int, to_pos: int) -> set[str]:
        """Users whose keys changed in (from_pos, to_pos] and that `user_id` hears about: itself,
        users sharing a joined room with it, and changes made visible to it alone.

        A `from_pos` older than the pruned part of the stream gets everyone sharing a room.
        """
        if from_pos < await self._pruned_up_to():
            return await self.get_users_sharing_room(user_id)
        rows = await self._db.execute(
            "get_device_list_changes",
            "SELECT DISTINCT s.user_id FROM device_lists_stream AS s WHERE s.stream_id > ? AND s.stream_id <= ?"
            " AND (s.visible_to = ? OR (s.visible_to IS NULL AND (s.user_id = ? OR "
            + _SHARES_ROOM.format(other="s.user_id") + ")))",
            from_pos, to_pos, user_id, user_id, user_id,
        )
        return {row[0] for row in rows}

    async def get_users_sharing_room(self, user_id: str) -> set[str]:
        """The user and everyone joined to a room the user is joined to."""
        rows = await self._db.execute(
            "get_users_sharing_room",
            "SELECT DISTINCT b.user_id FROM current_memberships AS a JOIN current_memberships AS b"
            " ON a.room_id = b.room_id WHERE a.user_id = ? AND a.membership = 'join' AND b.membership = 'join'",
            user_id,
        )
        return {row[0] for row in rows} | {user_id}

    async def get_users_sharing_room_with(self, user_id: str, others: Collection[str]) -> set[str]:
        """Those of `others` who share a joined room with `user_id` now."""
        candidates = list(dict.fromkeys(others))
        if not candidates:
            return set()

        def _sharing_txn(txn: Transaction) -> set[str]:
            found: set[str] = set()
            for chunk in chunks(candidates):
                txn.execute(
                    "SELECT DISTINCT b.user_id FROM current_memberships AS a JOIN current_memberships AS b"
                    " ON a.room_id = b.room_id WHERE a.user_id = ? AND a.membership = 'join'"
                    f" AND b.membership = 'join' AND b.user_id IN ({placeholders(len(chunk))})",
                    (user_id, *chunk),
                )
                found.update(row[0] for row in txn.fetchall())
            return found

        return await self._db.run_interaction("get_users_sharing_room_with", _sharing_txn)

    async def get_membership_transitions(self, user_id: str, room_ids: Collection[str], from_stream: int,
                                         to_stream: int) -> tuple[list[MembershipTransition], list[MembershipTransition]]:
        """Joins and leaves in (from_stream, to_stream]: the user's own, then other users' in
        `room_ids` and in the rooms the user left. One round trip."""

        def _transitions_txn(txn: Transaction) -> tuple[list[MembershipTransition], list[MembershipTransition]]:
            own = self._transitions_txn(txn, "user_id = ?", [user_id], from_stream, to_stream)
            rooms = list(dict.fromkeys([*room_ids, *(t.room_id for t in own if not t.joined_now)]))
            others: list[MembershipTransition] = []
            for chunk in chunks(rooms):
                found = self._transitions_txn(txn, f"room_id IN ({placeholders(len(chunk))})", chunk,
                                              from_stream, to_stream)
                others.extend(t for t in found if t.user_id != user_id)
            return own, others

        return await self._db.run_interaction("get_membership_transitions", _transitions_txn)

    @staticmethod
    def _transitions_txn(txn: Transaction, where: str, args: Sequence[str], from_stream: int,
                         to_stream: int) -> list[MembershipTransition]:
        """(room, user) pairs matching `where` whose joined-ness at `to_stream` differs from `from_stream`."""
        txn.execute(
            "SELECT m.room_id, m.user_id, m.membership, (SELECT p.membership FROM room_memberships AS p"
            "  WHERE p.user_id = m.user_id AND p.room_id = m.room_id AND p.stream_ordering <= ?"
            "  ORDER BY p.stream_ordering DESC LIMIT 1)"
            f" FROM room_memberships AS m WHERE m.{where} AND m.stream_ordering > ? AND m.stream_ordering <= ?"
            " ORDER BY m.stream_ordering",
            (from_stream, *args, from_stream, to_stream),
        )
        first: dict[tuple[str, str], str | None] = {}
        last: dict[tuple[str, str], str] = {}
        for room_id, member, membership, before in txn.fetchall():
            first.setdefault((room_id, member), before)
            last[(room_id, member)] = membership
        return [MembershipTransition(room_id, member, membership == "join")
                for (room_id, member), membership in last.items()
                if (first[(room_id, member)] == "join") != (membership == "join")]

    async def get_joined_users_in_rooms(self, room_ids: Collection[str]) -> dict[str, set[str]]:
        """room -> its joined members."""
        rooms = list(dict.fromkeys(room_ids))
        found: dict[str, set[str]] = {room_id: set() for room_id in rooms}

        def _joined_txn(txn: Transaction) -> None:
            for chunk in chunks(rooms):
                txn.execute(
                    "SELECT room_id, user_id FROM current_memberships"
                    f" WHERE room_id IN ({placeholders(len(chunk))}) AND membership = 'join'",
                    chunk,
                )
                for room_id, user_id in txn.fetchall():
                    found[room_id].add(user_id)

        if rooms:
            await self._db.run_interaction("get_joined_users_in_rooms", _joined_txn)
        return found

    async def get_existing_users(self, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` that are accounts of this server (deactivated ones included)."""
        users = list(dict.fromkeys(user_ids))
        found: set[str] = set()

        def _existing_txn(txn: Transaction) -> None:
            for chunk in chunks(users):
                txn.execute(f"SELECT user_id FROM users WHERE user_id IN ({placeholders(len(chunk))})", chunk)
                found.update(row[0] for row in txn.fetchall())

        if users:
            await self._db.run_interaction("get_existing_users", _existing_txn)
        return found
