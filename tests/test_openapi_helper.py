"""The spec validator must accept what the spec allows and reject the rest.

Every other test that validates against the spec relies on this helper, so it
is checked here with hand-written bodies, good and bad.
"""

from typing import Any

import pytest

from tests.openapi import find_operation, validate_response

CS = "client-server"
SS = "server-server"

VALID: list[tuple[str, str, str, int, Any]] = [
    (CS, "GET", "/_matrix/client/versions", 200,
     {"versions": ["v1.11"], "unstable_features": {"org.example.feature": True}}),
    (CS, "GET", "/_matrix/client/v3/login", 200,
     {"flows": [{"type": "m.login.password"}]}),
    (CS, "POST", "/_matrix/client/v3/login", 200,
     {"user_id": "@alice:localhost", "access_token": "syt_abc",
      "device_id": "ABCDEF", "expires_in_ms": 60000, "refresh_token": "r"}),
    (CS, "POST", "/_matrix/client/v3/login", 403,
     {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}),
    (CS, "POST", "/_matrix/client/v3/login", 429,
     {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}),
    (CS, "POST", "/_matrix/client/v3/register", 200,
     {"user_id": "@alice:localhost", "access_token": "syt_abc", "device_id": "ABCDEF"}),
    (CS, "POST", "/_matrix/client/v3/register?kind=user", 401,
     {"flows": [{"stages": ["m.login.dummy"]}], "params": {}, "session": "xyz"}),
    (CS, "GET", "/_matrix/client/v3/register/available?username=bob", 200,
     {"available": True}),
    (CS, "GET", "/_matrix/client/v3/account/whoami", 200,
     {"user_id": "@alice:localhost", "device_id": "ABCDEF", "is_guest": False}),
    (CS, "GET", "/_matrix/client/v3/account/whoami", 401,
     {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token", "soft_logout": False}),
    (CS, "GET", "/_matrix/client/v3/devices", 200,
     {"devices": [{"device_id": "ABCDEF", "display_name": "phone",
                   "last_seen_ip": "127.0.0.1", "last_seen_ts": 1700000000000}]}),
    (CS, "GET", "/_matrix/client/v3/devices/ABCDEF", 200, {"device_id": "ABCDEF"}),
    (SS, "GET", "/_matrix/federation/v1/version", 200,
     {"server": {"name": "piman", "version": "0.1.0"}}),
    (SS, "GET", "/_matrix/key/v2/server", 200,
     {"server_name": "localhost", "valid_until_ts": 1700000000000,
      "verify_keys": {"ed25519:a_abcd": {"key": "VGhpcyBpcyBub3QgYSBrZXk"}},
      "old_verify_keys": {}, "signatures": {"localhost": {"ed25519:a_abcd": "c2ln"}}}),
]

INVALID: list[tuple[str, str, str, int, Any, str]] = [
    (CS, "GET", "/_matrix/client/versions", 200, {"unstable_features": {}}, "'versions' is a required property"),
    (CS, "GET", "/_matrix/client/versions", 200, {"versions": "v1.11"}, "is not of type 'array'"),
    (CS, "GET", "/_matrix/client/v3/login", 200, {"flows": [{"stages": []}]}, "'type' is a required property"),
    (CS, "POST", "/_matrix/client/v3/login", 200, {"user_id": "@a:b", "device_id": "D"}, "'access_token' is a required property"),
    (CS, "POST", "/_matrix/client/v3/login", 429, {"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": "soon"}, "at retry_after_ms"),
    (CS, "POST", "/_matrix/client/v3/register", 200, {"access_token": "t"}, "'user_id' is a required property"),
    (CS, "POST", "/_matrix/client/v3/register", 401, {"session": "xyz"}, "'flows' is a required property"),
    (CS, "POST", "/_matrix/client/v3/register", 401, {"flows": [{"stages": "m.login.dummy"}]}, "at flows/0/stages"),
    (CS, "GET", "/_matrix/client/v3/account/whoami", 200, {"user_id": 42}, "at user_id"),
    (CS, "GET", "/_matrix/client/v3/account/whoami", 401, {"error": "Unknown access token"}, "'errcode' is a required property"),
    (CS, "GET", "/_matrix/client/v3/devices", 200, {"devices": [{"display_name": "phone"}]}, "'device_id' is a required property"),
    (CS, "GET", "/_matrix/client/v3/devices", 200, {"devices": {}}, "is not of type 'array'"),
    (SS, "GET", "/_matrix/key/v2/server", 200, {"server_name": "localhost"}, "is a required property"),
]


@pytest.mark.parametrize("api,method,path,status,body", VALID)
def test_valid_bodies_pass(api: str, method: str, path: str, status: int, body: Any) -> None:
    validate_response(api, method, path, status, body)


@pytest.mark.parametrize("api,method,path,status,body,message", INVALID)
def test_invalid_bodies_fail(
    api: str, method: str, path: str, status: int, body: Any, message: str
) -> None:
    with pytest.raises(AssertionError) as caught:
        validate_response(api, method, path, status, body)
    assert message in str(caught.value)
    assert path.split("?")[0] in str(caught.value)


def test_unknown_path_fails() -> None:
    with pytest.raises(AssertionError, match="no client-server operation"):
        validate_response(CS, "GET", "/_matrix/client/v3/no_such_endpoint", 200, {})


def test_unknown_method_fails() -> None:
    with pytest.raises(AssertionError, match="has no DELETE"):
        validate_response(CS, "DELETE", "/_matrix/client/v3/account/whoami", 200, {})


def test_unlisted_status_fails() -> None:
    with pytest.raises(AssertionError, match="lists no 418 response"):
        validate_response(CS, "GET", "/_matrix/client/v3/account/whoami", 418, {})


def test_api_must_be_known() -> None:
    with pytest.raises(ValueError):
        validate_response("identity", "GET", "/_matrix/identity/v2", 200, {})


def test_most_specific_template_wins() -> None:
    """A literal template beats a templated sibling that also matches."""
    op = find_operation(SS, "GET", "/_matrix/federation/v1/query/profile?user_id=@a:b")
    assert op.template == "/_matrix/federation/v1/query/profile"
    op = find_operation(SS, "GET", "/_matrix/federation/v1/query/other")
    assert op.template == "/_matrix/federation/v1/query/{queryType}"
    op = find_operation(CS, "GET", "/_matrix/client/v3/devices/ABCDEF")
    assert op.template == "/_matrix/client/v3/devices/{deviceId}"
