"""What the end-to-end encryption tests share: the server, steps, and nio with encryption.

A scenario is a list of named steps; when one fails, the test fails naming
that step (and, for the js-sdk scripts, the steps that passed before it), so a
red test says which part of the E2EE flow the server broke.

`EncryptedNioUser` is matrix-nio the way an encrypting bot uses it: a store in
a temporary directory, and after every /sync the key uploads and queries that
`sync_forever` would do.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    KeysClaimResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    MegolmEvent,
    RegisterResponse,
    RoomKeyEvent,
    RoomMessageText,
    SyncResponse,
)

from tests.e2e.server_process import ServerProcess, init_data_dir, running_server

PASSWORD = "correct horse battery staple 42"  # the js scripts (js/lib.mjs) use the same
MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
SYNC_WAIT = 15.0  # seconds a client waits for something to show up in /sync
JS_DIR = Path(__file__).with_name("js")
GENEROUS = {"per_second": 1000, "burst_count": 1000}
# Encryption stays at its default (required); only rate limits are out of the way.
SERVER_OVERRIDES: dict[str, Any] = {
    "rc_message": GENEROUS,
    "rc_joins": {"local": GENEROUS, "remote": GENEROUS},
    "rc_invites": {"per_room": GENEROUS, "per_user": GENEROUS, "per_issuer": GENEROUS},
}


@pytest.fixture
def e2ee_server(tmp_path: Path, database_config: dict[str, Any]) -> Iterator[ServerProcess]:
    """`piman run` on each engine, with its default (mandatory) encryption."""
    config_path = init_data_dir(tmp_path / "data", database_config, **SERVER_OVERRIDES)
    with running_server(config_path) as server:
        yield server


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Name the part of the flow that runs inside, so a failure says where it broke."""
    try:
        yield
    except Exception as error:
        raise AssertionError(f"step failed: {name}: {type(error).__name__}: {error}") from error


def ok(response: Any, kind: type) -> Any:
    """`response` if nio parsed it as `kind`; else fail naming the request and the server's error."""
    if isinstance(response, kind):
        return response
    http = getattr(response, "transport_response", None)
    request = f"{http.method} {http.url.path} -> {http.status}" if http is not None else "(no HTTP response)"
    error = getattr(response, "status_code", None), getattr(response, "message", response)
    raise AssertionError(f"expected {kind.__name__}, got {type(response).__name__}: {request} {error}")


class EncryptedNioUser:
    """A matrix-nio client with encryption, and what its syncs brought so far."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.room_keys: list[RoomKeyEvent] = []  # Olm-decrypted m.room_key to-device events
        self.undecrypted: list[tuple[str, MegolmEvent]] = []  # (room, event) still without their key
        self.decrypted: list[tuple[str, RoomMessageText]] = []  # (room, event) that arrived encrypted
        self.device_lists_changed: set[str] = set()
        self.one_time_keys: int | None = None  # the server's signed_curve25519 count, last we heard
        self.synced_key_counts: list[int] = []  # every count /sync reported, in order

    @property
    def user_id(self) -> str:
        return self.client.user_id

    @classmethod
    async def register(cls, base_url: str, name: str, store: Path) -> "EncryptedNioUser":
        """Register `name` (a new device with its own Olm account) and upload its keys."""
        store.mkdir(parents=True, exist_ok=True)
        client = AsyncClient(base_url, store_path=str(store),
                             config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True))
        user = cls(client)
        ok(await client.register(name, PASSWORD, device_name=f"{name}'s nio"), RegisterResponse)
        assert client.olm is not None, "nio did not load its Olm account after registering"
        assert client.should_upload_keys, "a new nio device must want to upload its keys"
        uploaded = ok(await client.keys_upload(), KeysUploadResponse)
        assert uploaded.signed_curve25519_count > 0, f"/keys/upload counted no one-time keys: {uploaded}"
        user.one_time_keys = uploaded.signed_curve25519_count
        return user

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int) -> SyncResponse:
        """One /sync, then the key traffic nio's `sync_forever` does after one."""
        response = ok(await self.client.sync(timeout=timeout_ms), SyncResponse)
        self.room_keys += [e for e in response.to_device_events if isinstance(e, RoomKeyEvent)]
        self.device_lists_changed |= set(response.device_list.changed)
        if response.device_key_count.signed_curve25519 is not None:
            self.one_time_keys = response.device_key_count.signed_curve25519
            self.synced_key_counts.append(self.one_time_keys)
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                if isinstance(event, MegolmEvent):
                    self.undecrypted.append((room_id, event))
                elif isinstance(event, RoomMessageText) and event.decrypted:
                    self.decrypted.append((room_id, event))
        self._retry_undecrypted()
        if self.client.should_upload_keys:
            uploaded = ok(await self.client.keys_upload(), KeysUploadResponse)
            self.one_time_keys = uploaded.signed_curve25519_count
        if self.client.should_query_keys:
            ok(await self.client.keys_query(), KeysQueryResponse)
        if self.client.should_claim_keys:
            ok(await self.client.keys_claim(self.client.get_users_for_key_claiming()), KeysClaimResponse)
        return response

    def _retry_undecrypted(self) -> None:
        """Decrypt events whose room key came after them, as a bot does on a new key."""
        still = []
        for room_id, event in self.undecrypted:
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:
                still.append((room_id, event))
                continue
            self._keep_decrypted(room_id, decrypted)
        self.undecrypted = still

    def _keep_decrypted(self, room_id: str, event: Any) -> None:
        """Where a late-decrypted event goes; subclasses keep other event types too."""
        if isinstance(event, RoomMessageText):
            self.decrypted.append((room_id, event))

    async def sync_until(self, found: Callable[[SyncResponse], Any], what: str) -> Any:
        """Long-poll /sync until `found` (given each response) returns something truthy."""
        deadline = time.monotonic() + SYNC_WAIT
        while True:
            remaining = deadline - time.monotonic()
            response = await self.sync(timeout_ms=max(0, int(min(remaining, 5.0) * 1000)))
            result = found(response)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id}'s /sync did not show {what} within {SYNC_WAIT}s")

    async def wait_for_decrypted(self, room_id: str, body: str) -> RoomMessageText:
        """The message `body` in `room_id`, sent encrypted and decrypted here."""
        def found(_: SyncResponse) -> RoomMessageText | None:
            return next((e for (r, e) in self.decrypted if r == room_id and e.body == body), None)

        try:
            return await self.sync_until(found, f"{body!r} decrypted in {room_id}")
        except AssertionError as error:
            raise AssertionError(
                f"{error}; undecryptable events: {[e.event_id for (_, e) in self.undecrypted]}, "
                f"room keys received over Olm: {[(k.sender, k.room_id) for k in self.room_keys]}"
            ) from None

    async def wait_for_member(self, room_id: str, user_id: str, membership: str) -> None:
        def found(_: SyncResponse) -> bool:
            room = self.client.rooms.get(room_id)
            if membership == "join":
                return room is not None and user_id in room.users
            return room is not None and user_id in room.invited_users

        await self.sync_until(found, f"{user_id} with membership {membership} in {room_id}")


def node() -> str:
    """The `node` executable (Node.js 20 or later: matrix-js-sdk 37.5 needs it)."""
    found = shutil.which("node")
    assert found, "node is not on PATH: `make test` installs Node.js (apt-get install nodejs npm)"
    assert (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir(), (
        f"{JS_DIR}/node_modules has no matrix-js-sdk: run `make test` (it runs npm ci there)")
    return found


def js_command(script: str, base_url: str) -> list[str]:
    return [node(), str(JS_DIR / script), base_url]


def parse_steps(stdout: str) -> list[dict[str, Any]]:
    """The `STEP {json}` lines a js scenario printed, in order."""
    return [json.loads(line[5:]) for line in stdout.splitlines() if line.startswith("STEP ")]


def summarize_steps(steps: list[dict[str, Any]]) -> str:
    lines = []
    for record in steps:
        mark = "ok  " if record.get("ok") else "FAIL"
        detail = f" {record['detail']}" if "detail" in record else ""
        error = f"\n      {record['error']}" if "error" in record else ""
        lines.append(f"  {mark} {record['step']} ({record.get('ms', '?')} ms){detail}{error}")
    return "\n".join(lines)


def run_js_scenario(script: str, base_url: str, timeout: float = 55) -> list[dict[str, Any]]:
    """Run one js scenario to its end; fail with its steps (and log tail) unless all passed."""
    try:
        result = subprocess.run(js_command(script, base_url), cwd=JS_DIR, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        raise AssertionError(f"{script} did not finish within {timeout}s; its steps:\n"
                             f"{summarize_steps(parse_steps(out))}") from None
    steps = parse_steps(result.stdout)
    if result.returncode != 0 or not steps or steps[-1] != {"step": "done", "ok": True}:
        log_tail = "\n".join(result.stderr.splitlines()[-40:])
        raise AssertionError(f"{script} exited {result.returncode}; its steps:\n{summarize_steps(steps)}\n"
                             f"--- last lines of its log ---\n{log_tail}")
    return steps
