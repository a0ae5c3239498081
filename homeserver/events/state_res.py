"""State resolution: the room state before an event whose `prev_events` disagree about the state.

Room version 1 uses the original algorithm (`_resolve_v1`); later versions use state resolution v2,
with the room version 12 changes (MSC4297): the conflicted state subgraph joins the full conflicted
set, and the power events are replayed from an empty state map rather than the unconflicted one.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from typing import TYPE_CHECKING, Collection, Iterable, Mapping, Sequence

from homeserver.events.auth import AuthError, auth_types_for_event, check_auth_rules
from homeserver.events.auth_chain import (
    StateResolutionStore,
    Yielder,
    auth_ancestors,
    auth_difference,
    conflicted_subgraph,
    fetch_auth_graph,
)
from homeserver.events.event import Event, StateKey, StateMap
from homeserver.events.power_levels import user_power_level
from homeserver.events.room_versions import RoomVersion

if TYPE_CHECKING:
    from homeserver.clock import Clock

__all__ = ["StateResolutionStore", "resolve_state"]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")


async def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    store: StateResolutionStore,
    clock: "Clock | None" = None,
) -> StateMap:
    """The resolution of `state_sets` (the states after each prev event) for `room_version`.

    `store` gives the events by ID, including the auth chains of the states' events. If it also has
    `async get_rejected_event_ids(event_ids) -> set[str]`, rejected events are not used as fallback
    auth events, as the spec asks. With a `clock`, long loops let the reactor run now and then.
    """
    yielder = Yielder(clock)
    unconflicted, conflicted = split_state(state_sets)
    if not conflicted:
        return unconflicted
    if room_version.state_res == 1:
        return await _resolve_v1(room_version, state_sets, store, yielder)
    return await _resolve_v2(room_version, state_sets, unconflicted, conflicted, store, yielder)


def split_state(state_sets: Sequence[Mapping[StateKey, str]]) -> tuple[StateMap, set[str]]:
    """The unconflicted state map and the conflicted state set (event IDs) of v2.

    A key is unconflicted when every state has it, with the same event.
    """
    unconflicted: StateMap = {}
    conflicted: set[str] = set()
    keys = set().union(*state_sets) if state_sets else set()
    for key in keys:
        first = state_sets[0].get(key)
        if first is not None and all(state.get(key) == first for state in state_sets):
            unconflicted[key] = first
        else:
            conflicted.update(v for state in state_sets if (v := state.get(key)) is not None)
    return unconflicted, conflicted


# --- state resolution v2 -------------------------------------------------------------------------


async def _resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    unconflicted: StateMap,
    conflicted: set[str],
    store: StateResolutionStore,
    yielder: Yielder,
) -> StateMap:
    start_ids = set().union(*(state.values() for state in state_sets))
    events = await fetch_auth_graph(store, start_ids, yielder)
    rejected = await _rejected_event_ids(store, events)
    # Passed to every auth check: in v12 no event cites it, yet the rules need it.
    create = events.get(unconflicted.get(CREATE_KEY, ""))

    full_conflicted = await _full_conflicted_set(
        room_version, state_sets, unconflicted, conflicted, events, yielder
    )
    if create is not None:
        # Events of another room can only get here through a broken or malicious auth chain.
        full_conflicted = {e for e in full_conflicted if events[e].room_id == create.room_id}

    # Step 1: the power events and the conflicted events they need, in reverse topological order.
    power_ids = await _power_events_with_auth(full_conflicted, events, yielder)
    power_order = await _reverse_topological_power_order(
        room_version, power_ids, events, create, yielder
    )
    # Step 2: replay them (from nothing in v12, so the replay rests on the auth chains only).
    base: StateMap = {} if room_version.hydra else dict(unconflicted)
    partial = await _iterative_auth_checks(
        room_version, power_order, base, events, rejected, create, yielder
    )
    # Steps 3–4: the other events, ordered along the resolved power levels' mainline.
    others = full_conflicted - power_ids
    other_order = await _mainline_order(partial.get(POWER_LEVELS_KEY), others, events, yielder)
    resolved = await _iterative_auth_checks(
        room_version, other_order, partial, events, rejected, create, yielder
    )
    # Step 5: the unconflicted state always wins.
    resolved.update(unconflicted)
    return resolved


async def _rejected_event_ids(store: StateResolutionStore, events: Mapping[str, Event]) -> set[str]:
    get_rejected = getattr(store, "get_rejected_event_ids", None)
    if get_rejected is None:
        return set()
    return set(await get_rejected(list(events)))


async def _full_conflicted_set(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    unconflicted: StateMap,
    conflicted: set[str],
    events: Mapping[str, Event],
    yielder: Yielder,
) -> set[str]:
    """Conflicted state set ∪ auth difference (∪ conflicted state subgraph in v12).

    Only state events the store has: anything else can't be authorised or placed in the state.
    """
    full = set(conflicted)
    full |= await auth_difference(state_sets, unconflicted, events, yielder)
    if room_version.hydra:
        full |= await conflicted_subgraph(conflicted, events, yielder)
    return {e for e in full if e in events and events[e].state_key is not None}


def _is_power_event(event: Event) -> bool:
    """Events that can take a right away from someone (spec: "power events")."""
    if event.state_key is None:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules"):
        return event.state_key == ""
    return (
        event.type == "m.room.member"
        and event.membership in ("leave", "ban")
        and event.sender != event.state_key
    )


async def _power_events_with_auth(
    full_conflicted: set[str], events: Mapping[str, Event], yielder: Yielder
) -> set[str]:
    """The power events of the full conflicted set, with the full-conflicted events of their auth chains.

    Like the widely deployed implementations, the walk down `auth_events` only goes through events of
    the full conflicted set. It misses an event only if that event is reachable solely through events
    every state's auth chain holds; such an event is then ordered in the mainline step instead.
    """
    power = {event_id for event_id in full_conflicted if _is_power_event(events[event_id])}
    return power | await auth_ancestors(power, events, yielder, within=full_conflicted)


def _auth_state(event: Event, events: Mapping[str, Event], create: Event | None) -> dict[StateKey, Event]:
    """The state an event cites in its `auth_events`, plus the create event (not cited in v12)."""
    state: dict[StateKey, Event] = {}
    if create is not None:
        state[CREATE_KEY] = create
    for auth_id in event.auth_event_ids:
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_event.state_key is not None:
            state[auth_event.state_tuple()] = auth_event
    return state


async def _reverse_topological_power_order(
    room_version: RoomVersion,
    event_ids: set[str],
    events: Mapping[str, Event],
    create: Event | None,
    yielder: Yielder,
) -> list[str]:
    """Kahn's algorithm over the auth DAG of `event_ids`, taking the smallest ready event each time:
    higher sender power level first (as of the event's auth events), then older, then lower ID.

    Events in an auth cycle (possible only with forged v1–2 event IDs) never become ready and are
    left out.
    """
    waiting_on: dict[str, int] = {}
    cited_by: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    for event_id in event_ids:
        deps = {a for a in events[event_id].auth_event_ids if a in event_ids}
        waiting_on[event_id] = len(deps)
        for dep in deps:
            cited_by[dep].append(event_id)

    def sort_key(event_id: str) -> tuple[float, int, str]:
        event = events[event_id]
        power = user_power_level(event.sender, _auth_state(event, events, create), room_version)
        return (-power, event.origin_server_ts, event_id)

    ready = [sort_key(e) for e, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        event_id = heapq.heappop(ready)[2]
        order.append(event_id)
        for citer in cited_by[event_id]:
            waiting_on[citer] -= 1
            if waiting_on[citer] == 0:
                heapq.heappush(ready, sort_key(citer))
        await yielder.tick()
    return order


def _power_levels_auth_event(event: Event, events: Mapping[str, Event]) -> str | None:
    for auth_id in event.auth_event_ids:
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_event.type == "m.room.power_levels" and auth_event.state_key == "":
            return auth_id
    return None


async def _mainline_order(
    power_levels_id: str | None, event_ids: set[str], events: Mapping[str, Event], yielder: Yielder
) -> list[str]:
    """`event_ids` sorted by mainline position (earliest mainline power levels first), then
    `origin_server_ts`, then event ID."""
    mainline: dict[str, int] = {}
    current = power_levels_id
    while current is not None and current in events and current not in mainline:
        mainline[current] = len(mainline)
        current = _power_levels_auth_event(events[current], events)

    # Position of an event = that of the first mainline event down its power levels chain (the
    # event itself excluded); every non-mainline event walked on the way shares that position.
    positions: dict[str, float] = {}

    async def position(event_id: str) -> float:
        walked = [event_id]
        current = _power_levels_auth_event(events[event_id], events)
        found = math.inf
        while current is not None and current in events:
            if current in mainline:
                found = mainline[current]
                break
            if current in positions:
                found = positions[current]
                break
            if current in walked:
                break  # a cycle of forged IDs: no mainline below
            walked.append(current)
            current = _power_levels_auth_event(events[current], events)
            await yielder.tick()
        for walked_id in walked:
            positions[walked_id] = found
        return found

    keys = []
    for event_id in event_ids:
        event = events[event_id]
        keys.append((-(await position(event_id)), event.origin_server_ts, event_id))
    keys.sort()
    return [key[2] for key in keys]


async def _iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Iterable[str],
    base: StateMap,
    events: Mapping[str, Event],
    rejected: Collection[str],
    create: Event | None,
    yielder: Yielder,
) -> StateMap:
    """Apply each event in turn to the state if the auth rules allow it against that state.

    The auth events are the state's entries for the keys the event needs; a key missing from the
    state falls back to the event's own (non-rejected) auth event of that key.
    """
    state = dict(base)
    for event_id in event_ids:
        event = events[event_id]
        own_auth: dict[StateKey, Event] = {}
        for auth_id in event.auth_event_ids:
            auth_event = events.get(auth_id)
            if auth_event is not None and auth_event.state_key is not None and auth_id not in rejected:
                own_auth[auth_event.state_tuple()] = auth_event
        auth_events: dict[StateKey, Event] = {}
        if create is not None:
            auth_events[CREATE_KEY] = create
        for key in auth_types_for_event(
            room_version, event.type, event.state_key, event.sender, event.content
        ):
            from_state = events.get(state.get(key, ""))
            chosen = from_state if from_state is not None else own_auth.get(key)
            if chosen is not None:
                auth_events[key] = chosen
        try:
            check_auth_rules(event, auth_events)
        except AuthError:
            pass
        else:
            state[event.state_tuple()] = event_id
        await yielder.tick()
    return state


# --- room version 1 ------------------------------------------------------------------------------


def _sha1(event_id: str) -> str:
    return hashlib.sha1(event_id.encode("utf-8")).hexdigest()


async def _resolve_v1(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    store: StateResolutionStore,
    yielder: Yielder,
) -> StateMap:
    """The original algorithm: power levels, then join rules, then memberships, then the rest.

    Unlike v2, a key only some states have is not a conflict (the states are united), and
    conflicts are settled by depth and sha1 of the event ID, checked against the state so far.
    """
    candidates: dict[StateKey, set[str]] = {}
    for state in state_sets:
        for key, event_id in state.items():
            candidates.setdefault(key, set()).add(event_id)
    all_ids = set().union(*candidates.values())
    events = await store.get_events(all_ids)

    resolved: StateMap = {key: next(iter(ids)) for key, ids in candidates.items() if len(ids) == 1}
    conflicts = {
        key: [events[e] for e in ids if e in events]
        for key, ids in candidates.items()
        if len(ids) > 1
    }

    def allowed(event: Event) -> bool:
        auth_events: dict[StateKey, Event] = {}
        for key in auth_types_for_event(
            room_version, event.type, event.state_key, event.sender, event.content
        ):
            auth_event = events.get(resolved.get(key, ""))
            if auth_event is not None:
                auth_events[key] = auth_event
        try:
            check_auth_rules(event, auth_events)
        except AuthError:
            return False
        return True

    def auth_key_order(key: StateKey) -> tuple[int, StateKey]:
        rank = {POWER_LEVELS_KEY: 0, JOIN_RULES_KEY: 1}.get(key, 2)
        return (rank, key)

    auth_keys = sorted(
        (k for k in conflicts if k in (POWER_LEVELS_KEY, JOIN_RULES_KEY) or k[0] == "m.room.member"),
        key=auth_key_order,
    )
    for key in auth_keys:
        # Ascending depth, then descending sha1: the oldest first, then each successor while allowed.
        ordered = sorted(conflicts[key], key=lambda e: _sha1(e.event_id), reverse=True)
        ordered.sort(key=lambda e: e.depth)
        if not ordered:
            continue
        resolved[key] = ordered[0].event_id
        for event in ordered[1:]:
            if not allowed(event):
                break
            resolved[key] = event.event_id
        await yielder.tick(len(ordered))

    settled = set(auth_keys)
    for key in sorted(k for k in conflicts if k not in settled):
        # The deepest event (lowest sha1 on ties) that the auth rules allow in the state so far;
        # if none is allowed the key is left out, as the spec only ever picks an allowed event.
        for event in sorted(conflicts[key], key=lambda e: (-e.depth, _sha1(e.event_id))):
            if allowed(event):
                resolved[key] = event.event_id
                break
        await yielder.tick(len(conflicts[key]))
    return resolved
