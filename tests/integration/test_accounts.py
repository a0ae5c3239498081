"""Registration, login, devices, password change, deactivation and refresh over real HTTP."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.harness import SERVER_NAME, V3, TestServer


def password_auth(user: str, password: str, session: str | None = None) -> dict:
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    if session is not None:
        auth["session"] = session
    return auth


async def login(server: TestServer, user: str, password: str, **extra: object):
    return await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password, **extra,
    })


@pytest_twisted.ensureDeferred
async def test_register_uia_flow_then_whoami(server: TestServer) -> None:
    client = server.client()
    first = await client.post(f"{V3}/register", {"username": "alice", "password": "pw-alice-1"})
    assert first.code == 401
    assert first.json["flows"] == [{"stages": ["m.login.dummy"]}]
    assert first.json["session"]
    done = await client.post(f"{V3}/register", {
        "username": "alice", "password": "pw-alice-1", "initial_device_display_name": "Alice's phone",
        "auth": {"type": "m.login.dummy", "session": first.json["session"]},
    })
    assert done.code == 200, done
    assert done.json["user_id"] == f"@alice:{SERVER_NAME}"
    whoami = await server.client(done.json["access_token"]).get(f"{V3}/account/whoami")
    assert whoami.json == {"user_id": f"@alice:{SERVER_NAME}", "device_id": done.json["device_id"], "is_guest": False}
    devices = await server.client(done.json["access_token"]).get(f"{V3}/devices")
    assert [d["display_name"] for d in devices.json["devices"]] == ["Alice's phone"]


@pytest_twisted.ensureDeferred
async def test_username_taken_and_invalid_reported_before_auth(server: TestServer) -> None:
    await server.register("bob")
    taken = await server.client().post(f"{V3}/register", {"username": "bob", "password": "whatever-1"})
    assert (taken.code, taken.json["errcode"]) == (400, "M_USER_IN_USE")
    bad = await server.client().post(f"{V3}/register", {"username": "bob smith", "password": "whatever-1"})
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_USERNAME")
    available = await server.client().get(f"{V3}/register/available?username=carol")
    assert available.json == {"available": True}
    unavailable = await server.client().get(f"{V3}/register/available?username=bob")
    assert unavailable.json["errcode"] == "M_USER_IN_USE"


@pytest_twisted.ensureDeferred
async def test_concurrent_registration_of_one_name_gives_one_account(server: TestServer) -> None:
    from twisted.internet import defer

    async def attempt() -> int:
        client = server.client()
        first = await client.post(f"{V3}/register", {"username": "race", "password": "pw-race-12"})
        if first.code != 401:
            return first.code
        resp = await client.post(f"{V3}/register", {"username": "race", "password": "pw-race-12",
                                                   "auth": {"type": "m.login.dummy", "session": first.json["session"]}})
        return resp.code

    codes = await defer.gatherResults([defer.ensureDeferred(attempt()) for _ in range(5)])
    assert sorted(codes).count(200) == 1, codes


@pytest_twisted.ensureDeferred
async def test_inhibit_login_returns_no_token(server: TestServer) -> None:
    client = server.client()
    first = await client.post(f"{V3}/register", {"username": "quiet", "password": "pw-quiet-1", "inhibit_login": True})
    done = await client.post(f"{V3}/register", {"username": "quiet", "password": "pw-quiet-1", "inhibit_login": True,
                                               "auth": {"type": "m.login.dummy", "session": first.json["session"]}})
    assert done.code == 200
    assert "access_token" not in done.json
    assert done.json["user_id"] == f"@quiet:{SERVER_NAME}"


@pytest_twisted.ensureDeferred
async def test_guests_refused_by_default(server: TestServer) -> None:
    resp = await server.client().post(f"{V3}/register?kind=guest", {})
    assert (resp.code, resp.json["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


@pytest.mark.hs_config({"allow_guest_access": True})
@pytest_twisted.ensureDeferred
async def test_guest_when_enabled(server: TestServer) -> None:
    resp = await server.client().post(f"{V3}/register?kind=guest", {})
    assert resp.code == 200
    whoami = await server.client(resp.json["access_token"]).get(f"{V3}/account/whoami")
    assert whoami.json["is_guest"] is True
    # Guests may not change a password or delete devices.
    denied = await server.client(resp.json["access_token"]).post(f"{V3}/account/password", {"new_password": "x"})
    assert denied.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


@pytest.mark.hs_config({"enable_registration": False})
@pytest_twisted.ensureDeferred
async def test_registration_disabled(server: TestServer) -> None:
    resp = await server.client().post(f"{V3}/register", {"username": "dave", "password": "pw-dave-12"})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.hs_config({"registration_requires_token": True})
@pytest_twisted.ensureDeferred
async def test_registration_token_flow_single_use(server: TestServer) -> None:
    await server.hs.store.registration_tokens.create_registration_token("invite-123", 1, None)
    client = server.client()
    validity = await client.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=invite-123")
    assert validity.json == {"valid": True}
    first = await client.post(f"{V3}/register", {"username": "erin", "password": "pw-erin-12"})
    assert first.json["flows"] == [{"stages": ["m.login.registration_token"]}]
    wrong = await client.post(f"{V3}/register", {"username": "erin", "password": "pw-erin-12", "auth": {
        "type": "m.login.registration_token", "token": "nope", "session": first.json["session"]}})
    assert wrong.code == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    done = await client.post(f"{V3}/register", {"username": "erin", "password": "pw-erin-12", "auth": {
        "type": "m.login.registration_token", "token": "invite-123", "session": first.json["session"]}})
    assert done.code == 200, done
    again = await client.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=invite-123")
    assert again.json == {"valid": False}


@pytest_twisted.ensureDeferred
async def test_login_with_identifier_and_legacy_user_and_case(server: TestServer) -> None:
    await server.register("frank", "pw-frank-12")
    by_identifier = await login(server, "frank", "pw-frank-12", device_id="LAPTOP", initial_device_display_name="Laptop")
    assert by_identifier.code == 200, by_identifier
    assert by_identifier.json["device_id"] == "LAPTOP"
    assert by_identifier.json["user_id"] == f"@frank:{SERVER_NAME}"
    legacy = await server.client().post(f"{V3}/login", {"type": "m.login.password", "user": "@frank:test.local",
                                                        "password": "pw-frank-12"})
    assert legacy.code == 200
    upper = await login(server, "FRANK", "pw-frank-12")
    assert upper.code == 200 and upper.json["user_id"] == f"@frank:{SERVER_NAME}"
    wrong = await login(server, "frank", "nope")
    assert (wrong.code, wrong.json["errcode"]) == (403, "M_FORBIDDEN")
    unknown = await login(server, "nobody", "nope")
    assert unknown.json == wrong.json  # no account enumeration
    flows = await server.client().get(f"{V3}/login")
    assert {"type": "m.login.password"} in flows.json["flows"]


@pytest_twisted.ensureDeferred
async def test_logout_and_logout_all(server: TestServer) -> None:
    await server.register("gina", "pw-gina-123")
    one = (await login(server, "gina", "pw-gina-123")).json["access_token"]
    two = (await login(server, "gina", "pw-gina-123")).json["access_token"]
    assert (await server.client(one).post(f"{V3}/logout", {})).code == 200
    gone = await server.client(one).get(f"{V3}/account/whoami")
    assert gone.json["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await server.client(two).get(f"{V3}/account/whoami")).code == 200
    assert (await server.client(two).post(f"{V3}/logout/all", {})).code == 200
    assert (await server.client(two).get(f"{V3}/account/whoami")).code == 401


@pytest_twisted.ensureDeferred
async def test_devices_get_update_delete_with_uia(server: TestServer) -> None:
    alice = await server.register("alice", "pw-alice-12")
    other = await login(server, "alice", "pw-alice-12", device_id="OTHER")
    assert (await alice.get(f"{V3}/devices/OTHER")).json["device_id"] == "OTHER"
    assert (await alice.put(f"{V3}/devices/OTHER", {"display_name": "Tablet"})).code == 200
    assert (await alice.get(f"{V3}/devices/OTHER")).json["display_name"] == "Tablet"
    assert (await alice.get(f"{V3}/devices/NOPE")).json["errcode"] == "M_NOT_FOUND"
    first = await alice.delete(f"{V3}/devices/OTHER", {})
    assert first.code == 401 and first.json["flows"] == [{"stages": ["m.login.password"]}]
    bad = await alice.delete(f"{V3}/devices/OTHER", {"auth": password_auth("alice", "wrong", first.json["session"])})
    assert bad.code == 401 and bad.json["errcode"] == "M_FORBIDDEN"
    ok = await alice.delete(f"{V3}/devices/OTHER", {"auth": password_auth("alice", "pw-alice-12", first.json["session"])})
    assert ok.code == 200, ok
    assert (await server.client(other.json["access_token"]).get(f"{V3}/account/whoami")).code == 401
    listed = await alice.get(f"{V3}/devices")
    assert [d["device_id"] for d in listed.json["devices"]] == [alice.device_id]


@pytest_twisted.ensureDeferred
async def test_delete_devices_bulk(server: TestServer) -> None:
    alice = await server.register("alice", "pw-alice-12")
    for dev in ("D1", "D2"):
        await login(server, "alice", "pw-alice-12", device_id=dev)
    first = await alice.post(f"{V3}/delete_devices", {"devices": ["D1", "D2"]})
    ok = await alice.post(f"{V3}/delete_devices", {"devices": ["D1", "D2"],
                                                   "auth": password_auth("alice", "pw-alice-12", first.json["session"])})
    assert ok.code == 200
    listed = await alice.get(f"{V3}/devices")
    assert [d["device_id"] for d in listed.json["devices"]] == [alice.device_id]


@pytest_twisted.ensureDeferred
async def test_uia_session_cannot_be_reused_for_another_endpoint(server: TestServer) -> None:
    alice = await server.register("alice", "pw-alice-12")
    await login(server, "alice", "pw-alice-12", device_id="D1")
    first = await alice.delete(f"{V3}/devices/D1", {})
    other = await alice.post(f"{V3}/delete_devices", {"devices": ["D1"],
                                                      "auth": password_auth("alice", "pw-alice-12", first.json["session"])})
    assert (other.code, other.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest_twisted.ensureDeferred
async def test_password_change_logs_out_other_devices(server: TestServer) -> None:
    alice = await server.register("alice", "pw-alice-12")
    other = (await login(server, "alice", "pw-alice-12")).json["access_token"]
    first = await alice.post(f"{V3}/account/password", {"new_password": "pw-alice-new"})
    assert first.code == 401
    done = await alice.post(f"{V3}/account/password", {"new_password": "pw-alice-new",
                                                       "auth": password_auth("alice", "pw-alice-12", first.json["session"])})
    assert done.code == 200, done
    assert (await server.client(other).get(f"{V3}/account/whoami")).code == 401
    assert (await alice.get(f"{V3}/account/whoami")).code == 200
    assert (await login(server, "alice", "pw-alice-12")).code == 403
    assert (await login(server, "alice", "pw-alice-new")).code == 200


@pytest.mark.hs_config({"password_config": {"policy": {"minimum_length": 10, "require_digit": True}}})
@pytest_twisted.ensureDeferred
async def test_password_policy(server: TestServer) -> None:
    resp = await server.client().post(f"{V3}/register", {"username": "weak", "password": "short"})
    assert (resp.code, resp.json["errcode"]) == (400, "M_WEAK_PASSWORD")
    assert "10 characters" in resp.json["error"] and "digit" in resp.json["error"]


@pytest_twisted.ensureDeferred
async def test_deactivate_closes_account_for_good(server: TestServer) -> None:
    alice = await server.register("alice", "pw-alice-12")
    first = await alice.post(f"{V3}/account/deactivate", {})
    done = await alice.post(f"{V3}/account/deactivate", {"auth": password_auth("alice", "pw-alice-12", first.json["session"])})
    assert done.code == 200, done
    assert done.json == {"id_server_unbind_result": "no-support"}
    assert (await alice.get(f"{V3}/account/whoami")).code == 401
    assert (await login(server, "alice", "pw-alice-12")).code == 403
    again = await server.client().post(f"{V3}/register", {"username": "alice", "password": "pw-alice-12"})
    assert again.json["errcode"] == "M_USER_IN_USE"


@pytest.mark.hs_config({"refreshable_access_token_lifetime": "1s"})
@pytest_twisted.ensureDeferred
async def test_refresh_tokens_rotate(server: TestServer) -> None:
    await server.register("alice", "pw-alice-12")
    resp = await login(server, "alice", "pw-alice-12", refresh_token=True)
    assert resp.json["expires_in_ms"] == 1000
    first_refresh = resp.json["refresh_token"]
    refreshed = await server.client().post(f"{V3}/refresh", {"refresh_token": first_refresh})
    assert refreshed.code == 200, refreshed
    new_access, new_refresh = refreshed.json["access_token"], refreshed.json["refresh_token"]
    assert (await server.client(new_access).get(f"{V3}/account/whoami")).code == 200
    # Using the successor retires the first refresh token.
    assert (await server.client().post(f"{V3}/refresh", {"refresh_token": new_refresh})).code == 200
    replay = await server.client().post(f"{V3}/refresh", {"refresh_token": first_refresh})
    assert (replay.code, replay.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    unknown = await server.client().post(f"{V3}/refresh", {"refresh_token": "pmrt_nope"})
    assert unknown.code == 401


@pytest_twisted.ensureDeferred
async def test_using_the_new_access_token_retires_the_old_refresh_token(server: TestServer) -> None:
    """Spec: the old refresh token remains valid until the new access token or refresh token is used."""
    await server.register("alice", "pw-alice-12")
    first_refresh = (await login(server, "alice", "pw-alice-12", refresh_token=True)).json["refresh_token"]
    refreshed = await server.client().post(f"{V3}/refresh", {"refresh_token": first_refresh})
    assert refreshed.code == 200, refreshed
    # Not used yet: a client that lost the answer may still retry with the first token.
    retry = await server.client().post(f"{V3}/refresh", {"refresh_token": first_refresh})
    assert retry.code == 200, retry
    assert (await server.client(retry.json["access_token"]).get(f"{V3}/account/whoami")).code == 200
    replay = await server.client().post(f"{V3}/refresh", {"refresh_token": first_refresh})
    assert (replay.code, replay.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    # The successor issued with the lost answer was never used: the retry replaced it.
    assert (await server.client(refreshed.json["access_token"]).get(f"{V3}/account/whoami")).code == 401
