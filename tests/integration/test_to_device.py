"""To-device messages over real HTTP: sending, delivery in /sync, deletion once acknowledged."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from homeserver.handlers.sync_token import SyncToken
from homeserver.handlers.to_device import SYNC_LIMIT
from tests.integration.harness import V3, Client, TestServer

PASSWORD = "correct horse battery"


async def second_device(server: TestServer, who: Client, device_id: str) -> Client:
    resp = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": who.user_id},
        "password": PASSWORD, "device_id": device_id})
    assert resp.code == 200, resp
    client = server.client(resp.json["access_token"])
    client.user_id, client.device_id = resp.json["user_id"], resp.json["device_id"]
    return client


async def send(client: Client, txn: str, messages: dict[str, Any], event_type: str = "m.test") -> None:
    resp = await client.put(f"{V3}/sendToDevice/{event_type}/{txn}", {"messages": messages})
    assert (resp.code, resp.json) == (200, {}), resp


async def sync(client: Client, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
    query = f"?timeout={timeout}" + (f"&since={since}" if since else "")
    resp = await client.get(f"{V3}/sync{query}")
    assert resp.code == 200, resp
    return resp.json


async def inbox(server: TestServer, user_id: str | None = None,
                device_id: str | None = None) -> list[tuple[Any, ...]]:
    """The raw rows of `device_inbox` (all, or one device's)."""
    sql = "SELECT user_id, device_id, stream_id, created_ts, message FROM device_inbox"
    if user_id is None:
        return await server.hs.store.db.execute("test_inbox", sql + " ORDER BY stream_id")
    return await server.hs.store.db.execute("test_inbox", sql + " WHERE user_id = ? AND device_id = ?"
                                            " ORDER BY stream_id", user_id, device_id)


@pytest_twisted.ensureDeferred
async def test_delivered_in_sync_then_deleted_after_next_sync(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    since = (await sync(bob))["next_batch"]
    before = int(time.time() * 1000)
    await send(alice, "t1", {bob.user_id: {bob.device_id: {"hello": "bob"}}}, event_type="m.room.encrypted")
    [row] = await inbox(server)
    assert row[:2] == (bob.user_id, bob.device_id)
    assert before <= row[3] <= int(time.time() * 1000)  # created_ts, for expiring undelivered messages

    first = await sync(bob, since)
    assert first["to_device"]["events"] == [{"type": "m.room.encrypted", "sender": alice.user_id,
                                             "content": {"hello": "bob"}}]
    assert SyncToken.parse(first["next_batch"]).to_device == row[2]
    # Delivered but not acknowledged: a retry of the same sync gets it again.
    assert (await sync(bob, since))["to_device"]["events"] == first["to_device"]["events"]
    assert len(await inbox(server)) == 1

    second = await sync(bob, first["next_batch"])
    assert second["to_device"]["events"] == []
    assert await inbox(server) == []
    # An old token no longer brings it back.
    assert (await sync(bob, since))["to_device"]["events"] == []


@pytest_twisted.ensureDeferred
async def test_initial_sync_delivers_waiting_messages(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    await send(alice, "t1", {bob.user_id: {bob.device_id: {"n": 1}}})
    initial = await sync(bob)
    assert [e["content"] for e in initial["to_device"]["events"]] == [{"n": 1}]
    await sync(bob, initial["next_batch"])
    assert await inbox(server) == []


@pytest_twisted.ensureDeferred
async def test_star_reaches_every_device_and_a_named_device_gets_its_own(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    bob2 = await second_device(server, bob, "BOBTWO")
    bob3 = await second_device(server, bob, "BOBTHREE")
    tokens = {c.device_id: (await sync(c))["next_batch"] for c in (bob, bob2, bob3)}
    await send(alice, "t1", {bob.user_id: {"*": {"to": "all"}, "BOBTHREE": {"to": "three"}}})
    for client, expected in ((bob, "all"), (bob2, "all"), (bob3, "three")):
        events = (await sync(client, tokens[client.device_id]))["to_device"]["events"]
        assert [e["content"] for e in events] == [{"to": expected}], client.device_id
    # The sender's own device got nothing.
    assert (await sync(alice))["to_device"]["events"] == []


@pytest_twisted.ensureDeferred
async def test_unknown_devices_users_and_remote_users_are_skipped(server: TestServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    caplog.set_level(logging.INFO, logger="homeserver.handlers.to_device")
    await send(alice, "t1", {bob.user_id: {"NOSUCHDEVICE": {"a": 1}}, "@nobody:test.local": {"*": {"a": 2}},
                             "@carol:elsewhere.example": {"*": {"secret": "not logged"}}})
    assert await inbox(server) == []
    assert "no federation yet" in caplog.text
    assert "not logged" not in caplog.text and "carol" not in caplog.text


@pytest_twisted.ensureDeferred
async def test_transaction_ids_are_idempotent_per_device(server: TestServer) -> None:
    alice = await server.register("alice")
    alice2 = await second_device(server, alice, "ALICETWO")
    bob = await server.register("bob")
    since = (await sync(bob))["next_batch"]
    message = {bob.user_id: {bob.device_id: {"n": 1}}}
    await send(alice, "same", message)
    await send(alice, "same", {bob.user_id: {bob.device_id: {"n": 2}}})  # a retry: ignored
    await send(alice2, "same", {bob.user_id: {bob.device_id: {"n": 3}}})  # another device's txn
    await send(alice, "other", {bob.user_id: {bob.device_id: {"n": 4}}})
    events = (await sync(bob, since))["to_device"]["events"]
    assert [e["content"]["n"] for e in events] == [1, 3, 4]


@pytest_twisted.ensureDeferred
async def test_long_poll_is_woken_by_a_to_device_message(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    since = (await sync(bob))["next_batch"]
    started = time.monotonic()
    poll = defer.ensureDeferred(sync(bob, since, timeout=20000))
    await server.hs.clock.sleep(0.2)
    assert not poll.called
    await send(alice, "t1", {bob.user_id: {bob.device_id: {"wake": "up"}}})
    result = await poll
    assert time.monotonic() - started < 10  # the notifier, not the 20 s timeout
    assert [e["content"] for e in result["to_device"]["events"]] == [{"wake": "up"}]


@pytest_twisted.ensureDeferred
async def test_messages_are_sealed_at_rest(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    await send(alice, "t1", {bob.user_id: {bob.device_id: {"ciphertext": "VerySecretPayload"}}},
               event_type="m.secret.event")
    [row] = await inbox(server)
    blob = bytes(row[4])
    for plaintext in (b"VerySecretPayload", b"ciphertext", b"m.secret.event", alice.user_id.encode()):
        assert plaintext not in blob
    assert server.hs.sealer.open_json(blob)["content"] == {"ciphertext": "VerySecretPayload"}


@pytest_twisted.ensureDeferred
async def test_a_backlog_comes_in_pages_with_the_token_after_the_last_delivered(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    since = (await sync(bob))["next_batch"]
    total = SYNC_LIMIT + 20
    for n in range(total):
        await send(alice, f"t{n}", {bob.user_id: {bob.device_id: {"n": n}}})
    positions = [row[2] for row in await inbox(server)]
    # Another device's message after the backlog moves the stream past the last of bob's.
    await send(alice, "late", {alice.user_id: {alice.device_id: {"n": "mine"}}})

    page = await sync(bob, since)
    assert [e["content"]["n"] for e in page["to_device"]["events"]] == list(range(SYNC_LIMIT))
    assert SyncToken.parse(page["next_batch"]).to_device == positions[SYNC_LIMIT - 1]
    rest = await sync(bob, page["next_batch"])
    assert [e["content"]["n"] for e in rest["to_device"]["events"]] == list(range(SYNC_LIMIT, total))
    assert len(await inbox(server, bob.user_id, bob.device_id)) == total - SYNC_LIMIT
    assert SyncToken.parse(rest["next_batch"]).to_device > positions[-1]
    done = await sync(bob, rest["next_batch"])
    assert done["to_device"]["events"] == []
    assert await inbox(server, bob.user_id, bob.device_id) == []


@pytest_twisted.ensureDeferred
async def test_deleting_a_device_deletes_its_inbox(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    bob2 = await second_device(server, bob, "BOBTWO")
    await second_device(server, bob, "BOBTHREE")
    await send(alice, "t1", {bob.user_id: {"*": {"a": 1}}})
    assert len(await inbox(server)) == 3
    first = await bob.delete(f"{V3}/devices/BOBTHREE", {})
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": bob.user_id},
            "password": PASSWORD, "session": first.json["session"]}
    assert (await bob.delete(f"{V3}/devices/BOBTHREE", {"auth": auth})).code == 200
    assert await inbox(server, bob.user_id, "BOBTHREE") == []
    assert (await bob2.post(f"{V3}/logout", {})).code == 200
    assert await inbox(server, bob.user_id, "BOBTWO") == []
    assert [row[1] for row in await inbox(server)] == [bob.device_id]


@pytest.mark.parametrize("body, errcode", [
    ({}, "M_MISSING_PARAM"),
    ({"messages": []}, "M_BAD_JSON"),
    ({"messages": {"not-a-user-id": {"*": {}}}}, "M_INVALID_PARAM"),
    ({"messages": {"@bob:test.local": ["DEV"]}}, "M_BAD_JSON"),
    ({"messages": {"@bob:test.local": {"DEV": "not an object"}}}, "M_BAD_JSON"),
])
@pytest_twisted.ensureDeferred
async def test_bad_requests(server: TestServer, body: dict[str, Any], errcode: str) -> None:
    alice = await server.register("alice")
    resp = await alice.put(f"{V3}/sendToDevice/m.test/t1", body)
    assert (resp.code, resp.json["errcode"]) == (400, errcode)


@pytest_twisted.ensureDeferred
async def test_needs_an_access_token(server: TestServer) -> None:
    resp = await server.client().put(f"{V3}/sendToDevice/m.test/t1", {"messages": {}})
    assert (resp.code, resp.json["errcode"]) == (401, "M_MISSING_TOKEN")
