"""The auth graph walks of state resolution on bare graphs, against the spec's definitions done naively."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.events.auth_chain import (
    Yielder,
    auth_difference,
    conflicted_subgraph,
    fetch_auth_graph,
)
from homeserver.events.event import Event, StateMap
from homeserver.events.hashing import add_content_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.events.state_res_dag import MemoryStore, run

V12 = KNOWN_ROOM_VERSIONS["12"]
NO_CLOCK = Yielder(None)


def graph(edges: dict[str, list[str]]) -> dict[str, Event]:
    """Topic events named by the keys, each citing the listed events as auth events (shape only)."""
    events = {}
    for name, auth in edges.items():
        pdu: dict[str, Any] = {
            "room_id": "!r", "type": "m.room.topic", "state_key": "", "sender": "@a:x", "content": {},
            "prev_events": [], "auth_events": [f"${a}" for a in auth], "depth": 1, "origin_server_ts": 0,
            "signatures": {},
        }
        events[f"${name}"] = Event.from_pdu(add_content_hash(pdu), V12, event_id=f"${name}")
    return events


def ids(*names: str) -> set[str]:
    return {f"${n}" for n in names}


def naive_chain(event_id: str, events: dict[str, Event]) -> set[str]:
    """The auth chain by the spec's recursive definition."""
    chain: set[str] = set()
    for auth_id in events[event_id].auth_event_ids:
        chain |= {auth_id} | naive_chain(auth_id, events)
    return chain


def test_conflicted_subgraph_is_every_path_between_conflicted_events() -> None:
    #   X -> A -> B -> C -> D -> G      A, D and F are conflicted. On paths between them:
    #        A -> E -> D                A-B-C-D, A-E-D, F-C-D. Not: X (above A), G (below D),
    #   F -> C        A -> H            H (below A, leads to no conflicted event).
    events = graph({
        "G": [], "D": ["G"], "C": ["D"], "B": ["C"], "E": ["D"], "H": [],
        "A": ["B", "E", "H"], "F": ["C"], "X": ["A"],
    })
    subgraph = run(conflicted_subgraph(ids("A", "D", "F"), events, NO_CLOCK))
    assert subgraph == ids("A", "B", "C", "D", "E", "F")


def test_auth_difference() -> None:
    # S1 = {A, U}, S2 = {F, U}; U -> C is agreed upon. C1 = {B, C, D, E, G, H}, C2 = {C, D, G}.
    events = graph({
        "G": [], "D": ["G"], "C": ["D"], "B": ["C"], "E": ["D"], "H": [],
        "A": ["B", "E", "H"], "F": ["C"], "U": ["C"],
    })
    s1: StateMap = {("t", "1"): "$A", ("t", "u"): "$U"}
    s2: StateMap = {("t", "1"): "$F", ("t", "u"): "$U"}
    assert run(auth_difference([s1, s2], {("t", "u"): "$U"}, events, NO_CLOCK)) == ids("B", "E", "H")


def test_auth_graph_is_fetched_a_frontier_at_a_time() -> None:
    edges: dict[str, list[str]] = {"R1": [], "R2": [], "R0": ["R1", "R2"]}
    edges.update({f"M{i}": ["R0", "R1"] for i in range(100)})
    store = MemoryStore()
    store.events = graph(edges)
    fetched = run(fetch_auth_graph(store, [f"$M{i}" for i in range(100)] + ["$unknown"], NO_CLOCK))
    assert set(fetched) == set(store.events)
    assert store.round_trips == 3  # the members; R0 and R1; R2


@st.composite
def random_dag(draw: st.DrawFn) -> dict[str, list[str]]:
    """Events 0..n-1, each citing some lower-numbered events: any DAG, in topological order."""
    n = draw(st.integers(min_value=1, max_value=14))
    return {
        str(i): sorted(str(j) for j in draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        for i in range(n)
    }


@settings(max_examples=200, deadline=None)
@given(edges=random_dag(), data=st.data())
def test_walks_match_the_definitions(edges: dict[str, list[str]], data: st.DataObject) -> None:
    events = graph(edges)
    names = sorted(events)
    states = data.draw(
        st.lists(
            st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(names)), min_size=1, max_size=3
        )
    )
    state_sets: list[StateMap] = [{("t", k): v for k, v in s.items()} for s in states]
    unconflicted = {
        key: value for key, value in state_sets[0].items() if all(s.get(key) == value for s in state_sets)
    }
    conflicted = {v for s in state_sets for k, v in s.items() if k not in unconflicted}

    chains = [set().union(*(naive_chain(e, events) for e in s.values())) for s in state_sets]
    expected_difference = set().union(*chains) - set.intersection(*chains)
    assert run(auth_difference(state_sets, unconflicted, events, NO_CLOCK)) == expected_difference

    below = {e: naive_chain(e, events) for e in events}
    expected_subgraph = set(conflicted) | {
        e for e in events
        if any(e in below[c] for c in conflicted) and any(c in below[e] for c in conflicted)
    }
    assert run(conflicted_subgraph(conflicted, events, NO_CLOCK)) == expected_subgraph
