"""The original state resolution algorithm of room version 1, against v2 on the same DAGs.

v1 unites the states (a key only some states have is no conflict), settles power levels, join rules
and memberships by replaying candidates from the shallowest while each is allowed, and other keys by
the deepest allowed candidate (lowest sha1 of the event ID on equal depth).
"""

from __future__ import annotations

import hashlib

from tests.events.state_res_dag import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    JR,
    PL,
    TOPIC,
    RoomDag,
    member,
    names,
    standard_room,
)


def test_join_rules_evasion_succeeds_in_v1_but_not_v2() -> None:
    """Alice makes the room private while Evelyn joins (see the v2 scenario of the same name).

    v1: only the join rules conflict (JR vs IJR); Evelyn's membership is in one state only, so it is
    taken as is — she stays in the private room. v2 replays her join after JR and refuses it.
    """
    results = {}
    for version in ("1", "2"):
        dag = standard_room(version)
        dag.add("JR", "m.room.join_rules", ALICE, {"join_rule": "private"}, state_key="")
        dag.add("ME", "m.room.member", EVELYN, {"membership": "join"}, state_key=EVELYN, prevs=["IMZ"])
        resolved = names(dag.resolve_prevs(["JR", "ME"]))
        assert resolved[JR] == "JR"
        results[version] = resolved.get(member(EVELYN))
    assert results == {"1": "ME", "2": None}


def test_power_levels_replay_stops_at_the_first_refused_event() -> None:
    """From PA (Bob 50, depth 8) three branches: MB (Alice bans Bob), PB (Bob: Charlie 50, depth 9),
    and T1 -> T2 -> PC (Alice: Charlie 25, depth 11).

    v1: Bob's membership conflicts (IMB vs MB) so it is not in the state being built; the power
    levels are replayed by depth: PA, then PB — refused (Bob isn't a member there) — and the replay
    stops, so Alice's later PC is never tried. Then Bob: IMB, then MB (allowed). PL = PA.
    v2: PA, PC (Alice's, higher power), IMB, MB, PB (refused: Bob is banned by then). PL = PC.
    The topic T2, set on one branch only, is kept by both.
    """
    results = {}
    for version in ("1", "2"):
        dag = standard_room(version)
        dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
        dag.add("MB", "m.room.member", ALICE, {"membership": "ban"}, state_key=BOB, prevs=["PA"])
        dag.add(
            "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50, CHARLIE: 50}),
            state_key="", prevs=["PA"],
        )
        dag.add("T1", "m.room.topic", ALICE, {"topic": "1"}, state_key="", prevs=["PA"])
        dag.add("T2", "m.room.topic", ALICE, {"topic": "2"}, state_key="")
        dag.add(
            "PC", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50, CHARLIE: 25}),
            state_key="",
        )
        assert (dag.event("PA").depth, dag.event("PB").depth, dag.event("PC").depth) == (8, 9, 11)
        resolved = names(dag.resolve_prevs(["MB", "PB", "PC"]))
        assert resolved[member(BOB)] == "MB"
        assert resolved[TOPIC] == "T2"
        results[version] = resolved[PL]
    assert results == {"1": "PA", "2": "PC"}


def _demotion_room() -> RoomDag:
    """PA (Bob 50); then PD (Alice demotes Bob) -> TA (Alice's topic) on one side, and Bob's topics
    TB1 -> TB2 -> TB3 (deeper than TA) on the other."""
    dag = standard_room("1")
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("PD", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 0}), state_key="")
    dag.add("TA", "m.room.topic", ALICE, {"topic": "a"}, state_key="")
    for i, prev in ((1, "PA"), (2, "TB1"), (3, "TB2")):
        dag.add(f"TB{i}", "m.room.topic", BOB, {"topic": str(i)}, state_key="", prevs=[prev])
    return dag


def test_deepest_allowed_event_wins_other_conflicts() -> None:
    """Power levels: PA then PD (allowed) — Bob is demoted. Topic candidates, deepest first: TB3 is
    refused (Bob has 0 now), TA is allowed and taken, though shallower."""
    dag = _demotion_room()
    assert dag.event("TB3").depth > dag.event("TA").depth
    resolved = names(dag.resolve_prevs(["TA", "TB3"]))
    assert (resolved[PL], resolved[TOPIC]) == ("PD", "TA")


def test_no_allowed_candidate_leaves_the_key_out() -> None:
    """Bob's TB3 and a concurrent topic TB9 of his conflict, and PD (from a third state with no topic)
    demotes him: neither topic is allowed, and v1 only ever picks an allowed event."""
    dag = _demotion_room()
    dag.add("TB9", "m.room.topic", BOB, {"topic": "9"}, state_key="", prevs=["PA"])
    resolved = names(dag.resolve([dag.state("TB3"), dag.state("TB9"), dag.state("PD")]))
    assert resolved[PL] == "PD"
    assert TOPIC not in resolved


def test_equal_depth_goes_to_the_lowest_sha1() -> None:
    """Two concurrent topics by Alice at the same depth: the lower sha1 of the event ID wins,
    whatever the timestamps."""
    dag = standard_room("1")
    dag.add("TX", "m.room.topic", ALICE, {"topic": "x"}, state_key="", prevs=["IMZ"], ts=1)
    dag.add("TY", "m.room.topic", ALICE, {"topic": "y"}, state_key="", prevs=["IMZ"], ts=2)
    lowest = min(("TX", "TY"), key=lambda n: hashlib.sha1(f"${n}".encode()).hexdigest())
    assert names(dag.resolve_prevs(["TX", "TY"]))[TOPIC] == lowest
    assert names(dag.resolve_prevs(["TY", "TX"]))[TOPIC] == lowest
