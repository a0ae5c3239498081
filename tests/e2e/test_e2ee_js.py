"""End-to-end encryption with matrix-js-sdk (Rust crypto, in Node.js) against `piman run`.

The js side lives in tests/e2e/js/ (one script per scenario, matrix-js-sdk
37.5.0 from npm, installed by `make test`); each script prints its steps, so a
failure here lists the steps that passed and the one that broke.

- Two js-sdk users: encrypted messages both ways, cross-signing bootstrap (and
  a reset behind user-interactive auth), secret storage with a key backup, and
  a second login of the same user that restores the room keys from the backup
  and decrypts a message sent before it existed.
- A matrix-nio user and a js-sdk user in one encrypted room decrypt each
  other's messages.
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

from nio import RoomCreateResponse, RoomSendResponse

from tests.e2e.e2ee_clients import (
    ENCRYPTION_STATE,
    JS_DIR,
    EncryptedNioUser,
    e2ee_server,
    js_command,
    ok,
    run_js_scenario,
    step,
    summarize_steps,
)
from tests.e2e.server_process import ServerProcess

__all__ = ["e2ee_server"]

# The messages js/nio_peer.mjs waits for and answers with.
FROM_NIO = "hello from matrix-nio"
FROM_JS = "hello back from matrix-js-sdk"


def test_js_sdk_encrypted_chat_cross_signing_and_key_backup(e2ee_server: ServerProcess) -> None:
    steps = run_js_scenario("two_clients_backup.mjs", e2ee_server.base_url, timeout=120)
    print(summarize_steps(steps))


def test_nio_and_js_sdk_decrypt_each_other(e2ee_server: ServerProcess, tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_nio_with_js_peer(e2ee_server.base_url, tmp_path), timeout=50))


class JsPeer:
    """js/nio_peer.mjs running as a subprocess, and the steps it has printed so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.steps: list[dict[str, Any]] = []
        self.log: collections.deque[str] = collections.deque(maxlen=40)  # its log's last lines
        self._log_reader = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        """Drain the peer's stderr as it writes, so a chatty SDK never blocks on a full pipe."""
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    @classmethod
    async def start(cls, base_url: str) -> "JsPeer":
        process = await asyncio.create_subprocess_exec(
            *js_command("nio_peer.mjs", base_url), cwd=JS_DIR, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(process)

    async def next_step(self, name: str, timeout: float = 20) -> dict[str, Any]:
        """Wait for the peer's step `name`; fail if it fails a step, exits first or takes too long."""
        assert self.process.stdout is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(),
                                              deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise AssertionError(await self._failure(f"the js peer did not finish its step {name!r} "
                                                         f"within {timeout}s")) from None
            if not line:
                raise AssertionError(await self._failure(f"the js peer exited before its step {name!r}"))
            if not line.startswith(b"STEP "):
                continue
            record = json.loads(line[5:])
            self.steps.append(record)
            if not record.get("ok"):
                raise AssertionError(await self._failure(f"the js peer failed its step {record['step']!r}"))
            if record["step"] == name:
                return record

    async def finish(self, timeout: float = 20) -> None:
        """The peer's remaining steps, up to `done`, and its exit code 0."""
        await self.next_step("done", timeout)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        assert code == 0, await self._failure(f"the js peer exited {code} after its last step")

    async def _failure(self, what: str) -> str:
        await self.stop()
        return (f"{what}; its steps:\n{summarize_steps(self.steps)}\n--- last lines of its log ---\n"
                + "\n".join(self.log))

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._log_reader


async def _nio_with_js_peer(base_url: str, tmp_path: Path) -> None:
    peer = await JsPeer.start(base_url)
    try:
        with step("nio: register alice, upload her keys (keys/upload)"):
            alice = await EncryptedNioUser.register(base_url, "alice", tmp_path / "alice-store")
        try:
            await _chat(alice, peer)
        finally:
            await alice.close()
    finally:
        await peer.stop()


async def _chat(alice: EncryptedNioUser, peer: JsPeer) -> None:
    with step("js: register, Rust crypto, first sync (keys/upload)"):
        ready = await peer.next_step("ready")
        js_user, js_device = ready["detail"]["user_id"], ready["detail"]["device_id"]

    with step("nio: create an encrypted room and invite the js user"):
        created = ok(await alice.client.room_create(name="nio and js", invite=[js_user],
                                                    initial_state=[ENCRYPTION_STATE]), RoomCreateResponse)
        room_id = created.room_id

    with step("js: join the room"):
        joined = await peer.next_step("join the room nio invited to")
        assert joined["detail"]["room_id"] == room_id, joined
        await alice.wait_for_member(room_id, js_user, "join")

    with step("nio -> js: keys/query, keys/claim, Olm to-device room key, Megolm message"):
        sent = ok(await alice.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": FROM_NIO},
                                               ignore_unverified_devices=True), RoomSendResponse)
        assert sent.event_id
        curve25519 = alice.client.device_store[js_user][js_device].curve25519
        assert alice.client.olm.session_store.get(curve25519), (
            "nio has no Olm session with the js device: no one-time key was claimed")

    with step("js: decrypts nio's message"):
        await peer.next_step("decrypt nio's message (Olm room key from nio, Megolm event)")

    with step("js -> nio: the js user claims nio's one-time key and sends its room key and answer"):
        await peer.next_step("answer encrypted (keys/claim for nio's device, Olm room key to nio)")

    with step("nio: decrypts the js user's answer"):
        message = await alice.wait_for_decrypted(room_id, FROM_JS)
        assert message.sender == js_user
        assert [k for k in alice.room_keys if k.sender == js_user and k.room_id == room_id], (
            "nio decrypted without an m.room_key from the js user")

    with step("js: exits cleanly"):
        await peer.finish()
