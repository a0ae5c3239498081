"""`e2ee.required` (the default): encrypted rooms only, plaintext refused and never stored."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.harness import V3, TestServer, create_room

REQUIRED = pytest.mark.hs_config({"e2ee": {"required": True}})


@REQUIRED
@pytest_twisted.ensureDeferred
async def test_every_new_room_is_encrypted_whatever_the_client_asks(server: TestServer) -> None:
    alice = await server.register("alice")
    plain = await create_room(alice, preset="public_chat")
    weak = await create_room(alice, initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "none"}}])
    for room_id in (plain, weak):
        state = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.encryption/")).json
        assert state == {"algorithm": "m.megolm.v1.aes-sha2"}


@REQUIRED
@pytest_twisted.ensureDeferred
async def test_plaintext_message_refused_and_nothing_stored(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    before = server.hs.store.events_stream.get_current_token()
    resp = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "in clear"})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    assert "encrypt" in resp.json["error"]
    assert server.hs.store.events_stream.get_current_token() == before
    rows = await server.hs.store.db.execute("count", "SELECT COUNT(*) FROM events WHERE type = 'm.room.message'")
    assert rows[0][0] == 0
    encrypted = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.encrypted/t2", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...", "sender_key": "abc", "session_id": "s1",
        "device_id": alice.device_id})
    assert encrypted.code == 200


@REQUIRED
@pytest_twisted.ensureDeferred
async def test_redactions_allowed_and_encryption_cannot_be_weakened(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    sent = await alice.put(f"{V3}/rooms/{room_id}/send/m.room.encrypted/t1", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "sender_key": "k", "session_id": "s",
        "device_id": alice.device_id})
    redact = await alice.put(f"{V3}/rooms/{room_id}/redact/{sent.json['event_id']}/r1", {})
    assert redact.code == 200
    weaken = await alice.put(f"{V3}/rooms/{room_id}/state/m.room.encryption/", {"algorithm": "m.olm.v1.curve25519-aes-sha2"})
    assert (weaken.code, weaken.json["errcode"]) == (403, "M_FORBIDDEN")
    rotate = await alice.put(f"{V3}/rooms/{room_id}/state/m.room.encryption/",
                             {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 3600000})
    assert rotate.code == 200
