"""Unread counts served from memory must always equal what the database says."""

from __future__ import annotations

import random

import pytest_twisted

from homeserver.handlers.receipts import RECEIPT_TYPES
from tests.integration.harness import V3, TestServer, create_room, send


@pytest_twisted.ensureDeferred
async def test_cached_counts_equal_database_counts(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    rooms = [await create_room(alice, preset="public_chat") for _ in range(2)]
    for room_id in rooms:
        await bob.post(f"{V3}/rooms/{room_id}/join", {})
    handler = server.hs.push_actions_handler
    rng = random.Random(3)
    last_event: dict[str, str] = {}
    served_from_memory = 0
    for step in range(60):
        room_id = rng.choice(rooms)
        action = rng.random()
        if action < 0.6:
            body = "hey @bob" if rng.random() < 0.2 else f"message {step}"
            mentions = {"user_ids": [bob.user_id]} if "@bob" in body else {}
            resp = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.message/s{step}",
                                   {"msgtype": "m.text", "body": body, "m.mentions": mentions})
            last_event[room_id] = resp.json["event_id"]
        elif action < 0.75 and room_id in last_event:
            await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{last_event[room_id]}", {})
        elif action < 0.85:
            await send(bob, room_id, f"bob {step}", f"b{step}")  # reading by sending
        now = server.hs.store.events_stream.get_current_token()
        cached = {r: handler._counts.get(bob.user_id, r, now) for r in rooms}
        served_from_memory += sum(c is not None for c in cached.values())
        got = await handler.get_counts(bob.user_id, rooms, up_to=now)
        truth = await server.hs.store.push_actions.get_unread_counts(bob.user_id, rooms, RECEIPT_TYPES, up_to=now)
        for r in rooms:
            n, h, _ = truth.get(r, (0, 0, {}))
            assert got[r]["unread_notifications"] == {"notification_count": n, "highlight_count": h}, step
    assert served_from_memory > 0
