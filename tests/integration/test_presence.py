"""Presence over real HTTP, and its idle and sync time-outs on a clock the test drives."""

from __future__ import annotations

import urllib.parse

import pytest_twisted
from twisted.internet.task import Clock as FakeReactorClock

from homeserver.clock import Clock
from homeserver.handlers.presence import ACTIVE_GRANULARITY_MS, IDLE_TIMEOUT_MS, SYNC_TIMEOUT_MS
from tests.integration.harness import V3, TestServer


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest_twisted.ensureDeferred
async def test_set_and_get_presence(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    path = f"{V3}/presence/{q(alice.user_id)}/status"
    never_set = await bob.get(path)
    assert (never_set.code, never_set.json) == (200, {"presence": "offline"})
    assert (await alice.put(path, {"presence": "online", "status_msg": "In a meeting"})).code == 200
    seen = (await bob.get(path)).json
    assert seen["presence"] == "online" and seen["status_msg"] == "In a meeting"
    assert seen["currently_active"] is True and 0 <= seen["last_active_ago"] < 10_000
    assert (await alice.put(path, {"presence": "unavailable"})).code == 200
    seen = (await bob.get(path)).json
    assert seen["presence"] == "unavailable" and "status_msg" not in seen and "currently_active" not in seen


@pytest_twisted.ensureDeferred
async def test_presence_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    path = f"{V3}/presence/{q(alice.user_id)}/status"
    other = await bob.put(path, {"presence": "offline"})
    assert (other.code, other.json["errcode"]) == (403, "M_FORBIDDEN")
    for body, errcode in (({"presence": "busy"}, "M_BAD_JSON"), ({}, "M_MISSING_PARAM"),
                          ({"presence": "online", "status_msg": 3}, "M_BAD_JSON")):
        resp = await alice.put(path, body)
        assert (resp.code, resp.json["errcode"]) == (400, errcode), body
    for user in ("@nobody:test.local", "@someone:elsewhere.example"):
        missing = await alice.get(f"{V3}/presence/{q(user)}/status")
        assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await server.client().get(path)).code == 401


@pytest_twisted.ensureDeferred
async def test_sync_stream_and_wake_ups(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    handler = server.hs.presence_handler
    start = handler.current_position()
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice"})
    await alice.put(f"{V3}/presence/{q(alice.user_id)}/status", {"presence": "online", "status_msg": "hi"})
    after_alice = handler.current_position()
    assert server.hs.notifier.positions["presence"] == after_alice > start
    await bob.put(f"{V3}/presence/{q(bob.user_id)}/status", {"presence": "offline"})
    end = handler.current_position()
    # Bob (offline) is left out of an initial sync, but an incremental one reports his change.
    initial = await handler.get_sync_presence(bob.user_id, 0, end, initial=True)
    assert [(e["sender"], e["content"]["presence"]) for e in initial] == [(alice.user_id, "online")]
    assert initial[0]["type"] == "m.presence"
    assert initial[0]["content"]["displayname"] == "Alice" and initial[0]["content"]["status_msg"] == "hi"
    incremental = await handler.get_sync_presence(alice.user_id, after_alice, end, initial=False)
    assert [(e["sender"], e["content"]["presence"]) for e in incremental] == [(bob.user_id, "offline")]


@pytest_twisted.ensureDeferred
async def test_syncing_activity_and_time_outs(server: TestServer) -> None:
    alice = await server.register("alice")
    handler = server.hs.presence_handler
    fake = FakeReactorClock()
    fake.advance(1_000_000)
    handler._clock = Clock(fake)  # the handler's injected clock, driven by the test

    async def state() -> dict:
        status = await handler.get_status(alice.user_id)
        assert status is not None
        return status

    # A sync with set_presence=offline changes nothing; a default one brings the user online.
    async with handler.syncing(alice.user_id, "offline"):
        assert (await state())["presence"] == "offline"
    async with handler.syncing(alice.user_id):
        assert (await state())["presence"] == "online"
        # Still syncing: neither time-out applies however long the request stays open.
        fake.advance(SYNC_TIMEOUT_MS / 1000 + 1)
        await handler.check_timeouts()
        assert (await state())["presence"] == "online"
    # Activity within the granularity is not written again; later it is.
    position = handler.current_position()
    await handler.bump_last_active(alice.user_id)
    assert handler.current_position() == position
    fake.advance(ACTIVE_GRANULARITY_MS / 1000)
    await handler.bump_last_active(alice.user_id)
    assert handler.current_position() > position
    assert (await state())["currently_active"] is True
    # No activity for the idle time-out (while a sync keeps the user connected): unavailable.
    async with handler.syncing(alice.user_id, "offline"):
        fake.advance(IDLE_TIMEOUT_MS / 1000 + 1)
        await handler.check_timeouts()
        assert (await state())["presence"] == "unavailable"
    # No sync for the sync time-out: offline.
    fake.advance(SYNC_TIMEOUT_MS / 1000 + 1)
    await handler.check_timeouts()
    status = await state()
    assert status["presence"] == "offline" and status["last_active_ago"] > IDLE_TIMEOUT_MS
    invalid = await alice.get(f"{V3}/presence/{q(alice.user_id)}/status")
    assert invalid.json["presence"] == "offline"
