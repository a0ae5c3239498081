"""End-to-end encryption with matrix-nio against `piman run`, on both engines.

Two nio users with encryption (vodozemac) in a room encrypted from its first
event: alice's first message makes nio query bob's device keys, claim one of
his one-time keys, open an Olm session and send him the Megolm room key as an
encrypted to-device message; bob decrypts the message. Then the other way
round, and once more on the existing session. Each step that fails names itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nio import JoinResponse, RoomCreateResponse, RoomMessageText, RoomSendResponse

from tests.e2e.e2ee_clients import ENCRYPTION_STATE, EncryptedNioUser, e2ee_server, ok, step
from tests.e2e.server_process import ServerProcess

__all__ = ["e2ee_server"]


def test_matrix_nio_encrypted_chat(e2ee_server: ServerProcess, tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_scenario(e2ee_server.base_url, tmp_path), timeout=50))


async def _scenario(base_url: str, tmp_path: Path) -> None:
    with step("register alice and bob, upload device and one-time keys (keys/upload)"):
        alice = await EncryptedNioUser.register(base_url, "alice", tmp_path / "alice-store")
        bob = await EncryptedNioUser.register(base_url, "bob", tmp_path / "bob-store")
    try:
        await _chat(alice, bob)
    finally:
        await alice.close()
        await bob.close()


async def _send(sender: EncryptedNioUser, room_id: str, body: str) -> str:
    """Send `body` the way a nio bot does; nio shares the room key first when it must."""
    sent = ok(await sender.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                                            ignore_unverified_devices=True), RoomSendResponse)
    return sent.event_id


async def _chat(alice: EncryptedNioUser, bob: EncryptedNioUser) -> None:
    with step("alice creates an encrypted room and invites bob"):
        created = ok(await alice.client.room_create(name="nio e2ee", invite=[bob.user_id],
                                                    initial_state=[ENCRYPTION_STATE]), RoomCreateResponse)
        room_id = created.room_id
        await alice.wait_for_member(room_id, bob.user_id, "invite")
        assert alice.client.rooms[room_id].encrypted, "alice's nio does not see the room as encrypted"

    with step("bob sees the invite and joins"):
        await bob.sync_until(lambda r: room_id in r.rooms.invite, f"the invite to {room_id}")
        ok(await bob.client.join(room_id), JoinResponse)
        await bob.wait_for_member(room_id, bob.user_id, "join")
        assert bob.client.rooms[room_id].encrypted, "bob's nio does not see the room as encrypted"

    with step("alice's sync shows bob's join, and bob in device_lists.changed by then"):
        await alice.wait_for_member(room_id, bob.user_id, "join")
        assert bob.user_id in alice.device_lists_changed, (
            f"bob now shares an encrypted room with alice, but her syncs up to his join listed only "
            f"{sorted(alice.device_lists_changed)} in device_lists.changed")

    with step("alice -> bob: keys/query, keys/claim, Olm to-device room key, Megolm message"):
        bob_keys_before, bob_counts_before = bob.one_time_keys, len(bob.synced_key_counts)
        event_id = await _send(alice, room_id, "hello bob, encrypted")
        bob_device = alice.client.device_store[bob.user_id][bob.client.device_id]
        assert alice.client.olm.session_store.get(bob_device.curve25519), (
            "alice has no Olm session with bob's device: no one-time key was claimed")

    with step("bob receives the room key over Olm (sendToDevice, sync to_device) and decrypts"):
        message = await bob.wait_for_decrypted(room_id, "hello bob, encrypted")
        assert message.event_id == event_id and message.sender == alice.user_id
        assert [k for k in bob.room_keys if k.sender == alice.user_id and k.room_id == room_id], (
            "bob decrypted without an m.room_key from alice")

    with step("bob's sync counts one one-time key fewer (device_one_time_keys_count)"):
        counts = bob.synced_key_counts[bob_counts_before:]
        assert bob_keys_before is not None and bob_keys_before - 1 in counts, (
            f"bob had {bob_keys_before} one-time keys; after alice's claim his syncs said {counts}")

    with step("bob -> alice: the same the other way round"):
        event_id = await _send(bob, room_id, "hello alice, encrypted too")
        message = await alice.wait_for_decrypted(room_id, "hello alice, encrypted too")
        assert message.event_id == event_id and message.sender == bob.user_id

    with step("alice -> bob again, on the Megolm session bob already has"):
        keys_before = len(bob.room_keys)
        await _send(alice, room_id, "second message, same session")
        message = await bob.wait_for_decrypted(room_id, "second message, same session")
        assert isinstance(message, RoomMessageText)
        assert len([k for k in bob.room_keys if k.sender == alice.user_id]) == keys_before, (
            "alice shared a new room key for her second message")
