"""Purging expired events from the database, one small transaction per batch.

A room is purged in (origin_server_ts, stream_ordering) order from where the last batch stopped
(`retention_purge_progress`), so a pass never walks what it already did and a restart resumes.
Each expired event is either deleted with its rows (edges, relations, push actions, transaction
ids), or kept because the room's graph still needs it:

- current state is kept whole (a room keeps its name however old the event that set it);
- other state events become pruned stubs: state groups name them, and the rules of who may do
  what and see what read them (the pruned form keeps exactly the keys those rules need);
- a forward extremity, which the next event will point to, becomes a pruned stub;
- the events of a user under a legal hold are kept whole.

The kept ones are remembered in `retention_kept` and looked at again on every pass, so an event
that stops being current state or an extremity, or whose sender's hold is released, goes then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.database import Database, Transaction
from storage.sealing import Sealer
from storage.stores.event_fetch import EventFetcher, placeholders
from storage.stores.events import EventStore
from storage.stores.relations import remove_relation_txn
from storage.stores.statement_batch import StatementBatch
from storage.stores.timeline import _IN_TIMELINE as IN_TIMELINE
from storage.stores.timeline import Direction

CURRENT_STATE = "current_state"
EXTREMITY = "extremity"
HELD = "held"


@dataclass
class PurgeBatch:
    """What one batch did; `done` when the room has no more expired events to look at."""

    done: bool = False
    deleted: int = 0
    stubbed: int = 0
    kept: int = 0
    bytes_purged: int = 0
    touched: list[str] = field(default_factory=list)  # deleted or pruned: caches must drop them
    deleted_ids: list[str] = field(default_factory=list)
    notified_users: set[str] = field(default_factory=set)  # whose push action rows went


@dataclass(frozen=True)
class _Row:
    event_id: str
    stream_ordering: int
    origin_server_ts: int
    room_version: str
    is_state: bool
    sender: str
    pruned: bool  # already pruned (redacted or a stub)
    size: int


_ROW_COLUMNS = (
    "e.event_id, e.stream_ordering, e.origin_server_ts, e.room_version, e.state_key IS NOT NULL,"
    " e.sender, e.redacted_by IS NOT NULL, LENGTH(e.pdu)"
)


def _row(values: tuple) -> _Row:
    event_id, stream, ts, version, is_state, sender, pruned, size = values
    return _Row(event_id, int(stream), int(ts), version, bool(is_state), sender, bool(pruned), int(size or 0))


class RetentionStore:
    def __init__(self, db: Database, sealer: Sealer, fetcher: EventFetcher, events: EventStore) -> None:
        self._db = db
        self._sealer = sealer
        self._fetcher = fetcher
        self._events = events

    # -- rooms and policies ----------------------------------------------

    async def rooms_with_policy_events(self) -> dict[str, str | None]:
        """Every room we hold -> the event ID of its current m.room.retention (None: it has none)."""
        rows = await self._db.execute(
            "retention_rooms",
            "SELECT r.room_id, c.event_id FROM rooms AS r LEFT JOIN current_state_events AS c"
            " ON c.room_id = r.room_id AND c.type = 'm.room.retention' AND c.state_key = ''",
        )
        return {room_id: event_id for room_id, event_id in rows}

    # -- reading around expired events ------------------------------------

    async def nearest_unexpired_event(self, room_id: str, ts: int, direction: Direction, cutoff_ts: int) -> str | None:
        """/timestamp_to_event with events sent before `cutoff_ts` skipped unless current state:
        the last such event at or before `ts` ("b"), or the first at or after it ("f").

        Two indexed look-ups rather than one scan, as a room may hold many expired events the
        purge has not reached yet: the nearest unexpired event (a range of the room's
        timestamps), and the nearest expired event of the room's current state (bounded by the
        size of that state); the nearer of the two wins.
        """

        backwards = direction == "b"
        order = "DESC" if backwards else "ASC"
        ordering = f" ORDER BY e.origin_server_ts {order}, e.stream_ordering {order} LIMIT 1"
        unexpired, unexpired_args = (
            ("e.origin_server_ts BETWEEN ? AND ?", (cutoff_ts, ts)) if backwards
            else ("e.origin_server_ts >= ?", (max(ts, cutoff_ts),))
        )

        def _nearest_txn(txn: Transaction) -> str | None:
            txn.execute(
                "SELECT e.event_id, e.origin_server_ts, e.stream_ordering FROM events AS e"
                f" WHERE e.room_id = ? AND {IN_TIMELINE} AND {unexpired}" + ordering,
                (room_id, *unexpired_args),
            )
            candidates = txn.fetchall()
            txn.execute(
                "SELECT e.event_id, e.origin_server_ts, e.stream_ordering FROM current_state_events AS c"
                " JOIN events AS e ON e.event_id = c.event_id"
                f" WHERE c.room_id = ? AND {IN_TIMELINE} AND e.origin_server_ts < ?"
                f" AND e.origin_server_ts {'<=' if backwards else '>='} ?" + ordering,
                (room_id, cutoff_ts, ts),
            )
            candidates += txn.fetchall()
            if not candidates:
                return None
            nearest = (max if backwards else min)(candidates, key=lambda row: (int(row[1]), int(row[2])))
            return nearest[0]

        return await self._db.run_interaction("retention_nearest_unexpired_event", _nearest_txn)

    # -- purging ---------------------------------------------------------

    async def purge_batch(
        self, room_id: str, cutoff_ts: int, *, limit: int, held_users: Collection[str]
    ) -> PurgeBatch:
        """Purge up to `limit` events of the room sent before `cutoff_ts`, after the room's progress.

        One transaction; the event caches forget what it deleted or pruned once it commits.
        """
        return await self._fenced(
            room_id, "retention_purge_batch", self._purge_batch_txn, room_id, cutoff_ts, limit, frozenset(held_users)
        )

    async def revisit_kept(
        self, room_id: str, cutoff_ts: int, *, after_event_id: str, limit: int, held_users: Collection[str]
    ) -> tuple[PurgeBatch, str | None]:
        """Look again at up to `limit` kept events of the room (by event ID after `after_event_id`);
        returns what was done and the event ID to continue after (None: all looked at)."""
        result: list[str | None] = [None]

        def _revisit_txn(txn: Transaction) -> PurgeBatch:
            txn.execute(
                f"SELECT {_ROW_COLUMNS}, k.reason FROM retention_kept AS k"
                " JOIN events AS e ON e.event_id = k.event_id"
                " WHERE k.room_id = ? AND k.event_id > ? ORDER BY k.event_id LIMIT ?",
                (room_id, after_event_id, limit),
            )
            fetched = txn.fetchall()
            result[0] = fetched[-1][0] if len(fetched) == limit else None
            rows = [_row(values[:-1]) for values in fetched if int(values[2]) < cutoff_ts]
            reasons = {values[0]: values[-1] for values in fetched}
            batch = PurgeBatch()
            self._handle_txn(txn, room_id, rows, frozenset(held_users), batch, reasons)
            return batch

        batch = await self._fenced(room_id, "retention_revisit_kept", _revisit_txn)
        return batch, result[0]

    async def _fenced(self, room_id: str, desc: str, fn: Callable[..., PurgeBatch], *args: Any) -> PurgeBatch:
        # While the transaction runs no reader may cache what it is about to delete or prune.
        token = self._fetcher.start_redaction()
        try:
            batch: PurgeBatch = await self._db.run_interaction(desc, fn, *args)
        finally:
            self._fetcher.finish_redaction(token, None)
        self._fetcher.forget(batch.touched)
        self._events.forget_purged(room_id, batch.deleted_ids)
        return batch

    def _purge_batch_txn(
        self, txn: Transaction, room_id: str, cutoff_ts: int, limit: int, held_users: frozenset[str]
    ) -> PurgeBatch:
        txn.execute(
            "SELECT purged_ts, purged_stream FROM retention_purge_progress WHERE room_id = ?", (room_id,)
        )
        progress = txn.fetchone()
        after_ts, after_stream = (int(progress[0]), int(progress[1])) if progress else (-1, -1)
        txn.execute(
            f"SELECT {_ROW_COLUMNS} FROM events AS e"
            " WHERE e.room_id = ? AND e.origin_server_ts < ?"
            " AND (e.origin_server_ts > ? OR (e.origin_server_ts = ? AND e.stream_ordering > ?))"
            " ORDER BY e.origin_server_ts, e.stream_ordering LIMIT ?",
            (room_id, cutoff_ts, after_ts, after_ts, after_stream, limit),
        )
        rows = [_row(values) for values in txn.fetchall()]
        batch = PurgeBatch(done=len(rows) < limit)
        if not rows:
            return batch
        self._handle_txn(txn, room_id, rows, held_users, batch, {})
        last = rows[-1]
        txn.execute(
            "INSERT INTO retention_purge_progress (room_id, purged_ts, purged_stream) VALUES (?, ?, ?)"
            " ON CONFLICT (room_id) DO UPDATE SET purged_ts = excluded.purged_ts,"
            " purged_stream = excluded.purged_stream",
            (room_id, last.origin_server_ts, last.stream_ordering),
        )
        return batch

    def _handle_txn(
        self,
        txn: Transaction,
        room_id: str,
        rows: Sequence[_Row],
        held_users: frozenset[str],
        batch: PurgeBatch,
        kept_before: dict[str, str],
    ) -> None:
        """Delete, prune or keep each expired row; `kept_before` are those already in retention_kept."""
        if not rows:
            return
        ids = [r.event_id for r in rows]
        current = self._among_txn(txn, "current_state_events", room_id, ids)
        extremities = self._among_txn(txn, "event_forward_extremities", room_id, ids)
        keep: dict[str, str] = {}
        stub: list[_Row] = []
        delete: list[_Row] = []
        for row in rows:
            if row.sender in held_users:
                keep[row.event_id] = HELD
            elif row.event_id in current:
                keep[row.event_id] = CURRENT_STATE
            elif row.is_state:
                stub.append(row)  # state groups name it: a stub for good
            elif row.event_id in extremities:
                keep[row.event_id] = EXTREMITY
                if kept_before.get(row.event_id) != EXTREMITY:
                    stub.append(row)  # not yet a stub
            else:
                delete.append(row)
        self._stub_txn(txn, stub, batch)
        self._delete_txn(txn, room_id, delete, batch)
        statements = StatementBatch()
        expired = set(ids)
        settled = [i for i in kept_before if i in expired and i not in keep]
        if settled:
            statements.add(f"DELETE FROM retention_kept WHERE event_id IN ({placeholders(len(settled))})", settled)
        changed = [(i, room_id, reason) for i, reason in keep.items() if kept_before.get(i) != reason]
        statements.add_rows(
            "INSERT INTO retention_kept (event_id, room_id, reason)", changed,
            " ON CONFLICT (event_id) DO UPDATE SET reason = excluded.reason",
        )
        statements.run(txn)
        batch.kept += len(keep)

    @staticmethod
    def _among_txn(txn: Transaction, table: str, room_id: str, ids: list[str]) -> set[str]:
        txn.execute(
            f"SELECT event_id FROM {table} WHERE room_id = ? AND event_id IN ({placeholders(len(ids))})",
            [room_id, *ids],
        )
        return {row[0] for row in txn.fetchall()}

    def _stub_txn(self, txn: Transaction, rows: list[_Row], batch: PurgeBatch) -> None:
        """Replace the events' PDUs by their pruned form: what the graph needs, no content."""
        todo = [r for r in rows if not r.pruned]
        if not todo:
            return
        txn.execute(
            f"SELECT event_id, pdu FROM events WHERE event_id IN ({placeholders(len(todo))})",
            [r.event_id for r in todo],
        )
        blobs = dict(txn.fetchall())
        updates = []
        for row in todo:
            pdu = self._sealer.open_json(blobs[row.event_id])
            sealed = self._sealer.seal_json(prune_event_dict(KNOWN_ROOM_VERSIONS[row.room_version], pdu))
            updates.append((sealed, row.event_id))
            batch.bytes_purged += max(0, row.size - len(sealed))
            batch.touched.append(row.event_id)
        txn.execute_many("UPDATE events SET pdu = ?, contains_url = FALSE WHERE event_id = ?", updates)
        for row in todo:
            remove_relation_txn(txn, row.event_id)
        batch.stubbed += len(todo)

    @staticmethod
    def _delete_txn(txn: Transaction, room_id: str, rows: list[_Row], batch: PurgeBatch) -> None:
        """Delete the events and every row that exists because of them."""
        if not rows:
            return
        ids = [r.event_id for r in rows]
        marks = placeholders(len(ids))
        txn.execute(f"SELECT event_id FROM event_relations WHERE event_id IN ({marks})", ids)
        for (event_id,) in txn.fetchall():
            remove_relation_txn(txn, event_id)  # keeps the thread summaries right
        txn.execute(f"DELETE FROM event_push_actions WHERE event_id IN ({marks}) RETURNING user_id", ids)
        batch.notified_users.update(row[0] for row in txn.fetchall())
        statements = StatementBatch()
        for table, column in (
            ("threads", "thread_id"),
            ("event_txn_ids", "event_id"),
            ("redactions", "event_id"),
            ("event_edges", "event_id"),
            ("event_auth", "event_id"),
            ("event_to_state_groups", "event_id"),
            ("retention_kept", "event_id"),
            ("events", "event_id"),
        ):
            statements.add(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        statements.run(txn)
        batch.deleted += len(rows)
        batch.bytes_purged += sum(r.size for r in rows)
        batch.deleted_ids.extend(ids)
        batch.touched.extend(ids)

    # -- purge jobs ------------------------------------------------------

    async def record_pass(self, job: str, started_ts: int, finished_ts: int) -> None:
        await self._db.execute(
            "retention_record_pass",
            "INSERT INTO retention_purge_jobs (job, pass_started_ts, pass_finished_ts) VALUES (?, ?, ?)"
            " ON CONFLICT (job) DO UPDATE SET pass_started_ts = excluded.pass_started_ts,"
            " pass_finished_ts = excluded.pass_finished_ts",
            job, started_ts, finished_ts,
        )

    async def last_passes(self) -> dict[str, int]:
        """job -> when its last complete pass started."""
        rows = await self._db.execute("retention_last_passes", "SELECT job, pass_started_ts FROM retention_purge_jobs")
        return {job: int(started) for job, started in rows}

    # -- media -----------------------------------------------------------

    async def local_media_older_than(self, ts: int, limit: int, skip_users: Collection[str]) -> list[str]:
        """IDs of up to `limit` local media uploaded before `ts` (ms), oldest first, not by `skip_users`."""
        skip = sorted(skip_users)
        condition = f" AND user_id NOT IN ({placeholders(len(skip))})" if skip else ""
        rows = await self._db.execute(
            "retention_old_media",
            f"SELECT media_id FROM local_media WHERE created_ts < ?{condition} ORDER BY created_ts LIMIT ?",
            ts, *skip, limit,
        )
        return [row[0] for row in rows]
