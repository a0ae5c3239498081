"""A small room simulator for state resolution tests: hand-made DAGs with readable event IDs.

Each event is added on top of named prev events; the state before it is the resolution of the states
after its prevs (by `resolve_state` itself), its auth events are chosen from that state by the spec's
auth events selection, and it must pass the auth rules against them — so every DAG is one honest
servers could have produced, and forks are real forks. Every resolution is also redone with the
states, and their entries, in other orders, and must give the same answer.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Collection, Coroutine, Iterable, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

from homeserver.events.auth import auth_types_for_event, check_auth_events
from homeserver.events.event import Event, StateMap
from homeserver.events.hashing import add_content_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.state_res import resolve_state

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CHARLIE = "@charlie:c.example"
ZARA = "@zara:z.example"
EVELYN = "@evelyn:e.example"

PL = ("m.room.power_levels", "")
JR = ("m.room.join_rules", "")
TOPIC = ("m.room.topic", "")
NAME = ("m.room.name", "")


def member(user_id: str) -> tuple[str, str]:
    return ("m.room.member", user_id)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on the reactor (in-memory store, no clock) to completion."""
    results: list[Any] = []
    defer.ensureDeferred(coro).addBoth(results.append)
    assert results, "the coroutine waited on the reactor"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class MemoryStore:
    """The `StateResolutionStore` of the tests: a dict, counting round trips."""

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.round_trips = 0

    async def get_events(self, event_ids: Collection[str]) -> dict[str, Event]:
        self.round_trips += 1
        return {e: self.events[e] for e in event_ids if e in self.events}


class RejectionAwareStore(MemoryStore):
    """A store that also knows which events were rejected."""

    def __init__(self, events: dict[str, Event], rejected: Iterable[str]) -> None:
        super().__init__()
        self.events = dict(events)
        self.rejected = set(rejected)

    async def get_rejected_event_ids(self, event_ids: Collection[str]) -> set[str]:
        return self.rejected.intersection(event_ids)


class RoomDag:
    """A room of `version` whose events are named; event IDs are `$NAME`, so ties break by name."""

    def __init__(self, version: str) -> None:
        self.room_version: RoomVersion = KNOWN_ROOM_VERSIONS[version]
        self.store = MemoryStore()
        self.state_after: dict[str, StateMap] = {}
        self.last: str | None = None
        self.room_id = "!CREATE" if self.room_version.hydra else "!room:a.example"
        self._ts = 1_000

    @property
    def hydra(self) -> bool:
        return self.room_version.hydra

    def event(self, name: str) -> Event:
        return self.store.events["$" + name]

    def resolve(self, states: list[StateMap]) -> StateMap:
        """Resolve, and check the answer is the same with the states, and their entries, reordered."""
        resolved = run(resolve_state(self.room_version, states, self.store))
        reversed_states = [dict(reversed(list(s.items()))) for s in reversed(states)]
        rotated = states[1:] + states[:1]
        for reordered in (reversed_states, rotated):
            assert run(resolve_state(self.room_version, reordered, self.store)) == resolved
        return resolved

    def add(
        self,
        name: str,
        type: str,
        sender: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        prevs: list[str] | None = None,
        ts: int | None = None,
    ) -> Event:
        """Add an event after `prevs` (default: the last event added) and return it."""
        event_id = "$" + name
        assert event_id not in self.store.events, f"{name} added twice"
        prev_ids = ["$" + p for p in (prevs if prevs is not None else [self.last] if self.last else [])]
        before = self.resolve([self.state_after[p] for p in prev_ids]) if len(prev_ids) > 1 else (
            dict(self.state_after[prev_ids[0]]) if prev_ids else {}
        )
        keys = auth_types_for_event(self.room_version, type, state_key, sender, content)
        auth_ids = [before[k] for k in keys if k in before]
        if ts is None:
            self._ts += 1
            ts = self._ts
        depth = 1 + max((self.store.events[p].depth for p in prev_ids), default=0)
        pdu: dict[str, Any] = {
            "type": type,
            "sender": sender,
            "content": content,
            "prev_events": self._refs(prev_ids),
            "auth_events": self._refs(auth_ids),
            "depth": depth,
            "origin_server_ts": ts,
            "signatures": {},
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        if not (self.hydra and type == "m.room.create"):
            pdu["room_id"] = self.room_id
        if self.room_version.event_format == 1:
            pdu["event_id"] = event_id
        event = Event.from_pdu(add_content_hash(pdu), self.room_version, event_id=event_id)
        # An honest server only sends events its auth events allow: check, so the DAGs are sound.
        check_auth_events(event, ChainMap({event_id: event}, self.store.events))
        self.store.events[event_id] = event
        after = dict(before)
        if state_key is not None:
            after[(type, state_key)] = event_id
        self.state_after[event_id] = after
        self.last = name
        return event

    def _refs(self, event_ids: list[str]) -> list[Any]:
        if self.room_version.event_format != 1:
            return list(event_ids)
        return [[e, dict(self.store.events[e].pdu["hashes"])] for e in event_ids]

    def state(self, name: str) -> StateMap:
        """The state after the named event."""
        return dict(self.state_after["$" + name])

    def resolve_prevs(self, names: list[str]) -> StateMap:
        """The state an event with these prev events would see."""
        return self.resolve([self.state(n) for n in names])

    def power_levels(self, users: dict[str, int], **extra: Any) -> dict[str, Any]:
        """Power levels content; v12 creators may not be listed (they are all-powerful anyway)."""
        if self.hydra:
            users = {u: level for u, level in users.items() if u != ALICE}
        return {"users": users, **extra}


def names(state: StateMap) -> dict[tuple[str, str], str]:
    """A state map with event names instead of IDs, for readable assertions."""
    return {key: event_id[1:] for key, event_id in state.items()}


def standard_room(version: str) -> RoomDag:
    """Alice creates a public room; Bob, Charlie and Zara join. Alice alone has power (100, or ∞ in v12)."""
    dag = RoomDag(version)
    create_content: dict[str, Any] = {"room_version": version}
    if not dag.room_version.implicit_room_creator:
        create_content["creator"] = ALICE
    dag.add("CREATE", "m.room.create", ALICE, create_content, state_key="", prevs=[])
    dag.add("IMA", "m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    dag.add("IPOWER", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100}), state_key="")
    dag.add("IJR", "m.room.join_rules", ALICE, {"join_rule": "public"}, state_key="")
    for name, user in (("IMB", BOB), ("IMC", CHARLIE), ("IMZ", ZARA)):
        dag.add(name, "m.room.member", user, {"membership": "join"}, state_key=user)
    return dag
