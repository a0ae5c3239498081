"""The HTTP layer's error contract: every failure is Matrix JSON with the spec's errcode and status."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.harness import TestServer

REGISTER = "/_matrix/client/v3/register"
LOGIN = "/_matrix/client/v3/login"


@pytest_twisted.ensureDeferred
async def test_invalid_json_is_m_not_json(server: TestServer) -> None:
    resp = await server.client().post(LOGIN, raw=b"{not json")
    assert resp.code == 400
    assert resp.json["errcode"] == "M_NOT_JSON"


@pytest_twisted.ensureDeferred
async def test_json_that_is_not_an_object_is_m_not_json(server: TestServer) -> None:
    resp = await server.client().post(LOGIN, raw=b"[1, 2]")
    assert resp.code == 400
    assert resp.json["errcode"] == "M_NOT_JSON"


@pytest_twisted.ensureDeferred
async def test_wrong_type_is_m_bad_json_naming_the_field(server: TestServer) -> None:
    resp = await server.client().post(LOGIN, {"type": "m.login.password", "user": "alice", "password": 12})
    assert resp.code == 400
    assert resp.json["errcode"] == "M_BAD_JSON"
    assert "password" in resp.json["error"]


@pytest_twisted.ensureDeferred
async def test_unknown_endpoint_is_404_unrecognized(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/client/v3/no_such_thing")
    assert resp.code == 404
    assert resp.json["errcode"] == "M_UNRECOGNIZED"


@pytest_twisted.ensureDeferred
async def test_wrong_method_is_405_unrecognized(server: TestServer) -> None:
    resp = await server.client().request("PUT", "/_matrix/client/versions", {})
    assert resp.code == 405
    assert resp.json["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.hs_config({"max_request_body_size": 1024})
@pytest_twisted.ensureDeferred
async def test_body_over_the_limit_is_413_too_large(server: TestServer) -> None:
    resp = await server.client().post(LOGIN, {"type": "m.login.password", "password": "x" * 5000})
    assert resp.code == 413
    assert resp.json["errcode"] == "M_TOO_LARGE"


@pytest_twisted.ensureDeferred
async def test_body_over_the_upload_cap_is_413_and_not_buffered(server: TestServer) -> None:
    limit = server.hs.config.max_upload_size
    resp = await server.client().post(LOGIN, raw=b"x" * (limit + 10))
    assert resp.code == 413
    assert resp.json["errcode"] == "M_TOO_LARGE"


@pytest_twisted.ensureDeferred
async def test_missing_token_is_401_missing_token(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/client/v3/account/whoami")
    assert resp.code == 401
    assert resp.json["errcode"] == "M_MISSING_TOKEN"


@pytest_twisted.ensureDeferred
async def test_unknown_token_is_401_unknown_token(server: TestServer) -> None:
    resp = await server.client(token="pmat_not_a_real_token").get("/_matrix/client/v3/account/whoami")
    assert resp.code == 401
    assert resp.json["errcode"] == "M_UNKNOWN_TOKEN"


@pytest_twisted.ensureDeferred
async def test_token_in_query_string_still_accepted(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await server.client().get(f"/_matrix/client/v3/account/whoami?access_token={alice.token}")
    assert resp.code == 200
    assert resp.json["user_id"] == "@alice:test.local"


@pytest_twisted.ensureDeferred
async def test_cors_preflight_and_headers(server: TestServer) -> None:
    resp = await server.client().request("OPTIONS", "/_matrix/client/v3/login")
    assert resp.code == 200
    assert resp.header("Access-Control-Allow-Origin") == "*"
    assert "Authorization" in resp.header("Access-Control-Allow-Headers")
    get = await server.client().get("/_matrix/client/versions")
    assert get.header("Access-Control-Allow-Origin") == "*"


@pytest.mark.hs_config({"rc_login": {"address": {"per_second": 0.1, "burst_count": 2}}})
@pytest_twisted.ensureDeferred
async def test_login_rate_limit_is_429_with_retry_after(server: TestServer) -> None:
    client = server.client()
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "nobody"}, "password": "x"}
    codes = [(await client.post(LOGIN, body)).code for _ in range(2)]
    assert codes == [403, 403]
    resp = await client.post(LOGIN, body)
    assert resp.code == 429
    assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
    assert resp.json["retry_after_ms"] > 0
    assert int(resp.header("Retry-After")) >= 1


@pytest.mark.hs_config({"rc_registration": {"per_second": 0.01, "burst_count": 1}})
@pytest_twisted.ensureDeferred
async def test_registration_rate_limit(server: TestServer) -> None:
    await server.register("first")
    client = server.client()
    resp = await client.post(REGISTER, {"username": "second", "password": "pw-second-123",
                                        "auth": {"type": "m.login.dummy"}})
    assert resp.code == 429
    assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
