"""Where room version 12's state resolution (MSC4297, "v2.1") gives a different answer from v11.

Both scenarios are the two problems MSC4297 describes: one input state comes from a partial
synchronisation (e.g. `/state_ids` answered with stale data) and holds an older event than the auth
chains agree on. The stale state sets are written by hand; all events are real and authorised.
"""

from __future__ import annotations

import pytest

from homeserver.events.event import StateMap
from homeserver.events.state_res import resolve_state
from tests.events.state_res_dag import (
    ALICE,
    BOB,
    CHARLIE,
    JR,
    PL,
    TOPIC,
    ZARA,
    RejectionAwareStore,
    RoomDag,
    member,
    names,
    run,
    standard_room,
)


def _stale_join_rules_room(version: str) -> tuple[RoomDag, StateMap, StateMap]:
    """IJR (public) -> ... -> JR2 (Alice: invite only) -> AL (Alice leaves).

    The true state after AL has JR2; the stale copy has IJR. Both agree Alice has left.
    """
    dag = standard_room(version)
    dag.add("JR2", "m.room.join_rules", ALICE, {"join_rule": "invite"}, state_key="")
    dag.add("AL", "m.room.member", ALICE, {"membership": "leave"}, state_key=ALICE)
    true_state = dag.state("AL")
    stale_state = {**true_state, JR: "$IJR"}
    return dag, true_state, stale_state


@pytest.mark.parametrize(
    ("version", "expected_join_rules"),
    [
        # v11: only IJR and JR2 conflict (the auth chains of the two states are equal, so the auth
        # difference is empty). They are replayed on top of the unconflicted state, in which Alice —
        # who sent both — has left: both are refused and the room ends up with *no* join rules.
        ("11", None),
        # v12: the replay starts from an empty map, so Alice's membership comes from each event's
        # own auth events (her join IMA): both are allowed, IJR first (older), then JR2. JR2 stands.
        ("12", "JR2"),
    ],
)
def test_problem_a_unconflicted_state_unauthorises_conflicted_events(
    version: str, expected_join_rules: str | None
) -> None:
    dag, true_state, stale_state = _stale_join_rules_room(version)
    resolved = names(dag.resolve([true_state, stale_state]))
    assert resolved.get(JR) == expected_join_rules
    assert resolved[member(ALICE)] == "AL"


def _stale_power_levels_room(version: str) -> tuple[RoomDag, StateMap, StateMap]:
    """P1 (Alice promotes Bob to 50) -> P2 (Bob promotes Charlie to 50) -> T (Charlie's topic).

    The true state after T has P2; the stale copy has the room's first power levels, IPOWER.
    """
    dag = standard_room(version)
    dag.add("P1", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 50}), state_key="")
    dag.add(
        "P2", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 50, CHARLIE: 50}), state_key=""
    )
    dag.add("T", "m.room.topic", CHARLIE, {"topic": "charlie's"}, state_key="")
    true_state = dag.state("T")
    stale_state = {**true_state, PL: "$IPOWER"}
    return dag, true_state, stale_state


@pytest.mark.parametrize(
    ("version", "expected_power_levels"),
    [
        # v11: IPOWER and P2 conflict. T is in both states and cites P2, so P1 (between them) is in
        # both auth chains and not in the auth difference: the full conflicted set is {IPOWER, P2}.
        # Nothing in that set links them, so Alice's IPOWER sorts first (more power); then P2 is
        # checked against IPOWER, where Bob has 0 — refused. A state reset: Charlie loses his power.
        ("11", "IPOWER"),
        # v12: P1 lies on the auth path P2 -> P1 -> IPOWER between two conflicted events, so the
        # conflicted state subgraph adds it (with IMB and IJR, which are also on paths from P2 to
        # IPOWER). The replay is IPOWER, IJR, P1, IMB, P2 and every step is allowed: P2 stands.
        ("12", "P2"),
    ],
)
def test_problem_b_events_between_conflicted_events_are_replayed(
    version: str, expected_power_levels: str
) -> None:
    dag, true_state, stale_state = _stale_power_levels_room(version)
    resolved = names(dag.resolve([stale_state, true_state]))
    assert resolved[PL] == expected_power_levels
    assert resolved[TOPIC] == "T"  # unconflicted: kept whatever the replay says


def test_rejected_auth_events_are_not_used_as_fallback() -> None:
    """Problem A in v12 relies on Alice's join IMA, taken from the join rules events' own auth events.
    If the store says IMA was rejected, it may not be used (spec: rejected auth events are excluded
    from the iterative auth checks): Alice then has no membership, both join rules are refused and,
    as in v11, the room has none."""
    dag, true_state, stale_state = _stale_join_rules_room("12")
    store = RejectionAwareStore(dag.store.events, rejected=["$IMA"])
    resolved = names(run(resolve_state(dag.room_version, [true_state, stale_state], store)))
    assert JR not in resolved
    honest = RejectionAwareStore(dag.store.events, rejected=[])
    assert names(run(resolve_state(dag.room_version, [true_state, stale_state], honest)))[JR] == "JR2"


def test_v12_creators_outrank_everyone_in_the_power_ordering() -> None:
    """Alice (creator) and Bob both have 100 in v11; in v12 Alice, as creator, has infinite power.

    Bob sets the topic (so his join is in every auth chain, not in the auth difference), then
    concurrently Bob's PB (t=10s) sets Zara to 50 and Alice's PA (t=20s) sets her to 10. Both are
    allowed whichever comes first, so the one replayed last wins. v11: equal power, so the earlier
    PB goes first and PA wins. v12: the creator sorts first despite her later timestamp, so PB wins.
    """
    results = {}
    for version in ("11", "12"):
        dag = standard_room(version)
        dag.add("P100", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 100}), state_key="")
        dag.add("TB", "m.room.topic", BOB, {"topic": "bob's"}, state_key="")
        dag.add(
            "PB", "m.room.power_levels", BOB, dag.power_levels({ALICE: 100, BOB: 100, ZARA: 50}),
            state_key="", prevs=["TB"], ts=10_000,
        )
        dag.add(
            "PA", "m.room.power_levels", ALICE, dag.power_levels({ALICE: 100, BOB: 100, ZARA: 10}),
            state_key="", prevs=["TB"], ts=20_000,
        )
        results[version] = names(dag.resolve_prevs(["PA", "PB"]))[PL]
    assert results == {"11": "PA", "12": "PB"}
