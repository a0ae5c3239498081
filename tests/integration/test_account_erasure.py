"""Account erasure ("an admin can delete an account, and unsent messages go with it"), on both engines.

A user is given data in every table that holds data of a user, erased, and every row is then
looked for in the database directly. ERASED_ROWS is the list a data-protection officer can read:
each table, the column naming the user, and what the row is. KEPT_ROWS is what stays, and why.
There is no 3PID (phone number, e-mail) table in this server yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest_twisted
import yaml
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from config import load_config_dict
from homeserver.server import HomeServer
from storage.stores.pushers import PusherSettings
from synapse_compat.admin_register import registration_mac
from tests.integration.harness import SERVER_NAME, SHARED_SECRET, V3, Client, TestServer, base_config, q, send
from tests.integration.test_e2e_keys import (PASSWORD, cross_signing_key, cs_key, device_keys, device_signing_key,
                                             login, one_time_keys)

MEDIA = "/_matrix/media/v3"
DEACTIVATE = "/_synapse/admin/v1/deactivate"

# (table, condition naming the user ?, what it is): every row of these must be gone.
ERASED_ROWS = (
    ("devices", "user_id = ?", "login sessions (hidden ones too)"),
    ("access_tokens", "user_id = ?", "access tokens"),
    ("refresh_tokens", "user_id = ?", "refresh tokens"),
    ("e2e_device_keys", "user_id = ?", "device identity keys"),
    ("e2e_one_time_keys", "user_id = ?", "one-time keys"),
    ("e2e_fallback_keys", "user_id = ?", "fallback keys"),
    ("e2e_cross_signing_keys", "user_id = ?", "cross-signing keys"),
    ("e2e_cross_signing_signatures", "target_user_id = ? OR signer_user_id = ?", "signatures of and by the user"),
    ("room_key_backup_versions", "user_id = ?", "key backup versions"),
    ("room_key_backup_keys", "user_id = ?", "backed-up room keys"),
    ("device_inbox", "user_id = ?", "to-device messages waiting for the user"),
    ("to_device_txns", "user_id = ?", "the user's to-device transaction IDs"),
    ("account_data", "user_id = ?", "account data, global and per room"),
    ("push_rules", "user_id = ?", "push rules"),
    ("pushers", "user_id = ?", "pushers (push gateway URLs and device tokens)"),
    ("event_push_actions", "user_id = ?", "notifications (push actions)"),
    ("user_filters", "user_id = ?", "sync filters"),
    ("profiles", "user_id = ?", "display name, avatar, other profile fields"),
    ("presence", "user_id = ?", "presence and status message"),
    ("receipts", "user_id = ?", "read receipts"),
    ("reports", "reporter = ?", "reports the user made"),
    ("local_media", "user_id = ?", "uploaded media (and the files, checked on disk)"),
    ("forgotten_rooms", "user_id = ?", "rooms the user forgot"),
    ("event_txn_ids", "user_id = ?", "the user's message transaction IDs"),
    ("openid_tokens", "user_id = ?", "OpenID tokens the user asked for (widgets, integrations)"),
)
# Checked separately: UIA sessions (ui_auth_sessions: the user is only inside sealed blobs) and the
# user's undelivered outgoing to-device messages (device_inbox rows of others: sender sealed).
KEPT_ROWS = (
    ("users", "user_id = ?", "the tombstone: deactivated, no password, the ID never reused"),
    ("erased_users", "user_id = ?", "when, by whom, and the stream position of the erasure"),
    ("reports", "reported_user_id = ?", "reports about the user: the moderators' record"),
    ("events", "sender = ?", "room history others hold; served pruned to later joiners"),
)


async def count(server_or_hs: Any, table: str, where: str, user_id: str) -> int:
    hs = getattr(server_or_hs, "hs", server_or_hs)
    rows = await hs.store.db.execute("test_count", f"SELECT COUNT(*) FROM {table} WHERE {where}",
                                     *([user_id] * where.count("?")))
    return int(rows[0][0])



async def public_room(owner: Client, *joiners: Client) -> str:
    resp = await owner.post(f"{V3}/createRoom", {"preset": "public_chat"})
    assert resp.code == 200, resp
    room_id = resp.json["room_id"]
    for joiner in joiners:
        assert (await joiner.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    return room_id


async def sync(client: Client, since: str | None = None) -> dict[str, Any]:
    resp = await client.get(f"{V3}/sync?timeout=0" + (f"&since={since}" if since else ""))
    assert resp.code == 200, resp
    return resp.json


async def give_data_everywhere(server: TestServer, alice: Client, bob: Client) -> dict[str, Any]:
    """Fill every table of ERASED_ROWS for alice; returns what the checks need."""
    hidden = await login(server, alice)  # a second device, with a refresh token too
    resp = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": PASSWORD, "refresh_token": True})
    assert resp.code == 200 and "refresh_token" in resp.json
    room_id = await public_room(bob, alice)
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice Canary"})
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/avatar_url", {"avatar_url": f"mxc://{SERVER_NAME}/face"})

    key = device_signing_key(alice.device_id)
    resp = await alice.post(f"{V3}/keys/upload", {
        "device_keys": device_keys(alice, key), "one_time_keys": one_time_keys(alice, key, 3),
        "fallback_keys": {"signed_curve25519:FB": sign_json({"key": "fb", "fallback": True}, alice.user_id, key)}})
    assert resp.code == 200, resp
    master, self_signing = cross_signing_key(), cross_signing_key()
    resp = await alice.post(f"{V3}/keys/device_signing/upload", {
        "master_key": cs_key(alice, "master", master),
        "self_signing_key": cs_key(alice, "self_signing", self_signing, master)})
    assert resp.code == 200, resp
    stripped = {k: v for k, v in device_keys(alice, key).items() if k != "signatures"}
    resp = await alice.post(f"{V3}/keys/signatures/upload", {
        alice.user_id: {alice.device_id: sign_json(stripped, alice.user_id, self_signing)}})
    assert resp.json == {"failures": {}}, resp

    resp = await alice.post(f"{V3}/room_keys/version", {
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": encode_base64(os.urandom(32))}})
    assert resp.code == 200, resp
    version = resp.json["version"]
    resp = await alice.put(f"{V3}/room_keys/keys/{q(room_id)}/s1?version={version}", {
        "first_message_index": 0, "forwarded_count": 0, "is_verified": False,
        "session_data": {"ephemeral": "e", "ciphertext": "canary-backup", "mac": "m"}})
    assert resp.code == 200, resp

    # To-device: one waiting for alice, and one alice sent that bob never picked up.
    resp = await bob.put(f"{V3}/sendToDevice/m.test/b1", {"messages": {alice.user_id: {"*": {"x": 1}}}})
    assert resp.code == 200
    resp = await alice.put(f"{V3}/sendToDevice/m.test/a1", {"messages": {bob.user_id: {"*": {"canary": 1}}}})
    assert resp.code == 200

    assert (await alice.put(f"{V3}/pushrules/global/content/cake", {
        "pattern": "cake", "actions": ["notify"]})).code == 200
    assert (await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/m.canary", {"a": 1})).code == 200
    assert (await alice.put(f"{V3}/user/{q(alice.user_id)}/rooms/{q(room_id)}/account_data/m.tag.x",
                            {"b": 2})).code == 200
    assert (await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", {"room": {"timeline": {"limit": 5}}})).code == 200
    assert (await alice.post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})).code == 200
    assert (await alice.put(f"{V3}/presence/{q(alice.user_id)}/status",
                            {"presence": "online", "status_msg": "canary status"})).code == 200
    alice_event = await send(alice, room_id, "canary from alice", "t-alice")
    bob_event = await send(bob, room_id, "hello alice, cake", "t-bob")  # a notification for alice
    assert (await alice.post(f"{V3}/rooms/{q(room_id)}/receipt/m.read/{q(alice_event)}", {})).code == 200
    assert (await alice.post(f"{V3}/rooms/{q(room_id)}/report/{q(bob_event)}", {"reason": "canary"})).code == 200
    assert (await bob.post(f"{V3}/users/{q(alice.user_id)}/report", {"reason": "about alice"})).code == 200

    resp = await alice.post(f"{MEDIA}/upload", raw=b"canary file", headers={"Content-Type": "text/plain"})
    media_id = resp.json["content_uri"].rsplit("/", 1)[1]

    # A room alice left and forgot, and an invitation she hasn't answered.
    gone = await public_room(bob, alice)
    assert (await alice.post(f"{V3}/rooms/{q(gone)}/leave", {})).code == 200
    assert (await alice.post(f"{V3}/rooms/{q(gone)}/forget", {})).code == 200
    invited = (await bob.post(f"{V3}/createRoom", {"preset": "private_chat"})).json["room_id"]
    assert (await bob.post(f"{V3}/rooms/{q(invited)}/invite", {"user_id": alice.user_id})).code == 200

    # Pushers: one on her device, and a device-less one (set through the store: no gateway is allowed here).
    settings = PusherSettings(kind="http", app_id="app", pushkey="canary-key", lang="en", app_display_name="A",
                              device_display_name="D", profile_tag=None,
                              data={"url": "https://gw/_matrix/push/v1/notify"})
    await server.hs.store.pushers.set_pusher(alice.user_id, alice.device_id, settings, append=True, now_ms=0)
    await server.hs.store.pushers.set_pusher(alice.user_id, None, replace(settings, pushkey="other"), append=True,
                                             now_ms=0)

    # A half-done UIA session of alice's (its password stage passed).
    await server.hs.store.ui_auth.create_session("alice-uia", server.hs.clock.time_msec(), "/x", "POST", "x", {})
    await server.hs.store.ui_auth.mark_stage_complete("alice-uia", "m.login.password", alice.user_id)
    return {"room_id": room_id, "invited": invited, "media_id": media_id, "hidden": hidden}


def media_files(server: TestServer) -> list[Path]:
    return [p for p in Path(server.hs.config.media_store_path).rglob("*") if p.is_file()]


def stored(server_or_hs: Any, mxc: str) -> bool:
    hs = getattr(server_or_hs, "hs", server_or_hs)
    return Path(hs.media_repository.content_path(mxc.rsplit("/", 1)[-1])).is_file()


async def bobs_inbox_senders(server: TestServer, bob: Client) -> list[str]:
    rows = await server.hs.store.db.execute("test_inbox", "SELECT message FROM device_inbox WHERE user_id = ?",
                                            bob.user_id)
    return [server.hs.sealer.open_json(blob)["sender"] for (blob,) in rows]


@pytest_twisted.ensureDeferred
async def test_admin_erasure_removes_every_row(server: TestServer) -> None:
    admin = await server.register_admin("admin")
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    made = await give_data_everywhere(server, alice, bob)
    for table, where, what in ERASED_ROWS:
        assert await count(server, table, where, alice.user_id) > 0, f"the test gave alice no {what} ({table})"
    assert alice.user_id in await bobs_inbox_senders(server, bob)
    assert stored(server, made["media_id"])
    before_leave = await sync(bob)

    resp = await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})
    assert resp.code == 200, resp
    assert resp.json["id_server_unbind_result"] == "success"
    assert resp.json["erasure"]["complete"] is True
    assert resp.json["erasure"]["removed"]["devices"] == 3 and resp.json["erasure"]["removed"]["rooms_left"] == 2

    left = {table: n for table, where, _ in ERASED_ROWS if (n := await count(server, table, where, alice.user_id))}
    assert left == {}, f"rows of the erased user left behind: {left}"
    assert alice.user_id not in await bobs_inbox_senders(server, bob), "alice's undelivered message is still there"
    assert await server.hs.store.ui_auth.get_session("alice-uia") is None, "alice's UIA session is still there"
    assert not stored(server, made["media_id"])
    for table, where, what in KEPT_ROWS:
        assert await count(server, table, where, alice.user_id) > 0, f"{what} ({table}) should stay"
    user = await server.hs.store.users.get_user(alice.user_id)
    assert user is not None and user.deactivated and user.password_hash is None
    record = await server.hs.store.erasure.get(alice.user_id)
    assert record is not None and record.completed_ts is not None and record.requested_by == admin.user_id

    # Every session is over; the others saw alice leave, with no name or avatar in the leave.
    assert (await alice.get(f"{V3}/account/whoami")).code == 401
    assert (await made["hidden"].get(f"{V3}/account/whoami")).code == 401
    for room_id in (made["room_id"], made["invited"]):
        resp = await bob.get(f"{V3}/rooms/{q(room_id)}/state/m.room.member/{q(alice.user_id)}")
        assert resp.json == {"membership": "leave"}, resp
    timeline = (await sync(bob, before_leave["next_batch"]))["rooms"]["join"][made["room_id"]]["timeline"]["events"]
    leave = [e for e in timeline if e["type"] == "m.room.member" and e["state_key"] == alice.user_id]
    assert leave and leave[-1]["content"] == {"membership": "leave"}
    assert (await bob.get(f"{V3}/profile/{q(alice.user_id)}")).code == 404

    # Running it again is harmless: nothing is left to remove.
    again = await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})
    assert again.code == 200 and again.json["erasure"]["removed"] == {} and again.json["erasure"]["complete"]
    status = await admin.get(f"/_piman/admin/v1/erasures/{q(alice.user_id)}")
    assert status.code == 200 and status.json["remaining"] == {} and status.json["completed_ts"] is not None
    entries = await server.hs.audit_log.entries(limit=10, target=alice.user_id)
    assert [e.action for e in entries] == ["user.erase", "user.erase"]


@pytest_twisted.ensureDeferred
async def test_the_erased_id_can_never_be_registered_again(server: TestServer) -> None:
    alice = await server.register("alice", password=PASSWORD)
    resp = await alice.post(f"{V3}/account/deactivate", {"erase": True})
    assert resp.code == 401
    resp = await alice.post(f"{V3}/account/deactivate", {"erase": True, "auth": {
        "type": "m.login.password", "session": resp.json["session"], "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": alice.user_id}}})
    assert resp.code == 200, resp
    assert (await server.hs.store.erasure.get(alice.user_id)).completed_ts is not None  # type: ignore[union-attr]
    assert await count(server, "devices", "user_id = ?", alice.user_id) == 0

    for name in ("alice", "ALICE"):
        available = await server.client().get(f"{V3}/register/available?username={name}")
        assert (available.code, available.json["errcode"]) == (400, "M_USER_IN_USE")
        resp = await server.client().post(f"{V3}/register", {"username": name, "password": "another pw 123"})
        assert (resp.code, resp.json["errcode"]) == (400, "M_USER_IN_USE")
    nonce = (await server.client().get("/_synapse/admin/v1/register")).json["nonce"]
    resp = await server.client().post("/_synapse/admin/v1/register", {
        "nonce": nonce, "username": "alice", "password": "pw-alice-2", "admin": False,
        "mac": registration_mac(SHARED_SECRET, nonce, "alice", "pw-alice-2", False)})
    assert (resp.code, resp.json["errcode"]) == (400, "M_USER_IN_USE")
    login = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD})
    assert login.code == 403


@pytest_twisted.ensureDeferred
async def test_past_events_pruned_for_later_joiners_kept_for_those_who_had_them(server: TestServer) -> None:
    admin = await server.register_admin("admin")
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    dave = await server.register("dave", password=PASSWORD)
    carol = await server.register("carol", password=PASSWORD)
    room_id = await public_room(bob, alice, dave)
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice Canary"})
    canary = await send(alice, room_id, "canary words", "c1")
    invited_to = await public_room(bob)  # bob's invite carries alice's name; she never answers
    assert (await bob.post(f"{V3}/rooms/{q(invited_to)}/invite", {"user_id": alice.user_id})).code == 200
    await send(bob, room_id, "bob's reply", "b1")
    assert (await dave.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200  # dave had it, then left
    assert (await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})).code == 200
    for joined in (room_id, invited_to):  # carol joins after the erasure
        assert (await carol.post(f"{V3}/join/{q(joined)}", {})).code == 200

    async def views(viewer: Client) -> dict[str, dict[str, Any]]:
        messages = await viewer.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=50")
        assert messages.code == 200, messages
        context = await viewer.get(f"{V3}/rooms/{q(room_id)}/context/{q(canary)}?limit=2")
        event = await viewer.get(f"{V3}/rooms/{q(room_id)}/event/{q(canary)}")
        assert context.code == 200 and event.code == 200, (context, event)
        found = {"messages": next(e for e in messages.json["chunk"] if e["event_id"] == canary),
                 "context": context.json["event"], "event": event.json}
        resp = await viewer.get(f"{V3}/sync?timeout=0&filter=" + q(json.dumps(
            {"room": {"include_leave": True, "timeline": {"limit": 50}}})))
        rooms = resp.json["rooms"]
        timeline = (rooms["join"].get(room_id) or rooms["leave"][room_id])["timeline"]["events"]
        found["sync"] = next(e for e in timeline if e["event_id"] == canary)
        return found

    async def alice_names(viewer: Client) -> list[str | None]:
        """Display names in alice's join events (her profile change made a second one)."""
        messages = await viewer.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=50")
        return [e["content"].get("displayname") for e in messages.json["chunk"]
                if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
                and e["content"].get("membership") == "join"]

    for viewer in (bob, dave):
        for path, event in (await views(viewer)).items():
            assert event["content"] == {"msgtype": "m.text", "body": "canary words"}, (viewer.user_id, path)
        assert "Alice Canary" in await alice_names(viewer)
    for path, event in (await views(carol)).items():
        assert event["content"] == {}, (path, event)
        assert event["sender"] == alice.user_id and event["type"] == "m.room.message"
    names = await alice_names(carol)
    assert len(names) == 2 and names == [None, None], names

    async def invite_content(viewer: Client) -> dict[str, Any]:
        messages = await viewer.get(f"{V3}/rooms/{q(invited_to)}/messages?dir=b&limit=50")
        return next(e["content"] for e in messages.json["chunk"]
                    if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
                    and e["content"]["membership"] == "invite")

    assert (await invite_content(bob))["displayname"] == "Alice Canary"
    assert await invite_content(carol) == {"membership": "invite"}
    # bob's own message is untouched for carol
    messages = await carol.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=50")
    assert any(e["content"].get("body") == "bob's reply" for e in messages.json["chunk"])


@pytest_twisted.ensureDeferred
async def test_a_legal_hold_on_the_user_refuses_erasure_and_changes_nothing(server: TestServer) -> None:
    admin = await server.register_admin("admin")
    alice = await server.register("alice", password=PASSWORD)
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice"})
    await server.hs.store.holds.place_hold("user", alice.user_id, reason="case 42", created_by=admin.user_id,
                                           now_ms=server.hs.clock.time_msec())
    before = await server.hs.store.erasure.inventory(alice.user_id)

    resp = await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})
    assert (resp.code, resp.json["errcode"]) == (409, "M_FORBIDDEN") and "legal hold" in resp.json["error"]
    first = await alice.post(f"{V3}/account/deactivate", {"erase": True})
    resp = await alice.post(f"{V3}/account/deactivate", {"erase": True, "auth": {
        "type": "m.login.password", "session": first.json["session"], "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": alice.user_id}}})
    assert (resp.code, resp.json["errcode"]) == (409, "M_FORBIDDEN")
    assert await server.hs.store.erasure.inventory(alice.user_id) == before
    assert await server.hs.store.erasure.get(alice.user_id) is None
    assert not (await server.hs.store.users.get_user(alice.user_id)).deactivated  # type: ignore[union-attr]
    assert (await alice.get(f"{V3}/account/whoami")).code == 200
    entries = await server.hs.audit_log.entries(limit=5, target=alice.user_id)
    assert [(e.action, e.outcome) for e in entries] == [("user.erase", "M_FORBIDDEN")]

    # Deactivation without erasure may go ahead; erasure waits for the release.
    assert (await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {})).code == 200
    assert (await alice.get(f"{V3}/account/whoami")).code == 401
    assert await count(server, "profiles", "user_id = ?", alice.user_id) == 1
    await server.hs.store.holds.release_hold("user", alice.user_id, released_by=admin.user_id,
                                             now_ms=server.hs.clock.time_msec())
    assert (await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})).code == 200
    assert await count(server, "profiles", "user_id = ?", alice.user_id) == 0


@pytest_twisted.ensureDeferred
async def test_a_held_room_keeps_its_part_until_released_then_the_resumer_finishes(server: TestServer) -> None:
    admin = await server.register_admin("admin")
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    held, free = await public_room(bob, alice), await public_room(bob, alice)
    kept_media = (await alice.post(f"{MEDIA}/upload", raw=b"evidence", headers={"Content-Type": "text/plain"})
                  ).json["content_uri"]
    gone_media = (await alice.post(f"{MEDIA}/upload", raw=b"private", headers={"Content-Type": "text/plain"})
                  ).json["content_uri"]
    shown = (await alice.put(f"{V3}/rooms/{q(held)}/send/m.room.message/img", {
        "msgtype": "m.file", "body": "evidence.txt", "url": kept_media})).json["event_id"]
    elsewhere = await send(bob, free, "hi", "b1")
    assert (await alice.post(f"{V3}/rooms/{q(held)}/receipt/m.read/{q(shown)}", {})).code == 200
    assert (await alice.post(f"{V3}/rooms/{q(free)}/receipt/m.read/{q(elsewhere)}", {})).code == 200
    await server.hs.store.holds.place_hold("room", held, reason="case 7", created_by=admin.user_id,
                                           now_ms=server.hs.clock.time_msec())

    resp = await admin.post(f"{DEACTIVATE}/{q(alice.user_id)}", {"erase": True})
    assert resp.code == 200, resp
    erasure = resp.json["erasure"]
    assert erasure["complete"] is False and erasure["kept_for_holds"] == {"media": 1, "receipts": 1}, erasure
    assert stored(server, kept_media) and not stored(server, gone_media)
    assert await count(server, "receipts", "user_id = ? AND room_id = '" + held + "'", alice.user_id) == 1
    assert await count(server, "profiles", "user_id = ?", alice.user_id) == 0
    assert await server.hs.store.erasure.pending() == [alice.user_id]

    await server.hs.erasure_handler.resume_pending()  # still held: nothing more goes
    assert await server.hs.store.erasure.pending() == [alice.user_id]
    await server.hs.store.holds.release_hold("room", held, released_by=admin.user_id,
                                             now_ms=server.hs.clock.time_msec())
    await server.hs.erasure_handler.resume_pending()
    assert await server.hs.store.erasure.pending() == []
    assert await count(server, "receipts", "user_id = ?", alice.user_id) == 0
    assert await count(server, "local_media", "user_id = ?", alice.user_id) == 0
    assert media_files(server) == []


def _piman(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from homeserver.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, input=stdin)


@pytest_twisted.ensureDeferred
async def test_cli_user_delete(server: TestServer, tmp_path: Path, database_config: dict[str, Any],
                               reactor: Any) -> None:
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    made = await give_data_everywhere(server, alice, bob)
    config_path = tmp_path / "homeserver.yaml"
    config_path.write_text(yaml.safe_dump(base_config(tmp_path, database_config)))
    # Leaving rooms writes events: beside a running server (whose caches would go stale) it refuses.
    busy = _piman("admin", "user", "delete", "--config", str(config_path), "--user", alice.user_id, "--yes")
    assert busy.returncode == 1 and "another piman process is using" in busy.stderr, busy.stderr
    assert "/_synapse/admin/v1/deactivate" in busy.stderr and len(busy.stderr.splitlines()) == 1
    await server.stop()

    refused = _piman("admin", "user", "delete", "--config", str(config_path), "--user", alice.user_id, stdin="")
    assert refused.returncode == 1 and "--yes" in refused.stderr and len(refused.stderr.splitlines()) == 1
    unknown = _piman("admin", "user", "delete", "--config", str(config_path), "--user", "@nobody:test.local", "--yes")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "piman: There is no user @nobody:test.local."

    done = _piman("admin", "user", "delete", "--config", str(config_path), "--user", alice.user_id, "--yes")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Erased {alice.user_id} (complete). Removed:", done.stdout
    removed = dict(line.strip().split(": ") for line in lines[1:])
    assert removed["devices"] == "3" and removed["media"] == "1" and removed["rooms_left"] == "2", removed
    assert removed["to_device_sent_undelivered"] == "1" and removed["ui_auth_sessions"] == "1", removed

    again = _piman("register", "--config", str(config_path), "--user", "alice", "--password", "pw-alice-2")
    assert again.returncode == 1 and "already taken" in again.stderr, again.stderr

    config = load_config_dict(base_config(tmp_path, database_config), source="<test>", base_dir=str(tmp_path))
    hs = HomeServer(config, reactor)
    await hs.setup()
    try:
        left = {table: n for table, where, _ in ERASED_ROWS if (n := await count(hs, table, where, alice.user_id))}
        assert left == {}, left
        entries = await hs.audit_log.entries(limit=5, target=alice.user_id)
        assert [(e.action, e.actor.startswith("cli:")) for e in entries] == [("user.erase", True)]
        assert not stored(hs, made["media_id"])
    finally:
        await hs.store.close()
