"""The privacy promise "stored messages are encrypted in storage", checked where an attacker would look.

A unique canary goes into every field a user can write through the client API; then the raw SQLite
file (and its write-ahead log), a `pg_dump` of the PostgreSQL database and every file of the media
store are searched for it, in clear and hex-encoded (pg_dump prints bytea as hex). Any hit names
the field that leaked.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest_twisted
from unpaddedbase64 import encode_base64

from tests.integration.harness import SERVER_NAME, V3, Client, TestServer, create_room, q

MEDIA = "/_matrix/media/v3"


def canary_token() -> str:
    return f"cnry{uuid.uuid4().hex[:16]}"


def _ok(resp: Any) -> Any:
    assert 200 <= resp.code < 300, resp
    return resp.json


async def _login(server: TestServer, username: str, device_name: str) -> Client:
    client = server.client()
    resp = await client.post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": username},
        "password": "correct horse battery", "initial_device_display_name": device_name,
    })
    assert resp.code == 200, resp
    client.token, client.user_id, client.device_id = (
        resp.json["access_token"], resp.json["user_id"], resp.json["device_id"])
    return client


async def write_canaries(server: TestServer, token: str) -> list[str]:
    """Put `token-<field>` in every user-writable field; returns the field names used."""
    fields: list[str] = []

    def c(field: str) -> str:
        fields.append(field)
        return f"{token}-{field}"

    alice = await server.register("alice")
    bob = await server.register("bob")
    # A second device of bob that never syncs: to-device messages for it stay in the inbox.
    bob_phone = await _login(server, "bob", c("login_device_name"))

    room_id = await create_room(alice, name=c("room_name"), topic=c("room_topic"), preset="public_chat",
                                visibility="public", room_alias_name="canaryroom")
    _ok(await bob.post(f"{V3}/join/{q(room_id)}"))
    send = f"{V3}/rooms/{q(room_id)}/send"
    message = (_ok(await alice.put(f"{send}/m.room.message/{c('txn_id')}",
                                         {"msgtype": "m.text", "body": c("message_body")})))["event_id"]
    _ok(await bob.put(f"{send}/m.reaction/t2", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": message, "key": c("reaction_key")}}))
    _ok(await alice.put(f"{send}/m.room.message/t3", {
        "msgtype": "m.text", "body": "* " + c("edit_fallback"),
        "m.new_content": {"msgtype": "m.text", "body": c("edit_new_content")},
        "m.relates_to": {"rel_type": "m.replace", "event_id": message}}))
    _ok(await bob.put(f"{send}/m.room.message/t4", {
        "msgtype": "m.text", "body": c("thread_reply"),
        "m.relates_to": {"rel_type": "m.thread", "event_id": message}}))
    doomed = (_ok(await alice.put(f"{send}/m.room.message/t5",
                                        {"msgtype": "m.text", "body": c("redacted_body")})))["event_id"]
    _ok(await alice.put(f"{V3}/rooms/{q(room_id)}/redact/{q(doomed)}/t6", {"reason": c("redaction_reason")}))
    _ok(await alice.put(f"{V3}/rooms/{q(room_id)}/state/org.example.custom/",
                              {"text": c("custom_state")}))
    _ok(await alice.put(f"{V3}/rooms/{q(room_id)}/state/m.room.topic/",
                              {"topic": c("room_topic_changed")}))  # prev_content of the old topic

    # Profile, presence, devices.
    _ok(await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": c("displayname")}))
    _ok(await alice.put(f"{V3}/profile/{q(alice.user_id)}/avatar_url",
                              {"avatar_url": f"mxc://test.local/{c('avatar_url')}"}))
    _ok(await alice.put(f"{V3}/presence/{q(alice.user_id)}/status",
                              {"presence": "online", "status_msg": c("status_msg")}))
    _ok(await alice.put(f"{V3}/devices/{q(alice.device_id or '')}", {"display_name": c("device_name")}))

    # Account data, tags, filters, push rules.
    _ok(await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.canary",
                              {"note": c("account_data")}))
    _ok(await alice.put(f"{V3}/user/{q(alice.user_id)}/rooms/{q(room_id)}/account_data/org.example.canary",
                              {"note": c("room_account_data")}))
    _ok(await alice.put(f"{V3}/user/{q(alice.user_id)}/rooms/{q(room_id)}/tags/{q('u.' + c('tag_name'))}",
                              {"order": 0.5}))
    _ok(await alice.post(f"{V3}/user/{q(alice.user_id)}/filter",
                               {"account_data": {"types": [c("filter")]}}))
    _ok(await alice.put(f"{V3}/pushrules/global/content/canaryrule",
                              {"pattern": c("push_rule_pattern"), "actions": ["notify"]}))

    # To-device, key backup, reports.
    _ok(await alice.put(f"{V3}/sendToDevice/org.example.secret/{c('to_device_txn_id')}", {
        "messages": {bob.user_id: {bob_phone.device_id: {"secret": c("to_device")}}}}))
    version = (_ok(await alice.post(f"{V3}/room_keys/version", {
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
        "auth_data": {"public_key": encode_base64(os.urandom(32)), "note": c("backup_auth_data")}})))["version"]
    _ok(await alice.put(f"{V3}/room_keys/keys/{q(room_id)}/session1?version={version}", {
        "first_message_index": 0, "forwarded_count": 0, "is_verified": False,
        "session_data": {"ephemeral": "e", "ciphertext": c("backup_session_data"), "mac": "m"}}))
    _ok(await bob.post(f"{V3}/rooms/{q(room_id)}/report/{q(message)}", {"reason": c("event_report")}))
    _ok(await bob.post(f"{V3}/rooms/{q(room_id)}/report", {"reason": c("room_report")}))
    _ok(await bob.post(f"{V3}/users/{q(alice.user_id)}/report", {"reason": c("user_report")}))

    # Membership reasons.
    _ok(await alice.post(f"{V3}/rooms/{q(room_id)}/kick", {"user_id": bob.user_id, "reason": c("kick_reason")}))

    # Media: a file name and the bytes themselves, by direct and by asynchronous upload.
    _ok(await alice.request("POST", f"{MEDIA}/upload?filename={c('media_filename')}.txt",
                                  raw=c("media_bytes").encode(), headers={"Content-Type": "text/plain"}))
    created = _ok(await alice.post("/_matrix/media/v1/create"))
    media_id = created["content_uri"].rsplit("/", 1)[1]
    _ok(await alice.request("PUT", f"{MEDIA}/upload/test.local/{media_id}?filename={c('async_filename')}.txt",
                                  raw=c("async_media_bytes").encode(), headers={"Content-Type": "text/plain"}))

    # A password change through user-interactive auth keeps the new password in the UIA session.
    first = await alice.post(f"{V3}/account/password", {"new_password": c("new_password"), "logout_devices": False})
    assert first.code == 401, first
    _ok(await alice.post(f"{V3}/account/password", {
        "new_password": c("new_password"), "logout_devices": False,
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                 "password": "correct horse battery", "session": first.json["session"]}}))
    # Last, as every request (without this header) records the device's user agent.
    _ok(await alice.get(f"{V3}/account/whoami", headers={"User-Agent": c("user_agent")}))
    return fields


def canary_hits(data: bytes, token: str) -> set[str]:
    """The field names of the canaries in `data`, in clear or hex-encoded."""
    pattern = re.compile(re.escape(token.encode()) + rb"-([a-z_]+)")
    found = {m.decode() for m in pattern.findall(data)}
    token_hex = token.encode().hex().encode()
    lowered = data.lower()
    start = lowered.find(token_hex)
    while start != -1:
        run = re.match(rb"[0-9a-f]*", lowered[start : start + 400])
        assert run is not None
        decoded = bytes.fromhex(run.group()[: len(run.group()) // 2 * 2].decode())
        found |= {m.decode() for m in pattern.findall(decoded)} or {"(hex, unnamed)"}
        start = lowered.find(token_hex, start + 1)
    return found


def database_bytes(database_config: dict[str, Any]) -> dict[str, bytes]:
    if database_config["name"] == "sqlite3":
        path = Path(database_config["args"]["database"])
        siblings = [path, *(path.with_name(path.name + s) for s in ("-wal", "-journal", "-shm"))]
        return {str(p): p.read_bytes() for p in siblings if p.exists()}
    from tests.postgres_cluster import find_server_binaries

    args = database_config["args"]
    dump = subprocess.run(
        [str(find_server_binaries() / "pg_dump"), "-h", str(args["host"]), "-p", str(args["port"]),
         "-U", str(args["user"]), "--no-password", str(args["database"])],
        capture_output=True, timeout=120, check=True,
    )
    assert b"CREATE TABLE public.events" in dump.stdout, "pg_dump gave no schema: is it the right database?"
    return {"pg_dump": dump.stdout}


def media_bytes(media_root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in media_root.rglob("*") if p.is_file()}


@pytest_twisted.ensureDeferred
async def test_nothing_a_user_wrote_is_stored_in_clear(
    server: TestServer, database_config: dict[str, Any], tmp_path: Path
) -> None:
    token = canary_token()
    fields = await write_canaries(server, token)
    # The writes happened (a field silently dropped would pass the search below).
    store = server.hs.store
    devices = await store.devices.get_devices(f"@alice:{SERVER_NAME}")
    assert any(d.last_seen_user_agent == f"{token}-user_agent" for d in devices), devices
    assert len(await store.reports.get_reports()) == 3
    stored = {**database_bytes(database_config), **media_bytes(tmp_path / "media")}
    assert len(media_bytes(tmp_path / "media")) >= 2, "the media store holds the uploads"
    leaks = {name: sorted(canary_hits(data, token)) for name, data in stored.items()}
    leaks = {name: found for name, found in leaks.items() if found}
    assert not leaks, f"canaries found in clear at rest (of {len(fields)} fields written): {leaks}"


def test_the_search_finds_a_canary_in_clear_and_in_hex() -> None:
    """The search itself can fail: a clear or hex-encoded canary is found and named."""
    token = canary_token()
    assert canary_hits(f"xx{token}-room_name yy".encode(), token) == {"room_name"}
    assert canary_hits(b"\\x00" + f"{token}-topic".encode().hex().encode() + b"00", token) == {"topic"}
    assert canary_hits(os.urandom(4096), token) == set()
