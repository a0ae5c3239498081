"""A big room: 3000 members joined one after another, then two long concurrent branches.

Checks that a resolution of this size completes with the right answer, with a real reactor and
clock, that it gives the reactor a turn now and then, and that it fetches the auth graph in few
round trips. No timing assertions.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from homeserver.clock import Clock
from homeserver.events.state_res import resolve_state
from tests.events.state_res_dag import ALICE, NAME, PL, TOPIC, member, names, standard_room

MEMBERS = 3000
BRANCH_JOINS = 500


class CountingClock(Clock):
    """The real clock, counting how often resolution handed control back to the reactor."""

    def __init__(self) -> None:
        super().__init__(reactor)  # type: ignore[arg-type]
        self.sleeps = 0

    def sleep(self, seconds: float) -> "defer.Deferred[None]":
        self.sleeps += 1
        return super().sleep(seconds)


def _user(i: int) -> str:
    return f"@user{i}:m{i % 7}.example"


@pytest_twisted.ensureDeferred
async def test_large_linear_room_with_long_branches() -> None:
    dag = standard_room("12")
    for i in range(MEMBERS):
        dag.add(f"J{i}", "m.room.member", _user(i), {"membership": "join"}, state_key=_user(i))
    fork = dag.last
    assert fork is not None

    # Branch A: Alice promotes user 5, who sets the topic; then many new members join.
    dag.add("PA", "m.room.power_levels", ALICE, dag.power_levels({_user(5): 50}), state_key="", prevs=[fork])
    dag.add("TA", "m.room.topic", _user(5), {"topic": "by user 5"}, state_key="")
    for i in range(MEMBERS, MEMBERS + BRANCH_JOINS):
        dag.add(f"J{i}", "m.room.member", _user(i), {"membership": "join"}, state_key=_user(i))
    tip_a = dag.last
    # Branch B: Alice kicks user 7 and names the room; other new members join.
    dag.add("KB", "m.room.member", ALICE, {"membership": "leave"}, state_key=_user(7), prevs=[fork])
    dag.add("NB", "m.room.name", ALICE, {"name": "big"}, state_key="")
    for i in range(MEMBERS + BRANCH_JOINS, MEMBERS + 2 * BRANCH_JOINS):
        dag.add(f"J{i}", "m.room.member", _user(i), {"membership": "join"}, state_key=_user(i))
    tip_b = dag.last
    assert tip_a is not None and tip_b is not None

    clock = CountingClock()
    dag.store.round_trips = 0
    resolved = names(
        await resolve_state(dag.room_version, [dag.state(tip_a), dag.state(tip_b)], dag.store, clock)
    )

    # Each branch's changes touch different keys and are all allowed: all of them come through.
    assert (resolved[PL], resolved[TOPIC], resolved[NAME]) == ("PA", "TA", "NB")
    assert resolved[member(_user(7))] == "KB"
    assert resolved[member(_user(5))] == "J5"
    for i in range(MEMBERS + 2 * BRANCH_JOINS):
        if i != 7:
            assert resolved[member(_user(i))] == f"J{i}"
    assert clock.sleeps > 0
    assert dag.store.round_trips <= 8
