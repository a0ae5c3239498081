"""Small client endpoints Element calls: 3PIDs, third-party lookups, TURN credentials and OpenID.

Over real HTTP on both engines; 2xx bodies are checked against the spec by the harness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from config import load_config_dict
from config.errors import ConfigError
from homeserver.auth import token_hash
from tests.integration.harness import SERVER_NAME, V3, Client, TestServer, base_config, merge, q

USERINFO = "/_matrix/federation/v1/openid/userinfo"


# 3PIDs: none linked, none accepted.

@pytest_twisted.ensureDeferred
async def test_threepid_list_is_empty_and_changes_are_refused(server: TestServer) -> None:
    alice = await server.register("alice")
    listed = await alice.get(f"{V3}/account/3pid")
    assert (listed.code, listed.json) == (200, {"threepids": []})
    assert (await server.client().get(f"{V3}/account/3pid")).json["errcode"] == "M_MISSING_TOKEN"

    add = await alice.post(f"{V3}/account/3pid/add", {"client_secret": "s3cret", "sid": "abc"})
    assert (add.code, add.json["errcode"]) == (403, "M_THREEPID_DENIED")
    bind = await alice.post(f"{V3}/account/3pid/bind", {"client_secret": "s3cret", "sid": "abc",
                                                        "id_server": "id.example.org", "id_access_token": "t"})
    assert (bind.code, bind.json["errcode"]) == (403, "M_THREEPID_DENIED")
    old_add = await alice.post(f"{V3}/account/3pid", {"three_pid_creds": {
        "client_secret": "s3cret", "sid": "abc", "id_server": "id.example.org", "id_access_token": "t"}})
    assert (old_add.code, old_add.json["errcode"]) == (403, "M_THREEPID_DENIED")
    incomplete = await alice.post(f"{V3}/account/3pid/bind", {"sid": "abc"})
    assert (incomplete.code, incomplete.json["errcode"]) == (400, "M_MISSING_PARAM")

    for action in ("delete", "unbind"):
        removed = await alice.post(f"{V3}/account/3pid/{action}", {"medium": "email", "address": "a@example.org"})
        assert (removed.code, removed.json) == (200, {"id_server_unbind_result": "no-support"})
        bad = await alice.post(f"{V3}/account/3pid/{action}", {"medium": "pigeon", "address": "a"})
        assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await alice.get(f"{V3}/account/3pid")).json == {"threepids": []}


@pytest_twisted.ensureDeferred
async def test_threepid_validation_is_not_supported(server: TestServer) -> None:
    anonymous = server.client()
    email = await anonymous.post(f"{V3}/account/3pid/email/requestToken",
                                 {"client_secret": "s3cret", "email": "a@example.org", "send_attempt": 1})
    assert (email.code, email.json["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
    phone = await anonymous.post(f"{V3}/account/3pid/msisdn/requestToken",
                                 {"client_secret": "s3cret", "country": "GB", "phone_number": "07700900001",
                                  "send_attempt": 1})
    assert (phone.code, phone.json["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
    garbage = await anonymous.request("POST", f"{V3}/account/3pid/email/requestToken", raw=b"nope")
    assert (garbage.code, garbage.json["errcode"]) == (400, "M_NOT_JSON")
    for path, says in (("/register/email/requestToken", "registering with email addresses"),
                       ("/account/password/msisdn/requestToken", "resetting passwords through phone numbers")):
        resp = await anonymous.post(f"{V3}{path}", {"client_secret": "s3cret", "email": "a@example.org",
                                                    "send_attempt": 1})
        assert (resp.code, resp.json["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"), path
        assert says in resp.json["error"]


# Third-party lookups: no bridges.

@pytest_twisted.ensureDeferred
async def test_thirdparty_knows_no_protocol(server: TestServer) -> None:
    alice = await server.register("alice")
    protocols = await alice.get(f"{V3}/thirdparty/protocols")
    assert (protocols.code, protocols.json) == (200, {})
    for path in ("protocol/irc", "location/irc?channel=%23x", "user/irc?nickname=x",
                 "location?alias=%23room%3Atest.local", f"user?userid={q('@bob:test.local')}"):
        found = await alice.get(f"{V3}/thirdparty/{path}")
        assert (found.code, found.json["errcode"]) == (404, "M_NOT_FOUND"), path
    missing = await alice.get(f"{V3}/thirdparty/location")
    assert (missing.code, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    assert (await server.client().get(f"{V3}/thirdparty/protocols")).code == 401


# TURN credentials.

@pytest_twisted.ensureDeferred
async def test_turn_without_configuration_answers_empty(server: TestServer) -> None:
    alice = await server.register("alice")
    # Synapse's answer, which clients read as "no TURN"; the spec's schema has no shape for it.
    resp = await alice.get(f"{V3}/voip/turnServer", check_spec=False)
    assert (resp.code, resp.json) == (200, {})


TURN_URIS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]


@pytest.mark.hs_config({"turn_uris": TURN_URIS, "turn_shared_secret": "coturn-static-auth-secret",
                        "turn_user_lifetime": "2h", "allow_guest_access": True,
                        # As in Synapse, the secret wins over fixed credentials.
                        "turn_username": "calls", "turn_password": "hunter2"})
@pytest_twisted.ensureDeferred
async def test_turn_rest_api_credentials_from_the_shared_secret(server: TestServer) -> None:
    alice = await server.register("alice")
    before_s = int(server.hs.clock.time())
    resp = await alice.get(f"{V3}/voip/turnServer")
    assert resp.code == 200
    body = resp.json
    assert body["uris"] == TURN_URIS and body["ttl"] == 7200
    expiry, _, user_id = body["username"].partition(":")
    assert user_id == alice.user_id
    assert before_s + 7200 <= int(expiry) <= int(server.hs.clock.time()) + 7200
    # What coturn computes with use-auth-secret: base64(HMAC-SHA1(static-auth-secret, username)).
    expected = base64.b64encode(hmac.new(b"coturn-static-auth-secret", body["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert body["password"] == expected
    guest = await server.client().post(f"{V3}/register?kind=guest", {})
    assert (await server.client(guest.json["access_token"]).get(f"{V3}/voip/turnServer")).code == 200


@pytest.mark.hs_config({"turn_uris": TURN_URIS[:1], "turn_username": "calls", "turn_password": "hunter2",
                        "turn_allow_guests": False, "allow_guest_access": True})
@pytest_twisted.ensureDeferred
async def test_turn_static_credentials_and_guests_refused(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.get(f"{V3}/voip/turnServer")
    assert (resp.code, resp.json) == (200, {"username": "calls", "password": "hunter2", "uris": TURN_URIS[:1],
                                            "ttl": 3600})
    guest = await server.client().post(f"{V3}/register?kind=guest", {})
    refused = await server.client(guest.json["access_token"]).get(f"{V3}/voip/turnServer")
    assert (refused.code, refused.json["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


@pytest.mark.parametrize("turn, message", [
    ({"turn_uris": ["stun:stun.example.org"]}, "turn_uris[0]: expected a turn: or turns: URI"),
    ({"turn_username": "calls"}, "turn_password: is required with turn_username"),
    ({"turn_password": "x"}, "turn_username: is required with turn_password"),
    ({"turn_user_lifetime": "0s"}, "turn_user_lifetime: must be longer than zero"),
])
def test_bad_turn_config_stops_start_up(tmp_path: Path, turn: dict[str, Any], message: str) -> None:
    config = merge(base_config(tmp_path, {"name": "sqlite3", "args": {"database": ":memory:"}}), turn)
    with pytest.raises(ConfigError) as caught:
        load_config_dict(config, source="homeserver.yaml", base_dir=str(tmp_path))
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value) and "'x'" not in str(caught.value)


# OpenID.

@pytest_twisted.ensureDeferred
async def test_openid_token_tells_a_third_party_who_the_user_is(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    resp = await alice.post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})
    assert resp.code == 200
    assert resp.json["token_type"] == "Bearer" and resp.json["matrix_server_name"] == SERVER_NAME
    assert resp.json["expires_in"] == 3600
    token = resp.json["access_token"]

    third_party = server.client()
    info = await third_party.get(f"{USERINFO}?access_token={urllib.parse.quote(token)}")
    assert (info.code, info.json) == (200, {"sub": alice.user_id})
    # Good for nothing else: not an access token.
    assert (await server.client(token).get(f"{V3}/account/whoami")).json["errcode"] == "M_UNKNOWN_TOKEN"
    # Stored hashed, never as given.
    stored = await server.hs.store.db.execute("t", "SELECT token_hash, user_id FROM openid_tokens")
    assert [(bytes(h), u) for h, u in stored] == [(token_hash(token), alice.user_id)]

    unknown = await third_party.get(f"{USERINFO}?access_token=not-a-token")
    assert (unknown.code, unknown.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    missing = await third_party.get(USERINFO)
    assert (missing.code, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    for_someone_else = await bob.post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})
    assert (for_someone_else.code, for_someone_else.json["errcode"]) == (403, "M_FORBIDDEN")
    assert (await server.client().post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})).code == 401


@pytest_twisted.ensureDeferred
async def test_openid_tokens_expire_and_die_with_the_account(server: TestServer) -> None:
    alice = await server.register("alice")
    store = server.hs.store.openid_tokens
    now_ms = server.hs.clock.time_msec()
    await store.add_openid_token(token_hash("old"), alice.user_id, now_ms - 1, now_ms - 3_600_000)
    expired = await server.client().get(f"{USERINFO}?access_token=old")
    assert (expired.code, expired.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")

    # Issuing a token deletes expired ones.
    resp = await alice.post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})
    hashes = [bytes(h) for (h,) in await server.hs.store.db.execute("t", "SELECT token_hash FROM openid_tokens")]
    assert hashes == [token_hash(resp.json["access_token"])]
    live = resp.json["access_token"]
    assert await store.get_user_for_openid_token(token_hash(live), now_ms + 3_599_000) == alice.user_id
    assert await store.get_user_for_openid_token(token_hash(live), now_ms + 3_601_000 + 60_000) is None

    await server.hs.store.users.set_deactivated(alice.user_id, True)
    gone = await server.client().get(f"{USERINFO}?access_token={urllib.parse.quote(live)}")
    assert (gone.code, gone.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")


@pytest.mark.hs_config({"listeners": [
    {"port": 0, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]},
    {"port": 0, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["openid"]}]}]})
@pytest_twisted.ensureDeferred
async def test_userinfo_is_served_by_openid_listeners_only(server: TestServer) -> None:
    alice = await server.register("alice")
    token = (await alice.post(f"{V3}/user/{q(alice.user_id)}/openid/request_token", {})).json["access_token"]
    openid_only = Client(f"http://127.0.0.1:{server.ports[1].port.getHost().port}")
    info = await openid_only.get(f"{USERINFO}?access_token={urllib.parse.quote(token)}")
    assert (info.code, info.json) == (200, {"sub": alice.user_id})
    assert (await openid_only.get("/_matrix/client/versions")).code == 404
    on_client = await server.client().get(f"{USERINFO}?access_token={urllib.parse.quote(token)}")
    assert (on_client.code, on_client.json["errcode"]) == (404, "M_UNRECOGNIZED")
