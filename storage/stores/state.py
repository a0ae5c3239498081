"""Room state: state groups stored as bounded delta chains, and each room's current state.

A state group is the full state of a room at some point (after an event, or a resolution
of several branches). Storing each one in full would cost events × state size rows, so a
group is stored as its changes against a parent group; after `max_delta_chain` deltas the
next group is a full snapshot, which bounds the work of reading any group to one query
over at most one snapshot and `max_delta_chain` small deltas. Non-state events reuse
their predecessor's group, so storage grows with state *changes* only.

Groups never change once written, so resolved groups are cached without invalidation.
Current state lives in its own table, kept by the event writer, with a per-room cache
that the writer updates after commit (see `WriteFence`).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from homeserver.events.event import StateKey, StateMap
from storage.database import Database, Transaction
from storage.stores.cache import LruCache, WriteFence
from storage.stores.memberships import RoomsForUserCache
from storage.stores.event_fetch import MAX_BIND, EventFetcher, StoredEvent, chunks, placeholders
from storage.stores.statement_batch import Statement, StatementBatch

MAX_DELTA_CHAIN = 50
# Cache budgets, in state entries (a (type, state_key) -> event_id pair each).
GROUP_CACHE_ENTRIES = 500_000
CURRENT_STATE_CACHE_ENTRIES = 500_000
EVENT_GROUP_CACHE_SIZE = 50_000

# (type, state_key), with state_key None meaning every state key of that type.
StateFilter = Iterable[tuple[str, str | None]]
# A change to a state map: event_id None removes the key.
StateDelta = Mapping[StateKey, str | None]


def filter_state(state: Mapping[StateKey, str], types: StateFilter | None) -> StateMap:
    """A new map with the entries of `state` that `types` asks for (all if None)."""
    if types is None:
        return dict(state)
    exact: set[StateKey] = set()
    whole_types: set[str] = set()
    for event_type, state_key in types:
        if state_key is None:
            whole_types.add(event_type)
        else:
            exact.add((event_type, state_key))
    result = {key: state[key] for key in exact if key in state}
    if whole_types:
        result.update({key: value for key, value in state.items() if key[0] in whole_types})
    return result


def _state_filter_sql(types: StateFilter, prefix: str = "") -> tuple[str, list[str]]:
    """A SQL condition (and its arguments) matching `types` on `type`/`state_key` columns."""
    clauses: list[str] = []
    args: list[str] = []
    for event_type, state_key in dict.fromkeys(types):
        if state_key is None:
            clauses.append(f"{prefix}type = ?")
            args.append(event_type)
        else:
            clauses.append(f"({prefix}type = ? AND {prefix}state_key = ?)")
            args.extend((event_type, state_key))
    return ("(" + " OR ".join(clauses) + ")") if clauses else "FALSE", args


def apply_delta(state: Mapping[StateKey, str], delta: StateDelta) -> StateMap:
    result = dict(state)
    for key, event_id in delta.items():
        if event_id is None:
            result.pop(key, None)
        else:
            result[key] = event_id
    return result


def load_state_groups_txn(txn: Transaction, groups: Iterable[int]) -> dict[int, StateMap]:
    """The full state of each group that exists: one query per chunk, following the chains."""
    result: dict[int, StateMap] = {}
    for chunk in chunks(list(dict.fromkeys(groups))):
        # Group ids grow along a chain (a parent always exists before its child), so
        # ordering by id applies the snapshot first and then each delta in turn.
        txn.execute(
            "WITH RECURSIVE chain (start_group, group_id, prev_group) AS ("
            f" SELECT id, id, prev_group FROM state_groups WHERE id IN ({placeholders(len(chunk))})"
            " UNION ALL"
            " SELECT chain.start_group, g.id, g.prev_group"
            " FROM chain JOIN state_groups AS g ON g.id = chain.prev_group"
            ")"
            " SELECT chain.start_group, e.type, e.state_key, e.event_id"
            " FROM chain LEFT JOIN state_group_entries AS e ON e.state_group = chain.group_id"
            " ORDER BY chain.start_group, chain.group_id",
            chunk,
        )
        for start_group, event_type, state_key, event_id in txn.fetchall():
            state = result.setdefault(int(start_group), {})
            if event_type is None:
                continue  # a group with no entries of its own (LEFT JOIN)
            if event_id is None:
                state.pop((event_type, state_key), None)
            else:
                state[(event_type, state_key)] = event_id
    return result


def create_state_group_txn(
    txn: Transaction,
    room_id: str,
    event_id: str | None,
    prev_group: int | None,
    delta: StateDelta,
    prev_state: Mapping[StateKey, str] | None,
    max_delta_chain: int,
    prev_delta_count: int | None = None,
) -> tuple[int, StateMap | None]:
    """Store the state `prev_group` + `delta` as a new group.

    A delta against `prev_group` while the chain is short, a full snapshot otherwise (or
    when there is no parent). `prev_state` is the parent's state if the caller has it
    cached; it saves a query when a snapshot is due, as `prev_delta_count` (the parent's
    `delta_count`) does if the caller looked it up already. Returns the new group's id
    and its full state when known without extra work (None otherwise).
    """
    if prev_group is None:
        full = apply_delta({}, delta)
        return _insert_group_txn(txn, room_id, event_id, None, 0, full), full
    if prev_delta_count is None:
        txn.execute("SELECT delta_count FROM state_groups WHERE id = ?", (prev_group,))
        row = txn.fetchone()
        if row is None:
            raise ValueError(f"unknown state group {prev_group}")
        prev_delta_count = int(row[0])
    delta_count = prev_delta_count + 1
    if delta_count > max_delta_chain:
        if prev_state is None:
            prev_state = load_state_groups_txn(txn, [prev_group])[prev_group]
        full = apply_delta(prev_state, delta)
        return _insert_group_txn(txn, room_id, event_id, None, 0, full), full
    group = _insert_group_txn(txn, room_id, event_id, prev_group, delta_count, delta)
    return group, None if prev_state is None else apply_delta(prev_state, delta)


def _insert_group_txn(
    txn: Transaction,
    room_id: str,
    event_id: str | None,
    prev_group: int | None,
    delta_count: int,
    entries: StateDelta,
) -> int:
    txn.execute(
        "INSERT INTO state_groups (room_id, event_id, prev_group, delta_count)"
        " VALUES (?, ?, ?, ?) RETURNING id",
        (room_id, event_id, prev_group, delta_count),
    )
    group = int(txn.fetchone()[0])  # type: ignore[index]
    batch = StatementBatch()
    rows = [(group, key[0], key[1], event_id) for key, event_id in entries.items()]
    for chunk in chunks(rows, MAX_BIND // 4):
        batch.add_rows("INSERT INTO state_group_entries (state_group, type, state_key, event_id)", chunk)
    batch.run(txn)
    return group


class StateStore:
    def __init__(
        self,
        db: Database,
        fetcher: EventFetcher,
        *,
        max_delta_chain: int = MAX_DELTA_CHAIN,
        group_cache_entries: int = GROUP_CACHE_ENTRIES,
        current_state_cache_entries: int = CURRENT_STATE_CACHE_ENTRIES,
    ) -> None:
        if max_delta_chain < 0:
            raise ValueError("max_delta_chain must be >= 0")
        self._db = db
        self._fetcher = fetcher
        self.max_delta_chain = max_delta_chain
        # Shared with the event store's membership queries, which read it; writers invalidate it.
        self.rooms_for_user = RoomsForUserCache()
        self._groups: LruCache[int, StateMap] = LruCache(group_cache_entries, lambda s: len(s) + 1)
        self._current: LruCache[str, StateMap] = LruCache(
            current_state_cache_entries, lambda s: len(s) + 1
        )
        # event_id -> the group after it; never changes once written.
        self._event_groups: LruCache[str, int] = LruCache(EVENT_GROUP_CACHE_SIZE)
        # Writers of a room's events/current state bracket their transaction with it.
        self.room_fence = WriteFence()

    # -- state groups ----------------------------------------------------

    async def get_state_group_for_event(self, event_id: str) -> int | None:
        """The group holding the state *after* the event."""
        return (await self.get_state_groups_for_events([event_id])).get(event_id)

    async def get_state_groups_for_events(self, event_ids: Iterable[str]) -> dict[str, int]:
        """event_id -> state group after it; events without one are absent."""
        result: dict[str, int] = {}
        missing: list[str] = []
        for event_id in dict.fromkeys(event_ids):
            group = self._event_groups.get(event_id)
            if group is None:
                missing.append(event_id)
            else:
                result[event_id] = group
        if missing:
            loaded = await self._db.run_interaction(
                "get_state_groups_for_events", self._groups_for_events_txn, missing
            )
            for event_id, group in loaded.items():
                self._event_groups.set(event_id, group)
            result.update(loaded)
        return result

    @staticmethod
    def _groups_for_events_txn(txn: Transaction, event_ids: list[str]) -> dict[str, int]:
        result: dict[str, int] = {}
        for chunk in chunks(event_ids):
            txn.execute(
                "SELECT event_id, state_group FROM event_to_state_groups"
                f" WHERE event_id IN ({placeholders(len(chunk))})",
                chunk,
            )
            result.update((event_id, int(group)) for event_id, group in txn.fetchall())
        return result

    async def get_state_for_group(self, group: int, types: StateFilter | None = None) -> StateMap:
        """The state of the group (filtered by `types`); raises KeyError for an unknown group."""
        states = await self.get_state_for_groups([group], types)
        if group not in states:
            raise KeyError(f"unknown state group {group}")
        return states[group]

    async def get_state_for_groups(
        self, groups: Iterable[int], types: StateFilter | None = None
    ) -> dict[int, StateMap]:
        """group -> state, for the groups that exist: cache hits, then one query for the rest."""
        wanted = list(dict.fromkeys(groups))
        full: dict[int, StateMap] = {}
        missing = []
        for group in wanted:
            cached = self._groups.get(group)
            if cached is None:
                missing.append(group)
            else:
                full[group] = cached
        if missing:
            loaded = await self._db.run_interaction(
                "get_state_for_groups", load_state_groups_txn, missing
            )
            for group, state in loaded.items():
                self._groups.set(group, state)
                full[group] = state
        return {group: filter_state(state, types) for group, state in full.items()}

    async def get_state_ids_for_events(
        self, event_ids: Iterable[str], types: StateFilter | None = None
    ) -> dict[str, StateMap]:
        """event_id -> state after it, for events that have a state group (two queries at most)."""
        groups = await self.get_state_groups_for_events(event_ids)
        states = await self.get_state_for_groups(set(groups.values()), types)
        return {event_id: states[group] for event_id, group in groups.items() if group in states}

    async def store_state_group(
        self,
        room_id: str,
        event_id: str | None,
        prev_group: int | None,
        delta: StateDelta | None,
        full_state: Mapping[StateKey, str] | None,
    ) -> int:
        """Store a state computed elsewhere (a resolution, or state received over federation).

        Give either `delta` (changes against `prev_group`; event_id None removes a key) or
        `full_state`; with both `prev_group` and `full_state` the delta is worked out here.
        A delta as large as the state itself is stored as a snapshot instead, and a state
        equal to `prev_group`'s is that group.
        """
        if (delta is None) == (full_state is None):
            raise ValueError("give exactly one of delta and full_state")
        if prev_group is None and full_state is None:
            full_state = {k: v for k, v in delta.items() if v is not None}  # type: ignore[union-attr]
        prev_state = None if prev_group is None else self._groups.get(prev_group)
        group, state = await self._db.run_interaction(
            "store_state_group",
            self._store_state_group_txn,
            room_id,
            event_id,
            prev_group,
            delta,
            full_state,
            prev_state,
        )
        if state is not None:
            self._groups.set(group, state)
        return group

    def _store_state_group_txn(
        self,
        txn: Transaction,
        room_id: str,
        event_id: str | None,
        prev_group: int | None,
        delta: StateDelta | None,
        full_state: Mapping[StateKey, str] | None,
        prev_state: Mapping[StateKey, str] | None,
    ) -> tuple[int, StateMap | None]:
        if prev_group is not None and full_state is not None:
            if prev_state is None:
                loaded = load_state_groups_txn(txn, [prev_group])
                if prev_group not in loaded:
                    raise ValueError(f"unknown state group {prev_group}")
                prev_state = loaded[prev_group]
            changes: dict[StateKey, str | None] = {
                key: event_id
                for key, event_id in full_state.items()
                if prev_state.get(key) != event_id
            }
            changes.update({key: None for key in prev_state if key not in full_state})
            if not changes:
                return prev_group, dict(prev_state)  # e.g. a resolution that changed nothing
            if len(changes) >= len(full_state):
                prev_group, delta = None, full_state
            else:
                delta = changes
        assert delta is not None or full_state is not None
        return create_state_group_txn(
            txn,
            room_id,
            event_id,
            prev_group,
            delta if delta is not None else full_state,  # type: ignore[arg-type]
            prev_state,
            self.max_delta_chain,
        )

    # -- current state ---------------------------------------------------

    async def get_current_state(self, room_id: str, types: StateFilter | None = None) -> StateMap:
        """The room's current state ids (filtered by `types`); {} for a room we have no state of."""
        cached = self._current.get(room_id)
        if cached is None:
            token = self.room_fence.start_read(room_id)
            cached = await self._db.run_interaction(
                "get_current_state", self._current_state_txn, room_id
            )
            if self.room_fence.read_still_valid(room_id, token):
                self._current.set(room_id, cached)
        return filter_state(cached, types)

    @staticmethod
    def _current_state_txn(txn: Transaction, room_id: str) -> StateMap:
        txn.execute(
            "SELECT type, state_key, event_id FROM current_state_events WHERE room_id = ?",
            (room_id,),
        )
        return {(t, k): e for t, k, e in txn.fetchall()}

    async def get_current_state_events(
        self, room_id: str, keys: StateFilter | None = None
    ) -> dict[StateKey, StoredEvent]:
        """The current state events themselves (the ids from the cache, the events in one query)."""
        state = await self.get_current_state(room_id, keys)
        events = await self._fetcher.get_events(state.values())
        return {key: events[event_id] for key, event_id in state.items() if event_id in events}

    async def get_current_state_for_rooms(
        self, room_ids: Iterable[str], keys: StateFilter | None = None, *, cache_misses: bool = False
    ) -> dict[str, StateMap]:
        """room_id -> its current state ids (only `keys` if given), for many rooms in one query.

        `cache_misses` reads the whole state of rooms not in the cache and keeps it there (as
        `get_current_state` does), for callers that come back to the same rooms often.
        """
        keys = None if keys is None else list(keys)
        result: dict[str, StateMap] = {}
        missing: list[str] = []
        for room_id in dict.fromkeys(room_ids):
            cached = self._current.get(room_id)
            if cached is None:
                missing.append(room_id)
            else:
                result[room_id] = filter_state(cached, keys)
        if missing and cache_misses:
            tokens = {room_id: self.room_fence.start_read(room_id) for room_id in missing}
            whole = await self._db.run_interaction(
                "get_current_state_for_rooms", self._current_state_for_rooms_txn, missing, None
            )
            for room_id, state in whole.items():
                if self.room_fence.read_still_valid(room_id, tokens[room_id]):
                    self._current.set(room_id, state)
                result[room_id] = filter_state(state, keys)
        elif missing:
            result.update(
                await self._db.run_interaction(
                    "get_current_state_for_rooms", self._current_state_for_rooms_txn, missing, keys
                )
            )
        return result

    async def get_current_state_events_for_rooms(
        self, room_ids: Iterable[str], keys: StateFilter | None = None, *, cache_misses: bool = False
    ) -> dict[str, dict[StateKey, StoredEvent]]:
        """room_id -> its current state events (only `keys` if given): two queries at most."""
        states = await self.get_current_state_for_rooms(room_ids, keys, cache_misses=cache_misses)
        events = await self._fetcher.get_events(
            event_id for state in states.values() for event_id in state.values()
        )
        return {
            room_id: {key: events[e] for key, e in state.items() if e in events}
            for room_id, state in states.items()
        }

    @staticmethod
    def _current_state_for_rooms_txn(
        txn: Transaction, room_ids: list[str], keys: list[tuple[str, str | None]] | None
    ) -> dict[str, StateMap]:
        result: dict[str, StateMap] = {room_id: {} for room_id in room_ids}
        condition, key_args = ("TRUE", []) if keys is None else _state_filter_sql(keys)
        for chunk in chunks(room_ids):
            txn.execute(
                "SELECT room_id, type, state_key, event_id FROM current_state_events"
                f" WHERE room_id IN ({placeholders(len(chunk))}) AND {condition}",
                [*chunk, *key_args],
            )
            for room_id, event_type, state_key, event_id in txn.fetchall():
                result[room_id][(event_type, state_key)] = event_id
        return result

    async def set_current_state(self, room_id: str, state: Mapping[StateKey, str]) -> None:
        """Replace the room's current state (after a resolution across branches).

        Every event named must be stored (as an outlier at least). Membership tables follow
        the member events that enter or leave current state.
        """
        token = self.room_fence.start_write(room_id)
        try:
            delta = await self._db.run_interaction(
                "set_current_state", self._set_current_state_txn, room_id, dict(state)
            )
        finally:
            alone = self.room_fence.finish_write(room_id, token)
        self.after_current_state_write(room_id, delta, alone)
        self.rooms_for_user.invalidate()  # a state reset can change memberships

    @staticmethod
    def _set_current_state_txn(
        txn: Transaction, room_id: str, state: StateMap
    ) -> dict[StateKey, str | None]:
        old = StateStore._current_state_txn(txn, room_id)
        delta: dict[StateKey, str | None] = {k: v for k, v in state.items() if old.get(k) != v}
        delta.update({key: None for key in old if key not in state})
        removed = [(room_id, t, k) for (t, k), e in delta.items() if e is None]
        txn.execute_many(
            "DELETE FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?",
            removed,
        )
        changed = [e for e in delta.values() if e is not None]
        rows: list[tuple] = []
        for chunk in chunks(changed):
            txn.execute(
                "SELECT event_id, type, state_key, sender, membership, stream_ordering FROM events"
                f" WHERE event_id IN ({placeholders(len(chunk))})",
                chunk,
            )
            rows.extend(txn.fetchall())
        if len(rows) != len(set(changed)):
            raise ValueError(f"current state of {room_id} names events that are not stored")
        batch = StatementBatch()
        for event_id, event_type, state_key, sender, membership, stream_ordering in rows:
            batch.add(*current_state_statement(room_id, event_type, state_key, event_id, membership))
            if event_type == "m.room.member" and membership is not None:
                batch.extend(
                    membership_statements(
                        room_id, state_key, event_id, sender, membership, int(stream_ordering)
                    )
                )
        for (event_type, state_key), event_id in delta.items():
            if event_id is None and event_type == "m.room.member":
                batch.add(
                    "DELETE FROM current_memberships WHERE room_id = ? AND user_id = ?",
                    (room_id, state_key),
                )
        batch.run(txn)
        return delta

    def after_current_state_write(
        self, room_id: str, delta: StateDelta | None, alone: bool
    ) -> None:
        """Called by writers after their transaction: update the cache, or drop it if unsure."""
        if not delta:
            return
        cached = self._current.get(room_id)
        if alone and delta is not None and cached is not None:
            self._current.set(room_id, apply_delta(cached, delta))
        else:
            self._current.pop(room_id)

    def cache_event_group(self, event_id: str, group: int) -> None:
        self._event_groups.set(event_id, group)

    def cache_group(self, group: int, state: StateMap) -> None:
        """Remember a group's state that a writer worked out (groups never change)."""
        self._groups.set(group, state)

    def cached_group(self, group: int) -> StateMap | None:
        return self._groups.get(group)


def current_state_statement(
    room_id: str, event_type: str, state_key: str, event_id: str, membership: str | None
) -> Statement:
    return (
        "INSERT INTO current_state_events (room_id, type, state_key, event_id, membership)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, type, state_key)"
        " DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership",
        (room_id, event_type, state_key, event_id, membership),
    )


def membership_statements(
    room_id: str, user_id: str, event_id: str, sender: str, membership: str, stream_ordering: int
) -> list[Statement]:
    """Log a change of the user's current membership and make it current."""
    return [
        (
            "INSERT INTO room_memberships"
            " (event_id, room_id, user_id, sender, membership, stream_ordering)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (event_id, room_id, user_id, sender, membership, stream_ordering),
        ),
        (
            "INSERT INTO current_memberships"
            " (room_id, user_id, event_id, membership, stream_ordering) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (room_id, user_id) DO UPDATE SET event_id = excluded.event_id,"
            " membership = excluded.membership, stream_ordering = excluded.stream_ordering",
            (room_id, user_id, event_id, membership, stream_ordering),
        ),
    ]
