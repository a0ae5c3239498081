"""Receipts, read markers and content reports over real HTTP, in real rooms."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest_twisted

from tests.integration.harness import V3, Client, TestServer


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def room_with(server: TestServer) -> tuple[Client, Client, Client, str, list[str]]:
    """Alice's room that Bob joined, with three messages; Carol is not in it."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    created = await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})
    assert created.code == 200, created
    room_id = created.json["room_id"]
    assert (await bob.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    event_ids = []
    for i in range(3):
        sent = await alice.put(f"{V3}/rooms/{q(room_id)}/send/m.room.message/t{i}", {"msgtype": "m.text", "body": f"m{i}"})
        assert sent.code == 200, sent
        event_ids.append(sent.json["event_id"])
    return alice, bob, carol, room_id, event_ids


def receipt_path(room_id: str, receipt_type: str, event_id: str) -> str:
    return f"{V3}/rooms/{q(room_id)}/receipt/{receipt_type}/{q(event_id)}"


@pytest_twisted.ensureDeferred
async def test_receipts_reach_the_room_private_ones_only_their_owner(server: TestServer) -> None:
    alice, bob, _, room_id, events = await room_with(server)
    handler = server.hs.receipts_handler
    start = handler.current_position()
    assert (await bob.post(receipt_path(room_id, "m.read", events[0]), {})).code == 200
    assert server.hs.notifier.positions["receipts"] == handler.current_position() > start
    assert (await bob.post(receipt_path(room_id, "m.read", events[1]), {"thread_id": "main"})).code == 200
    assert (await bob.post(receipt_path(room_id, "m.read.private", events[2]), {})).code == 200
    now = handler.current_position()
    for_bob = (await handler.get_sync_receipts(bob.user_id, [room_id], 0, now))[room_id]
    assert for_bob["type"] == "m.receipt"
    content = for_bob["content"]
    assert set(content) == set(events)
    assert content[events[1]]["m.read"][bob.user_id]["thread_id"] == "main"
    assert "thread_id" not in content[events[0]]["m.read"][bob.user_id]
    assert list(content[events[2]]) == ["m.read.private"]
    for_alice = (await handler.get_sync_receipts(alice.user_id, [room_id], 0, now))[room_id]["content"]
    assert set(for_alice) == {events[0], events[1]}  # Bob's private receipt is his alone
    assert await handler.get_sync_receipts(alice.user_id, [room_id], now, now) == {}
    # A newer unthreaded receipt replaces the older one.
    assert (await bob.post(receipt_path(room_id, "m.read", events[2]), {})).code == 200
    later = await handler.get_sync_receipts(alice.user_id, [room_id], now, handler.current_position())
    assert list(later[room_id]["content"]) == [events[2]]
    own = await handler.get_read_receipts(bob.user_id, [room_id])
    assert sorted((r.receipt_type, r.thread_id or "", r.event_id) for r in own) == sorted([
        ("m.read", "", events[2]), ("m.read", "main", events[1]), ("m.read.private", "", events[2])])


@pytest_twisted.ensureDeferred
async def test_receipt_errors(server: TestServer) -> None:
    _, bob, carol, room_id, events = await room_with(server)

    async def expect(resp: Any, code: int, errcode: str) -> None:
        assert (resp.code, resp.json["errcode"]) == (code, errcode), resp

    await expect(await carol.post(receipt_path(room_id, "m.read", events[0]), {}), 403, "M_FORBIDDEN")
    await expect(await bob.post(receipt_path(room_id, "m.read", "$missing"), {}), 404, "M_NOT_FOUND")
    await expect(await bob.post(receipt_path(room_id, "m.unknown", events[0]), {}), 400, "M_INVALID_PARAM")
    await expect(await bob.post(receipt_path(room_id, "m.read", events[0]), {"thread_id": ""}), 400, "M_INVALID_PARAM")
    await expect(await bob.post(receipt_path(room_id, "m.read", events[0]), {"thread_id": 5}), 400, "M_INVALID_PARAM")
    await expect(await bob.post(receipt_path(room_id, "m.read", events[0]), {"thread_id": "nope"}), 400,
                 "M_INVALID_PARAM")
    await expect(await bob.post(receipt_path(room_id, "m.fully_read", events[0]), {"thread_id": "main"}), 400,
                 "M_INVALID_PARAM")
    # An event of another room is not in this one.
    other = (await carol.post(f"{V3}/createRoom", {})).json["room_id"]
    carols_event = (await carol.put(f"{V3}/rooms/{q(other)}/send/m.room.message/x", {"msgtype": "m.text", "body": "x"}))
    await expect(await bob.post(receipt_path(room_id, "m.read", carols_event.json["event_id"]), {}), 404, "M_NOT_FOUND")
    assert await server.hs.receipts_handler.get_sync_receipts(bob.user_id, [room_id], 0,
                                                              server.hs.receipts_handler.current_position()) == {}


@pytest_twisted.ensureDeferred
async def test_read_markers(server: TestServer) -> None:
    _, bob, carol, room_id, events = await room_with(server)
    path = f"{V3}/rooms/{q(room_id)}/read_markers"
    markers = {"m.fully_read": events[1], "m.read": events[2], "m.read.private": events[0]}
    assert (await bob.post(path, markers)).code == 200
    fully_read = await bob.get(f"{V3}/user/{q(bob.user_id)}/rooms/{q(room_id)}/account_data/m.fully_read")
    assert fully_read.json == {"event_id": events[1]}
    receipts = (await server.hs.receipts_handler.get_sync_receipts(
        bob.user_id, [room_id], 0, server.hs.receipts_handler.current_position()))[room_id]["content"]
    assert receipts[events[2]]["m.read"][bob.user_id]["ts"] > 0
    assert bob.user_id in receipts[events[0]]["m.read.private"]
    # The fully-read marker is also reachable as a receipt type, and reaches /sync as room account data.
    before = server.hs.account_data_handler.current_position()
    assert (await bob.post(receipt_path(room_id, "m.fully_read", events[2]), {})).code == 200
    _, rooms = await server.hs.account_data_handler.get_sync_account_data(
        bob.user_id, before, server.hs.account_data_handler.current_position(), initial=False)
    assert rooms == {room_id: [{"type": "m.fully_read", "content": {"event_id": events[2]}}]}
    # Errors: not joined, unknown event (nothing is moved then), malformed body.
    not_member = await carol.post(path, {"m.fully_read": events[0]})
    assert (not_member.code, not_member.json["errcode"]) == (403, "M_FORBIDDEN")
    unknown = await bob.post(path, {"m.fully_read": events[0], "m.read": "$nope"})
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await bob.get(f"{V3}/user/{q(bob.user_id)}/rooms/{q(room_id)}/account_data/m.fully_read")).json == {
        "event_id": events[2]}
    malformed = await bob.post(path, {"m.read": 5})
    assert (malformed.code, malformed.json["errcode"]) == (400, "M_BAD_JSON")


@pytest_twisted.ensureDeferred
async def test_reports(server: TestServer) -> None:
    alice, bob, carol, room_id, events = await room_with(server)
    ok = await bob.post(f"{V3}/rooms/{q(room_id)}/report/{q(events[0])}", {"reason": "rude"})
    assert (ok.code, ok.json) == (200, {})
    assert (await bob.post(f"{V3}/rooms/{q(room_id)}/report/{q(events[1])}", {})).code == 200
    # Event reports need membership; room and user reports don't.
    not_member = await carol.post(f"{V3}/rooms/{q(room_id)}/report/{q(events[0])}", {"reason": "x"})
    assert (not_member.code, not_member.json["errcode"]) == (404, "M_NOT_FOUND")
    missing = await bob.post(f"{V3}/rooms/{q(room_id)}/report/{q('$nope')}", {"reason": "x"})
    assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await carol.post(f"{V3}/rooms/{q(room_id)}/report", {"reason": "spam room"})).code == 200
    assert (await carol.post(f"{V3}/users/{q(alice.user_id)}/report", {"reason": ""})).code == 200
    for path, body, code, errcode in (
        (f"{V3}/rooms/{q('!unknown:test.local')}/report", {"reason": "x"}, 404, "M_NOT_FOUND"),
        (f"{V3}/users/{q('@nobody:test.local')}/report", {"reason": "x"}, 404, "M_NOT_FOUND"),
        (f"{V3}/rooms/{q(room_id)}/report", {}, 400, "M_MISSING_PARAM"),
        (f"{V3}/rooms/{q(room_id)}/report/{q(events[0])}", {"reason": 5}, 400, "M_BAD_JSON"),
    ):
        resp = await carol.post(path, body) if "report/" not in path else await bob.post(path, body)
        assert (resp.code, resp.json["errcode"]) == (code, errcode), path
    reports = await server.hs.store.reports.get_reports()
    assert [(r.reporter, r.room_id, r.event_id, r.reported_user_id, r.reason) for r in reversed(reports)] == [
        (bob.user_id, room_id, events[0], None, "rude"),
        (bob.user_id, room_id, events[1], None, None),
        (carol.user_id, room_id, None, None, "spam room"),
        (carol.user_id, None, None, alice.user_id, ""),
    ]
