"""Property tests: state resolution is a function of the *set* of input states.

Hypothesis grows random forked rooms — topics, power level changes, kicks, bans, joins, leaves and
join rule changes by random members on random branches, each kept only if its auth events allow it —
then resolves the states at a few branch tips in every order, with each state's entries in every
order, and with a state repeated. Every server must reach the same answer from the same states.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeserver.events.auth import AuthError
from homeserver.events.event import StateMap
from tests.events.state_res_dag import ALICE, BOB, CHARLIE, EVELYN, ZARA, RoomDag, standard_room

USERS = [ALICE, BOB, CHARLIE, ZARA, EVELYN]
SENDERS = [ALICE, ALICE, ALICE, BOB, BOB, CHARLIE, ZARA, EVELYN]  # Alice, who has power, acts most
ACTIONS = ["topic", "power", "kick", "ban", "join", "leave", "join_rules", "message"]

step = st.tuples(
    st.sampled_from(ACTIONS),
    st.sampled_from(SENDERS),
    st.sampled_from(USERS),  # target / promoted user
    st.sampled_from([0, 25, 50, 100]),  # level
    st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=3, unique=True),  # prevs
    st.integers(min_value=0, max_value=3),  # timestamp step: 0 makes equal timestamps
)


def _content(
    dag: RoomDag, prev: str, action: str, sender: str, target: str, level: int
) -> tuple[str, str | None, dict[str, Any]]:
    if action == "topic":
        return "m.room.topic", "", {"topic": f"{sender} {level}"}
    if action == "power":
        levels = dag.store.events[dag.state(prev)[("m.room.power_levels", "")]].content
        users = {**levels.get("users", {}), target: level}
        return "m.room.power_levels", "", dag.power_levels(users)
    if action in ("kick", "ban"):
        return "m.room.member", target, {"membership": "leave" if action == "kick" else "ban"}
    if action in ("join", "leave"):
        return "m.room.member", sender, {"membership": action}
    if action == "join_rules":
        return "m.room.join_rules", "", {"join_rule": "invite" if level < 50 else "public"}
    return "m.room.message", None, {"msgtype": "m.text", "body": "hi"}


def _grow(version: str, steps: list[tuple[Any, ...]]) -> tuple[RoomDag, list[str]]:
    dag = standard_room(version)
    added = ["IJR", "IMB", "IMC", "IMZ"]
    ts = 2_000
    for i, (action, sender, target, level, prev_picks, ts_step) in enumerate(steps):
        prevs = sorted({added[-1 - (p % len(added))] for p in prev_picks})
        event_type, state_key, content = _content(dag, prevs[0], action, sender, target, level)
        ts += ts_step
        try:
            dag.add(f"E{i}", event_type, sender, content, state_key=state_key, prevs=prevs, ts=ts)
        except AuthError:
            continue
        added.append(f"E{i}")
    return dag, added


def _reordered(state: StateMap, order: list[int]) -> StateMap:
    items = list(state.items())
    return dict(items[i] for i in order)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    version=st.sampled_from(["1", "2", "11", "12"]),
    steps=st.lists(step, min_size=2, max_size=16),
    data=st.data(),
)
def test_resolution_does_not_depend_on_input_order(
    version: str, steps: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    dag, added = _grow(version, steps)
    tips = data.draw(st.lists(st.sampled_from(added), min_size=2, max_size=4, unique=True), label="tips")
    states = [dag.state(t) for t in tips]
    expected = dag.resolve(states)

    order = data.draw(st.permutations(range(len(states))), label="state order")
    shuffled = []
    for i in order:
        entry_order = data.draw(st.permutations(range(len(states[i]))), label="entry order")
        shuffled.append(_reordered(states[i], entry_order))
    assert dag.resolve(shuffled) == expected
    assert dag.resolve(shuffled + [dict(shuffled[0])]) == expected

