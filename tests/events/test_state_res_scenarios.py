"""State resolution v2 on the classic forked DAGs, for room versions 2 (v1 event format), 10, 11 and 12.

The scenarios are the ones the state resolution v2 proposal (MSC1442) and the well-known test suites
describe; the DAGs are written here from those descriptions and every expected answer is worked out
by hand in the comments. All of them come out the same in every v2 room version; the scenarios where
v12 differs are in test_state_res_v12.py.

Every room starts as `standard_room`: CREATE, IMA (Alice joins), IPOWER (Alice 100), IJR (public),
IMB, IMC, IMZ (Bob, Charlie, Zara join). Timestamps grow in the order events are added.
"""

from __future__ import annotations

import pytest

from homeserver.events.state_res import resolve_state
from tests.events.state_res_dag import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    JR,
    PL,
    TOPIC,
    ZARA,
    MemoryStore,
    RoomDag,
    member,
    names,
    run,
    standard_room,
)

V2_VERSIONS = ["2", "10", "11", "12"]
parametrize_versions = pytest.mark.parametrize("version", V2_VERSIONS, ids=lambda v: f"v{v}")


@parametrize_versions
def test_ban_vs_power_levels(version: str) -> None:
    """Alice bans Bob while Bob, concurrently, re-sends the power levels.

    Both branches start from PA (Bob at 50). Ordering the power events puts Alice's (higher power)
    before Bob's, so the ban MB is applied first and Bob's PB is then refused: a banned user can't
    send state. Result: PL = PA, Bob banned.
    """
    dag = standard_room(version)
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("MA", "m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    dag.add("MB", "m.room.member", ALICE, {"membership": "ban"}, state_key=BOB)
    dag.add(
        "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50}), state_key="", prevs=["PA"]
    )
    resolved = names(dag.resolve_prevs(["MB", "PB"]))
    assert resolved[PL] == "PA"
    assert resolved[member(BOB)] == "MB"
    assert resolved[member(ALICE)] == "MA"


@parametrize_versions
def test_join_rules_evasion(version: str) -> None:
    """Alice makes the room private while Evelyn, who hadn't seen that, joins.

    JR is a power event and is replayed first; Evelyn's join is then checked against a private room
    and refused, so she is not in the resolved state even though her branch had her joined.
    """
    dag = standard_room(version)
    dag.add("JR", "m.room.join_rules", ALICE, {"join_rule": "private"}, state_key="")
    dag.add("ME", "m.room.member", EVELYN, {"membership": "join"}, state_key=EVELYN, prevs=["IMZ"])
    resolved = names(dag.resolve_prevs(["JR", "ME"]))
    assert resolved[JR] == "JR"
    assert member(EVELYN) not in resolved


@parametrize_versions
def test_offtopic_power_levels(version: str) -> None:
    """PA (Alice: Bob 50) -> PB (Bob: Charlie 50) -> PC (Charlie demotes himself) on one side, and
    just PA on the other. PB is in the auth difference, so the chain is replayed in auth order and
    every step is allowed: PC wins, even though Charlie's power came from an event only one side saw."""
    dag = standard_room(version)
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add(
        "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50, CHARLIE: 50}), state_key=""
    )
    dag.add(
        "PC", "m.room.power_levels", CHARLIE, dag.power_levels({ALICE: 100, BOB: 50, CHARLIE: 0}),
        state_key="",
    )
    assert names(dag.resolve_prevs(["PC", "PA"]))[PL] == "PC"


def _topic_room(version: str) -> RoomDag:
    """T1 -> PA1 (Bob 50) -> T2 -> PA2 (Bob demoted to 0) on Alice's side; PA1 -> PB (Bob re-sends
    PA1's levels) -> T3 (Bob's topic) on Bob's side."""
    dag = standard_room(version)
    dag.add("T1", "m.room.topic", ALICE, {"topic": "1"}, state_key="")
    dag.add("PA1", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("T2", "m.room.topic", ALICE, {"topic": "2"}, state_key="")
    dag.add("PA2", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 0}), state_key="")
    dag.add(
        "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50}), state_key="", prevs=["PA1"]
    )
    dag.add("T3", "m.room.topic", BOB, {"topic": "3"}, state_key="")
    return dag


@parametrize_versions
def test_topic_basic(version: str) -> None:
    """Power events: PA2 (Alice) sorts before PB (Bob) and is applied; PB is then refused (Bob is at 0).
    Mainline of PA2 is PA2 > PA1 > IPOWER; T2 and T3 both sit on PA1 (T3 through PB), so the older T2
    goes first, then T3 is refused (Bob can't set the topic at 0). Result: PA2, T2."""
    dag = _topic_room(version)
    resolved = names(dag.resolve_prevs(["PA2", "T3"]))
    assert (resolved[PL], resolved[TOPIC]) == ("PA2", "T2")


@parametrize_versions
def test_topic_after_merge(version: str) -> None:
    """The topic_basic fork merged by Zara's message MZ1 (state: PA2, T2), then Alice's topic T4 after it.
    Resolving T4's and MZ1's states: only the topic conflicts (T4 vs T2); T4 is based on PA2 (mainline
    position 0), T2 on PA1 (position 1), so T2 is applied first and T4 last. Result: PA2, T4."""
    dag = _topic_room(version)
    dag.add("MZ1", "m.room.message", ZARA, {"msgtype": "m.text", "body": "x"}, prevs=["PA2", "T3"])
    assert names(dag.state("MZ1"))[TOPIC] == "T2"
    dag.add("T4", "m.room.topic", ALICE, {"topic": "4"}, state_key="")
    resolved = names(dag.resolve_prevs(["T4", "MZ1"]))
    assert (resolved[PL], resolved[TOPIC]) == ("PA2", "T4")


@parametrize_versions
def test_topic_reset(version: str) -> None:
    """T1 -> PA (Bob 50) -> T2 (Bob's topic) -> MB (Alice bans Bob), against the state right after T1.

    The bans and power levels replay to PA and MB. Mainline of PA: T1 rests on IPOWER (position 1),
    T2 on PA (position 0): T1 first, then T2 — refused, Bob is banned by then. The topic goes back
    to T1, correctly: Bob's topic must not survive his ban.
    """
    dag = standard_room(version)
    dag.add("T1", "m.room.topic", ALICE, {"topic": "1"}, state_key="")
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("T2", "m.room.topic", BOB, {"topic": "2"}, state_key="")
    dag.add("MB", "m.room.member", ALICE, {"membership": "ban"}, state_key=BOB)
    resolved = names(dag.resolve_prevs(["MB", "T1"]))
    assert (resolved[TOPIC], resolved[PL], resolved[member(BOB)]) == ("T1", "PA", "MB")


@parametrize_versions
def test_mainline_sort(version: str) -> None:
    """T1 -> PA1 (Bob 50) -> T2 -> PA2 (same, but power levels need 100) -> T3 (Bob's topic) on one
    side; PA1 -> PB (Bob re-sends PA1) -> T4 (Alice's topic) on the other.

    PA2 beats PB (Alice first; PB then needs 100). Mainline of PA2: T3 rests on PA2 (position 0),
    T4 on PB then PA1 (position 1). T4 is applied first and T3 — still allowed, topics need 50 —
    last, though T4 is newer: the mainline, not the clock, decides. Result: PA2, T3.
    """
    dag = standard_room(version)
    dag.add("T1", "m.room.topic", ALICE, {"topic": "1"}, state_key="")
    dag.add("PA1", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("T2", "m.room.topic", ALICE, {"topic": "2"}, state_key="")
    dag.add(
        "PA2",
        "m.room.power_levels",
        ALICE,
        dag.power_levels({ALICE: 100, BOB: 50}, events={"m.room.power_levels": 100}),
        state_key="",
    )
    dag.add("T3", "m.room.topic", BOB, {"topic": "3"}, state_key="")
    dag.add(
        "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50}), state_key="", prevs=["PA1"]
    )
    dag.add("T4", "m.room.topic", ALICE, {"topic": "4"}, state_key="")
    resolved = names(dag.resolve_prevs(["T3", "T4"]))
    assert (resolved[PL], resolved[TOPIC]) == ("PA2", "T3")


@parametrize_versions
def test_timestamp_then_event_id_break_ties(version: str) -> None:
    """Two topics by Alice on the same power levels: the later timestamp is applied last and wins;
    with equal timestamps, the greater event ID does (TB > TA)."""
    dag = standard_room(version)
    dag.add("TX", "m.room.topic", ALICE, {"topic": "x"}, state_key="", prevs=["IMZ"], ts=5_000)
    dag.add("TY", "m.room.topic", ALICE, {"topic": "y"}, state_key="", prevs=["IMZ"], ts=4_000)
    assert names(dag.resolve_prevs(["TY", "TX"]))[TOPIC] == "TX"
    dag.add("TB", "m.room.topic", ALICE, {"topic": "b"}, state_key="", prevs=["IMZ"], ts=6_000)
    dag.add("TA", "m.room.topic", ALICE, {"topic": "a"}, state_key="", prevs=["IMZ"], ts=6_000)
    assert names(dag.resolve_prevs(["TA", "TB"]))[TOPIC] == "TB"


@parametrize_versions
def test_higher_power_sender_replayed_first(version: str) -> None:
    """Bob (50) kicks Zara at t=1; Alice, concurrently and later, demotes Bob to 0 at t=2.

    Reverse topological power ordering puts Alice's demotion first (higher power beats an earlier
    timestamp), so Bob's kick is then refused (kick needs 50): Zara stays.
    """
    dag = standard_room(version)
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add("KZ", "m.room.member", BOB, {"membership": "leave"}, state_key=ZARA, prevs=["PA"], ts=10_000)
    dag.add(
        "PD", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 0}), state_key="",
        prevs=["PA"], ts=20_000,
    )
    resolved = names(dag.resolve_prevs(["KZ", "PD"]))
    assert resolved[PL] == "PD"
    assert resolved[member(ZARA)] == "IMZ"


@parametrize_versions
def test_unconflicted_state_is_kept(version: str) -> None:
    """A topic only one side changed, and a name both sides agree on, come through untouched."""
    dag = standard_room(version)
    dag.add("N", "m.room.name", ALICE, {"name": "n"}, state_key="")
    dag.add("T", "m.room.topic", ALICE, {"topic": "t"}, state_key="", prevs=["N"])
    dag.add("M", "m.room.message", BOB, {"msgtype": "m.text", "body": "x"}, prevs=["N"])
    resolved = names(dag.resolve_prevs(["T", "M"]))
    assert resolved[TOPIC] == "T"
    assert resolved[("m.room.name", "")] == "N"
    assert resolved == names(dag.state("T"))


@parametrize_versions
def test_trivial_inputs(version: str) -> None:
    dag = standard_room(version)
    state = dag.state("IMZ")
    assert run(resolve_state(dag.room_version, [], dag.store)) == {}
    assert run(resolve_state(dag.room_version, [state], dag.store)) == state
    assert run(resolve_state(dag.room_version, [state, dict(state)], MemoryStore())) == state


@parametrize_versions
def test_unknown_events_are_left_out(version: str) -> None:
    """A conflicted event the store doesn't have can't be authorised: it drops out; agreed-upon
    unknown IDs are kept as they are (resolution doesn't second-guess what all sides agree on)."""
    dag = standard_room(version)
    dag.add("T", "m.room.topic", ALICE, {"topic": "t"}, state_key="")
    with_ghost = {**dag.state("T"), TOPIC: "$ghost", ("m.room.name", ""): "$agreed"}
    other = {**dag.state("T"), ("m.room.name", ""): "$agreed"}
    resolved = names(dag.resolve([with_ghost, other]))
    assert resolved[TOPIC] == "T"
    assert resolved[("m.room.name", "")] == "agreed"


@parametrize_versions
def test_auth_chains_are_fetched_a_frontier_at_a_time(version: str) -> None:
    """Round trips to the store grow with the depth of the auth graph, not with its size."""
    dag = standard_room(version)
    for i in range(60):
        user = f"@u{i}:x.example"
        dag.add(f"J{i}", "m.room.member", user, {"membership": "join"}, state_key=user, prevs=["IMZ"])
    merged = dag.resolve_prevs([f"J{i}" for i in range(60)])
    dag.add("TA", "m.room.topic", ALICE, {"topic": "a"}, state_key="", prevs=[f"J{i}" for i in range(20)])
    dag.add("TB", "m.room.topic", ALICE, {"topic": "b"}, state_key="", prevs=["J0"])
    states = [{**merged, TOPIC: "$TA"}, {**merged, TOPIC: "$TB"}]
    dag.store.round_trips = 0
    assert names(run(resolve_state(dag.room_version, states, dag.store)))[TOPIC] == "TB"
    # create <- IMA <- IPOWER <- IJR <- joins <- topics: a handful of levels, whatever the member count.
    assert dag.store.round_trips <= 8
