"""Persisting events, one transaction each, and reading them back.

`persist_event` is the hot path of every send: in one transaction it takes a stream
ordering, writes the event (its PDU sealed), its prev/auth edges, the room's forward
extremities, the state group after it (a one-entry delta for an accepted state event;
the predecessor's group otherwise), current state, memberships, the client's
transaction id, its relation and, for a redaction, prunes the stored target. After the
commit it updates the caches it is sure about (see `WriteFence`), so the next send in
the room reads extremities, state and events from memory.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

from homeserver.events.event import Event, StateKey, StateMap
from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.database import Database, Transaction
from storage.sealing import Sealer, lookup_digest
from storage.stores.cache import LruCache
from storage.stores.event_fetch import EventFetcher, StoredEvent, chunks, placeholders
from storage.stores.memberships import MembershipQueries
from storage.stores.push_actions import EventPushActions, push_action_statements
from storage.stores.relations import relation_statements, remove_relation_txn
from storage.stores.state import (
    StateStore,
    create_state_group_txn,
    current_state_statement,
    membership_statements,
)
from storage.stores.statement_batch import StatementBatch
from storage.stores.timeline import TimelineQueries
from storage.streams import StreamIdGenerator

RECENT_EVENTS_PER_ROOM = 128

EXTREMITIES_CACHE_ROOMS = 10_000


class TxnIdInUseError(Exception):
    """The client transaction id already names another event (a concurrent retry won)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"transaction id already used for {event_id}")
        self.event_id = event_id


@dataclass(frozen=True)
class PersistedEvent:
    stream_ordering: int
    state_group: int | None  # the state after the event


@dataclass(frozen=True)
class _Outcome:
    persisted: PersistedEvent
    new: bool  # False: the event was already stored, nothing was written
    group_state: StateMap | None = None  # full state of a new group, when known for free
    current_state_delta: dict[StateKey, str | None] | None = None
    in_timeline: bool = False
    became_extremity: bool = False
    redacted_event_id: str | None = None
    pruned_on_arrival: bool = False


@dataclass(frozen=True)
class _Known:
    """What the database already holds about an event about to be persisted."""

    stream_ordering: int | None  # the event is already stored
    txn_event_id: str | None  # the event its transaction id already names
    has_child: bool  # a stored timeline event lists it as a prev event
    redaction_pending: bool  # a redaction of it is stored
    prev_delta_count: int | None  # delta_count of prev_state_group (None: no such group)
    allocated: int | None  # a stream position allocated by the same query (PostgreSQL)


def _domain(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


class EventStore(TimelineQueries, MembershipQueries):
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        stream: StreamIdGenerator,
        state: StateStore,
        fetcher: EventFetcher,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._stream = stream
        self._state = state
        self._rooms_for_user = state.rooms_for_user
        self._fetcher = fetcher
        self._extremities: LruCache[str, tuple[str, ...]] = LruCache(EXTREMITIES_CACHE_ROOMS)
        # room_id -> highest stream ordering of a timeline event this process persisted, exact
        # for positions after `_changes_known_from` (set at the first use).
        self._room_last_change: dict[str, int] = {}
        self._changes_known_from: int | None = None
        # The same for member events: per room, and per user whose membership it is.
        self._room_last_membership: dict[str, int] = {}
        self._user_last_membership: dict[str, int] = {}
        # room -> its latest timeline events persisted here, (stream_ordering, event_id) in order;
        # complete for positions after `_recent_complete_from[room]`. Incremental syncs read
        # them instead of querying: a message wakes every member's sync.
        self._recent: dict[str, list[tuple[int, str]]] = {}
        self._recent_complete_from: dict[str, int] = {}

    # -- writing ---------------------------------------------------------

    async def persist_event(
        self,
        event: Event,
        *,
        prev_state_group: int | None,
        rejected_reason: str | None = None,
        outlier: bool = False,
        update_current_state: bool = True,
        txn_key: tuple[str, str, str] | None = None,
        out_of_band_membership: bool = False,
        push_actions: EventPushActions | None = None,
    ) -> PersistedEvent:
        """Store the event in one transaction; see the module docstring for what that covers.

        `prev_state_group` is the state before the event (None for a create event, or an
        outlier whose state we don't know). A rejected event or an outlier changes neither
        extremities nor current state; `update_current_state=False` keeps a timeline event
        out of current state (the caller resolves state itself, see
        `StateStore.set_current_state`). `out_of_band_membership` makes an outlier member
        event (an invite from another server, or its rejection) the user's membership.
        `txn_key` is (user_id, device_id, txn_id); raises `TxnIdInUseError` if taken.
        `push_actions` (a local event's notification rows) are written with the event, so
        a reader that sees the event sees them.

        A redaction is applied to its target at once (the caller has checked the sender may
        redact it); one whose target arrives later is applied then if both senders are on
        the same server. An event already stored is left as it is.
        """
        if self._changes_known_from is None:
            self._changes_known_from = self._stream.get_current_token()
        blob = self._sealer.seal_json(event.pdu)
        # The client's transaction id is stored as a digest (for look-ups) and sealed.
        txn_row = None if txn_key is None else (
            txn_key[0], txn_key[1], lookup_digest(txn_key[2]), self._sealer.seal_str(txn_key[2])
        )
        prev_state = None if prev_state_group is None else self._state.cached_group(prev_state_group)
        room_token = self._state.room_fence.start_write(event.room_id)
        # Only a redaction changes a stored event, so only it keeps readers from caching.
        redaction_token = self._fetcher.start_redaction() if event.type == "m.room.redaction" else None
        outcome: _Outcome | None = None
        try:
            outcome = await self._db.run_interaction(
                "persist_event",
                self._persist_event_txn,
                event,
                blob,
                prev_state_group,
                prev_state,
                rejected_reason,
                outlier,
                update_current_state,
                txn_row,
                out_of_band_membership,
                push_actions,
            )
        finally:
            alone = self._state.room_fence.finish_write(event.room_id, room_token)
            if event.type == "m.room.member":
                self._rooms_for_user.invalidate()
            if redaction_token is not None:
                self._fetcher.finish_redaction(
                    redaction_token, outcome.redacted_event_id if outcome else None
                )
        if outcome.new:
            self._after_persist(event, outcome, rejected_reason, outlier, alone)
        return outcome.persisted

    def _after_persist(
        self,
        event: Event,
        outcome: _Outcome,
        rejected_reason: str | None,
        outlier: bool,
        alone: bool,
    ) -> None:
        persisted = outcome.persisted
        if not outcome.pruned_on_arrival:
            self._fetcher.prefill(
                StoredEvent(event, persisted.stream_ordering, None, rejected_reason, outlier)
            )
        if persisted.state_group is not None:
            self._state.cache_event_group(event.event_id, persisted.state_group)
            if outcome.group_state is not None:
                self._state.cache_group(persisted.state_group, outcome.group_state)
        self._state.after_current_state_write(event.room_id, outcome.current_state_delta, alone)
        if event.type == "m.room.member" and event.state_key is not None:
            ordering = persisted.stream_ordering
            self._room_last_membership[event.room_id] = max(self._room_last_membership.get(event.room_id, 0), ordering)
            self._user_last_membership[event.state_key] = max(self._user_last_membership.get(event.state_key, 0),
                                                              ordering)
        if outcome.in_timeline:
            # Alone, the cached extremities (if any) were true before and nobody else moved them.
            cached = self._extremities.get(event.room_id) if alone else None
            if cached is None:
                self._extremities.pop(event.room_id)
            else:
                prevs = set(event.prev_event_ids)
                kept = tuple(e for e in cached if e not in prevs)
                self._extremities.set(
                    event.room_id, kept + (event.event_id,) if outcome.became_extremity else kept
                )
            last = self._room_last_change.get(event.room_id, 0)
            self._room_last_change[event.room_id] = max(last, persisted.stream_ordering)
            self._remember_recent(event.room_id, persisted.stream_ordering, event.event_id)

    def _remember_recent(self, room_id: str, stream_ordering: int, event_id: str) -> None:
        recent = self._recent.get(room_id)
        if recent is None:
            assert self._changes_known_from is not None  # set before the first persist
            recent = self._recent[room_id] = []
            self._recent_complete_from[room_id] = self._changes_known_from
        bisect.insort(recent, (stream_ordering, event_id))
        if len(recent) > RECENT_EVENTS_PER_ROOM:
            evicted_ordering, _ = recent.pop(0)
            self._recent_complete_from[room_id] = evicted_ordering

    def forget_purged(self, room_id: str, event_ids: Iterable[str]) -> None:
        """Drop events deleted from the database (retention) from the memory of recent events."""
        recent = self._recent.get(room_id)
        if recent:
            gone = set(event_ids)
            recent[:] = [entry for entry in recent if entry[1] not in gone]

    def memberships_unchanged_since(self, user_id: str, room_ids: Iterable[str], from_stream: int) -> bool:
        """True if memory proves that no member event of `user_id`, nor any in `room_ids`, was
        persisted after `from_stream`; False if it can't tell."""
        if self._changes_known_from is None or from_stream < self._changes_known_from:
            return False
        if self._user_last_membership.get(user_id, 0) > from_stream:
            return False
        return all(self._room_last_membership.get(r, 0) <= from_stream for r in room_ids)

    def recent_event_ids(self, room_id: str, after_stream: int, before_stream: int | None) -> list[str] | None:
        """Event ids of the room's timeline in (after_stream, before_stream), oldest first, from
        memory; None if memory can't answer for that range (then ask the database)."""
        if self._changes_known_from is None or after_stream < self._changes_known_from:
            return None
        recent = self._recent.get(room_id)
        if recent is None:
            return []  # nothing persisted in this room since memory began
        if after_stream < self._recent_complete_from[room_id]:
            return None
        return [event_id for ordering, event_id in recent
                if ordering > after_stream and (before_stream is None or ordering < before_stream)]

    def _persist_event_txn(
        self,
        txn: Transaction,
        event: Event,
        blob: bytes,
        prev_state_group: int | None,
        prev_state: StateMap | None,
        rejected_reason: str | None,
        outlier: bool,
        update_current_state: bool,
        txn_row: tuple[str, str, str, bytes | None] | None,
        out_of_band_membership: bool,
        push_actions: EventPushActions | None,
    ) -> _Outcome:
        # Round trips are what a send costs on PostgreSQL: one query answers every
        # question, one allocates the stream position, one batch writes (more only for
        # state events, redactions, and events redacted before they arrived).
        event_id, room_id = event.event_id, event.room_id
        known = self._lookup_txn(txn, self._stream, event, prev_state_group, txn_row)
        if known.stream_ordering is not None:
            txn.execute(
                "SELECT state_group FROM event_to_state_groups WHERE event_id = ?", (event_id,)
            )
            row = txn.fetchone()
            group = None if row is None else int(row[0])
            return _Outcome(PersistedEvent(known.stream_ordering, group), new=False)
        if known.txn_event_id is not None:
            raise TxnIdInUseError(known.txn_event_id)
        if prev_state_group is not None and known.prev_delta_count is None:
            raise ValueError(f"unknown state group {prev_state_group}")
        accepted = rejected_reason is None
        in_timeline = accepted and not outlier
        stream_ordering = known.allocated if known.allocated is not None else self._stream.get_next_txn(txn)

        redacted_by = None
        if accepted and known.redaction_pending:
            redacted_by = self._pending_redaction_txn(txn, event)
            if redacted_by is not None:
                blob = self._sealer.seal_json(prune_event_dict(event.room_version, event.pdu))

        # State group first: the batch's rows point to it.
        state_group, group_state = prev_state_group, None
        # An outlier's state is unknown unless the caller gives the state before it.
        if accepted and event.is_state() and (prev_state_group is not None or not outlier):
            state_group, group_state = create_state_group_txn(
                txn,
                room_id,
                event_id,
                prev_state_group,
                {event.state_tuple(): event_id},
                prev_state,
                self._state.max_delta_chain,
                known.prev_delta_count,
            )

        batch = StatementBatch()
        if txn_row is not None:
            # A concurrent claim of the key makes PostgreSQL fail this at REPEATABLE READ
            # with a serialisation error; the retry's lookup then sees the winner's row.
            batch.add(
                "INSERT INTO event_txn_ids (user_id, device_id, txn_id, event_id, inserted_ts, sealed_txn_id)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, txn_id) DO NOTHING",
                (*txn_row[:3], event_id, event.origin_server_ts, txn_row[3]),
            )
        batch.add(
            "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type,"
            " state_key, sender, origin_server_ts, depth, membership, contains_url, outlier,"
            " rejected_reason, redacted_by, pdu) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # Never skips a row the lookup saw; the same event persisted concurrently makes
            # PostgreSQL raise a serialisation error instead, and the retry finds it stored.
            " ON CONFLICT (event_id) DO NOTHING",
            (
                stream_ordering,
                event_id,
                room_id,
                event.room_version.identifier,
                event.type,
                event.state_key,
                event.sender,
                event.origin_server_ts,
                event.depth,
                event.membership,
                redacted_by is None and isinstance(event.content.get("url"), str),
                outlier,
                rejected_reason,
                redacted_by,
                blob,
            ),
        )
        batch.add_rows(
            "INSERT INTO event_edges (event_id, prev_event_id)",
            [(event_id, prev) for prev in dict.fromkeys(event.prev_event_ids)],
        )
        batch.add_rows(
            "INSERT INTO event_auth (event_id, auth_id)",
            [(event_id, auth) for auth in dict.fromkeys(event.auth_event_ids)],
        )
        if state_group is not None:
            batch.add(
                "INSERT INTO event_to_state_groups (event_id, state_group) VALUES (?, ?)",
                (event_id, state_group),
            )
        if in_timeline:
            # The event replaces its prev events as an extremity, unless a stored event points to it.
            prevs = list(dict.fromkeys(event.prev_event_ids))
            if prevs:
                batch.add(
                    "DELETE FROM event_forward_extremities"
                    f" WHERE room_id = ? AND event_id IN ({placeholders(len(prevs))})",
                    (room_id, *prevs),
                )
            if not known.has_child:
                batch.add(
                    "INSERT INTO event_forward_extremities (room_id, event_id) VALUES (?, ?)"
                    " ON CONFLICT (room_id, event_id) DO NOTHING",
                    (room_id, event_id),
                )

        current_state_delta = None
        if in_timeline and update_current_state and event.is_state():
            event_type, state_key = event.state_tuple()
            batch.add(*current_state_statement(room_id, event_type, state_key, event_id, event.membership))
            current_state_delta = {(event_type, state_key): event_id}
        if (
            event.type == "m.room.member"
            and accepted
            and event.state_key is not None
            and event.membership is not None
            and ((in_timeline and update_current_state) or out_of_band_membership)
        ):
            batch.extend(
                membership_statements(
                    room_id, event.state_key, event_id, event.sender, event.membership, stream_ordering
                )
            )
        if in_timeline and redacted_by is None:
            batch.extend(relation_statements(event, stream_ordering))
        if in_timeline and push_actions is not None:
            batch.extend(push_action_statements(room_id, event_id, event.sender, stream_ordering, push_actions))
        batch.run(txn)

        redacted_event_id = None
        if in_timeline and event.type == "m.room.redaction" and event.redacts is not None:
            redacted_event_id = self._redact_txn(txn, event)
        return _Outcome(
            PersistedEvent(stream_ordering, state_group),
            new=True,
            group_state=group_state,
            current_state_delta=current_state_delta,
            in_timeline=in_timeline,
            became_extremity=in_timeline and not known.has_child,
            redacted_event_id=redacted_event_id,
            pruned_on_arrival=redacted_by is not None,
        )

    @staticmethod
    def _lookup_txn(
        txn: Transaction,
        stream: StreamIdGenerator,
        event: Event,
        prev_state_group: int | None,
        txn_row: tuple[str, str, str, bytes | None] | None,
    ) -> _Known:
        user_id, device_id, txn_id = txn_row[:3] if txn_row is not None else (None, None, None)
        allocation = stream.allocation_sql(txn)
        txn.execute(
            f"SELECT {allocation or 'NULL'}, (SELECT stream_ordering FROM events WHERE event_id = ?),"
            " (SELECT event_id FROM event_txn_ids"
            "  WHERE user_id = ? AND device_id = ? AND txn_id = ?),"
            " EXISTS (SELECT 1 FROM event_edges AS edge"
            "  JOIN events AS child ON child.event_id = edge.event_id"
            "  WHERE edge.prev_event_id = ? AND NOT child.outlier AND child.rejected_reason IS NULL),"
            " EXISTS (SELECT 1 FROM redactions WHERE redacts = ?),"
            " (SELECT delta_count FROM state_groups WHERE id = ?)",
            (
                event.event_id,
                user_id,
                device_id,
                txn_id,
                event.event_id,
                event.event_id,
                prev_state_group,
            ),
        )
        row = txn.fetchone()
        assert row is not None  # a SELECT without FROM always yields one row
        allocated, stream_ordering, txn_event_id, has_child, redaction_pending, delta_count = row
        if allocated is not None:
            stream.track_allocated(txn, int(allocated))  # unused if the event turns out stored: a gap
        return _Known(
            None if stream_ordering is None else int(stream_ordering),
            txn_event_id,
            bool(has_child),
            bool(redaction_pending),
            None if delta_count is None else int(delta_count),
            None if allocated is None else int(allocated),
        )

    @staticmethod
    def _pending_redaction_txn(txn: Transaction, event: Event) -> str | None:
        """A redaction of this event stored before it, from the sender's own server."""
        txn.execute(
            "SELECT r.event_id, e.sender FROM redactions AS r JOIN events AS e ON e.event_id = r.event_id"
            " WHERE r.redacts = ? AND e.room_id = ? AND e.rejected_reason IS NULL"
            " ORDER BY e.stream_ordering",
            (event.event_id, event.room_id),
        )
        for redaction_id, sender in txn.fetchall():
            if _domain(sender) == _domain(event.sender):
                return redaction_id
        return None

    def _redact_txn(self, txn: Transaction, redaction: Event) -> str | None:
        """Record the redaction and prune its target if we have it: no redacted content stays at rest."""
        target_id = redaction.redacts
        txn.execute(
            "INSERT INTO redactions (event_id, redacts) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING",
            (redaction.event_id, target_id),
        )
        txn.execute(
            "SELECT room_id, room_version, redacted_by, pdu FROM events WHERE event_id = ?",
            (target_id,),
        )
        row = txn.fetchone()
        if row is None or row[0] != redaction.room_id or row[2] is not None:
            return None
        pruned = prune_event_dict(KNOWN_ROOM_VERSIONS[row[1]], self._sealer.open_json(row[3]))
        txn.execute(
            "UPDATE events SET redacted_by = ?, contains_url = FALSE, pdu = ? WHERE event_id = ?",
            (redaction.event_id, self._sealer.seal_json(pruned), target_id),
        )
        remove_relation_txn(txn, target_id)  # type: ignore[arg-type]
        return target_id

    async def delete_txn_ids_before(self, ts: int) -> int:
        """Forget client transaction ids older than `ts` (ms); returns how many."""

        def _delete_txn(txn: Transaction) -> int:
            txn.execute("DELETE FROM event_txn_ids WHERE inserted_ts < ?", (ts,))
            return txn.rowcount

        return await self._db.run_interaction("delete_txn_ids_before", _delete_txn)

    # -- reading ---------------------------------------------------------

    async def get_event(
        self, event_id: str, *, allow_rejected: bool = False, allow_outlier: bool = True
    ) -> StoredEvent | None:
        events = await self._fetcher.get_events(
            [event_id], allow_rejected=allow_rejected, allow_outlier=allow_outlier
        )
        return events.get(event_id)

    async def get_events(
        self, event_ids: Iterable[str], *, allow_rejected: bool = True, allow_outlier: bool = True
    ) -> dict[str, StoredEvent]:
        """The events we have among `event_ids`, rejected ones included unless asked otherwise."""
        return await self._fetcher.get_events(
            event_ids, allow_rejected=allow_rejected, allow_outlier=allow_outlier
        )

    async def get_event_id_for_txn(self, user_id: str, device_id: str, txn_id: str) -> str | None:
        rows = await self._db.execute(
            "get_event_id_for_txn",
            "SELECT event_id FROM event_txn_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?",
            user_id,
            device_id,
            lookup_digest(txn_id),
        )
        return rows[0][0] if rows else None

    async def get_txn_ids_for_events(
        self, user_id: str, device_id: str, event_ids: Iterable[str]
    ) -> dict[str, str]:
        """event_id -> the txn id this device sent it with (for `unsigned.transaction_id`)."""
        ids = list(dict.fromkeys(event_ids))

        def _txn_ids_txn(txn: Transaction) -> dict[str, str]:
            result: dict[str, str] = {}
            for chunk in chunks(ids):
                txn.execute(
                    "SELECT event_id, sealed_txn_id FROM event_txn_ids WHERE user_id = ? AND device_id = ?"
                    f" AND event_id IN ({placeholders(len(chunk))}) AND sealed_txn_id IS NOT NULL",
                    [user_id, device_id, *chunk],
                )
                for event_id, sealed in txn.fetchall():
                    result[event_id] = self._sealer.open(sealed).decode("utf-8")
            return result

        return await self._db.run_interaction("get_txn_ids_for_events", _txn_ids_txn) if ids else {}

    async def get_forward_extremities(self, room_id: str) -> list[str]:
        cached = self._extremities.get(room_id)
        if cached is not None:
            return list(cached)
        token = self._state.room_fence.start_read(room_id)
        rows = await self._db.execute(
            "get_forward_extremities",
            "SELECT event_id FROM event_forward_extremities WHERE room_id = ?",
            room_id,
        )
        extremities = [row[0] for row in rows]
        if extremities and self._state.room_fence.read_still_valid(room_id, token):
            self._extremities.set(room_id, tuple(extremities))
        return extremities

    async def get_max_depth(self, event_ids: Iterable[str]) -> int:
        """The greatest depth among the events we have (0 if none); from the event cache when warm."""
        events = await self._fetcher.get_events(event_ids)
        return max((stored.event.depth for stored in events.values()), default=0)

    async def get_rooms_changed_since(self, room_ids: Iterable[str], from_stream: int) -> set[str]:
        """The rooms among `room_ids` with timeline events after `from_stream`.

        From memory for positions since this process started writing; a query otherwise.
        """
        if self._changes_known_from is None:
            self._changes_known_from = self._stream.get_current_token()
        room_ids = list(dict.fromkeys(room_ids))
        if from_stream >= self._changes_known_from:
            return {r for r in room_ids if self._room_last_change.get(r, 0) > from_stream}
        return await self._db.run_interaction(
            "get_rooms_changed_since", self._rooms_changed_txn, room_ids, from_stream
        )

    @staticmethod
    def _rooms_changed_txn(txn: Transaction, room_ids: list[str], from_stream: int) -> set[str]:
        changed: set[str] = set()
        for chunk in chunks(room_ids):
            txn.execute(
                "SELECT DISTINCT room_id FROM events"
                f" WHERE room_id IN ({placeholders(len(chunk))}) AND stream_ordering > ?"
                " AND NOT outlier AND rejected_reason IS NULL",
                [*chunk, from_stream],
            )
            changed.update(row[0] for row in txn.fetchall())
        return changed
