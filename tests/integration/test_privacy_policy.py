"""Policy changes reach every user: server notices, consent at registration and after, `require_consent`.

The promise: "users are told when the privacy policy changes". A new `privacy_policy.version`
puts a notice in every user's /sync (an invite into their server-notices room, then the
`m.server_notice` message once joined); acceptance is recorded at registration (m.login.terms)
and through the consent endpoint; with `require_consent`, writes wait for acceptance. These run
with `e2ee.required` on: the notices room is the one exemption from it.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
import yaml

from config import ConfigError, load_config_dict
from federation.signing_keys import generate_signing_key_file
from homeserver.app import start
from homeserver.handlers.consent import CATCH_UP_GRACE_MS
from homeserver.server import HomeServer
from storage.sealing import generate_data_key_file
from synapse_compat.admin_register import registration_mac
from tests.integration.harness import SHARED_SECRET, V3, Client, TestServer, base_config, merge, q

URL_1 = "https://acme.example/privacy/2026-05"
URL_2 = "https://acme.example/privacy"
POLICY_1 = {"version": "2026-05", "url": URL_1}
POLICY_2 = {"version": "2026-11", "url": URL_2}
CONSENT = "/_matrix/client/unstable/org.piman.consent"
NOTICES = "@notices:test.local"
FORM_SECRET = "a-form-secret-only-tests-know"
PUBLIC_BASEURL = "http://127.0.0.1:8008/"  # base_config's


def overrides(policy: dict[str, Any] | None, *, require_consent: bool = False) -> dict[str, Any]:
    return {"e2ee": {"required": True}, "privacy_policy": policy, "require_consent": require_consent or None,
            "form_secret": FORM_SECRET}


def consent_link(localpart: str) -> str:
    """The link Synapse documents: `h` is the hex HMAC-SHA256 of `u`, keyed with form_secret."""
    h = hmac.new(FORM_SECRET.encode(), localpart.encode(), hashlib.sha256).hexdigest()
    return f"{PUBLIC_BASEURL}_matrix/consent?u={localpart}&h={h}"


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
    code, headers, text = await browse(f"{server.base_url}/_matrix/consent?u=alice&h={mac('alice')}")
    assert code == 404 and "no privacy policy" in text and Page(text).action is None
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
        assert refused.json["consent_uri"] == consent_link("alice") and URL_2 in refused.json["error"]
        topic = await alice.put(f"{V3}/rooms/{q(room_id)}/state/m.room.topic/", {"topic": "x"})
        assert topic.json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/createRoom", {})).json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/join/{q(room_id)}", {})).json["errcode"] == "M_CONSENT_NOT_GIVEN"
        assert (await alice.post(f"{V3}/join/{q(notice_room)}", {})).code == 200

        body = await sync(alice)
        [notice] = notices_in(body, notice_room)
        assert notice["sender"] == NOTICES
        assert "2026-11" in notice["content"]["body"] and URL_2 in notice["content"]["body"]
        assert notice["content"]["org.piman.privacy_policy"] == {
            "version": "2026-11", "url": URL_2, "consent_uri": consent_link("alice")}
        assert consent_link("alice") in notice["content"]["body"]
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


# -- the consent page (/_matrix/consent), as Element users reach it ---------------------------------

ODD_POLICY = {"version": "2026-11", "url": URL_2, "name": 'Privacy <Policy> & "Terms"'}
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "p", "a", "strong", "form", "input",
             "button"}


def mac(u: str) -> str:
    return hmac.new(FORM_SECRET.encode(), u.encode(), hashlib.sha256).hexdigest()


class Page(HTMLParser):
    """What a browser makes of a page: its form (action, method, fields), its links and its tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}
        self.links: list[dict[str, str | None]] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        if tag == "form":
            self.action, self.method = attributes.get("action"), attributes.get("method")
        elif tag == "input":
            self.fields[attributes["name"] or ""] = attributes.get("value") or ""
        elif tag == "a":
            self.links.append(attributes)


async def browse(url: str, form: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """A browser's GET, or its POST of a form: no access token, form-encoded fields."""
    if form is None:
        resp = await treq.get(url)
    else:
        resp = await treq.post(url, data=urllib.parse.urlencode(form).encode(),
                               headers={"Content-Type": ["application/x-www-form-urlencoded"]})
    return resp.code, resp.headers, (await resp.content()).decode("utf-8")


async def admin_register(server: TestServer, username: str) -> Client:
    """An account made by an admin tool (register_new_matrix_user): no m.login.terms on the way."""
    client = server.client()
    path = "/_synapse/admin/v1/register"
    nonce = (await client.get(path)).json["nonce"]
    password = "correct horse battery"
    resp = await client.post(path, {"nonce": nonce, "username": username, "password": password, "admin": False,
                                    "mac": registration_mac(SHARED_SECRET, nonce, username, password, False)})
    assert resp.code == 200, resp
    client.token, client.user_id, client.device_id = (
        resp.json["access_token"], resp.json["user_id"], resp.json["device_id"])
    return client


@pytest.mark.hs_config(overrides(ODD_POLICY, require_consent=True))
@pytest_twisted.ensureDeferred
async def test_a_refused_user_follows_the_consent_uri_and_accepts_in_a_browser(server: TestServer) -> None:
    # An account made by an admin accepted no terms: a server notice tells its user, with their link.
    bob = await admin_register(server, "bob")
    notice_room = notice_invite(await sync(bob))
    assert (await bob.post(f"{V3}/join/{q(notice_room)}", {})).code == 200
    [notice] = notices_in(await sync(bob), notice_room)
    assert notice["content"]["org.piman.privacy_policy"]["consent_uri"] == consent_link("bob")

    refused = await bob.post(f"{V3}/createRoom", {})
    assert (refused.code, refused.json["errcode"]) == (403, "M_CONSENT_NOT_GIVEN")
    assert refused.json["consent_uri"] == consent_link("bob") and URL_2 in refused.json["error"]

    # The browser opens the link (on this test server's address: public_baseurl is a placeholder).
    link = urllib.parse.urlsplit(refused.json["consent_uri"])
    page_url = f"{server.base_url}{link.path}?{link.query}"
    code, headers, text = await browse(page_url)
    assert code == 200
    assert headers.getRawHeaders("Content-Type") == ["text/html; charset=utf-8"]
    assert headers.getRawHeaders("Content-Security-Policy") == [
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"]
    assert headers.getRawHeaders("X-Frame-Options") == ["DENY"]
    assert headers.getRawHeaders("Referrer-Policy") == ["no-referrer"]  # the address holds the link's h
    page = Page(text)
    assert page.method == "post" and page.fields == {"u": "bob", "h": mac("bob"), "v": "2026-11"}
    [policy_link] = page.links
    assert policy_link["href"] == URL_2 and "noreferrer" in (policy_link["rel"] or "")
    # Escaped, self-contained: no script, no image or stylesheet from anywhere.
    assert "Privacy &lt;Policy&gt; &amp; &quot;Terms&quot;" in text and "<Policy>" not in text
    assert page.tags <= PAGE_TAGS and "src=" not in text

    # A link that was cut, changed or made for someone else is refused, and records nothing.
    for query in ("u=bob", f"u=bob&h={'0' * 64}", f"u=alice&h={mac('bob')}",
                  f"u=%40bob%3Aother.example&h={mac('@bob:other.example')}"):
        code, headers, text = await browse(f"{server.base_url}/_matrix/consent?{query}")
        assert code == 403 and "not valid" in text and Page(text).action is None, query
        assert headers.getRawHeaders("Content-Type") == ["text/html; charset=utf-8"]
    action = urllib.parse.urljoin(page_url, page.action)
    forged = await browse(action, {**page.fields, "h": mac("alice")})
    assert forged[0] == 403
    code, _, text = await browse(action, {"u": "bob", "v": "2026-11"})
    assert code == 403
    assert await server.hs.store.consent.get_consent_ts("@bob:test.local", "2026-11") is None
    # A form for a version that no longer applies (the policy changed meanwhile) records nothing either.
    code, _, text = await browse(action, {**page.fields, "v": "2026-05"})
    assert code == 409 and "2026-11" in text
    assert (await bob.post(f"{V3}/createRoom", {})).json["errcode"] == "M_CONSENT_NOT_GIVEN"

    # The form, submitted as a browser does: recorded, confirmed, and the write now goes through.
    code, _, text = await browse(action, page.fields)
    assert code == 200 and "@bob:test.local accepted version 2026-11" in text
    assert await server.hs.store.consent.get_consent_ts("@bob:test.local", "2026-11") is not None
    assert (await bob.post(f"{V3}/createRoom", {})).code == 200
    code, _, text = await browse(page_url)
    assert code == 200 and "accepted this version on" in text and Page(text).action is None

    # As in Synapse, `u` may be the full user ID (signed as given); without `u`, anyone sees the policy.
    code, _, text = await browse(f"{server.base_url}/_matrix/consent?u=%40bob%3Atest.local&h={mac('@bob:test.local')}")
    assert code == 200 and "accepted this version on" in text
    code, _, text = await browse(f"{server.base_url}/_matrix/consent")
    assert code == 200 and URL_2 in text and Page(text).action is None


@pytest.mark.hs_config({**overrides(POLICY_2), "listeners": [
    {"port": 0, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]},
    {"port": 0, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["consent"]}]}]})
@pytest_twisted.ensureDeferred
async def test_a_consent_listener_serves_the_page_alone(server: TestServer) -> None:
    """Synapse's `consent` resource name: the page without the client API."""
    consent_only = f"http://127.0.0.1:{server.ports[1].port.getHost().port}"
    bob = await admin_register(server, "bob")
    code, _, text = await browse(f"{consent_only}/_matrix/consent?u=bob&h={mac('bob')}")
    assert code == 200 and Page(text).fields["v"] == "2026-11"
    versions = await Client(consent_only).get("/_matrix/client/versions")
    assert (versions.code, versions.json["errcode"]) == (404, "M_UNRECOGNIZED")
    code, _, text = await browse(f"{server.base_url}/_matrix/consent?u=bob&h={mac('bob')}")
    assert code == 200  # and the client listener serves it too
    assert bob.user_id == "@bob:test.local"


@pytest_twisted.ensureDeferred
async def test_accounts_made_with_piman_register_are_told_by_the_catch_up(
        reactor: Any, tmp_path: Path, database_config: dict[str, Any]) -> None:
    config = merge(base_config(tmp_path, database_config), overrides(POLICY_1))
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_1))
    try:
        handler = server.hs.consent_handler
        await handler.wait_for_announcement()
        alice = await register_accepting_terms(server, "alice")  # accepted at registration: never told
        config_path = tmp_path / "homeserver.yaml"
        config_path.write_text(yaml.safe_dump(config))
        # Beside the running server (which alone writes events), the command leaves the notice to it.
        made = subprocess.run(
            [sys.executable, "-c", "from homeserver.cli import main; main()", "register", "--config",
             str(config_path), "--user", "carol", "--password", "correct horse battery"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert made.returncode == 0, made.stderr
        assert "will tell @carol:test.local about privacy policy version 2026-05" in made.stdout

        # A minute's grace (a client registration may still be recording its consent), then told once.
        assert await handler.tell_accounts_that_missed_it() == 0
        later = server.hs.clock.time_msec() + CATCH_UP_GRACE_MS + 1
        assert await handler.tell_accounts_that_missed_it(now_ms=later) == 1
        assert await handler.tell_accounts_that_missed_it(now_ms=later) == 0

        login = await server.client().post(f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"},
            "password": "correct horse battery"})
        carol = server.client(login.json["access_token"])
        room_id = notice_invite(await sync(carol))
        assert (await carol.post(f"{V3}/join/{q(room_id)}", {})).code == 200
        [notice] = notices_in(await sync(carol), room_id)
        assert notice["content"]["org.piman.privacy_policy"]["version"] == "2026-05"
        assert notice["content"]["org.piman.privacy_policy"]["consent_uri"] == consent_link("carol")
        assert not (await sync(alice)).get("rooms", {}).get("invite")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_reloaded_policy_is_announced_without_a_restart(reactor: Any, tmp_path: Path,
                                                              database_config: dict[str, Any]) -> None:
    """What `piman run` does on SIGHUP (tests/e2e/test_policy_reload.py sends the signal for real)."""
    server = await start_server(reactor, tmp_path, database_config, overrides(POLICY_1, require_consent=True))

    def reread(changes: dict[str, Any]) -> Any:
        return load_config_dict(merge(base_config(tmp_path, database_config), changes),
                                source="<test>", base_dir=str(tmp_path))

    try:
        handler = server.hs.consent_handler
        await handler.wait_for_announcement()
        alice = await register_accepting_terms(server, "alice")
        room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
        # What the running server can't take without a restart is refused, and logged as such.
        assert await handler.reload_policy(reread(overrides(POLICY_2))) is False  # drops require_consent
        assert await handler.reload_policy(reread(overrides(None))) is False
        assert await handler.reload_policy(reread(overrides(POLICY_1, require_consent=True))) is False
        assert handler.version == "2026-05"

        assert await handler.reload_policy(reread(overrides(POLICY_2, require_consent=True))) is True
        await handler.wait_for_announcement()
        notice_room = notice_invite(await sync(alice))
        refused = await encrypted(alice, room_id, "t1")
        assert (refused.code, refused.json["errcode"]) == (403, "M_CONSENT_NOT_GIVEN")
        assert (await alice.post(f"{V3}/join/{q(notice_room)}", {})).code == 200
        [notice] = notices_in(await sync(alice), notice_room)
        assert notice["content"]["org.piman.privacy_policy"]["version"] == "2026-11"
        first = await server.client().post(f"{V3}/register", {"username": "bob", "password": "correct horse battery"})
        assert first.json["params"]["m.login.terms"]["policies"]["privacy_policy"]["version"] == "2026-11"
        assert (await alice.get(CONSENT, check_spec=False)).json["url"] == URL_2
        assert (await alice.post(CONSENT, {"version": "2026-11"}, check_spec=False)).code == 200
        assert (await encrypted(alice, room_id, "t1")).code == 200
    finally:
        await server.stop()
