"""Policy changes reach every user: server notices, consent at registration and after, `require_consent`.

The promise: "users are told when the privacy policy changes". A new `privacy_policy.version`
puts a notice in every user's /sync (an invite into their server-notices room, then the
`m.server_notice` message once joined); acceptance is recorded at registration (m.login.terms)
and through the consent endpoint; with `require_consent`, writes wait for acceptance. These run
with `e2ee.required` on: the notices room is the one exemption from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from config import ConfigError, load_config_dict
from federation.signing_keys import generate_signing_key_file
from homeserver.app import start
from homeserver.server import HomeServer
from storage.sealing import generate_data_key_file
from tests.integration.harness import V3, Client, TestServer, base_config, merge, q

URL_1 = "https://acme.example/privacy/2026-05"
URL_2 = "https://acme.example/privacy"
POLICY_1 = {"version": "2026-05", "url": URL_1}
POLICY_2 = {"version": "2026-11", "url": URL_2}
CONSENT = "/_matrix/client/unstable/org.piman.consent"
NOTICES = "@notices:test.local"


def overrides(policy: dict[str, Any] | None, *, require_consent: bool = False) -> dict[str, Any]:
    return {"e2ee": {"required": True}, "privacy_policy": policy, "require_consent": require_consent or None}


async def start_server(reactor: Any, tmp_path: Path, database_config: dict[str, Any],
                       config_overrides: dict[str, Any]) -> TestServer:
    """A server on this test's database and keys; several in a row make restarts."""
    if not (tmp_path / "data.key").exists():
        generate_signing_key_file(str(tmp_path / "signing.key"))
        generate_data_key_file(str(tmp_path / "data.key"))
    config = load_config_dict(merge(base_config(tmp_path, database_config), config_overrides),
                              source="<test>", base_dir=str(tmp_path))
    hs = HomeServer(config, reactor)
    ports = await start(hs)
    return TestServer(hs, ports, f"http://127.0.0.1:{ports[0].port.getHost().port}")


async def register_accepting_terms(server: TestServer, username: str) -> Client:
    """Register through the UIA flow a policy makes: the dummy stage, then m.login.terms."""
    client = server.client()
    body = {"username": username, "password": "correct horse battery"}
    first = await client.post(f"{V3}/register", body)
    assert first.code == 401, first
    session = first.json["session"]
    await client.post(f"{V3}/register", {**body, "auth": {"type": "m.login.dummy", "session": session}})
    resp = await client.post(f"{V3}/register", {**body, "auth": {"type": "m.login.terms", "session": session}})
    assert resp.code == 200, resp
    client.token, client.user_id, client.device_id = (
        resp.json["access_token"], resp.json["user_id"], resp.json["device_id"])
    return client


async def sync(client: Client) -> dict[str, Any]:
    resp = await client.get(f"{V3}/sync")
    assert resp.code == 200, resp
    return resp.json


def notice_invite(body: dict[str, Any]) -> str:
    """The room ID of the one server-notices invite in a sync response."""
    invites = {room_id: room for room_id, room in body["rooms"]["invite"].items()
               if any(e["type"] == "m.room.member" and e["sender"] == NOTICES
                      for e in room["invite_state"]["events"])}
    assert len(invites) == 1, body["rooms"]["invite"]
    return next(iter(invites))


def notices_in(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    return [e for e in timeline if e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.server_notice"]


async def encrypted(client: Client, room_id: str, txn: str) -> Any:
    return await client.put(f"{V3}/rooms/{q(room_id)}/send/m.room.encrypted/{txn}", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k", "session_id": "s",
        "device_id": client.device_id})


@pytest.mark.hs_config(overrides(POLICY_2))
@pytest_twisted.ensureDeferred
async def test_registration_asks_for_the_policy_and_records_consent(server: TestServer) -> None:
    client = server.client()
    body = {"username": "alice", "password": "correct horse battery"}
    first = await client.post(f"{V3}/register", body)
    assert first.code == 401
    assert first.json["flows"] == [{"stages": ["m.login.dummy", "m.login.terms"]}]
    assert first.json["params"]["m.login.terms"] == {"policies": {"privacy_policy": {
        "version": "2026-11", "en": {"name": "Privacy Policy", "url": URL_2}}}}
    session = first.json["session"]
    dummy_only = await client.post(f"{V3}/register", {**body, "auth": {"type": "m.login.dummy", "session": session}})
    assert dummy_only.code == 401 and dummy_only.json["completed"] == ["m.login.dummy"]
    assert await server.hs.store.users.get_user("@alice:test.local") is None

    alice = await register_accepting_terms(server, "alice")
    assert await server.hs.store.consent.get_consents(alice.user_id) != []
    status = await alice.get(CONSENT, check_spec=False)
    assert status.code == 200
    assert status.json["version"] == "2026-11" and status.json["url"] == URL_2
    assert status.json["accepted"] is True and isinstance(status.json["accepted_ts"], int)


@pytest.mark.hs_config({"e2ee": {"required": True}})
@pytest_twisted.ensureDeferred
async def test_without_a_policy_there_is_nothing_to_accept(server: TestServer) -> None:
    first = await server.client().post(f"{V3}/register", {"username": "alice", "password": "correct horse battery"})
    assert first.json["flows"] == [{"stages": ["m.login.dummy"]}]
    assert "m.login.terms" not in first.json["params"]
    alice = await server.register("alice")
    status = await alice.get(CONSENT, check_spec=False)
    assert (status.code, status.json["errcode"]) == (404, "M_NOT_FOUND")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    assert (await encrypted(alice, room_id, "t1")).code == 200


@pytest_twisted.ensureDeferred
async def test_version_bump_reaches_every_user_and_consent_unblocks(reactor: Any, tmp_path: Path,
                                                                   database_config: dict[str, Any]) -> None:
    # Version 1: three users accept it at registration; one of them has a room.
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_1, require_consent=True))
    try:
        alice = await register_accepting_terms(server, "alice")
        await register_accepting_terms(server, "bob")
        await register_accepting_terms(server, "carol")
        room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
        assert (await encrypted(alice, room_id, "t1")).code == 200
        await server.hs.consent_handler.wait_for_announcement()
        assert not (await sync(alice)).get("rooms", {}).get("invite")  # they accepted it: no notice
    finally:
        await server.stop()

    # Version 2: every user gets a notice, and is blocked until they accept it.
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_2, require_consent=True))
    try:
        await server.hs.consent_handler.wait_for_announcement()
        users = {}
        for name in ("alice", "bob", "carol"):
            login = await server.client().post(f"{V3}/login", {
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
                "password": "correct horse battery"})
            client = server.client(login.json["access_token"])
            client.user_id, client.device_id = login.json["user_id"], login.json["device_id"]
            users[name] = client
        notice_rooms = {name: notice_invite(await sync(client)) for name, client in users.items()}
        assert len(set(notice_rooms.values())) == 3  # one room per user

        alice = users["alice"]
        notice_room = notice_rooms["alice"]
        # Blocked: sending, state, creating and joining other rooms; joining the notices room is allowed.
        refused = await encrypted(alice, room_id, "t2")
        assert (refused.code, refused.json["errcode"]) == (403, "M_CONSENT_NOT_GIVEN")
        assert refused.json["consent_uri"] == URL_2 and URL_2 in refused.json["error"]
        topic = await alice.put(f"{V3}/rooms/{q(room_id)}/state/m.room.topic/", {"topic": "x"})
        assert topic.json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/createRoom", {})).json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/join/{q(room_id)}", {})).json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/join/{q(notice_room)}", {})).code == 200

        body = await sync(alice)
        [notice] = notices_in(body, notice_room)
        assert notice["sender"] == NOTICES
        assert "2026-11" in notice["content"]["body"] and URL_2 in notice["content"]["body"]
        assert notice["content"]["org.piman.privacy_policy"] == {"version": "2026-11", "url": URL_2}
        tags = [e for e in body["rooms"]["join"][notice_room]["account_data"]["events"] if e["type"] == "m.tag"]
        assert "m.server_notice" in tags[0]["content"]["tags"]

        # The notices room: exempt from e2ee.required and marked as such; users can't post in it.
        state = (await alice.get(f"{V3}/rooms/{q(notice_room)}/state")).json
        types = {e["type"]: e for e in state}
        assert "m.room.encryption" not in types
        assert types["org.piman.server_notices"]["content"]["end_to_end_encrypted"] is False
        assert types["m.room.name"]["content"]["name"] == "Server Notices"
        post = await encrypted(alice, notice_room, "t3")
        assert post.code == 403

        # Accepting the current version unblocks at once; another version is refused.
        wrong = await alice.post(CONSENT, {"version": "2026-05"}, check_spec=False)
        assert (wrong.code, wrong.json["errcode"]) == (400, "M_INVALID_PARAM")
        accepted = await alice.post(CONSENT, {"version": "2026-11"}, check_spec=False)
        assert accepted.code == 200 and accepted.json["accepted"] is True
        assert (await encrypted(alice, room_id, "t2")).code == 200
        consents = await server.hs.store.consent.get_consents(alice.user_id)
        assert [version for version, _ in consents] == ["2026-05", "2026-11"]
        assert consents[1][1] == accepted.json["accepted_ts"]

        # Announcing again changes nothing: one notice per (user, version).
        assert await server.hs.consent_handler.announce_current_version() is True
        await server.hs.consent_handler.notify_user(users["bob"].user_id)
        bob_room = notice_rooms["bob"]
        assert (await users["bob"].post(f"{V3}/join/{q(bob_room)}", {})).code == 200
        assert len(notices_in(await sync(users["bob"]), bob_room)) == 1

        # Leaving is always possible; a later notice re-invites into the same room.
        assert (await alice.post(f"{V3}/rooms/{q(notice_room)}/leave", {})).code == 200
        await server.hs.server_notices.send_notice(alice.user_id, {"msgtype": "m.server_notice", "body": "hi",
                                                                   "server_notice_type": "test"}, txn_id="t")
        assert notice_invite(await sync(alice)) == notice_room
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_announcement_runs_in_batches_and_resumes(reactor: Any, tmp_path: Path,
                                                        database_config: dict[str, Any]) -> None:
    server = await start_server(reactor, tmp_path, database_config, overrides(None))
    try:
        for name in ("u1", "u2", "u3", "u4", "u5", "gone"):
            await server.register(name)
        await server.hs.store.users.set_deactivated("@gone:test.local", True)
    finally:
        await server.stop()

    # A server set up but not started: the job runs only when called, as after a crash.
    async def set_up() -> HomeServer:
        config = load_config_dict(merge(base_config(tmp_path, database_config), overrides(POLICY_1)),
                                  source="<test>", base_dir=str(tmp_path))
        hs = HomeServer(config, reactor)
        await hs.setup()
        return hs

    hs = await set_up()
    try:
        assert await hs.consent_handler.announce_current_version(batch_size=2, max_batches=1) is False
        job = await hs.store.consent.get_or_start_announcement("2026-05", 0)
        assert job.last_user_id == "@u2:test.local" and not job.finished
    finally:
        await hs.close()

    hs = await set_up()  # the restart resumes after u2
    try:
        assert await hs.consent_handler.announce_current_version(batch_size=2) is True
        rows = await hs.store.db.execute("notices", "SELECT user_id FROM privacy_policy_notices ORDER BY user_id")
        assert [r[0] for r in rows] == [f"@u{i}:test.local" for i in range(1, 6)]  # not the deactivated user
        sent = await hs.store.db.execute(
            "count", "SELECT COUNT(*) FROM events WHERE type = 'm.room.message' AND sender = ?", NOTICES)
        assert sent[0][0] == 5
        assert (await hs.store.consent.get_or_start_announcement("2026-05", 0)).finished
    finally:
        await hs.close()


@pytest_twisted.ensureDeferred
async def test_a_persons_account_is_never_taken_as_the_notices_sender(reactor: Any, tmp_path: Path,
                                                                      database_config: dict[str, Any]) -> None:
    server = await start_server(reactor, tmp_path, database_config, overrides(None))
    try:
        await server.register("notices")
    finally:
        await server.stop()
    config = load_config_dict(merge(base_config(tmp_path, database_config), overrides(POLICY_1)),
                              source="<test>", base_dir=str(tmp_path))
    hs = HomeServer(config, reactor)
    try:
        with pytest.raises(ConfigError, match="server_notices.system_mxid_localpart: @notices:test.local is an existing"):
            await hs.setup()
    finally:
        await hs.close()


def test_config_refuses_require_consent_without_a_policy(tmp_path: Path) -> None:
    base = base_config(tmp_path, {"name": "sqlite3", "args": {"database": ":memory:"}})
    with pytest.raises(ConfigError, match="require_consent: needs a privacy_policy"):
        load_config_dict(merge(base, {"require_consent": True}), source="homeserver.yaml", base_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="privacy_policy.url: expected an http"):
        load_config_dict(merge(base, {"privacy_policy": {"version": "1", "url": "acme.example/privacy"}}),
                         source="homeserver.yaml", base_dir=str(tmp_path))


@pytest.mark.hs_config({"e2ee": {"required": True}})
@pytest_twisted.ensureDeferred
async def test_admins_send_server_notices_through_synapses_admin_api(server: TestServer) -> None:
    admin = await server.register("admin")
    await server.hs.store.users.set_admin(admin.user_id, True)
    alice = await server.register("alice")
    path = "/_synapse/admin/v1/send_server_notice"
    notice = {"user_id": alice.user_id, "content": {"body": "Maintenance tonight at 22:00."}}

    refused = await alice.post(path, notice)
    assert (refused.code, refused.json["errcode"]) == (403, "M_FORBIDDEN")
    unknown = await admin.post(path, {**notice, "user_id": "@nobody:test.local"})
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    first = await admin.put(f"{path}/txn1", notice)
    again = await admin.put(f"{path}/txn1", notice)
    assert first.code == 200 and again.json["event_id"] == first.json["event_id"]
    assert (await admin.post(path, notice)).code == 200

    room_id = notice_invite(await sync(alice))
    assert (await alice.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    notices = notices_in(await sync(alice), room_id)
    assert [n["content"]["body"] for n in notices] == ["Maintenance tonight at 22:00."] * 2
    entries = await server.hs.audit_log.entries(limit=10, target=alice.user_id)
    assert [e.action for e in entries] == ["server_notice.send"] * 3  # every request, the retry too
