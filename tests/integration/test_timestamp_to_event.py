"""`/timestamp_to_event` over real HTTP: the event nearest a time, in each direction."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.task import deferLater

from tests.integration.harness import V3, Client, TestServer

V1 = "/_matrix/client/v1"


async def pause(reactor: Any) -> None:
    """Let the clock move on, so consecutive events get distinct timestamps."""
    await deferLater(reactor, 0.02, lambda: None)


async def send(client: Client, room_id: str, txn: str) -> dict[str, Any]:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": txn})
    assert resp.code == 200, resp
    event = await client.get(f"{V3}/rooms/{room_id}/event/{resp.json['event_id']}")
    return event.json


async def lookup(client: Client, room_id: str, ts: int, direction: str) -> Any:
    return await client.get(f"{V1}/rooms/{room_id}/timestamp_to_event?ts={ts}&dir={direction}")


@pytest_twisted.ensureDeferred
async def test_finds_nearest_event_each_way(server: TestServer) -> None:
    reactor = server.hs.reactor
    alice = await server.register("alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    messages = []
    for txn in ("m1", "m2", "m3"):
        await pause(reactor)
        messages.append(await send(alice, room_id, txn))
    m1, m2, m3 = messages

    async def found(ts: int, direction: str) -> str:
        resp = await lookup(alice, room_id, ts, direction)
        assert resp.code == 200, resp
        return resp.json["event_id"]

    exact = await lookup(alice, room_id, m2["origin_server_ts"], "f")
    assert exact.json == {"event_id": m2["event_id"], "origin_server_ts": m2["origin_server_ts"]}
    assert await found(m2["origin_server_ts"], "b") == m2["event_id"]
    assert await found(m2["origin_server_ts"] - 1, "b") == m1["event_id"]
    assert await found(m2["origin_server_ts"] + 1, "f") == m3["event_id"]
    assert await found(m3["origin_server_ts"] + 60_000, "b") == m3["event_id"]
    create = (await alice.get(f"{V3}/rooms/{room_id}/state")).json[0]
    assert create["type"] == "m.room.create"
    assert await found(0, "f") == create["event_id"]
    for ts, direction in ((0, "b"), (m3["origin_server_ts"] + 60_000, "f")):
        none = await lookup(alice, room_id, ts, direction)
        assert (none.code, none.json["errcode"]) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_errors_and_who_may_ask(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    path = f"{V1}/rooms/{room_id}/timestamp_to_event"
    missing = await alice.get(f"{path}?dir=f")
    assert (missing.code, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    no_dir = await alice.get(f"{path}?ts=0")
    assert (no_dir.code, no_dir.json["errcode"]) == (400, "M_MISSING_PARAM")
    bad_dir = await alice.get(f"{path}?ts=0&dir=x")
    assert (bad_dir.code, bad_dir.json["errcode"]) == (400, "M_INVALID_PARAM")
    bad_ts = await alice.get(f"{path}?ts=soon&dir=f")
    assert (bad_ts.code, bad_ts.json["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await server.client().get(f"{path}?ts=0&dir=f")).code == 401
    outsider = await bob.get(f"{path}?ts=0&dir=f")
    assert (outsider.code, outsider.json["errcode"]) == (403, "M_FORBIDDEN")
    await bob.post(f"{V3}/join/{room_id}", {})
    assert (await bob.get(f"{path}?ts=0&dir=f")).code == 200
    await bob.post(f"{V3}/rooms/{room_id}/leave", {})
    former = await bob.get(f"{path}?ts=0&dir=f")
    assert (former.code, former.json["errcode"]) == (403, "M_FORBIDDEN")
    await alice.put(f"{V3}/rooms/{room_id}/state/m.room.history_visibility/", {"history_visibility": "world_readable"})
    assert (await bob.get(f"{path}?ts=0&dir=f")).code == 200
    # Only under the v1 prefix, where the spec puts it.
    v3 = await alice.get(f"{V3}/rooms/{room_id}/timestamp_to_event?ts=0&dir=f")
    assert (v3.code, v3.json["errcode"]) == (404, "M_UNRECOGNIZED")
