"""The graph that `auth_events` links form: fetching it, and the walks state resolution needs.

The store only hands out events by ID, so the graph is fetched one frontier (one level of
`auth_events`) per round trip rather than one event at a time; the walks after that are in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Iterable, Mapping, Protocol, Sequence

from homeserver.events.event import Event, StateMap

if TYPE_CHECKING:
    from homeserver.clock import Clock

# A big resolution walks thousands of events; give the reactor a turn this often.
YIELD_EVERY = 200


class StateResolutionStore(Protocol):
    """Where state resolution gets events. A store may also offer
    `async get_rejected_event_ids(event_ids) -> set[str]`; see `resolve_state`."""

    async def get_events(self, event_ids: Collection[str]) -> dict[str, Event]:
        """The events the store has among `event_ids`; unknown IDs are simply absent."""
        ...


class Yielder:
    """Counts steps of long loops and lets the reactor run every `YIELD_EVERY` of them.

    Without a clock it never yields, so a resolution against an in-memory store completes in one go.
    """

    def __init__(self, clock: "Clock | None") -> None:
        self._clock = clock
        self._steps = 0

    async def tick(self, steps: int = 1) -> None:
        if self._clock is None:
            return
        before = self._steps // YIELD_EVERY
        self._steps += steps
        if self._steps // YIELD_EVERY != before:
            await self._clock.sleep(0)


async def fetch_auth_graph(
    store: StateResolutionStore, event_ids: Iterable[str], yielder: Yielder
) -> dict[str, Event]:
    """`event_ids` and all their auth ancestors that the store has, by event ID."""
    events: dict[str, Event] = {}
    requested = set(event_ids)
    frontier = set(requested)
    while frontier:
        fetched = await store.get_events(frontier)
        next_frontier: set[str] = set()
        for event_id, event in fetched.items():
            if event_id not in frontier:
                continue  # a store that answered more than asked: ignore, keep the walk exact
            events[event_id] = event
            for auth_id in event.auth_event_ids:
                if auth_id not in requested:
                    requested.add(auth_id)
                    next_frontier.add(auth_id)
        await yielder.tick(len(frontier))
        frontier = next_frontier
    return events


async def auth_ancestors(
    start: Iterable[str],
    events: Mapping[str, Event],
    yielder: Yielder,
    *,
    within: Collection[str] | None = None,
    stop: Collection[str] = (),
) -> set[str]:
    """Every event reachable from `start` by following `auth_events` one or more times.

    The start events are only included if reached from another one. `within` limits the walk to
    those events; events in `stop` are included but not walked past (their ancestors are known).
    """
    found: set[str] = set()
    todo = [event_id for event_id in start if event_id in events]
    while todo:
        event = events[todo.pop()]
        for auth_id in event.auth_event_ids:
            if auth_id in found or (within is not None and auth_id not in within):
                continue
            found.add(auth_id)
            if auth_id in events and auth_id not in stop:
                todo.append(auth_id)
        await yielder.tick()
    return found


async def auth_difference(
    state_sets: Sequence[StateMap],
    unconflicted: StateMap,
    events: Mapping[str, Event],
    yielder: Yielder,
) -> set[str]:
    """∪ Cᵢ − ∩ Cᵢ, where Cᵢ is the auth chain of state set i.

    The auth chain of the unconflicted state is in every Cᵢ, so it is walked once and the per-set
    walks stop at it: what differs between the sets is only reached from their conflicted events.
    """
    common = await auth_ancestors(unconflicted.values(), events, yielder)
    unconflicted_ids = set(unconflicted.values())
    extras: list[set[str]] = []
    for state in state_sets:
        own = [event_id for event_id in state.values() if event_id not in unconflicted_ids]
        extras.append(await auth_ancestors(own, events, yielder, stop=common) - common)
    return set().union(*extras) - set.intersection(*extras)


async def conflicted_subgraph(
    conflicted: set[str], events: Mapping[str, Event], yielder: Yielder
) -> set[str]:
    """Every event on an auth path from one conflicted event to another, endpoints included (v12).

    An event is on such a path when it is an auth ancestor of a conflicted event and a conflicted
    event is among its own auth ancestors. The first set comes from a walk down the auth events;
    the second from a walk back up from the conflicted events, inside the first set.
    """
    below = await auth_ancestors(conflicted, events, yielder)
    cited_by: dict[str, list[str]] = {}
    for event_id in below | conflicted:
        event = events.get(event_id)
        if event is None:
            continue
        for auth_id in event.auth_event_ids:
            if auth_id in below:
                cited_by.setdefault(auth_id, []).append(event_id)
        await yielder.tick()
    subgraph = set(conflicted)
    todo = [event_id for event_id in conflicted if event_id in below]
    while todo:
        for citer in cited_by.get(todo.pop(), ()):
            if citer in below and citer not in subgraph:
                subgraph.add(citer)
                todo.append(citer)
        await yielder.tick()
    return subgraph
